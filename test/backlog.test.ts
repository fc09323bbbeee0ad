// Subscribers that fall behind, against a real server with real sockets: a herd that stops reading is cut off,
// furthest behind first, once all backlogs together pass --max-backlog-total, while the readers beside it get
// every message; a subscriber that reads slowly (a phone on a bad network) is not cut off under ordinary load.
// The single-subscriber cut-off at --max-backlog is in limits.test.ts (websockets) and sse.test.ts (streams).

import { afterEach, describe, expect, test } from "bun:test";
import { BacklogBudget, type Backlogged, OVER_MAX_BACKLOG_TOTAL } from "../src/backlog.ts";
import { Hub } from "../src/hub.ts";
import { post, subscribe } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { type SlowReader, slowReader } from "./support/slow-reader.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

const servers: TestServer[] = [];
const readers: SlowReader[] = [];
afterEach(async () => {
  for (const reader of readers.splice(0)) reader.close();
  for (const server of servers.splice(0)) await server.stop();
});

/** The sequence numbers of the messages `m<n>|` in what a raw reader received, in order. */
function sequence(text: string): number[] {
  return [...text.matchAll(/m(\d+)\|/g)].map((match) => Number(match[1]));
}

/** A subscriber as a transport reports it, whose cut-off is written down in `cut`. */
const subscriber = (name: string, cut: string[]): Backlogged => ({
  backlog: 0,
  stuck: false,
  checkedTurn: 0,
  movedTurn: 0,
  moved: false,
  cutOff: (why) => cut.push(`${name}: ${why}`),
});

describe("the budget itself", () => {
  /** Lets the event loop turn once: the budget counts turns while anyone is behind. */
  const nextTurn = (budget: BacklogBudget) => {
    budget.enforce();
    return new Promise((resolve) => setImmediate(resolve));
  };

  test("past the total, the stuck subscribers furthest behind are cut off until it fits, and only they", async () => {
    const cut: string[] = [];
    const reports: Array<[number, number]> = [];
    const budget = new BacklogBudget(1000, 100, (count, total) => reports.push([count, total]));
    const [a, b, c, d, reader] = ["a", "b", "c", "d", "reader"].map((n) => subscriber(n, cut)) as [
      Backlogged,
      Backlogged,
      Backlogged,
      Backlogged,
      Backlogged,
    ];
    for (const s of [a, b, c, d, reader]) budget.update(s, 10);
    // Nothing sent since, but within one turn: no one is stuck yet, and under twice the total no one is cut.
    budget.update(a, 20, false);
    budget.update(c, 40, false);
    budget.enforce();
    expect([a.stuck, c.stuck, cut.length]).toEqual([false, false, 0]);
    await nextTurn(budget);
    budget.update(a, 50, false);
    budget.update(b, 20, false);
    budget.update(c, 80, false);
    budget.update(d, 30, false);
    // The largest backlog, but it sent something since the last check: a reader the node is slow to serve.
    budget.update(reader, 90, true);
    expect(budget.total).toBe(270);
    expect([a.stuck, b.stuck, c.stuck, d.stuck, reader.stuck]).toEqual([true, true, true, true, false]);
    budget.enforce();
    // 270 → 190 without c → 140 without a → 110 without d → 90 without b: the reader stays.
    expect(cut).toEqual(["c", "a", "d", "b"].map((name) => `${name}: ${OVER_MAX_BACKLOG_TOTAL}`));
    expect([budget.total, budget.behindCount, budget.cutOffOverTotal]).toEqual([90, 1, 4]);
    expect(reports).toEqual([[4, 270]]);
    budget.update(reader, 0);
    expect([budget.total, budget.behindCount, cut.length]).toEqual([0, 0, 4]);
  });

  test("past twice the total, subscribers not seen stuck are cut off too, furthest behind first", () => {
    const cut: string[] = [];
    const budget = new BacklogBudget(1000, 100);
    const [a, b] = ["a", "b"].map((n) => subscriber(n, cut)) as [Backlogged, Backlogged];
    budget.update(a, 90);
    budget.update(b, 60);
    budget.enforce();
    // 150: over the total, under twice it, and no one stuck.
    expect(cut).toEqual([]);
    budget.update(b, 130);
    budget.enforce();
    // 220: over twice the total: the furthest behind go until it fits.
    expect(cut).toEqual([`b: ${OVER_MAX_BACKLOG_TOTAL}`]);
    expect(budget.total).toBe(90);
  });
});

describe("before messages go out while a herd is behind", () => {
  /** Lets the event loop turn once: the budget counts turns while anyone is behind. */
  const nextTurn = () => new Promise((resolve) => setImmediate(resolve));

  test("the stuck are cut off longest stuck first, until the messages' copies fit; a reader that moved stays", async () => {
    const cut: string[] = [];
    const budget = new BacklogBudget(1 << 20, 1000);
    const now = new Map<string, number>();
    const subscriber = (name: string): Backlogged => {
      const s: Backlogged = {
        backlog: 0,
        stuck: false,
        checkedTurn: 0,
        movedTurn: 0,
        moved: false,
        measure: () => now.get(name) ?? s.backlog,
        cutOff: (why) => cut.push(`${name}: ${why}`),
      };
      return s;
    };
    const [old1, old2, reader, new1] = ["old1", "old2", "reader", "new1"].map(subscriber) as [
      Backlogged,
      Backlogged,
      Backlogged,
      Backlogged,
    ];
    expect(budget.wouldPass(1e9)).toBe(false);
    budget.update(old1, 200);
    budget.update(old2, 100);
    budget.enforce();
    await nextTurn();
    // A turn later: a reader falls behind, and a member of the herd whose kernel buffers took a little longer.
    budget.update(reader, 300);
    budget.update(new1, 150);
    budget.enforce();
    await nextTurn();
    // 750 held, and 400 more copied into each of the four would pass 1000.
    expect(budget.wouldPass(400)).toBe(true);
    // The reader has sent more than half of what it held since; the herd has sent nothing.
    now.set("reader", 100);
    budget.cutStuck(400);
    // 550 + 3 × 400 = 1750: old1 (behind longest, and furthest) goes, then old2, behind longer than new1 though
    // less far: 650 fits. Furthest first would have cut new1 before old2.
    expect(cut).toEqual(["old1", "old2"].map((name) => `${name}: ${OVER_MAX_BACKLOG_TOTAL}`));
    expect([budget.total, budget.behindCount, budget.cutOffOverTotal]).toEqual([250, 2, 2]);
    expect([reader.stuck, new1.stuck]).toEqual([false, true]);
  });

  test("one ever seen sending while behind goes after every one never seen so, however long ago it moved", async () => {
    const cut: string[] = [];
    const budget = new BacklogBudget(1 << 20, 100);
    const [reader, herd1, herd2] = ["reader", "herd1", "herd2"].map((name) => subscriber(name, cut)) as [
      Backlogged,
      Backlogged,
      Backlogged,
    ];
    budget.update(reader, 50);
    // It sent some: a reader. Then the machine starves it, and it sends nothing for two turns.
    budget.update(reader, 40);
    budget.enforce();
    await nextTurn();
    budget.update(reader, 45, false);
    // A herd that only now filled its kernel buffers.
    budget.update(herd1, 30);
    budget.update(herd2, 20);
    budget.enforce();
    await nextTurn();
    budget.update(herd1, 60, false);
    budget.update(herd2, 50, false);
    budget.update(reader, 50, false);
    expect([reader.stuck, herd1.stuck, herd2.stuck, reader.moved, herd1.moved]).toEqual([
      true,
      true,
      true,
      true,
      false,
    ]);
    // 160: the reader moved longest ago, but it was seen moving; herd1 goes, and 100 fits.
    budget.enforce();
    expect(cut).toEqual([`herd1: ${OVER_MAX_BACKLOG_TOTAL}`]);
  });

  test("messages whose copies would pass the total are held, in order; the stuck are cut off before they go out", async () => {
    // A transport of the test's own, on the real hub: a subscriber that reads takes each message at once, one
    // that stopped holds each in full, as a websocket's buffer does once its kernel buffers are full.
    interface Sub {
      name: string;
      reads: boolean;
      got: string[];
      account: Backlogged;
    }
    const hub = new Hub({ maxBacklog: 1 << 20, maxBacklogTotal: 1000 });
    const cut: string[] = [];
    const group = hub.group<Sub>("test", {
      fanOut(_channel, subscribers, message) {
        for (const s of subscribers) {
          s.got.push(message[0] as string);
          if (!s.reads) hub.backlog.update(s.account, s.account.backlog + message.length, false);
        }
        return subscribers.size;
      },
      end() {},
      slow: (s) => cut.includes(s.name),
    });
    const join = (name: string, reads: boolean): Sub => {
      const s: Sub = {
        name,
        reads,
        got: [],
        account: {
          backlog: 0,
          stuck: false,
          checkedTurn: 0,
          movedTurn: 0,
          moved: false,
          measure: () => s.account.backlog,
          cutOff: () => {
            cut.push(name);
            group.leave("/c", s);
          },
        },
      };
      group.join("/c", s);
      return s;
    };
    const stalled = ["a", "b", "c"].map((name) => join(name, false));
    const reader = join("reader", true);
    await hub.publishPost("/c", "x".repeat(200));
    expect(hub.backlog.total).toBe(600);
    // Two more in the same turn: copied into the three behind they would pass 1000. They are held, not lost.
    expect([hub.publishPost("/c", "y".repeat(200)), hub.publishPost("/c", "z".repeat(200))]).toEqual([4, 4]);
    expect(reader.got).toEqual(["x"]);
    expect(hub.backlog.total).toBe(600);
    await until(() => reader.got.length === 3, "the held messages went out");
    // Released: none of the three moved. 600 + 3 × 400 = 1800 → 1200 → 600 with two of them gone: the
    // third may take the two (600 in all).
    expect(cut).toEqual(["a", "b"]);
    expect(stalled.map((s) => s.got.join(""))).toEqual(["x", "x", "xyz"]);
    expect(reader.got).toEqual(["x", "y", "z"]);
    expect([hub.backlog.total, hub.backlog.cutOffOverTotal]).toEqual([600, 2]);
  });
});

describe("a herd that stops reading", () => {
  test("websockets and SSE streams that never read are cut off by the total, long before --max-backlog; the readers get everything", async () => {
    const server = await startServer({ maxBacklog: 1 << 20, maxBacklogTotal: 256 * 1024 });
    servers.push(server);
    const path = "/herd";
    const STALLED = 24;
    for (let i = 0; i < STALLED; i++) {
      readers.push(await slowReader(server.port, path, i % 2 === 0 ? "websocket" : "sse", 0));
    }
    const ws = await subscribe(server.ws(path));
    const sse = await openEvents(server.http(path));
    await until(
      () => server.hub.subscriberCount(path) === STALLED + 2,
      () => `${STALLED + 2} subscribers; there are ${server.hub.subscriberCount(path)}`,
    );
    const padding = "h".repeat(16 * 1024);
    let sent = 0;
    // In batches the readers take at once; the herd falls behind until it is cut off. Its kernel buffers take
    // some megabytes each first, so this may take a few hundred messages.
    while (server.hub.counters.slowSubscribers < STALLED && sent < 5000) {
      for (let i = 0; i < 10; i++) await post(server.http(path), `m${sent++}| ${padding}`);
      await ws.received(sent, 20_000);
    }
    expect(server.hub.counters.slowSubscribers).toBe(STALLED);
    // Every one of them by the total: none came near its own 1 MiB.
    expect(server.hub.backlog.cutOffOverTotal).toBe(STALLED);
    expect(server.hub.subscriberCount(path)).toBe(2);
    const expected = Array.from({ length: sent }, (_, i) => i);
    expect((await ws.received(sent, 20_000)).map((m) => Number(m.slice(1, m.indexOf("|"))))).toEqual(expected);
    expect((await sse.received(sent, 20_000)).map((e) => Number(e.data.slice(1, e.data.indexOf("|"))))).toEqual(
      expected,
    );
    for (const reader of readers) reader.resume();
    await until(() => readers.every((r) => r.ended), "every stalled connection is dropped");
    expect(server.hub.backlog.total).toBe(0);
    ws.close();
    sse.close();
  }, 60_000);
});

describe("a subscriber on a slow network", () => {
  test("reading at 50 KB/s, under ordinary load with a burst, it is not cut off and gets every message", async () => {
    // The defaults of --max-backlog and --max-backlog-total, as deployed.
    const server = await startServer();
    servers.push(server);
    const path = "/phone";
    const RATE_BYTES_PER_S = 50_000;
    const phones = [
      await slowReader(server.port, path, "websocket", RATE_BYTES_PER_S),
      await slowReader(server.port, path, "sse", RATE_BYTES_PER_S),
    ];
    readers.push(...phones);
    const padding = "p".repeat(2000);
    let sent = 0;
    // A burst of 200 KB (four seconds of its reading), then 20 KB/s for three seconds: 260 KB in all.
    for (let i = 0; i < 100; i++) await post(server.http(path), `m${sent++}| ${padding}`);
    for (let i = 0; i < 30; i++) {
      await post(server.http(path), `m${sent++}| ${padding}`);
      await Bun.sleep(100);
    }
    const expected = Array.from({ length: sent }, (_, i) => i);
    for (const phone of phones) {
      await until(() => sequence(phone.text()).length === sent || phone.ended, "the phone has read everything", 30_000);
      expect(phone.ended).toBe(false);
      expect(sequence(phone.text())).toEqual(expected);
    }
    expect(server.hub.counters.slowSubscribers).toBe(0);
  }, 60_000);
});
