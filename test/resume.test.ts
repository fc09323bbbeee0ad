// Resuming from the first byte, and recent messages for new subscribers (`?last=N`), on one node in process and
// over two cluster nodes with the history in Redis (subscribing on one node, publishing on the other): every
// SSE stream with history starts at its position, a quiet channel's too; a resume from it gets every message
// since, or the gap and then what is still kept; ?last=N on both doors gives the newest N kept, then live, with
// nothing missed or doubled while a publisher runs; a bad N is 400.

import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { GAP_EVENT } from "../src/sse-event.ts";
import { post, subscribe } from "./support/clients.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { skipWithoutRedis, startRedis } from "./support/redis.ts";
import { spawnPinghub, startServer, type TestServer } from "./support/server.ts";
import { type EventStreamClient, openEvents, type ServerEvent } from "./support/sse-client.ts";

setDefaultTimeout(30_000);

/** Messages each channel's history keeps in these tests. */
const KEPT = 5;

/** Where a test subscribes and where it publishes: the same node, or two nodes of one cluster. */
interface Nodes {
  subscribeOn: string;
  publishOn: string;
}

const cleanup: Array<() => unknown> = [];
afterEach(async () => {
  for (const step of cleanup.splice(0).reverse()) await step();
});
/** The servers and Redis, stopped once every test has run. */
const teardown: Array<() => unknown> = [];
afterAll(async () => {
  for (const step of teardown.splice(0).reverse()) await step();
});

async function events(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
  const client = await openEvents(url, headers);
  cleanup.push(() => client.close());
  return client;
}

const data = (list: ServerEvent[]) => list.map((e) => e.data);

async function publish(url: string, messages: string[]): Promise<void> {
  for (const message of messages) expect((await post(url, message)).status).toBe(200);
}

/** The stream's bytes up to the end of its opening comment, as they came. */
async function firstBytes(url: string, headers: Record<string, string> = {}): Promise<string> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { Accept: "text/event-stream", ...headers }, signal: abort.signal });
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body ?? []) {
    text += decoder.decode(chunk, { stream: true });
    if (/: pinghub channel [^\n]*\n\n/.test(text)) break;
  }
  abort.abort();
  return text;
}

function suite(name: string, start: () => Promise<Nodes>) {
  describe(name, () => {
    let nodes: Nodes;
    beforeAll(async () => {
      nodes = await start();
    });
    const sub = (path: string) => `${nodes.subscribeOn}${path}`;
    const pub = (path: string) => `${nodes.publishOn}${path}`;

    test("a quiet channel's stream starts at its position: resumed from it, every message since", async () => {
      const first = await firstBytes(sub("/r/quiet"));
      const match = /^retry: 1000\nid: (\S+)\n\n: pinghub channel \/r\/quiet\n\n$/.exec(first);
      expect(match).not.toBeNull();
      const position = match?.[1] ?? "";
      // The same position for every subscriber while the channel is quiet, wherever it subscribes.
      expect(await firstBytes(pub("/r/quiet"))).toBe(first);
      await publish(pub("/r/quiet"), ["c", "d"]);
      const back = await events(sub("/r/quiet"), { "Last-Event-ID": position });
      expect(data(await back.received(2))).toEqual(["c", "d"]);
      await publish(pub("/r/quiet"), ["e"]);
      expect(data(await back.received(3))).toEqual(["c", "d", "e"]);
      expect(back.events.every((e) => e.type === "message" && e.id !== undefined)).toBe(true);
    });

    test("more published since a quiet position than the history keeps: the gap, then what is still kept", async () => {
      const quiet = await events(sub("/r/overrun"));
      await quiet.comment(/^pinghub channel/);
      const position = quiet.lastEventId;
      expect(position).not.toBe("");
      quiet.close();
      const sent = ["1", "2", "3", "4", "5", "6", "7"];
      await publish(pub("/r/overrun"), sent);
      const back = await events(sub("/r/overrun"), { "Last-Event-ID": position });
      const got = await back.received(1 + KEPT);
      expect(got[0]).toEqual({ type: GAP_EVENT, data: "messages dropped", id: undefined });
      expect(data(got.slice(1))).toEqual(sent.slice(-KEPT));
      await publish(pub("/r/overrun"), ["8"]);
      expect(data(await back.received(2 + KEPT)).at(-1)).toBe("8");
    });

    test("after an unknown id the stream names the position it rejoined at, and resumes from it", async () => {
      const live = await events(sub("/r/rejoin"));
      await publish(pub("/r/rejoin"), ["x"]);
      const [x] = await live.received(1);
      const back = await events(sub("/r/rejoin"), { "Last-Event-ID": "nonsense-1" });
      expect(await back.received(1)).toEqual([{ type: GAP_EVENT, data: "unknown id", id: undefined }]);
      expect(back.lastEventId).toBe(x?.id ?? "");
      back.close();
      await publish(pub("/r/rejoin"), ["y"]);
      const again = await events(sub("/r/rejoin"), { "Last-Event-ID": x?.id ?? "" });
      expect(data(await again.received(1))).toEqual(["y"]);
    });

    test("?last=N on both doors: the newest N kept, then live; at most what is kept; ?last=0 is a plain GET", async () => {
      const sent = ["1", "2", "3", "4", "5", "6", "7"];
      const live = await events(sub("/r/last"));
      await publish(pub("/r/last"), sent);
      const ids = (await live.received(sent.length)).map((e) => e.id);
      const two = await events(sub("/r/last?last=2"));
      expect(await two.received(2)).toEqual(live.events.slice(5, 7));
      const socket = await subscribe(`${sub("/r/last?last=2").replace(/^http/, "ws")}`);
      cleanup.push(() => socket.close());
      expect(await socket.received(2)).toEqual(["6", "7"]);
      const all = await events(sub("/r/last?last=100"));
      expect(data(await all.received(KEPT))).toEqual(sent.slice(-KEPT));
      await publish(pub("/r/last"), ["8"]);
      expect(data(await two.received(3))).toEqual(["6", "7", "8"]);
      expect(await socket.received(3)).toEqual(["6", "7", "8"]);
      expect(data(await all.received(KEPT + 1)).at(-1)).toBe("8");
      // ?last=0: no message, the position first, as a plain GET.
      const newest = (await live.received(8)).at(-1)?.id;
      expect(await firstBytes(sub("/r/last?last=0"))).toBe(await firstBytes(sub("/r/last")));
      expect(await firstBytes(sub("/r/last"))).toStartWith(`retry: 1000\nid: ${newest}\n\n`);
      expect(ids.every((id) => id !== undefined)).toBe(true);
    });

    test("a bad ?last is 400 with one line, on both doors", async () => {
      for (const value of ["abc", "-1", "2.5", "", "1e3", "%201"]) {
        const response = await fetch(sub(`/r/bad?last=${value}`), { headers: { Accept: "text/event-stream" } });
        const text = await response.text();
        expect([response.status, text.split("\n").length]).toEqual([400, 2]);
        expect(text).toStartWith("bad ?last=");
        const { port } = new URL(nodes.subscribeOn);
        const raw = await RawWebSocket.connect({ port: Number(port) }, `/r/bad?last=${value}`);
        expect(raw.status).toBe(400);
      }
      // The channel is the path alone: ?last=1 subscribes to /r/bad.
      const fine = await events(sub("/r/bad?last=1"));
      await fine.comment(/^pinghub channel \/r\/bad$/);
    });

    test("?last=N while a publisher runs: each subscriber gets a run of messages with nothing missed or doubled", async () => {
      const COUNT = 150;
      const N = 3;
      let started = 0;
      let acked = 0;
      const publisher = (async () => {
        while (started < COUNT) {
          started++;
          expect((await post(pub("/r/race"), String(started))).status).toBe(200);
          acked++;
        }
      })();
      // Subscribers join at different points while messages flow, by both doors.
      const joins: Array<{ before: number; firstBy: Promise<number>; messages: () => string[] }> = [];
      for (let i = 0; i < 6; i++) {
        const target = 10 + i * 20;
        while (acked < target) await Bun.sleep(1);
        const before = acked;
        if (i % 2 === 0) {
          const stream = await events(sub(`/r/race?last=${N}`));
          const firstBy = stream.received(1).then(() => started);
          joins.push({ before, firstBy, messages: () => data(stream.events) });
        } else {
          const socket = await subscribe(sub(`/r/race?last=${N}`).replace(/^http/, "ws"));
          cleanup.push(() => socket.close());
          const firstBy = socket.received(1).then(() => started);
          joins.push({ before, firstBy, messages: () => socket.messages });
        }
      }
      await publisher;
      for (const join of joins) {
        const deadline = Date.now() + 10_000;
        while (join.messages().at(-1) !== String(COUNT)) {
          if (Date.now() > deadline) throw new Error(`never got ${COUNT}: ${join.messages().slice(-5)}`);
          await Bun.sleep(5);
        }
        const got = join.messages().map(Number);
        const first = got[0] ?? 0;
        // A run: every message from the first to the last, once each.
        expect(got).toEqual(Array.from({ length: COUNT - first + 1 }, (_, i) => first + i));
        // The newest N kept when it joined: none older than what was acknowledged before it asked, and the N
        // before the first message it got were all published by then.
        expect(first).toBeGreaterThanOrEqual(join.before - N + 1);
        expect(first).toBeLessThanOrEqual((await join.firstBy) - N + 1);
      }
    });
  });
}

suite("on one node", async () => {
  const server: TestServer = await startServer({ history: KEPT });
  teardown.push(() => server.stop());
  const base = server.http("");
  return { subscribeOn: base, publishOn: base };
});

describe.skipIf(skipWithoutRedis())("cluster mode", () => {
  suite("two nodes, the history in Redis", async () => {
    const redis = await startRedis();
    teardown.push(() => redis.stop());
    const urls: string[] = [];
    for (let i = 0; i < 2; i++) {
      const node = spawnPinghub([
        "--addr",
        "127.0.0.1:0",
        "--mport",
        "0",
        "--redis",
        redis.url,
        "--history",
        `${KEPT}`,
      ]);
      teardown.push(async () => {
        node.proc.kill("SIGKILL");
        await node.exited;
      });
      const [, url = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
      urls.push(url);
    }
    return { subscribeOn: urls[0] ?? "", publishOn: urls[1] ?? "" };
  });
});

describe.skipIf(skipWithoutRedis())("cluster mode, Redis stopping while a new subscriber reads the history", () => {
  test("?last=N: the websocket is closed with 1013 and the SSE stream ends unavailable; both come back later", async () => {
    const redis = await startRedis();
    teardown.push(() => redis.stop());
    const node = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0", "--redis", redis.url, "--history", `${KEPT}`]);
    teardown.push(async () => {
      node.proc.kill("SIGKILL");
      await node.exited;
    });
    const [, base = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
    await publish(`${base}/r/hung`, ["kept"]);
    // Someone already holds the channel: a new subscriber joins at once, and then reads the history.
    const holder = await subscribe(`${base}/r/hung`.replace(/^http/, "ws"));
    cleanup.push(() => holder.close());
    redis.pause();
    try {
      const socket = await subscribe(`${base}/r/hung?last=1`.replace(/^http/, "ws"));
      const stream = await openEvents(`${base}/r/hung?last=1`);
      // No answer from Redis: the node's pings find it out, and the two are told to try again.
      const closed = await socket.closed;
      expect([closed.code, closed.reason]).toEqual([1013, expect.stringMatching(/^unavailable: /)]);
      expect(await stream.ended).toBe(true);
      expect(stream.comments.at(-1)).toMatch(/^unavailable: /);
      expect(stream.events).toEqual([]);
    } finally {
      redis.resume();
    }
    await node.waitForStderr(/info cluster: .* is back/);
    const again = await subscribe(`${base}/r/hung?last=1`.replace(/^http/, "ws"));
    cleanup.push(() => again.close());
    expect(await again.received(1)).toEqual(["kept"]);
  });
});
