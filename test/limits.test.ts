// Limits and bad input: each gets a clear status or close code, nothing of it is published, and other
// clients lose nothing.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { post, subscribe } from "./support/clients.ts";
import { OPCODE, RawWebSocket } from "./support/raw-websocket.ts";
import { startServer, type TestServer } from "./support/server.ts";

const MAX = 1000;
let server: TestServer;
beforeAll(async () => {
  server = await startServer({ maxMessageSize: MAX, maxBacklog: 64 * 1024 });
});
afterAll(() => server.stop());

/** A subscriber on `channel` that must see exactly `expected` once a closing marker is POSTed. */
async function witness(channel: string) {
  const s = await subscribe(server.ws(channel));
  return {
    async saw(expected: string[]) {
      await post(server.http(channel), "marker");
      expect(await s.received(expected.length + 1)).toEqual([...expected, "marker"]);
      s.close();
    },
  };
}

describe("message size", () => {
  test("a websocket message over the limit closes its sender with 1009 and is not published", async () => {
    const w = await witness("/size/ws");
    const raw = await RawWebSocket.connect({ port: server.port }, "/size/ws");
    raw.sendText("x".repeat(MAX));
    raw.sendText("y".repeat(MAX + 1));
    expect((await raw.closeFrame()).code).toBe(1009);
    await w.saw(["x".repeat(MAX)]);
  });

  test("a POST body over the limit gets 413 and is not published", async () => {
    const w = await witness("/size/post");
    expect((await post(server.http("/size/post"), "x".repeat(MAX))).status).toBe(200);
    const response = await post(server.http("/size/post"), "y".repeat(MAX + 1));
    expect(response.status).toBe(413);
    expect(response.text).toBe(`message too large: the limit is ${MAX} bytes\n`);
    await w.saw(["x".repeat(MAX)]);
  });

  test("a chunked POST body with no Content-Length is counted too: 413", async () => {
    const w = await witness("/size/chunked");
    const chunk = new TextEncoder().encode("z".repeat(400));
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 3; i++) controller.enqueue(chunk);
        controller.close();
      },
    });
    const response = await fetch(server.http("/size/chunked"), { method: "POST", body });
    expect(response.status).toBe(413);
    await w.saw([]);
  });

  test("a chunked POST body within the limit is published", async () => {
    const w = await witness("/size/chunked-ok");
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode("part one, "));
        controller.enqueue(new TextEncoder().encode("part two"));
        controller.close();
      },
    });
    const response = await fetch(server.http("/size/chunked-ok"), { method: "POST", body });
    expect(response.status).toBe(200);
    await w.saw(["part one, part two"]);
  });
});

describe("clients that vanish", () => {
  for (const [kind, head] of [
    ["Content-Length", "Content-Length: 100\r\n"],
    ["chunked", "Transfer-Encoding: chunked\r\n"],
  ]) {
    test(`a POST whose ${kind} body is cut short publishes nothing`, async () => {
      const w = await witness("/vanish");
      const closed = Promise.withResolvers<void>();
      const client = await Bun.connect({
        hostname: "127.0.0.1",
        port: server.port,
        socket: { data() {}, close: () => closed.resolve() },
      });
      const body = kind === "chunked" ? "5\r\nabc" : "abc";
      client.write(`POST /vanish HTTP/1.1\r\nHost: localhost\r\n${head}\r\n${body}`);
      client.end();
      // The server closes its side once it has given up on the request.
      await closed.promise;
      expect(server.server.pendingRequests).toBe(0);
      await w.saw([]);
    });
  }
});

describe("encoding", () => {
  test("a POST body that is not UTF-8 gets 400 and is not published", async () => {
    const w = await witness("/utf8/post");
    for (const bytes of [[0xff], [0xc3, 0x28], [0xed, 0xa0, 0x80], [0xc0, 0xaf]]) {
      const response = await post(server.http("/utf8/post"), new Uint8Array(bytes));
      expect([response.status, response.text]).toEqual([400, "message is not valid UTF-8\n"]);
    }
    await w.saw([]);
  });

  test("a binary websocket frame closes its sender with 1003 and is not published", async () => {
    const w = await witness("/utf8/binary");
    const raw = await RawWebSocket.connect({ port: server.port }, "/utf8/binary");
    raw.sendFrame(OPCODE.binary, "looks like text");
    expect((await raw.closeFrame()).code).toBe(1003);
    await w.saw([]);
  });

  test("a text frame that is not UTF-8 closes its sender with 1007 and is not published", async () => {
    const w = await witness("/utf8/text");
    const raw = await RawWebSocket.connect({ port: server.port }, "/utf8/text");
    raw.sendText(new Uint8Array([0x68, 0x69, 0xc3, 0x28]));
    expect((await raw.closeFrame()).code).toBe(1007);
    await w.saw([]);
  });
});

describe("slow subscribers", () => {
  // The stalled subscriber joins before the reader in one case and after it in the other: Bun's fan-out walks
  // subscribers in order, and a cut-off must be noticed wherever the stalled one stands.
  for (const stalledJoins of ["first", "last"]) {
    test(`a subscriber that stops reading (joined ${stalledJoins}) is cut off past its backlog; the others get everything`, async () => {
      const channel = `/slow/${stalledJoins}`;
      const connectStalled = () => RawWebSocket.connect({ port: server.port }, channel);
      const stalled = stalledJoins === "first" ? await connectStalled() : undefined;
      const reader = await subscribe(server.ws(channel));
      const stalledSocket = stalled ?? (await connectStalled());
      expect(stalledSocket.status).toBe(101);
      stalledSocket.pause();
      const slowBefore = server.hub.counters.slowSubscribers;
      const message = "m".repeat(900);
      // Publish in batches small enough for the reader's backlog and wait for the reader after each, so only
      // the stalled subscriber falls behind. Its kernel buffers absorb a few megabytes before Bun's queue grows.
      let sent = 0;
      while (server.hub.counters.slowSubscribers === slowBefore && sent < 50_000) {
        for (let i = 0; i < 20; i++) server.hub.publishPost(channel, `${sent++} ${message}`);
        await reader.received(sent);
      }
      expect(server.hub.counters.slowSubscribers).toBe(slowBefore + 1);
      expect(server.hub.subscriberCount(channel)).toBe(1);
      for (let i = 0; i < 20; i++) server.hub.publishPost(channel, `${sent++} ${message}`);
      const received = await reader.received(sent);
      expect(received.map((m) => Number(m.split(" ")[0]))).toEqual(Array.from({ length: sent }, (_, i) => i));
      reader.close();
    });
  }
});

describe("paths", () => {
  const bad: Array<[string, string]> = [
    ["/%ZZ", 'bad channel path: "%" must be followed by two hex digits\n'],
    ["/%E", 'bad channel path: "%" must be followed by two hex digits\n'],
    ["/%FF", "bad channel path: not valid UTF-8\n"],
    ["/%C3%28", "bad channel path: not valid UTF-8\n"],
    ["/%ED%A0%80", "bad channel path: not valid UTF-8\n"],
    ["/%C0%AF", "bad channel path: not valid UTF-8\n"],
    [`/${"a".repeat(256)}`, "bad channel path: longer than 256 characters\n"],
    [`/${"%C3%A9".repeat(256)}`, "bad channel path: longer than 256 characters\n"],
  ];

  for (const [path, reason] of bad) {
    test(`${path.slice(0, 24)}: 400 with a one-line reason for GET, POST and upgrade`, async () => {
      const get = await fetch(server.http(path));
      expect([get.status, await get.text()]).toEqual([400, reason]);
      const posted = await post(server.http(path), "nothing");
      expect([posted.status, posted.text]).toEqual([400, reason]);
      const raw = await RawWebSocket.connect({ port: server.port }, path);
      expect(raw.status).toBe(400);
    });
  }

  test("raw bytes that are not UTF-8 in the request line: 400", async () => {
    const raw = await RawWebSocket.connect({ port: server.port }, new Uint8Array([0x2f, 0x61, 0xff, 0x62]));
    expect(raw.status).toBe(400);
  });

  test("raw UTF-8 bytes in the request line name the same channel as their percent-encoding", async () => {
    const raw = await RawWebSocket.connect({ port: server.port }, new TextEncoder().encode("/raw/é"));
    expect(raw.status).toBe(101);
    expect((await post(server.http("/raw/%C3%A9"), "same")).headers.get("x-pinghub-subscribers")).toBe("1");
    await raw.until(() => raw.texts().length === 1);
    expect(raw.texts()).toEqual(["same"]);
    raw.end();
  });

  test("valid edge cases: / alone, 256 characters, characters outside the BMP", async () => {
    const longest = `/${"é".repeat(254)}😀`;
    for (const path of ["/", longest, "/%F0%9F%98%80"]) {
      const s = await subscribe(server.ws(path === longest ? encodeURI(path) : path));
      const response = await post(server.http(path === longest ? encodeURI(path) : path), "ok");
      expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
      expect(await s.received(1)).toEqual(["ok"]);
      s.close();
    }
  });
});
