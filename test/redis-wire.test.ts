// Reading a payload from a pinghub channel in Redis (src/redis-wire.ts): exactly pinghub's shape for the node's
// --history, or a reason to drop it whole. Pure functions, called directly; cluster-wire.test.ts sends the same
// payloads through a real Redis with redis-cli.

import { describe, expect, test } from "bun:test";
import { encodeBatch, readMessages, readPairs } from "../src/redis-wire.ts";

const MAX = 10;

describe("without --history", () => {
  test("an array of non-empty strings is taken whole", () => {
    expect(readMessages(encodeBatch(["a", "b\nc"]), MAX)).toEqual(["a", "b\nc"]);
  });

  test.each([
    ["hello", "not JSON"],
    ['"abc"', "not a JSON array"],
    ["{}", "not a JSON array"],
    ["[]", "an empty array"],
    ["[1,null,{}]", "an item is not a string"],
    ['["ok", 2]', "an item is not a string"],
    ['[["a","b"]]', "an item is not a string"],
    ['[""]', "an empty message"],
    ['["\\ud800"]', "a message that is not valid Unicode"],
    [JSON.stringify(["x".repeat(MAX + 1)]), `a message over --max-message-size (${MAX} bytes)`],
    // Four characters, twelve bytes of UTF-8: the limit is in bytes.
    [JSON.stringify(["€€€€"]), `a message over --max-message-size (${MAX} bytes)`],
  ])("%s is dropped: %s", (payload, reason) => {
    expect(readMessages(payload, MAX)).toEqual({ reason, otherHistory: false });
  });

  test("at the limit exactly, taken", () => {
    expect(readMessages(JSON.stringify(["x".repeat(MAX)]), MAX)).toEqual(["x".repeat(MAX)]);
    expect(readMessages(JSON.stringify(["€€€"]), 9)).toEqual(["€€€"]);
  });

  test("a batch with ids, as a node with --history sends it: dropped, and told apart", () => {
    expect(readMessages('[["1733-0","a"]]', MAX)).toEqual({
      reason: "messages with ids: a node runs with --history",
      otherHistory: true,
    });
  });
});

describe("with --history", () => {
  test("[id, message] pairs are taken whole", () => {
    expect(readPairs('[["1733-0","a"],["1733-1","b"]]', MAX)).toEqual([
      ["1733-0", "a"],
      ["1733-1", "b"],
    ]);
  });

  test.each([
    ['[["a","b"]]', "an item is not an [id, message] pair"],
    ['[["1-0"]]', "an item is not an [id, message] pair"],
    ['[["1-0","a","b"]]', "an item is not an [id, message] pair"],
    ['[[1,"a"]]', "an item is not an [id, message] pair"],
    ['[["1-0",2]]', "an item is not an [id, message] pair"],
    ['[["1-0",""]]', "an empty message"],
  ])("%s is dropped: %s", (payload, reason) => {
    expect(readPairs(payload, MAX)).toEqual({ reason, otherHistory: false });
  });

  test("plain strings, as a node without --history sends them: dropped, and told apart", () => {
    expect(readPairs('["a"]', MAX)).toEqual({
      reason: "messages without ids: a node runs without --history",
      otherHistory: true,
    });
  });
});
