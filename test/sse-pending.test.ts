// A busy channel's SSE events, gathered to go out several to a write (src/sse-pending.ts): first the gathering
// itself, with streams that write down what they are given; then against a real server, where a raw HTTP reader
// sees the events arrive complete, in order, and several to a chunk of the response.

import { afterEach, describe, expect, test } from "bun:test";
import {
  type EventTarget,
  PENDING_MAX_BYTES,
  PENDING_WINDOW_MS,
  type PendingEvent,
  PendingEvents,
} from "../src/sse-pending.ts";
import { subscribe } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A stream that writes down the events it is given, with the write (counted by afterWrite) each came in, and its
 * own calls (one per write, joined or not). Past its room it cuts itself off and leaves its channel's set, as a
 * real stream leaves its group.
 */
class Recorder implements EventTarget {
  readonly got: Array<{ text: string; write: number; at: number }> = [];
  calls = 0;
  constructor(
    private readonly writes: { count: number },
    /** Events it takes before it cuts itself off. */
    private room = Number.POSITIVE_INFINITY,
    private readonly leaves?: Set<Recorder>,
  ) {}
  send(bytes: Uint8Array): boolean {
    this.calls++;
    return this.take([decoder.decode(bytes)]);
  }
  sendJoined(joined: Uint8Array, events: readonly PendingEvent[]): boolean {
    this.calls++;
    const texts = events.map((e) => decoder.decode(e.bytes));
    // The joined bytes are exactly the events', end to end.
    expect(decoder.decode(joined)).toBe(texts.join(""));
    return this.take(texts);
  }
  texts(): string[] {
    return this.got.map((e) => e.text);
  }
  private take(texts: string[]): boolean {
    if (this.room <= 0) throw new Error("written to after it cut itself off");
    for (const text of texts) this.got.push({ text, write: this.writes.count, at: performance.now() });
    this.room -= texts.length;
    if (this.room > 0) return true;
    this.leaves?.delete(this);
    return false;
  }
}

function setup(streamCount = 1) {
  const writes = { count: 0 };
  const streams = new Set(Array.from({ length: streamCount }, () => new Recorder(writes)));
  const pending = new PendingEvents<Recorder>(() => writes.count++);
  const add = (text: string, to: ReadonlySet<Recorder> = streams) =>
    pending.add("/c", to, encoder.encode(text), undefined);
  return { writes, streams: [...streams], set: streams, pending, add };
}

const endOfTurn = () => new Promise((resolve) => setImmediate(resolve));

describe("gathering a channel's events", () => {
  test("a quiet channel's event goes out at the end of the turn it was published in, not a window later", async () => {
    const { streams, add, writes } = setup();
    add("a");
    expect(streams[0]?.texts()).toEqual([]);
    await endOfTurn();
    expect(streams[0]?.texts()).toEqual(["a"]);
    expect(writes.count).toBe(1);
  });

  test("the events of one turn go out in one write, in order, to every stream", async () => {
    const { streams, add, writes } = setup(3);
    for (let i = 0; i < 5; i++) add(`e${i}`);
    await endOfTurn();
    expect(writes.count).toBe(1);
    for (const stream of streams) {
      expect(stream.texts()).toEqual(["e0", "e1", "e2", "e3", "e4"]);
      // One call per stream, the events joined.
      expect(stream.calls).toBe(1);
    }
  });

  test("a busy channel's events, published turns apart, go out together, in order, none held long", async () => {
    const { streams, add, writes } = setup();
    const COUNT = 60;
    const publishedAt: number[] = [];
    // One event a millisecond (or as often as the timers fire), each in a turn of its own: closer than BUSY_GAP_MS.
    for (let i = 0; i < COUNT; i++) {
      publishedAt.push(performance.now());
      add(`e${i}`);
      await Bun.sleep(1);
    }
    await until(() => streams[0]?.got.length === COUNT, "every event written");
    const got = streams[0]?.got ?? [];
    expect(got.map((e) => e.text)).toEqual(Array.from({ length: COUNT }, (_, i) => `e${i}`));
    // Spread over the windows: a handful of writes for the lot; one per event if the busy channel were not held.
    expect(writes.count).toBeLessThanOrEqual(COUNT / 3);
    // None waits much past a window (loosely: a loaded machine's timers fire late).
    for (let i = 0; i < COUNT; i++) expect((got[i]?.at ?? 0) - (publishedAt[i] ?? 0)).toBeLessThan(1000);
  });

  test("flush writes what is pending at once: a stream that joins after it is not given earlier events", async () => {
    const { streams, set, add, pending } = setup();
    add("before");
    pending.flush("/c");
    const late = new Recorder({ count: 0 });
    set.add(late);
    add("after");
    await until(() => late.got.length === 1, "the late stream's event");
    await endOfTurn();
    expect(streams[0]?.texts()).toEqual(["before", "after"]);
    expect(late.texts()).toEqual(["after"]);
  });

  test(`events that come to ${PENDING_MAX_BYTES} bytes are written at once, without waiting for the turn's end`, () => {
    const { streams, add, writes } = setup();
    const half = "x".repeat(PENDING_MAX_BYTES / 2);
    add(half);
    expect(writes.count).toBe(0);
    add(half);
    expect(writes.count).toBe(1);
    expect(streams[0]?.got.length).toBe(2);
  });

  test("a stream that cuts itself off while written is given nothing more; the others get every event", async () => {
    const writes = { count: 0 };
    const streams = new Set<Recorder>();
    const cut = new Recorder(writes, 2, streams);
    const reader = new Recorder(writes);
    streams.add(cut).add(reader);
    const pending = new PendingEvents<Recorder>(() => writes.count++);
    for (let i = 0; i < 4; i++) pending.add("/c", streams, encoder.encode(`e${i}`), undefined);
    await endOfTurn();
    pending.add("/c", streams, encoder.encode("e4"), undefined);
    await until(() => reader.got.length === 5, "the reader's fifth event");
    // The write that took it past its room was its last (a real stream's connection is reset there).
    expect(cut.texts()).toEqual(["e0", "e1", "e2", "e3"]);
    expect(reader.texts()).toEqual(["e0", "e1", "e2", "e3", "e4"]);
  });

  test("a channel that emptied and was joined again: the old streams get their events, the new ones only theirs", async () => {
    const { streams, add } = setup();
    add("old");
    const fresh = new Set([new Recorder({ count: 0 })]);
    add("new", fresh);
    await endOfTurn();
    expect(streams[0]?.texts()).toEqual(["old"]);
    expect([...fresh][0]?.texts()).toEqual(["new"]);
  });

  test("stop writes what is pending at once, and nothing comes after", async () => {
    const { streams, add, pending } = setup();
    add("a");
    await endOfTurn();
    add("b");
    pending.stop();
    expect(streams[0]?.texts()).toEqual(["a", "b"]);
    await Bun.sleep(PENDING_WINDOW_MS * 2);
    expect(streams[0]?.texts()).toEqual(["a", "b"]);
  });
});

describe("against a real server", () => {
  const servers: TestServer[] = [];
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
  });

  test("a busy channel's events reach a stream complete and in order, several to a chunk of the response", async () => {
    const server = await startServer();
    servers.push(server);
    const path = "/sse/busy";
    // A raw HTTP reader: the response is chunked, one chunk per write Bun makes, so the chunks show the writes.
    let raw = "";
    const socket = await Bun.connect({
      hostname: "127.0.0.1",
      port: server.port,
      socket: {
        data(_socket, bytes) {
          raw += decoder.decode(bytes);
        },
      },
    });
    socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n`);
    const reader = await openEvents(server.http(path));
    await until(() => server.hub.eventStreams === 2, "two SSE subscribers");
    const publisher = await subscribe(server.ws(path));
    const COUNT = 200;
    // Each message a websocket frame of its own, a millisecond or so apart: each comes in a callback of its own.
    for (let i = 0; i < COUNT; i++) {
      publisher.send(`m${i} ${"y".repeat(40)}`);
      await Bun.sleep(1);
    }
    const events = await reader.received(COUNT);
    const expected = Array.from({ length: COUNT }, (_, i) => `m${i} ${"y".repeat(40)}`);
    expect(events.map((e) => e.data)).toEqual(expected);
    await until(() => raw.includes(`data: m${COUNT - 1} `), "the raw reader's last event");
    const body = raw.slice(raw.indexOf("\r\n\r\n") + 4);
    const chunks = dechunk(body);
    const data = chunks.join("");
    expect([...data.matchAll(/^data: (.*)$/gm)].map((m) => m[1])).toEqual(expected);
    const withEvents = chunks.filter((chunk) => chunk.includes("data: "));
    // One chunk per event before; now a chunk carries a window's events (about twenty at this pace).
    expect(withEvents.length).toBeLessThanOrEqual(COUNT / 3);
    socket.end();
    reader.close();
    publisher.close();
  }, 30_000);
});

describe("against a real server, at the end", () => {
  test("a busy channel's events still waiting at shutdown go out before every stream ends", async () => {
    const server = await startServer();
    const path = "/sse/last";
    const streams = await Promise.all([0, 1].map(() => openEvents(server.http(path))));
    await until(() => server.hub.eventStreams === 2, "two SSE subscribers");
    const publisher = await subscribe(server.ws(path));
    // Frames a millisecond apart make the channel busy; the last few wait for the window's end when stop comes.
    const COUNT = 30;
    for (let i = 0; i < COUNT; i++) {
      publisher.send(`m${i}`);
      await Bun.sleep(1);
    }
    // The publisher's echo says the hub has them all: each went to the websocket and the pending events together.
    await publisher.received(COUNT);
    await server.stop();
    const expected = Array.from({ length: COUNT }, (_, i) => `m${i}`);
    for (const stream of streams) {
      expect(await stream.ended).toBe(true);
      expect(stream.events.map((e) => e.data)).toEqual(expected);
    }
  }, 30_000);
});

/** The chunks of a chunked HTTP body, each complete one as a string (a last one cut short is left out). */
function dechunk(body: string): string[] {
  const chunks: string[] = [];
  let at = 0;
  while (at < body.length) {
    const end = body.indexOf("\r\n", at);
    if (end < 0) break;
    const size = Number.parseInt(body.slice(at, end), 16);
    if (!(size > 0) || end + 2 + size > body.length) break;
    chunks.push(body.slice(end + 2, end + 2 + size));
    at = end + 2 + size + 2;
  }
  return chunks;
}
