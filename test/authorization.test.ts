// Authorization at every door, against a real server: --websocket-publish no, --jwt-key with tokens signed here
// with jose, and --auth-url against a real HTTP service of the test's. Each refusal with its status, challenge
// and one-line body on the websocket upgrade, the SSE GET and the POST; a websocket's own messages; tokens
// expiring under open connections.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server } from "bun";
import { type JWTPayload, SignJWT } from "jose";
import { connect } from "../public/pinghub.js";
import { loadJwtKey } from "../src/jwt-access.ts";
import { post, subscribe } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

const dir = mkdtempSync(join(tmpdir(), "pinghub-auth-"));
const SECRET = "the-test-secret-that-is-long-enough-for-hs256";
const secretFile = join(dir, "secret");
writeFileSync(secretFile, `${SECRET}\n`);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function token(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
}

const rights = (subscribe: string[], publish: string[] = []) => ({ pinghub: { subscribe, publish } });

/** A websocket upgrade's answer when it is refused: fetch sends a real handshake and reads the status. */
async function upgradeAnswer(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, {
    headers: {
      Upgrade: "websocket",
      Connection: "Upgrade",
      "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
      "Sec-WebSocket-Version": "13",
      ...headers,
    },
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

async function sseAnswer(url: string, headers: Record<string, string> = {}) {
  const response = await fetch(url, { headers: { Accept: "text/event-stream", ...headers } });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

/** Waits until the hub counts `count` SSE subscribers: a stream is joined just after its headers go out. */
function streamsAre(server: TestServer, count: number) {
  return until(
    () => server.hub.eventStreams === count,
    () => `${count} SSE subscribers (there are ${server.hub.eventStreams})`,
  );
}

describe("--websocket-publish no", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ websocketPublish: false });
  });
  afterAll(() => server.stop());

  test("a websocket subscribes; its message closes it with 1008; its keepalive is still echoed; POST publishes", async () => {
    const ws = await subscribe(server.ws("/receive-only"));
    ws.send("");
    expect(await ws.received(1)).toEqual([""]);
    expect((await post(server.http("/receive-only"), "from the backend")).status).toBe(200);
    expect(await ws.received(2)).toEqual(["", "from the backend"]);
    ws.send("from the browser");
    const closed = await ws.closed;
    expect([closed.code, closed.reason]).toEqual([1008, "publishing by websocket is off"]);
  });
});

describe("--jwt-key", () => {
  let server: TestServer;
  const refusals: string[] = [];
  beforeAll(async () => {
    server = await startServer({ jwtKey: loadJwtKey(secretFile) }, { refused: (reason) => refusals.push(reason) });
  });
  afterAll(() => server.stop());

  test("no token: 401 with a plain Bearer challenge at every door, and nothing opened", async () => {
    const answers = [
      await upgradeAnswer(server.ws("/j/a").replace("ws:", "http:")),
      await sseAnswer(server.http("/j/a")),
      await post(server.http("/j/a"), "x"),
    ];
    for (const answer of answers) {
      expect(answer.status).toBe(401);
      expect(answer.headers.get("www-authenticate")).toBe("Bearer");
      expect(answer.text).toMatch(/^unauthorized: a bearer token is needed to (subscribe|publish)\n$/);
    }
    expect([server.hub.websockets, server.hub.eventStreams]).toEqual([0, 0]);
  });

  test("a bad, expired or foreign token: 401 invalid_token; a token without the right: 403; never echoed", async () => {
    const wrongKey = await new SignJWT(rights(["*"], ["*"]))
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode("another-secret-another-secret-another"));
    const expired = await token({ ...rights(["*"], ["*"]), exp: Math.floor(Date.now() / 1000) - 60 });
    const otherChannel = await token(rights(["/j/other"], ["/j/other"]));
    for (const [bad, status] of [
      [wrongKey, 401],
      [expired, 401],
      ["garbage", 401],
      [otherChannel, 403],
    ] as const) {
      const auth = { Authorization: `Bearer ${bad}` };
      const answers = [
        await upgradeAnswer(server.http("/j/a"), auth),
        await sseAnswer(server.http(`/j/a?token=${bad}`)),
        await post(server.http("/j/a"), "x", auth),
      ];
      for (const answer of answers) {
        expect(answer.status).toBe(status);
        expect(answer.text).not.toContain(bad);
        expect(answer.text.split("\n")).toHaveLength(2);
        if (status === 401) expect(answer.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
      }
    }
  });

  test("a subscribe-only websocket receives, and its message closes it with 1008 'not allowed to publish'", async () => {
    const reader = await token(rights(["/j/inbox"]));
    const writer = await token(rights([], ["/j/inbox"]));
    const ws = await subscribe(server.ws(`/j/inbox?token=${reader}`));
    ws.send("");
    expect((await post(server.http("/j/inbox"), "hello", { Authorization: `Bearer ${writer}` })).status).toBe(200);
    expect(await ws.received(2)).toEqual(["", "hello"]);
    ws.send("may I?");
    const closed = await ws.closed;
    expect([closed.code, closed.reason]).toEqual([1008, "not allowed to publish"]);
  });

  test("a websocket whose token grants publish publishes; a prefix pattern and its near misses", async () => {
    const both = await token(rights(["/user/42/*"], ["/user/42/*"]));
    const listener = await subscribe(server.ws(`/user/42/inbox?token=${both}`));
    const talker = await subscribe(server.ws("/user/42/inbox"), { headers: { Authorization: `Bearer ${both}` } });
    talker.send("hi");
    expect(await listener.received(1)).toEqual(["hi"]);
    for (const near of ["/user/420", "/user/42", "/user/4"]) {
      expect((await upgradeAnswer(server.http(`${near}?token=${both}`))).status).toBe(403);
      expect((await sseAnswer(server.http(`${near}?token=${both}`))).status).toBe(403);
    }
    listener.close();
    talker.close();
  });

  test("the token in the query is not part of the channel name", async () => {
    const t = await token(rights(["/j/q"], ["/j/q"]));
    const ws = await subscribe(server.ws(`/j/q?token=${t}`));
    const answer = await post(server.http(`/j/q?token=${t}`), "same channel");
    expect(answer.status).toBe(200);
    expect(await ws.received(1)).toEqual(["same channel"]);
    ws.close();
  });

  test("an SSE subscriber with a token receives; one whose token expires has its stream ended at exp", async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const short = await token({ ...rights(["/j/sse"]), exp });
    const stream = await openEvents(server.http(`/j/sse?token=${short}`));
    expect(stream.status).toBe(200);
    await streamsAre(server, 1);
    const writer = await token(rights([], ["/j/sse"]));
    await post(server.http("/j/sse"), "before exp", { Authorization: `Bearer ${writer}` });
    expect((await stream.received(1)).map((e) => e.data)).toEqual(["before exp"]);
    expect(await stream.comment(/^token expired$/, 6_000)).toBe("token expired");
    expect(await stream.ended).toBe(true);
    // Not before exp, and within about a second after it (a loose bound for a loaded machine).
    const endedAt = Date.now() / 1000;
    expect(endedAt).toBeGreaterThanOrEqual(exp);
    expect(endedAt - exp).toBeLessThan(3);
    await streamsAre(server, 0);
  });

  test("a websocket whose token expires is closed with 1008 'token expired' at exp, counted", async () => {
    const exp = Math.floor(Date.now() / 1000) + 2;
    const ws = await subscribe(server.ws(`/j/exp?token=${await token({ ...rights(["/j/exp"]), exp })}`));
    refusals.length = 0;
    const closed = await ws.closed;
    const closedAt = Date.now() / 1000;
    expect([closed.code, closed.reason]).toEqual([1008, "token expired"]);
    expect(closedAt).toBeGreaterThanOrEqual(exp);
    expect(closedAt - exp).toBeLessThan(3);
    expect(refusals).toEqual(["token_expired"]);
  });

  test("a token without exp holds; a websocket closed before its exp leaves nothing waiting", async () => {
    const forever = await subscribe(server.ws(`/j/forever?token=${await token(rights(["/j/forever"]))}`));
    const exp = Math.floor(Date.now() / 1000) + 600;
    const early = await subscribe(server.ws(`/j/early?token=${await token({ ...rights(["/j/early"]), exp })}`));
    early.close();
    await early.closed;
    expect(forever.ws.readyState).toBe(WebSocket.OPEN);
    forever.close();
  });
});

describe("pinghub.js with a token function", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer({ jwtKey: loadJwtKey(secretFile) });
  });
  afterAll(() => server.stop());

  test("asks for a fresh token before each connect: a websocket closed at exp comes back with the next one", async () => {
    let asked = 0;
    const states: string[] = [];
    const messages: string[] = [];
    const live = { count: 0, wake: () => {} };
    const channel = connect(server.http("/js/fresh"), {
      minRetryMs: 50,
      keepaliveMs: 0,
      token: async () => {
        asked++;
        // The first token expires in two seconds; the next ones hold for ten minutes.
        const exp = Math.floor(Date.now() / 1000) + (asked === 1 ? 2 : 600);
        return token({ ...rights(["/js/fresh"], ["/js/fresh"]), exp });
      },
      onMessage: (text: string) => messages.push(text),
      onState: (state: { status: string; reason?: string }) => {
        states.push(state.status === "reconnecting" ? `reconnecting: ${state.reason}` : state.status);
        if (state.status === "live") {
          live.count++;
          live.wake();
        }
      },
    });
    const liveAgain = (count: number) =>
      new Promise<void>((resolve) => {
        live.wake = () => live.count >= count && resolve();
        live.wake();
      });
    try {
      await liveAgain(1);
      expect(channel.send("first")).toBe(true);
      await liveAgain(2);
      expect(channel.send("second")).toBe(true);
      const listener = await subscribe(server.ws(`/js/fresh?token=${await token(rights(["/js/fresh"]))}`));
      channel.send("third");
      expect(await listener.received(1)).toEqual(["third"]);
      listener.close();
      expect(asked).toBe(2);
      expect(states.slice(0, 4)).toEqual(["connecting", "live", "reconnecting: token expired", "connecting"]);
      // The channel's URL, as shown to the page, carries no token.
      expect(channel.url).toBe(server.ws("/js/fresh"));
    } finally {
      channel.close();
    }
  });
});

describe("--auth-url", () => {
  /** The application: answers by the channel asked about, and records what it was sent. */
  type Answer = { status: number; body?: string; headers?: Record<string, string>; hang?: boolean };
  const answers = new Map<string, Answer>();
  const asked: Array<Record<string, string>> = [];
  let app: Server<undefined>;
  let server: TestServer;
  beforeAll(async () => {
    app = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      async fetch(req) {
        asked.push(Object.fromEntries(req.headers));
        const answer = answers.get(req.headers.get("x-pinghub-channel") ?? "") ?? { status: 403, body: "no rule" };
        if (answer.hang) await Bun.sleep(2_000);
        return new Response(answer.body ?? null, { status: answer.status, headers: answer.headers });
      },
    });
    server = await startServer({ authUrl: `http://127.0.0.1:${app.port}/check`, authTimeout: 0.5 });
  });
  afterAll(async () => {
    await server.stop();
    await app.stop(true);
  });

  test("the application is asked with the client's cookie, the channel, the action and the original request", async () => {
    answers.set("/f/ok", { status: 204 });
    asked.length = 0;
    const answer = await post(server.http("/f/ok?x=1"), "m", {
      Cookie: "session=abc",
      "X-Forwarded-For": "203.0.113.5",
    });
    expect(answer.status).toBe(200);
    expect(asked).toHaveLength(1);
    const headers = asked[0] ?? {};
    expect(headers.cookie).toBe("session=abc");
    expect(headers["x-pinghub-channel"]).toBe("/f/ok");
    expect(headers["x-pinghub-action"]).toBe("publish");
    expect(headers["x-original-uri"]).toBe("/f/ok?x=1");
    expect(headers["x-original-method"]).toBe("POST");
    expect(headers["x-forwarded-for"]).toBe("203.0.113.5, 127.0.0.1");
  });

  test("401, 403, 500, a hang past --auth-timeout and a redirect, at every door", async () => {
    answers.set("/f/401", { status: 401, body: "who are you?" });
    answers.set("/f/403", { status: 403, body: "not yours" });
    answers.set("/f/500", { status: 500, body: "oops" });
    answers.set("/f/hang", { status: 204, hang: true });
    const expected: Array<[string, number, string]> = [
      ["/f/401", 401, "who are you?\n"],
      ["/f/403", 403, "not yours\n"],
      ["/f/500", 503, "unavailable: the auth service answered 500\n"],
      ["/f/hang", 503, "unavailable: the auth service did not answer within 0.5 s\n"],
    ];
    for (const [channel, status, text] of expected) {
      for (const answer of [
        await upgradeAnswer(server.http(channel)),
        await sseAnswer(server.http(channel)),
        await post(server.http(channel), "x"),
      ]) {
        expect([channel, answer.status, answer.text]).toEqual([channel, status, text]);
        if (status === 503) expect(answer.headers.get("retry-after")).toBe("1");
      }
    }
    expect([server.hub.websockets, server.hub.eventStreams]).toEqual([0, 0]);
  });

  test("X-Pinghub-Publish: yes lets a websocket publish; without it, it is receive-only", async () => {
    answers.set("/f/talk", { status: 200, headers: { "X-Pinghub-Publish": "yes" } });
    answers.set("/f/listen", { status: 200 });
    const talker = await subscribe(server.ws("/f/talk"));
    const other = await subscribe(server.ws("/f/talk"));
    talker.send("said");
    expect(await other.received(1)).toEqual(["said"]);
    const listener = await subscribe(server.ws("/f/listen"));
    listener.send("");
    expect(await listener.received(1)).toEqual([""]);
    listener.send("said");
    const closed = await listener.closed;
    expect([closed.code, closed.reason]).toEqual([1008, "not allowed to publish"]);
    talker.close();
    other.close();
  });

  test("an answer with max-age is kept for the same cookie; a refusal is asked again every time", async () => {
    answers.set("/f/cached", { status: 204, headers: { "Cache-Control": "max-age=60" } });
    answers.set("/f/denied", { status: 403, body: "no", headers: { "Cache-Control": "max-age=60" } });
    asked.length = 0;
    for (let i = 0; i < 5; i++) {
      expect((await post(server.http("/f/cached"), "m", { Cookie: "session=1" })).status).toBe(200);
      expect((await post(server.http("/f/denied"), "m", { Cookie: "session=1" })).status).toBe(403);
    }
    expect((await post(server.http("/f/cached"), "m", { Cookie: "session=2" })).status).toBe(200);
    const channels = asked.map((h) => h["x-pinghub-channel"]);
    expect(channels.filter((c) => c === "/f/cached")).toHaveLength(2);
    expect(channels.filter((c) => c === "/f/denied")).toHaveLength(5);
  });

  test("an application that is down: 503, never let in", async () => {
    const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${gone.port}/check`;
    await gone.stop(true);
    const alone = await startServer({ authUrl: url, authTimeout: 1 });
    try {
      for (const answer of [
        await upgradeAnswer(alone.http("/f/down")),
        await sseAnswer(alone.http("/f/down")),
        await post(alone.http("/f/down"), "x"),
      ]) {
        expect([answer.status, answer.text]).toEqual([503, "unavailable: the auth service cannot be reached\n"]);
      }
    } finally {
      await alone.stop();
    }
  });
});
