// Catching up after an outage (src/redis-catch-up.ts), driven directly: the class is logic fed with events
// (batches from Redis, the connection lost, a stream read), so the test plays the stream and chooses when each
// reply comes. cluster-catch-up.test.ts does the same against real Redis faults.

import { describe, expect, test } from "bun:test";
import type { GapReason } from "../src/history.ts";
import { CatchUp, compareIds, MAX_HELD_MESSAGES } from "../src/redis-catch-up.ts";
import type { CatchUpReply } from "../src/redis-history.ts";

const TTL_MS = 300_000;

/** A CatchUp whose stream reads wait for the test to answer them, unless `refuse` (Redis refusing to say). */
function harness(position = "", refuse = false) {
  const delivered: string[] = [];
  const gaps: string[] = [];
  const reads: Array<{ channel: string; lastId: string; answer(reply: CatchUpReply): void; fail(): void }> = [];
  const catchUp = new CatchUp({
    deliver: (channel, message, id) => {
      delivered.push(`${channel} ${id} ${message}`);
      return 1;
    },
    gap: (channel: string, reason: GapReason, position: string | undefined) => {
      gaps.push(`${channel} ${reason}${position === undefined ? "" : ` at ${position}`}`);
      return 0;
    },
    position: () => Promise.resolve(position),
    read: (channel, lastId) =>
      new Promise((resolve, reject) => {
        if (refuse) return resolve(undefined);
        reads.push({ channel, lastId, answer: resolve, fail: () => reject(new Error("connection lost")) });
      }),
    ttlMs: TTL_MS,
  });
  return { catchUp, delivered, gaps, reads };
}

const settle = () => new Promise<void>((resolve) => setImmediate(resolve));
const kept = (...ids: string[]) => ids.map((id) => ({ id, message: `m${id}` }));

describe("while Redis is healthy", () => {
  test("a batch is delivered at once, in order, and its last id remembered", async () => {
    const { catchUp, delivered } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [
      ["7-1", "x"],
      ["7-2", "y"],
    ]);
    expect(delivered).toEqual(["/a 7-1 x", "/a 7-2 y"]);
    expect(catchUp.pending).toBe(false);
  });
});

describe("after the subscriber connection was lost", () => {
  test("the stream's messages after the last delivered id come first, then those held, each id once", async () => {
    const { catchUp, delivered, gaps, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    expect(catchUp.pending).toBe(true);
    // Live again once re-subscribed, before the stream was read: held, not delivered.
    catchUp.receive("/a", [
      ["7-4", "m7-4"],
      ["7-5", "m7-5"],
    ]);
    expect(delivered).toEqual(["/a 7-1 m7-1"]);
    const done = catchUp.resume(2000);
    expect(reads.map((r) => [r.channel, r.lastId])).toEqual([["/a", "7-1"]]);
    // The stream already holds 7-4 (the two came on different connections): given once.
    reads[0]?.answer({ status: "ok", messages: kept("7-2", "7-3", "7-4") });
    expect(await done).toBe(true);
    expect(delivered).toEqual(["/a 7-1 m7-1", "/a 7-2 m7-2", "/a 7-3 m7-3", "/a 7-4 m7-4", "/a 7-5 m7-5"]);
    expect(gaps).toEqual([]);
    expect(catchUp.pending).toBe(false);
    // Back to delivering at once.
    catchUp.receive("/a", [["7-6", "m7-6"]]);
    expect(delivered.at(-1)).toBe("/a 7-6 m7-6");
  });

  test("a message both in the stream's reply and still on its way live is delivered once", async () => {
    const { catchUp, delivered, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    // Published after the node subscribed again and before the stream was read: in the reply, and sent live on
    // the subscriber connection, which the node happens to read only after the reply.
    reads[0]?.answer({ status: "ok", messages: kept("7-2", "7-3") });
    expect(await done).toBe(true);
    catchUp.receive("/a", [
      ["7-3", "m7-3"],
      ["7-4", "m7-4"],
    ]);
    catchUp.receive("/a", [["7-5", "m7-5"]]);
    expect(delivered).toEqual(["/a 7-1 m7-1", "/a 7-2 m7-2", "/a 7-3 m7-3", "/a 7-4 m7-4", "/a 7-5 m7-5"]);
  });

  test("a channel that had no message yet reads from where its stream stood when the node subscribed", async () => {
    const { catchUp, delivered, reads } = harness("7-3");
    catchUp.follow("/a");
    await settle();
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    expect(reads[0]?.lastId).toBe("7-3");
    reads[0]?.answer({ status: "ok", messages: kept("7-4") });
    await done;
    expect(delivered).toEqual(["/a 7-4 m7-4"]);
  });

  test("a stream that was empty when the node subscribed is read whole", async () => {
    const { catchUp, delivered, reads } = harness("");
    catchUp.follow("/a");
    await settle();
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    expect(reads[0]?.lastId).toBe("");
    reads[0]?.answer({ status: "ok", messages: kept("9-0", "9-1") });
    await done;
    expect(delivered).toEqual(["/a 9-0 m9-0", "/a 9-1 m9-1"]);
  });

  test("trimmed past the last id: a gap, then what the stream still holds", async () => {
    const { catchUp, delivered, gaps, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    reads[0]?.answer({ status: "dropped", messages: kept("7-9", "7-10") });
    await done;
    expect(gaps).toEqual(["/a messages dropped"]);
    expect(delivered.slice(1)).toEqual(["/a 7-9 m7-9", "/a 7-10 m7-10"]);
  });

  test("a new stream (expired or lost since): a gap, then all of it", async () => {
    const { catchUp, delivered, gaps, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    reads[0]?.answer({ status: "unknown", messages: kept("8-0") });
    await done;
    expect(gaps).toEqual(["/a unknown id"]);
    expect(delivered.slice(1)).toEqual(["/a 8-0 m8-0"]);
  });

  test("a stream gone: nothing missed after a short outage, a gap after one as long as the history's TTL", async () => {
    for (const [outageMs, expected] of [
      [1000, []],
      [TTL_MS, ["/a unknown id"]],
    ] as const) {
      const { catchUp, gaps, reads } = harness();
      catchUp.follow("/a");
      await settle();
      catchUp.receive("/a", [["7-1", "m7-1"]]);
      catchUp.lost(0);
      const done = catchUp.resume(outageMs);
      reads[0]?.answer({ status: "empty", messages: [] });
      await done;
      expect(gaps).toEqual([...expected]);
    }
  });

  test("a stream gone after a long outage: the gap names the position it was made anew at, followed from then on", async () => {
    const { catchUp, delivered, gaps, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(0);
    const done = catchUp.resume(TTL_MS);
    reads[0]?.answer({ status: "empty", messages: [], position: "9-0" });
    await done;
    expect(gaps).toEqual(["/a unknown id at 9-0"]);
    // The next outage reads from that position: the new stream's first message is news, not a gap.
    catchUp.lost(TTL_MS);
    const again = catchUp.resume(2 * TTL_MS);
    expect(reads[1]?.lastId).toBe("9-0");
    reads[1]?.answer({ status: "ok", messages: kept("9-1") });
    await again;
    expect(gaps).toEqual(["/a unknown id at 9-0"]);
    expect(delivered).toEqual(["/a 7-1 m7-1", "/a 9-1 m9-1"]);
  });

  test("a quiet channel's empty stream still at the node's position after a long outage: nothing missed", async () => {
    const { catchUp, gaps, reads } = harness("9-0");
    catchUp.follow("/a");
    await settle();
    catchUp.lost(0);
    const done = catchUp.resume(TTL_MS);
    reads[0]?.answer({ status: "empty", messages: [], position: "9-0" });
    await done;
    expect(gaps).toEqual([]);
  });

  test("a gap with messages after it: they carry the ids, no position is added", async () => {
    const { catchUp, gaps, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(0);
    catchUp.receive("/a", [["9-1", "m9-1"]]);
    const done = catchUp.resume(TTL_MS);
    reads[0]?.answer({ status: "empty", messages: [], position: "9-0" });
    await done;
    expect(gaps).toEqual(["/a unknown id"]);
  });

  test("lost before the stream's position was known: a gap, and what came held is delivered", async () => {
    const { catchUp, delivered, gaps, reads } = harness();
    // The position is asked; the connection goes before the answer (the answer is never awaited here).
    catchUp.follow("/a");
    catchUp.lost(1000);
    catchUp.receive("/a", [["7-5", "x"]]);
    expect(await catchUp.resume(2000)).toBe(true);
    expect(reads).toEqual([]);
    expect(gaps).toEqual(["/a messages dropped"]);
    expect(delivered).toEqual(["/a 7-5 x"]);
  });

  test("Redis refused to read the stream (out of memory, no permission): a gap, and what was held delivered", async () => {
    const { catchUp, delivered, gaps } = harness("7-0", true);
    catchUp.follow("/a");
    await settle();
    catchUp.lost(1000);
    catchUp.receive("/a", [["7-3", "m7-3"]]);
    expect(await catchUp.resume(2000)).toBe(true);
    expect(gaps).toEqual(["/a messages dropped"]);
    expect(delivered).toEqual(["/a 7-3 m7-3"]);
  });

  test("the stream could not be read: still pending, tried again with the next connection", async () => {
    const { catchUp, delivered, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const first = catchUp.resume(2000);
    reads[0]?.fail();
    expect(await first).toBe(false);
    expect(catchUp.pending).toBe(true);
    const second = catchUp.resume(3000);
    reads[1]?.answer({ status: "ok", messages: kept("7-2") });
    expect(await second).toBe(true);
    expect(delivered).toEqual(["/a 7-1 m7-1", "/a 7-2 m7-2"]);
  });

  test("lost again while the stream was read: what was read is delivered, and the channel holds again", async () => {
    const { catchUp, delivered, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const first = catchUp.resume(2000);
    catchUp.lost(2500);
    reads[0]?.answer({ status: "ok", messages: kept("7-2") });
    expect(await first).toBe(false);
    expect(delivered).toEqual(["/a 7-1 m7-1", "/a 7-2 m7-2"]);
    catchUp.receive("/a", [["7-4", "m7-4"]]);
    expect(delivered.length).toBe(2);
    const second = catchUp.resume(3000);
    expect(reads[1]?.lastId).toBe("7-2");
    reads[1]?.answer({ status: "ok", messages: kept("7-3", "7-4") });
    expect(await second).toBe(true);
    expect(delivered.slice(2)).toEqual(["/a 7-3 m7-3", "/a 7-4 m7-4"]);
  });

  test("a channel unsubscribed while catching up is dropped, and its late read ignored", async () => {
    const { catchUp, delivered, reads } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.receive("/a", [["7-1", "m7-1"]]);
    catchUp.lost(1000);
    const done = catchUp.resume(2000);
    catchUp.forget("/a");
    reads[0]?.answer({ status: "ok", messages: kept("7-2") });
    expect(await done).toBe(true);
    expect(delivered).toEqual(["/a 7-1 m7-1"]);
    // Not followed any more: a stray message after the UNSUBSCRIBE does not bring it back.
    catchUp.receive("/a", [["7-3", "late"]]);
    catchUp.lost(3000);
    expect(catchUp.pending).toBe(false);
  });

  test("more live messages held than MAX_HELD_MESSAGES: catching up is given up with a gap, nothing held lost", async () => {
    const { catchUp, delivered, gaps } = harness();
    catchUp.follow("/a");
    await settle();
    catchUp.lost(1000);
    for (let i = 1; i <= MAX_HELD_MESSAGES + 1; i++) catchUp.receive("/a", [[`7-${i}`, `x${i}`]]);
    expect(gaps).toEqual(["/a messages dropped"]);
    expect(delivered.length).toBe(MAX_HELD_MESSAGES + 1);
    expect(catchUp.pending).toBe(false);
  });
});

describe("compareIds", () => {
  test("orders by incarnation, then sequence, as numbers", () => {
    expect(compareIds("7-10", "7-9")).toBeGreaterThan(0);
    expect(compareIds("7-9", "7-9")).toBe(0);
    expect(compareIds("10-0", "9-99")).toBeGreaterThan(0);
    expect(compareIds("1733212800000000-5", "1733212800000001-0")).toBeLessThan(0);
  });
});
