// What crosses Redis on pinghub's channels, checked (issue 16, defect 4): payloads another program PUBLISHes with
// redis-cli reach a websocket on one node and an SSE stream on another only when they are exactly pinghub's
// shape; anything else is dropped whole by every node, counted, logged once a minute per channel and reason, and
// never printed outside the log. Nodes started with different --history say so: on vs off on the wire, two sizes
// or TTLs through the settings key each node with --history swaps in when it connects (redis-settings.ts).

import { afterEach, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { post } from "./support/clients.ts";
import { clusterBed } from "./support/cluster-node.ts";
import { skipWithoutRedis, startRedis } from "./support/redis.ts";
import { inScratch } from "./support/scratch.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

const REDIS_CLI = "/usr/bin/redis-cli";
const skip = skipWithoutRedis();

const bed = clusterBed();
const node = bed.node;
afterEach(bed.stopAll);

/** `redis-cli PUBLISH channel payload`, as another program would; `stdin` sends the payload from a file (-x). */
function redisCli(port: number, channel: string, payload: string | { file: string }): number {
  const args = [REDIS_CLI, "-p", String(port), ...(typeof payload === "string" ? [] : ["-x"]), "PUBLISH", channel];
  const run = Bun.spawnSync(typeof payload === "string" ? [...args, payload] : args, {
    stdin: typeof payload === "string" ? "ignore" : Bun.file(payload.file),
  });
  if (run.exitCode !== 0) throw new Error(`redis-cli failed: ${run.stderr.toString()}`);
  return Number(run.stdout.toString().trim());
}

describe.skipIf(skip)("payloads on pinghub's Redis channels", () => {
  test("another program's: pinghub's shape delivered, anything else dropped whole on every node and counted", async () => {
    const r = await startRedis();
    bed.redis = r;
    const [a, b] = [await node(r.url), await node(r.url, ["--max-message-size", "1000"])];
    const ws = await bed.open(a.ws("/x"));
    const sse = await openEvents(`${b.url}/x`);
    expect(sse.status).toBe(200);

    const bad = [
      "hello", // not JSON
      "hello", // the same again: counted, not logged again
      '"abc"', // a string, not an array
      "[1,null,{}]",
      '[["a","b"]]', // pairs without ids that pinghub makes
      "[]",
      '["fine", 2]', // one good message does not save the batch
      '["\\ud800"]', // a lone surrogate
    ];
    for (const payload of bad) expect(redisCli(r.port, "pinghub:/x", payload)).toBe(2);
    // 2 MiB in one message: over both nodes' --max-message-size (64 KiB on a, 1000 bytes on b).
    await inScratch("wire", async (dir) => {
      const big = join(dir, "big.json");
      writeFileSync(big, JSON.stringify(["x".repeat(2 * 1024 * 1024)]));
      expect(redisCli(r.port, "pinghub:/x", { file: big })).toBe(2);
    });
    // The way the README gives: an array of strings. It is the first thing either subscriber hears.
    expect(redisCli(r.port, "pinghub:/x", '["from redis-cli","second, with \\"quotes\\""]')).toBe(2);
    expect(await ws.received(2)).toEqual(["from redis-cli", 'second, with "quotes"']);
    expect((await sse.received(2)).map((e) => e.data)).toEqual(["from redis-cli", 'second, with "quotes"']);
    // Published after, and what arrives next: nothing from the bad payloads was queued anywhere.
    expect((await post(`${a.url}/x`, "by POST")).status).toBe(200);
    expect(await ws.received(3)).toEqual(["from redis-cli", 'second, with "quotes"', "by POST"]);
    expect((await sse.received(3)).map((e) => e.data)).toEqual(["from redis-cli", 'second, with "quotes"', "by POST"]);
    sse.close();

    for (const n of [a, b]) {
      expect(await n.sample("pinghub_redis_bad_messages_total")).toBe(bad.length + 1);
      expect(n.lines(/warn cluster: dropped a payload from redis on "\/x": not JSON/)).toBe(1);
      // One line per reason: not JSON, not an array, an item not a string (three payloads), an empty array, not
      // valid Unicode, over --max-message-size.
      expect(n.lines(/warn cluster: dropped a payload from redis on "\/x": /)).toBe(6);
      expect(n.lines(/: a message over --max-message-size/)).toBe(1);
      // Nothing outside the log: every stderr line is a log line.
      const stray = n
        .stderr()
        .split("\n")
        .filter((line) => line !== "" && !/^\S+ (info|warn|error|debug) /.test(line));
      expect(stray).toEqual([]);
      expect(n.stderr()).not.toContain("SyntaxError");
      // The payload itself is never copied into the log.
      expect(n.stderr()).not.toContain("xxxxxxxx");
    }
  });

  test("nodes started with different --history: each says so once, and drops the other's batches", async () => {
    const r = await startRedis();
    bed.redis = r;
    const [withHistory, without] = [await node(r.url, ["--history", "10"]), await node(r.url)];
    const onWith = await bed.open(withHistory.ws("/h"));
    const onWithout = await bed.open(without.ws("/h"));
    for (let i = 0; i < 3; i++) {
      expect((await post(`${withHistory.url}/h`, `with ${i}`)).status).toBe(200);
      expect((await post(`${without.url}/h`, `without ${i}`)).status).toBe(200);
    }
    // Each node hears its own kind only; a marker from each closes the wait.
    expect((await post(`${withHistory.url}/h`, "end")).status).toBe(200);
    expect((await post(`${without.url}/h`, "end")).status).toBe(200);
    expect(await onWith.received(4)).toEqual(["with 0", "with 1", "with 2", "end"]);
    expect(await onWithout.received(4)).toEqual(["without 0", "without 1", "without 2", "end"]);
    await until(
      async () => (await without.sample("pinghub_redis_bad_messages_total")) === 4,
      "the node without history counts 4",
    );
    expect(await withHistory.sample("pinghub_redis_bad_messages_total")).toBe(4);
    expect(
      withHistory.lines(/warn cluster: this node runs with --history, but another node publishes without it/),
    ).toBe(1);
    expect(without.lines(/warn cluster: this node runs without --history, but another node publishes with it/)).toBe(1);
  });

  test("nodes started with different --history sizes: the second says so in one line, naming both", async () => {
    const r = await startRedis();
    bed.redis = r;
    const first = await node(r.url, ["--history", "5"]);
    // A node serves only once it has compared its settings: its log is complete when it serves.
    const second = await node(r.url, ["--history", "100", "--history-ttl", "60"]);
    const mismatch =
      /warn cluster: this node runs with --history (\d+) --history-ttl (\d+) but the node that connected before it kept --history (\d+) --history-ttl (\d+)/;
    expect(second.lines(mismatch)).toBe(1);
    expect(second.stderr().match(mismatch)?.slice(1)).toEqual(["100", "60", "5", "300"]);
    expect(first.lines(/warn cluster: this node runs with --history/)).toBe(0);
    // The key follows the newest start, and holds no more than the flags.
    const key = Bun.spawnSync([REDIS_CLI, "-p", String(r.port), "GET", "pinghub:!settings"]);
    expect(key.stdout.toString().trim()).toBe("--history 100 --history-ttl 60");
  });

  test("nodes started with the same --history: no warning", async () => {
    const r = await startRedis();
    bed.redis = r;
    const [a, b] = [await node(r.url, ["--history", "5"]), await node(r.url, ["--history", "5"])];
    for (const n of [a, b]) {
      expect(n.lines(/warn cluster: this node runs with --history|could not compare/)).toBe(0);
    }
  });
});
