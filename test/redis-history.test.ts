// Cluster mode's history (redis-history.ts) against a real redis-server: positions that mean the same on every
// node, a quiet channel's included, resuming from them, the newest N kept messages, and a gap followed by what
// is still kept.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import { parseId, type Resume } from "../src/history.ts";
import { type RedisHistory, redisHistory } from "../src/redis-history.ts";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";

const CAP = 3;
const TTL_MS = 60_000;

const texts = (resume: Resume) => resume.messages.map((kept) => kept.message);

describe.skipIf(skipWithoutRedis())("the history in Redis", () => {
  let redis: RedisServer;
  let admin: Redis;
  /** Two nodes' histories, each on its own connection, as two nodes have. */
  let nodeA: RedisHistory;
  let nodeB: RedisHistory;

  beforeAll(async () => {
    redis = await startRedis();
    admin = redis.client();
    nodeA = redisHistory(redis.client(), CAP, TTL_MS);
    nodeB = redisHistory(redis.client(), CAP, TTL_MS);
  });
  afterAll(() => redis.stop());

  /** Publishes messages one by one through node A and returns their ids, as the script published them. */
  async function publish(key: string, messages: string[]): Promise<string[]> {
    const listener = redis.client();
    await listener.subscribe(key);
    const ids: string[] = [];
    const heard = new Promise<void>((resolve) => {
      listener.on("message", (_channel: string, payload: string) => {
        for (const [id] of JSON.parse(payload) as Array<[string, string]>) ids.push(id);
        if (ids.length === messages.length) resolve();
      });
    });
    for (const message of messages) expect(await nodeA.publish(key, [message])).toBe(1);
    await heard;
    listener.disconnect();
    return ids;
  }

  test("a quiet channel's position, given on one node, resumes on another: every message since", async () => {
    const quiet = await nodeA.latest("t:/quiet", 0);
    expect(quiet.gap).toBeUndefined();
    expect(quiet.messages).toEqual([]);
    expect(parseId(quiet.position ?? "")?.sequence).toBe(0);
    // The same position on every node while nothing is published: the stream made for it is shared.
    expect((await nodeB.latest("t:/quiet", 0)).position).toBe(quiet.position);
    // An empty stream that expires as a history does.
    const ttl = await admin.pttl("t:/quiet");
    expect(ttl).toBeGreaterThan(0);
    expect(ttl).toBeLessThanOrEqual(TTL_MS);
    const ids = await publish("t:/quiet", ["a", "b"]);
    expect(ids.map((id) => parseId(id)?.incarnation)).toEqual(
      [1, 2].map(() => parseId(quiet.position ?? "")?.incarnation),
    );
    const back = await nodeB.since("t:/quiet", quiet.position ?? "");
    expect(back).toEqual({
      gap: undefined,
      messages: [
        { id: ids[0] ?? "", message: "a" },
        { id: ids[1] ?? "", message: "b" },
      ],
      position: ids[1],
    });
  });

  test("with more published since than the history keeps: messages dropped, then those still kept", async () => {
    const { position } = await nodeA.latest("t:/busy", 0);
    const ids = await publish("t:/busy", ["1", "2", "3", "4", "5"]);
    const back = await nodeB.since("t:/busy", position ?? "");
    expect(back.gap).toBe("messages dropped");
    expect(texts(back)).toEqual(["3", "4", "5"]);
    expect(back.position).toBe(ids[4]);
    // Right after the dropped ones: no gap.
    const whole = await nodeB.since("t:/busy", ids[1] ?? "");
    expect(whole.gap).toBeUndefined();
    expect(texts(whole)).toEqual(["3", "4", "5"]);
  });

  test("a channel's stream made by a message, not a position: the newest id is the position", async () => {
    const ids = await publish("t:/direct", ["x", "y"]);
    expect((await nodeB.latest("t:/direct", 0)).position).toBe(ids[1]);
    expect(await nodeB.since("t:/direct", ids[1] ?? "")).toEqual({ gap: undefined, messages: [], position: ids[1] });
    expect(texts(await nodeB.since("t:/direct", ids[0] ?? ""))).toEqual(["y"]);
  });

  test("the newest N kept messages: in order, at most what is kept, with the position of the newest", async () => {
    const ids = await publish("t:/n", ["1", "2", "3", "4"]);
    const two = await nodeB.latest("t:/n", 2);
    expect(two).toEqual({
      gap: undefined,
      messages: [
        { id: ids[2] ?? "", message: "3" },
        { id: ids[3] ?? "", message: "4" },
      ],
      position: ids[3],
    });
    expect(texts(await nodeB.latest("t:/n", 100))).toEqual(["2", "3", "4"]);
    const none = await nodeB.latest("t:/nothing", 5);
    expect(none.messages).toEqual([]);
    expect(parseId(none.position ?? "")?.sequence).toBe(0);
  });

  test("an unknown id is a gap, and the subscriber rejoins at the channel's position", async () => {
    const [a = ""] = await publish("t:/u", ["a"]);
    const incarnation = parseId(a)?.incarnation;
    for (const id of ["garbage", "1-1", `${incarnation}-9`, `x${incarnation}-0`, `0${incarnation}-0`]) {
      expect(await nodeB.since("t:/u", id)).toEqual({ gap: "unknown id", messages: [], position: a });
    }
  });

  test("a stream lost (expired, or Redis restarted): unknown, at a new position that resumes exactly", async () => {
    const { position } = await nodeA.latest("t:/lost", 0);
    await admin.del("t:/lost");
    const back = await nodeB.since("t:/lost", position ?? "");
    expect(back.gap).toBe("unknown id");
    expect(back.messages).toEqual([]);
    expect(back.position).not.toBe(position);
    const [c] = await publish("t:/lost", ["c"]);
    expect(await nodeA.since("t:/lost", back.position ?? "")).toEqual({
      gap: undefined,
      messages: [{ id: c ?? "", message: "c" }],
      position: c,
    });
  });
});

describe.skipIf(skipWithoutRedis())("the history in a Redis out of memory (maxmemory, noeviction)", () => {
  test("a quiet channel gets no position, rather than a refusal; a channel with messages still gives its own", async () => {
    const redis = await startRedis();
    try {
      const node = redisHistory(redis.client(), CAP, TTL_MS);
      const admin = redis.client();
      const listener = redis.client();
      await listener.subscribe("t:/full");
      expect(await node.publish("t:/full", ["kept"])).toBe(1);
      const newest = (await node.latest("t:/full", 1)).messages[0]?.id;
      await admin.config("SET", "maxmemory-policy", "noeviction");
      await admin.config("SET", "maxmemory", "1");
      // Publishing is refused: Redis cannot store the message.
      await expect(node.publish("t:/full", ["refused"])).rejects.toThrow(/OOM/);
      expect(await node.latest("t:/quiet", 0)).toEqual({ gap: undefined, messages: [], position: undefined });
      expect(await node.since("t:/quiet", "1-0")).toEqual({ gap: "unknown id", messages: [], position: undefined });
      expect(await node.latest("t:/full", 1)).toEqual({
        gap: undefined,
        messages: [{ id: newest ?? "", message: "kept" }],
        position: newest,
      });
      await admin.config("SET", "maxmemory", "0");
      expect(parseId((await node.latest("t:/quiet", 0)).position ?? "")?.sequence).toBe(0);
    } finally {
      await redis.stop();
    }
  });
});
