// Subscribing with Server-Sent Events, against a real server: the stream's headers and first bytes, one event
// per message with line breaks as the format allows, one order with websocket subscribers, a stalled reader
// cut off, Origin and CORS, shutdown, the keepalive past Bun's idle timeout, and `curl -N`.
// Resuming with a history is in sse-history.test.ts.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { SUBSCRIBERS_HEADER } from "../src/post.ts";
import { HEARTBEAT_MS } from "../src/sse.ts";
import { post, type Subscriber, subscribe } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { type EventStreamClient, openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

let server: TestServer;
const opened: Array<EventStreamClient | Subscriber> = [];
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());
afterEach(() => {
  for (const client of opened.splice(0)) client.close();
});

async function events(path: string, headers: Record<string, string> = {}, on = server) {
  const client = await openEvents(on.http(path), headers);
  opened.push(client);
  return client;
}

async function websocket(path: string) {
  const client = await subscribe(server.ws(path));
  opened.push(client);
  return client;
}

/** Waits until the hub counts `count` SSE subscribers: a stream is joined just after its headers go out. */
async function streamsAre(count: number, on = server) {
  await until(
    () => on.hub.eventStreams === count,
    () => `${count} SSE subscribers; there are ${on.hub.eventStreams}`,
  );
}

describe("an SSE subscription", () => {
  test("answers 200 with the event-stream headers, and its first bytes at once", async () => {
    const s = await events("/sse/headers");
    expect(s.status).toBe(200);
    expect(s.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
    expect(s.headers.get("cache-control")).toBe("no-cache");
    expect(s.headers.get("x-accel-buffering")).toBe("no");
    expect(s.headers.get("vary")).toContain("Accept");
    // Before any message: the stream is seen open.
    expect(await s.comment(/^pinghub channel /)).toBe("pinghub channel /sse/headers");
    expect(s.retry).toBe(1000);
    expect(s.events).toEqual([]);
  });

  test("a GET that does not accept text/event-stream still gets the channel page, with Vary: Accept", async () => {
    const page = await fetch(server.http("/sse/headers"), { headers: { Accept: "text/html" } });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toStartWith("text/html");
    expect(page.headers.get("vary")).toContain("Accept");
    await page.text();
  });

  test("each message is one event; CR, LF and CRLF each arrive as one LF, and no CR is ever sent", async () => {
    const raw = await fetch(server.http("/sse/lines"), { headers: { Accept: "text/event-stream" } });
    const s = await events("/sse/lines");
    await streamsAre(2);
    const sent = ["one line", "two\nlines", "crlf\r\nline", "lone\rcr", "\nleading and trailing\n", "a:b: c"];
    for (const message of sent) expect((await post(server.http("/sse/lines"), message)).status).toBe(200);
    const got = await s.received(sent.length);
    expect(got.map((e) => e.data)).toEqual(sent.map((m) => m.replace(/\r\n|\r/g, "\n")));
    expect(got.every((e) => e.type === "message" && e.id === undefined)).toBe(true);
    // The bytes themselves: one data: line per line of the message, and not a single carriage return.
    const reader = raw.body?.getReader();
    let text = "";
    while (!text.includes("data: a:b: c\n\n")) text += new TextDecoder().decode((await reader?.read())?.value);
    await reader?.cancel();
    expect(text).not.toContain("\r");
    expect(text).toContain("data: crlf\ndata: line\n\n");
    expect(text).toContain("data: \ndata: leading and trailing\ndata: \n\n");
  });

  test("SSE and websocket subscribers get one order, from POST and websocket publishers at once", async () => {
    const path = "/sse/mixed";
    const streams = await Promise.all([0, 1, 2].map(() => events(path)));
    const sockets = await Promise.all([0, 1].map(() => websocket(path)));
    const publishers = await Promise.all([0, 1].map(() => websocket(path)));
    await streamsAre(3);
    expect(server.hub.subscriberCount(path)).toBe(7);
    const PER = 40;
    await Promise.all([
      ...publishers.map(async (p, n) => {
        for (let i = 0; i < PER; i++) {
          p.send(`ws ${n} ${i}`);
          if (i % 3 === 0) await Bun.sleep(0);
        }
      }),
      ...[0, 1].map(async (n) => {
        for (let i = 0; i < PER; i++) {
          const response = await post(server.http(path), `post ${n} ${i}`);
          expect(response.headers.get(SUBSCRIBERS_HEADER)).toBe("7");
        }
      }),
    ]);
    const total = PER * 4;
    const orders = [
      ...(await Promise.all(streams.map(async (s) => (await s.received(total)).map((e) => e.data)))),
      ...(await Promise.all([...sockets, ...publishers].map((s) => s.received(total)))),
    ];
    for (const order of orders) expect(order).toEqual(orders[0] ?? []);
    expect(new Set(orders[0]).size).toBe(total);
    // Each publisher's messages in the order it sent them.
    for (const prefix of ["ws 0", "ws 1", "post 0", "post 1"]) {
      const own = (orders[0] ?? []).filter((m) => m.startsWith(`${prefix} `));
      expect(own).toEqual(Array.from({ length: PER }, (_, i) => `${prefix} ${i}`));
    }
  });

  test("a channel exists while it has an SSE subscriber, and is forgotten with the last one", async () => {
    await streamsAre(0);
    const channelsBefore = server.hub.channelCount;
    const s = await events("/sse/alone");
    await streamsAre(1);
    expect(server.hub.channelCount).toBe(channelsBefore + 1);
    expect((await post(server.http("/sse/alone"), "x")).headers.get(SUBSCRIBERS_HEADER)).toBe("1");
    await s.received(1);
    s.close();
    await streamsAre(0);
    expect(server.hub.channelCount).toBe(channelsBefore);
    expect(server.hub.subscriberCount("/sse/alone")).toBe(0);
  });

  test("a subscriber that stops reading is cut off past its backlog; the other SSE and websocket ones get everything", async () => {
    const slowServer = await startServer({ maxBacklog: 64 * 1024 });
    try {
      const path = "/sse/slow";
      // A raw HTTP request that never reads its answer.
      let stalledEnded = false;
      const socket = await Bun.connect({
        hostname: "127.0.0.1",
        port: slowServer.port,
        socket: {
          data() {},
          close() {
            stalledEnded = true;
          },
        },
      });
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\r\n`);
      socket.pause();
      const reader = await openEvents(slowServer.http(path));
      const ws = await subscribe(slowServer.ws(path));
      await streamsAre(2, slowServer);
      const big = "x".repeat(16 * 1024);
      const COUNT = 600;
      for (let i = 0; i < COUNT; i++) await post(slowServer.http(path), `${i} ${big}`);
      await until(() => slowServer.hub.counters.slowSubscribers >= 1, "the stalled stream is counted slow");
      expect(slowServer.hub.counters.slowSubscribers).toBe(1);
      const got = await reader.received(COUNT, 20_000);
      expect(got.map((e) => Number(e.data.split(" ")[0]))).toEqual(Array.from({ length: COUNT }, (_, i) => i));
      expect((await ws.received(COUNT, 20_000)).length).toBe(COUNT);
      socket.resume();
      await until(() => stalledEnded, "the stalled stream is ended");
      expect(slowServer.hub.eventStreams).toBe(1);
      reader.close();
      ws.close();
    } finally {
      await slowServer.stop();
    }
  }, 60_000);

  test("curl -N prints the events as they come", async () => {
    const curl = Bun.spawn(["curl", "-sN", "-H", "Accept: text/event-stream", server.http("/sse/curl")], {
      stdout: "pipe",
      stderr: "ignore",
    });
    const reader = curl.stdout.getReader();
    let text = "";
    const readUntil = async (needle: string) => {
      while (!text.includes(needle)) text += new TextDecoder().decode((await reader.read()).value);
    };
    await readUntil(": pinghub channel /sse/curl");
    await post(server.http("/sse/curl"), "hello from POST");
    await readUntil("data: hello from POST\n\n");
    curl.kill();
    await curl.exited;
  });
});

describe("Origin and CORS", () => {
  let guarded: TestServer;
  beforeAll(async () => {
    guarded = await startServer({ origin: ["https://app.example"] });
  });
  afterAll(() => guarded.stop());

  test("with --origin: a foreign Origin gets 403, the allowed one the stream with its CORS header", async () => {
    const foreign = await fetch(guarded.http("/sse/o"), {
      headers: { Accept: "text/event-stream", Origin: "https://evil.example" },
    });
    expect(foreign.status).toBe(403);
    expect(await foreign.text()).toBe("forbidden: Origin is not https://app.example\n");
    const allowed = await events("/sse/o", { Origin: "https://app.example" }, guarded);
    expect(allowed.status).toBe(200);
    expect(allowed.headers.get("access-control-allow-origin")).toBe("https://app.example");
    // Cookies too (EventSource withCredentials), since --origin names the site.
    expect(allowed.headers.get("access-control-allow-credentials")).toBe("true");
    // Without an Origin (curl, a server): no CORS header, and the stream as usual.
    const plain = await events("/sse/o", {}, guarded);
    expect([plain.status, plain.headers.get("access-control-allow-origin")]).toEqual([200, null]);
  });

  test("a preflight for Last-Event-ID is answered for the allowed origin and refused for another", async () => {
    const preflight = (origin: string) =>
      fetch(guarded.http("/sse/o"), {
        method: "OPTIONS",
        headers: {
          Origin: origin,
          "Access-Control-Request-Method": "GET",
          "Access-Control-Request-Headers": "last-event-id",
        },
      });
    const ok = await preflight("https://app.example");
    expect(ok.status).toBe(204);
    expect(ok.headers.get("access-control-allow-origin")).toBe("https://app.example");
    expect(ok.headers.get("access-control-allow-headers")).toContain("Last-Event-ID");
    expect((await preflight("https://evil.example")).status).toBe(403);
  });

  test("without --origin any origin may read the stream", async () => {
    const s = await events("/sse/any", { Origin: "https://anywhere.example" });
    expect(s.headers.get("access-control-allow-origin")).toBe("https://anywhere.example");
    // But not with the visitor's cookies: any site could then read what an auth proxy lets those cookies see.
    expect(s.headers.get("access-control-allow-credentials")).toBeNull();
  });
});

describe("the stream over time", () => {
  test("shutdown ends every stream cleanly, so EventSource reconnects, elsewhere if need be", async () => {
    const stopping = await startServer();
    const streams = await Promise.all([0, 1, 2].map(() => openEvents(stopping.http("/sse/stop"))));
    await streamsAre(3, stopping);
    await stopping.stop();
    expect(await Promise.all(streams.map((s) => s.ended))).toEqual([true, true, true]);
    expect(stopping.hub.eventStreams).toBe(0);
    expect(stopping.hub.channelCount).toBe(0);
  });

  test(
    "a quiet stream outlives Bun's 10 s request timeout, with a keepalive comment at least every 15 s",
    async () => {
      const s = await events("/sse/quiet");
      await s.comment(/^pinghub channel/);
      // The wait's own deadline is the bound: the heartbeat, plus room for a timer late on a loaded machine.
      await s.comment(/^keepalive$/, HEARTBEAT_MS + 3_000);
      // Still open and delivering after the keepalive.
      await post(server.http("/sse/quiet"), "still here");
      expect((await s.received(1)).map((e) => e.data)).toEqual(["still here"]);
    },
    HEARTBEAT_MS + 10_000,
  );
});
