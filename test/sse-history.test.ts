// Resuming an SSE subscription with the history: a kept id gives exactly what was missed and then the live
// stream; an unknown, expired, dropped-from or pre-restart id gives the gap event first. On one node in
// process, on a restarted process, and across cluster nodes with the history in Redis.

import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { GAP_EVENT } from "../src/sse-event.ts";
import { post } from "./support/clients.ts";
import { numsub, type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { freePort, spawnPinghub, startServer, type TestServer } from "./support/server.ts";
import { type EventStreamClient, openEvents, type ServerEvent } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

setDefaultTimeout(20_000);

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});

async function history(overrides: Parameters<typeof startServer>[0]): Promise<TestServer> {
  const server = await startServer(overrides);
  cleanup.push(() => server.stop());
  return server;
}

async function events(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
  const client = await openEvents(url, headers);
  cleanup.push(() => client.close());
  return client;
}

const data = (list: ServerEvent[]) => list.map((e) => e.data);

/** Publishes `messages` by POST, one after another, and returns the events a live subscriber saw for them. */
async function publishAll(url: string, live: EventStreamClient, messages: string[]): Promise<ServerEvent[]> {
  const before = live.events.length;
  for (const message of messages) expect((await post(url, message)).status).toBe(200);
  return (await live.received(before + messages.length)).slice(before);
}

describe("resuming on one node", () => {
  test("without --history nothing is kept and events carry no id", async () => {
    const server = await history({});
    const live = await events(server.http("/h/off"));
    const got = await publishAll(server.http("/h/off"), live, ["a", "b"]);
    expect(got.map((e) => e.id)).toEqual([undefined, undefined]);
    // A Last-Event-ID cannot be honoured: the subscriber is told so.
    const back = await events(server.http("/h/off"), { "Last-Event-ID": "anything-1" });
    expect(await back.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
  });

  test("Last-Event-ID gives exactly what was missed, then the live stream: no gap, no duplicate", async () => {
    const server = await history({ history: 10 });
    const url = server.http("/h/kept");
    const live = await events(url);
    const first = await publishAll(url, live, ["1", "2", "3"]);
    expect(first.every((e) => e.id !== undefined)).toBe(true);
    expect(new Set(first.map((e) => e.id)).size).toBe(3);
    const missed = await publishAll(url, live, ["4", "5"]);
    const back = await events(url, { "Last-Event-ID": first[2]?.id ?? "" });
    expect(await back.received(2)).toEqual(missed);
    await publishAll(url, live, ["6"]);
    expect(data(await back.received(3))).toEqual(["4", "5", "6"]);
    expect(back.events[2]?.id).toBe(live.events.at(-1)?.id);
  });

  test("?lastEventId= does the same for a first connection, and the latest id gives just the live stream", async () => {
    const server = await history({ history: 10 });
    const url = server.http("/h/query");
    const live = await events(url);
    const sent = await publishAll(url, live, ["a", "b", "c"]);
    const fromQuery = await events(`${url}?lastEventId=${encodeURIComponent(sent[0]?.id ?? "")}`);
    expect(data(await fromQuery.received(2))).toEqual(["b", "c"]);
    const upToDate = await events(url, { "Last-Event-ID": sent[2]?.id ?? "" });
    await upToDate.comment(/^pinghub channel/);
    await publishAll(url, live, ["d"]);
    expect(data(await upToDate.received(1))).toEqual(["d"]);
  });

  test("an unknown id gets the gap event first, then the live stream", async () => {
    const server = await history({ history: 10 });
    const url = server.http("/h/unknown");
    const live = await events(url);
    const [sent] = await publishAll(url, live, ["x"]);
    const incarnation = sent?.id?.split("-")[0];
    for (const id of ["garbage", "1-1", `${incarnation}-99`, `other${incarnation}-1`]) {
      const back = await events(url, { "Last-Event-ID": id });
      expect(await back.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
      back.close();
    }
    const back = await events(url, { "Last-Event-ID": "garbage" });
    await back.received(1);
    await publishAll(url, live, ["after"]);
    expect(data(await back.received(2))).toEqual(["unknown id", "after"]);
  });

  test("an id whose next messages were dropped from the history gets the gap event, then what is still kept", async () => {
    const server = await history({ history: 3 });
    const url = server.http("/h/dropped");
    const live = await events(url);
    const sent = await publishAll(url, live, ["1", "2", "3", "4", "5"]);
    // 3, 4 and 5 are kept: all that came after 2 is there, but after 1, message 2 is missing.
    const whole = await events(url, { "Last-Event-ID": sent[1]?.id ?? "" });
    expect(data(await whole.received(3))).toEqual(["3", "4", "5"]);
    const late = await events(url, { "Last-Event-ID": sent[0]?.id ?? "" });
    expect(await late.received(4)).toEqual([
      { type: GAP_EVENT, data: "messages dropped", id: undefined },
      ...sent.slice(2),
    ]);
  });

  test("an id from an expired history is unknown", async () => {
    const server = await history({ history: 10, historyTtl: 1 });
    const url = server.http("/h/expired");
    const live = await events(url);
    const [sent] = await publishAll(url, live, ["old"]);
    // The history is kept one second after its last message; this waits out that second, not a race.
    await Bun.sleep(1_100);
    const back = await events(url, { "Last-Event-ID": sent?.id ?? "" });
    expect(await back.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
    // A new history starts under a new incarnation: the old id can never be taken for a place in it.
    const [fresh] = await publishAll(url, live, ["new"]);
    expect(fresh?.id?.split("-")[0]).not.toBe(sent?.id?.split("-")[0]);
  });

  test("the memory bound: many busy channels forget the least recently published histories first", async () => {
    const BOUND = 64 * 1024;
    const server = await history({ history: 10, historyMemory: BOUND });
    const big = "m".repeat(1000);
    const firstIds: string[] = [];
    for (let c = 0; c < 40; c++) {
      const url = server.http(`/h/memory/${c}`);
      const live = await events(url);
      const got = await publishAll(url, live, [`${c} a ${big}`, `${c} b ${big}`]);
      firstIds.push(got[0]?.id ?? "");
      live.close();
      const kept = server.hub.broker.localHistory;
      expect(kept?.bytes).toBeLessThanOrEqual(BOUND);
    }
    // The oldest channel's history is gone; the newest is whole.
    const oldest = await events(server.http("/h/memory/0"), { "Last-Event-ID": firstIds[0] ?? "" });
    expect(await oldest.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
    const newest = await events(server.http("/h/memory/39"), { "Last-Event-ID": firstIds[39] ?? "" });
    expect(data(await newest.received(1))).toEqual([`39 b ${big}`]);
  });
});

describe("resuming across a restart", () => {
  test("an id from before the restart is unknown", async () => {
    const port = freePort();
    const args = ["--addr", `127.0.0.1:${port}`, "--mport", "0", "--history", "10"];
    const first = spawnPinghub(args);
    await first.waitForStderr(/serving/);
    const url = `http://127.0.0.1:${port}/h/restart`;
    const live = await openEvents(url);
    const [sent] = await publishAll(url, live, ["before"]);
    first.proc.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const second = spawnPinghub(args);
    cleanup.push(async () => {
      second.proc.kill("SIGKILL");
      await second.exited;
    });
    await second.waitForStderr(/serving/);
    const back = await events(url, { "Last-Event-ID": sent?.id ?? "" });
    expect(await back.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
  });
});

describe.skipIf(skipWithoutRedis())("resuming in cluster mode, with the history in Redis", () => {
  let redis: RedisServer;

  async function cluster(count: number, historySize = 10) {
    redis = await startRedis();
    cleanup.push(() => redis.stop());
    const nodes: string[] = [];
    for (let i = 0; i < count; i++) {
      const node = spawnPinghub([
        "--addr",
        "127.0.0.1:0",
        "--mport",
        "0",
        "--redis",
        redis.url,
        "--history",
        String(historySize),
      ]);
      cleanup.push(async () => {
        node.proc.kill("SIGKILL");
        await node.exited;
      });
      const [, url = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
      nodes.push(url);
    }
    return nodes;
  }

  test("ids are the same on every node, and a subscriber resumes on another node than it left", async () => {
    const [a = "", b = ""] = await cluster(2);
    const onA = await events(`${a}/c/resume`);
    const onB = await events(`${b}/c/resume`);
    const admin = redis.client();
    // The first publish loads the scripts; from then on each publish is one script call.
    await publishAll(`${b}/c/resume`, onA, ["0"]);
    await onB.received(1);
    await admin.config("RESETSTAT");
    const sent = await publishAll(`${b}/c/resume`, onA, ["1", "2", "3", "4"]);
    // One round trip per publish: a script that stores and publishes, nothing else.
    const stats = String(await admin.info("commandstats"));
    expect(stats).toMatch(/cmdstat_evalsha:calls=4,/);
    expect(stats).toMatch(/cmdstat_xadd:calls=4,/);
    expect(stats).toMatch(/cmdstat_publish:calls=4,/);
    expect(stats).not.toMatch(/cmdstat_eval:/);
    expect((await onB.received(5)).slice(1)).toEqual(sent);
    const back = await events(`${b}/c/resume`, { "Last-Event-ID": sent[1]?.id ?? "" });
    expect(await back.received(2)).toEqual(sent.slice(2));
    // The stream in Redis: capped at --history, and expiring --history-ttl after its last message.
    expect(await admin.xlen("pinghub:/c/resume")).toBe(5);
    await publishAll(`${b}/c/resume`, onA, ["5", "6", "7", "8", "9", "10"]);
    expect(await admin.xlen("pinghub:/c/resume")).toBe(10);
    expect(await admin.pttl("pinghub:/c/resume")).toBeGreaterThan(290_000);
    expect(await numsub(admin, ["pinghub:/c/resume"])).toEqual([2]);
  });

  test("resuming while messages keep coming: the history and the live stream meet with no gap and no duplicate", async () => {
    const [a = "", b = ""] = await cluster(2, 1000);
    const live = await events(`${b}/c/busy`);
    const COUNT = 300;
    const resumed: Array<{ client: EventStreamClient; seen: string }> = [];
    const publishing = (async () => {
      for (let i = 0; i < COUNT; i++) {
        expect((await post(`${a}/c/busy`, `m${i}`)).status).toBe(200);
        // Now and then, a subscriber comes back with the last id the live one has seen so far.
        if (i % 50 === 25) {
          const seen = live.events.at(-1)?.id;
          if (seen !== undefined)
            resumed.push({ client: await events(`${b}/c/busy`, { "Last-Event-ID": seen }), seen });
        }
      }
    })();
    await publishing;
    const all = await live.received(COUNT);
    expect(data(all)).toEqual(Array.from({ length: COUNT }, (_, i) => `m${i}`));
    expect(resumed.length).toBeGreaterThan(3);
    for (const { client, seen } of resumed) {
      // Everything after the id it came back with, each once, in order, and nothing else.
      const from = all.findIndex((e) => e.id === seen) + 1;
      expect(from).toBeGreaterThan(0);
      expect(await client.received(COUNT - from)).toEqual(all.slice(from));
      expect(client.events.length).toBe(COUNT - from);
    }
  });

  test("after Redis lost its data (restart), an old id is unknown", async () => {
    const [a = ""] = await cluster(1);
    const live = await events(`${a}/c/lost`);
    const [sent] = await publishAll(`${a}/c/lost`, live, ["before"]);
    await redis.kill();
    await redis.restart();
    // The node re-subscribes on its own; wait until a publish is taken again.
    await until(async () => (await post(`${a}/c/lost`, "after")).status === 200, "the node takes a publish again");
    const back = await events(`${a}/c/lost`, { "Last-Event-ID": sent?.id ?? "" });
    expect((await back.received(1))[0]).toEqual({ type: GAP_EVENT, data: "unknown id", id: undefined });
  });
});
