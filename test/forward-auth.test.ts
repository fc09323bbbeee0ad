// Forward auth on its own, against a real HTTP service of the test's on a free port: what it is sent, and what
// pinghub makes of each answer (allow, 401, 403, 500, hanging past the timeout, down), with the cache obeying
// max-age and never keeping a refusal.

import { afterAll, describe, expect, test } from "bun:test";
import type { Server } from "bun";
import type { Access, Action, Decision } from "../src/access.ts";
import { type AuthResult, forwardAuth, maxAgeSeconds } from "../src/forward-auth.ts";

/** What the service answers next, by the channel asked about: the test's script. */
type Answer = { status: number; body?: string; headers?: Record<string, string>; hang?: boolean };
const answers = new Map<string, Answer>();
const asked: Headers[] = [];
const service: Server<undefined> = Bun.serve({
  hostname: "127.0.0.1",
  port: 0,
  async fetch(req) {
    asked.push(req.headers);
    const channel = Buffer.from(req.headers.get("x-pinghub-channel") ?? "", "latin1").toString("utf8");
    const answer = answers.get(channel) ?? { status: 204 };
    if (answer.hang) await Bun.sleep(3000);
    return new Response(answer.body ?? null, { status: answer.status, headers: answer.headers });
  },
});
afterAll(() => service.stop(true));

const results: AuthResult[] = [];
let hits = 0;
const access = forwardAuth(
  { url: `http://127.0.0.1:${service.port}/auth`, timeout: 0.5, peer: () => "10.0.0.9" },
  { answered: (result) => results.push(result), cacheHit: () => hits++ },
);

function request(uri: string, headers: Record<string, string> = {}, method = "GET"): Request {
  return new Request(`http://pinghub${uri}`, { headers, method });
}

async function check(a: Access, req: Request, channel: string, action: Action): Promise<Decision> {
  return await a.check(req, channel, action);
}

describe("forward auth", () => {
  test("the application is sent the client's Cookie and Authorization and what it asks, and its 2xx allows", async () => {
    asked.length = 0;
    const req = request(
      "/caf%C3%A9/x?token=abc&lastEventId=3",
      { cookie: "session=s1", authorization: "Bearer t1", "x-forwarded-for": "203.0.113.7" },
      "POST",
    );
    expect(await check(access, req, "/café/x", "publish")).toEqual({
      allowed: true,
      publish: true,
      expiresAtMs: undefined,
    });
    expect(asked.length).toBe(1);
    const headers = asked[0] as Headers;
    expect(headers.get("cookie")).toBe("session=s1");
    expect(headers.get("authorization")).toBe("Bearer t1");
    expect(Buffer.from(headers.get("x-pinghub-channel") ?? "", "latin1").toString("utf8")).toBe("/café/x");
    expect(headers.get("x-pinghub-action")).toBe("publish");
    expect(headers.get("x-original-uri")).toBe("/caf%C3%A9/x?token=abc&lastEventId=3");
    expect(headers.get("x-original-method")).toBe("POST");
    expect(headers.get("x-forwarded-for")).toBe("203.0.113.7, 10.0.0.9");
  });

  test("a subscriber may publish only when the answer says X-Pinghub-Publish: yes", async () => {
    answers.set("/pub", { status: 200, headers: { "X-Pinghub-Publish": "yes" } });
    const may = await check(access, request("/pub"), "/pub", "subscribe");
    expect(may.allowed && may.publish).toBe(true);
    const mayNot = await check(access, request("/nopub"), "/nopub", "subscribe");
    expect(mayNot.allowed).toBe(true);
    expect(mayNot.allowed && mayNot.publish).toBe(false);
  });

  test("401 and 403 go to the client with the application's first line; 500 is 503 with Retry-After", async () => {
    answers.set("/401", { status: 401, body: "log in first\nmore text", headers: { "WWW-Authenticate": "Cookie" } });
    answers.set("/403", { status: 403, body: "not your channel" });
    answers.set("/500", { status: 500, body: "stack trace" });
    answers.set("/302", { status: 302, headers: { Location: "/login" } });
    const cases: Array<[string, number, string, string]> = [
      ["/401", 401, "log in first\n", "unauthorized"],
      ["/403", 403, "not your channel\n", "forbidden"],
      ["/500", 503, "unavailable: the auth service answered 500\n", "auth_unavailable"],
      ["/302", 503, "unavailable: the auth service answered 302\n", "auth_unavailable"],
    ];
    for (const [channel, status, body, reason] of cases) {
      const decision = await check(access, request(channel), channel, "subscribe");
      if (decision.allowed) throw new Error(`${channel} allowed`);
      expect([decision.response.status, await decision.response.text(), decision.reason]).toEqual([
        status,
        body,
        reason,
      ]);
      if (status === 503) expect(decision.response.headers.get("retry-after")).toBe("1");
      if (status === 401) expect(decision.response.headers.get("www-authenticate")).toBe("Cookie");
    }
  });

  test("an application that hangs past the timeout, or is down: 503, never allowed", async () => {
    answers.set("/hang", { status: 204, hang: true });
    results.length = 0;
    const started = performance.now();
    const hung = await check(access, request("/hang"), "/hang", "subscribe");
    expect(performance.now() - started).toBeLessThan(2500);
    if (hung.allowed) throw new Error("allowed");
    expect([hung.response.status, await hung.response.text()]).toEqual([
      503,
      "unavailable: the auth service did not answer within 0.5 s\n",
    ]);
    expect(results).toEqual(["timeout"]);

    const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
    const url = `http://127.0.0.1:${gone.port}/auth`;
    await gone.stop(true);
    const down = await check(
      forwardAuth({ url, timeout: 2, peer: () => "10.0.0.9" }),
      request("/a"),
      "/a",
      "subscribe",
    );
    if (down.allowed) throw new Error("allowed");
    expect([down.response.status, await down.response.text()]).toEqual([
      503,
      "unavailable: the auth service cannot be reached\n",
    ]);
  });

  test("an answer with max-age is kept that long for the same cookie, authorization, channel and action", async () => {
    answers.set("/cached", { status: 204, headers: { "Cache-Control": "private, max-age=1" } });
    asked.length = 0;
    hits = 0;
    const req = () => request("/cached", { cookie: "session=s2" });
    expect((await check(access, req(), "/cached", "publish")).allowed).toBe(true);
    // Answered from the cache at once: no promise, no request.
    const again = access.check(req(), "/cached", "publish");
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as Decision).allowed).toBe(true);
    expect([asked.length, hits]).toEqual([1, 1]);
    // Another cookie, another action, no cookie: each asked for itself.
    await check(access, request("/cached", { cookie: "session=s3" }), "/cached", "publish");
    await check(access, req(), "/cached", "subscribe");
    await check(access, request("/cached"), "/cached", "publish");
    expect(asked.length).toBe(4);
    // Past max-age, asked again.
    await Bun.sleep(1100);
    await check(access, req(), "/cached", "publish");
    expect(asked.length).toBe(5);
  });

  test("a refusal is never kept, whatever its Cache-Control; nor an answer without max-age", async () => {
    answers.set("/denied", { status: 403, body: "no", headers: { "Cache-Control": "max-age=60" } });
    answers.set("/uncached", { status: 204 });
    asked.length = 0;
    for (let i = 0; i < 3; i++) {
      expect((await check(access, request("/denied"), "/denied", "publish")).allowed).toBe(false);
      expect((await check(access, request("/uncached"), "/uncached", "publish")).allowed).toBe(true);
    }
    expect(asked.length).toBe(6);
  });

  test("a channel name with a control character is refused without asking", async () => {
    asked.length = 0;
    const decision = await check(access, request("/a%0Ab"), "/a\nb", "subscribe");
    expect(decision.allowed).toBe(false);
    expect(asked.length).toBe(0);
  });

  test("max-age is read as caches read it", () => {
    expect(maxAgeSeconds(null)).toBe(0);
    expect(maxAgeSeconds("max-age=30")).toBe(30);
    expect(maxAgeSeconds("private, max-age=30")).toBe(30);
    expect(maxAgeSeconds("no-store, max-age=30")).toBe(0);
    expect(maxAgeSeconds("s-maxage=30")).toBe(0);
  });
});
