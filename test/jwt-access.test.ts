// JWT access on its own: key files as an operator writes them, tokens signed here with jose (HS256 and ES256),
// every refusal with its status, challenge and reason, and the rights' patterns with their near misses.

import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { exportPKCS8, exportSPKI, generateKeyPair, type JWTPayload, SignJWT } from "jose";
import type { Access, Action, Decision } from "../src/access.ts";
import { ConfigError } from "../src/config-error.ts";
import {
  JWT_LEEWAY_SECONDS,
  jwtAccess,
  loadJwtKey,
  MAX_REMEMBERED_REFUSED_TOKEN_CHARS,
  MAX_REMEMBERED_TOKENS,
} from "../src/jwt-access.ts";

const dir = mkdtempSync(join(tmpdir(), "pinghub-jwt-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function keyFile(name: string, content: string | Uint8Array): string {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
}

const SECRET = "a-secret-of-more-than-thirty-two-bytes-for-hs256";
const secretBytes = new TextEncoder().encode(SECRET);
const es = await generateKeyPair("ES256", { extractable: true });
const esPem = await exportSPKI(es.publicKey);

function hs256(claims: JWTPayload, secret: Uint8Array = secretBytes): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).setIssuedAt().sign(secret);
}

function es256(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "ES256" }).sign(es.privateKey);
}

function bearer(path: string, token: string | undefined): Request {
  return new Request(
    `http://pinghub${path}`,
    token === undefined ? {} : { headers: { authorization: `Bearer ${token}` } },
  );
}

async function check(access: Access, req: Request, channel: string, action: Action): Promise<Decision> {
  return await access.check(req, channel, action);
}

/** The refusal's status, challenge, reason and body, for one expectation each. */
async function refusal(decision: Decision) {
  if (decision.allowed) throw new Error("expected a refusal, got allowed");
  return {
    status: decision.response.status,
    challenge: decision.response.headers.get("www-authenticate"),
    reason: decision.reason,
    body: await decision.response.text(),
  };
}

describe("the key file", () => {
  test("an HMAC secret is its bytes, the trailing line feed left out", () => {
    const key = loadJwtKey(keyFile("secret", `${SECRET}\n`));
    expect(key.key).toEqual(secretBytes);
    expect(key.algorithms).toEqual(["HS256", "HS384", "HS512"]);
  });

  test("a short secret, an unreadable file, a PEM that does not parse: one line each, never a secret", () => {
    expect(() => loadJwtKey(keyFile("short", "short\n"))).toThrow(
      /bad --jwt-key ".*short": an HMAC secret must be at least 32 bytes, this one has 5$/,
    );
    expect(() => loadJwtKey(join(dir, "absent"))).toThrow(/bad --jwt-key ".*absent": cannot read it: ENOENT$/);
    const broken = `-----BEGIN PUBLIC KEY-----\n${"A".repeat(64)}\n-----END PUBLIC KEY-----\n`;
    expect(() => loadJwtKey(keyFile("broken.pem", broken))).toThrow(ConfigError);
    expect(() => loadJwtKey(keyFile("broken.pem", broken))).toThrow(/looks like PEM but is not a public key/);
  });

  test("a PEM public key chooses its algorithms: ES256 for P-256, RS and PS for RSA, EdDSA for Ed25519", async () => {
    expect(loadJwtKey(keyFile("es.pem", esPem)).algorithms).toEqual(["ES256"]);
    const rsa = await generateKeyPair("RS256", { extractable: true });
    expect(loadJwtKey(keyFile("rsa.pem", await exportSPKI(rsa.publicKey))).algorithms).toEqual([
      "RS256",
      "RS384",
      "RS512",
      "PS256",
      "PS384",
      "PS512",
    ]);
    const ed = await generateKeyPair("EdDSA", { extractable: true });
    expect(loadJwtKey(keyFile("ed.pem", await exportSPKI(ed.publicKey))).algorithms).toEqual(["EdDSA", "Ed25519"]);
    // A private key given by mistake is taken for its public half, not as a secret.
    expect(loadJwtKey(keyFile("es-private.pem", await exportPKCS8(es.privateKey))).algorithms).toEqual(["ES256"]);
  });
});

describe("HS256 tokens", () => {
  const access = jwtAccess({ key: loadJwtKey(keyFile("hs", SECRET)), audience: undefined, issuer: undefined });

  test("no token: 401 with a plain Bearer challenge", async () => {
    const r = await refusal(await check(access, bearer("/a", undefined), "/a", "subscribe"));
    expect(r).toEqual({
      status: 401,
      challenge: "Bearer",
      reason: "unauthorized",
      body: "unauthorized: a bearer token is needed to subscribe\n",
    });
  });

  test("a token granting subscribe on the channel: allowed, from the header or ?token=, not publish", async () => {
    const token = await hs256({ pinghub: { subscribe: ["/a"] } });
    for (const req of [bearer("/a", token), new Request(`http://pinghub/a?token=${token}`)]) {
      expect(await check(access, req, "/a", "subscribe")).toEqual({
        allowed: true,
        publish: false,
        expiresAtMs: undefined,
      });
    }
    const r = await refusal(await check(access, bearer("/a", token), "/a", "publish"));
    expect(r.status).toBe(403);
    expect(r.reason).toBe("forbidden");
    expect(r.body).toBe("forbidden: the token does not grant publish on this channel\n");
  });

  test("publish alone does not grant subscribe; with both, the websocket may publish", async () => {
    const publishOnly = await hs256({ pinghub: { publish: ["/a"] } });
    expect((await check(access, bearer("/a", publishOnly), "/a", "publish")).allowed).toBe(true);
    expect((await refusal(await check(access, bearer("/a", publishOnly), "/a", "subscribe"))).status).toBe(403);
    const both = await hs256({ pinghub: { subscribe: ["/a"], publish: ["/a"] } });
    const decision = await check(access, bearer("/a", both), "/a", "subscribe");
    expect(decision.allowed && decision.publish).toBe(true);
  });

  test("a prefix pattern and its near misses; * alone is every channel; names compared decoded", async () => {
    const token = await hs256({ pinghub: { subscribe: ["/user/42/*", "/café"] } });
    const allowed = async (channel: string) =>
      (await check(access, bearer(channel, token), channel, "subscribe")).allowed;
    expect(await allowed("/user/42/inbox")).toBe(true);
    expect(await allowed("/user/42/")).toBe(true);
    expect(await allowed("/user/420")).toBe(false);
    expect(await allowed("/user/42")).toBe(false);
    expect(await allowed("/user/4")).toBe(false);
    expect(await allowed("/café")).toBe(true);
    expect(await allowed("/caf")).toBe(false);
    const all = await hs256({ pinghub: { subscribe: ["*"] } });
    expect((await check(access, bearer("/x/y", all), "/x/y", "subscribe")).allowed).toBe(true);
  });

  test("a long list of patterns (indexed past 16) matches as a short one, near misses and non-strings too", async () => {
    const names = Array.from({ length: 20 }, (_, i) => `/room/${i}`);
    const token = await hs256({ pinghub: { subscribe: [...names, "/user/42/*", 7, null] } });
    const allowed = async (channel: string) =>
      (await check(access, bearer(channel, token), channel, "subscribe")).allowed;
    expect(await allowed("/room/0")).toBe(true);
    expect(await allowed("/room/19")).toBe(true);
    expect(await allowed("/room/20")).toBe(false);
    expect(await allowed("/room/1/x")).toBe(false);
    expect(await allowed("/user/42/inbox")).toBe(true);
    expect(await allowed("/user/420")).toBe(false);
    expect(await allowed("7")).toBe(false);
  });

  test("a short list with non-strings among its patterns: the strings still match, the rest grants nothing", async () => {
    const token = await hs256({ pinghub: { subscribe: [7, "/a", null, "/b/*", { c: 1 }] } });
    const allowed = async (channel: string) =>
      (await check(access, bearer(channel, token), channel, "subscribe")).allowed;
    expect(await allowed("/a")).toBe(true);
    expect(await allowed("/b/x")).toBe(true);
    expect(await allowed("/b")).toBe(false);
    expect(await allowed("7")).toBe(false);
    expect(await allowed("/c")).toBe(false);
  });

  test("a valid token without the pinghub claim, or with a claim of the wrong shape, grants nothing", async () => {
    for (const claims of [{}, { pinghub: "*" }, { pinghub: { subscribe: "/a" } }, { pinghub: { subscribe: [7] } }]) {
      const r = await refusal(await check(access, bearer("/a", await hs256(claims)), "/a", "subscribe"));
      expect(r.status).toBe(403);
    }
  });

  test("a bad signature, a malformed or expired token: 401 invalid_token, the token never echoed", async () => {
    const forged = await hs256({ pinghub: { subscribe: ["*"] } }, new TextEncoder().encode("x".repeat(40)));
    const expired = await hs256({ pinghub: { subscribe: ["*"] }, exp: Math.floor(Date.now() / 1000) - 60 });
    const cases: Array<[string, string, "unauthorized" | "token_expired"]> = [
      [forged, "unauthorized: token signature does not verify\n", "unauthorized"],
      ["not.a.token", "unauthorized: malformed token\n", "unauthorized"],
      [expired, "unauthorized: token expired\n", "token_expired"],
    ];
    for (const [token, body, reason] of cases) {
      const r = await refusal(await check(access, bearer("/a", token), "/a", "subscribe"));
      expect(r).toEqual({ status: 401, challenge: 'Bearer error="invalid_token"', reason, body });
      expect(r.body).not.toContain(token);
    }
  });

  test("exp: the leeway helps a POST, not a subscriber, and expiresAtMs is exp itself", async () => {
    const now = Math.floor(Date.now() / 1000);
    const justExpired = await hs256({ pinghub: { subscribe: ["*"], publish: ["*"] }, exp: now - 1 });
    expect((await check(access, bearer("/a", justExpired), "/a", "publish")).allowed).toBe(true);
    expect((await refusal(await check(access, bearer("/a", justExpired), "/a", "subscribe"))).reason).toBe(
      "token_expired",
    );
    const later = now + 600;
    const valid = await hs256({ pinghub: { subscribe: ["*"] }, exp: later });
    const decision = await check(access, bearer("/a", valid), "/a", "subscribe");
    expect(decision.allowed && decision.expiresAtMs).toBe(later * 1000);
    const notYet = await hs256({ pinghub: { subscribe: ["*"] }, nbf: now + JWT_LEEWAY_SECONDS + 60 });
    expect((await refusal(await check(access, bearer("/a", notYet), "/a", "subscribe"))).body).toBe(
      "unauthorized: token not valid yet (nbf)\n",
    );
  });

  test("a token is answered at once, without a promise, first time and after, for its own channels only", async () => {
    // HMAC tokens are checked synchronously (jwt-hmac.ts): not even a new token waits for a promise.
    const token = await hs256({ pinghub: { subscribe: ["/a"] }, jti: crypto.randomUUID() });
    for (let time = 0; time < 2; time++) {
      const decision = access.check(bearer("/a", token), "/a", "subscribe");
      expect(decision).not.toBeInstanceOf(Promise);
      expect((decision as Decision).allowed).toBe(true);
    }
    // The same token, on a channel it does not grant: still refused.
    expect((access.check(bearer("/b", token), "/b", "subscribe") as Decision).allowed).toBe(false);
  });

  test("a bad token is refused every time it comes, 401 with its reason, each answer whole", async () => {
    const forged = await hs256({ pinghub: { subscribe: ["*"] } }, new TextEncoder().encode("y".repeat(40)));
    for (let time = 0; time < 3; time++) {
      const decision = access.check(bearer("/a", forged), "/a", "subscribe");
      expect(decision).not.toBeInstanceOf(Promise);
      expect(await refusal(decision as Decision)).toEqual({
        status: 401,
        challenge: 'Bearer error="invalid_token"',
        reason: "unauthorized",
        body: "unauthorized: token signature does not verify\n",
      });
    }
  });

  test("an HS256 token signed with the public key's text is refused against a PEM key (algorithm confusion)", async () => {
    const pemAccess = jwtAccess({ key: loadJwtKey(keyFile("es2.pem", esPem)), audience: undefined, issuer: undefined });
    const confused = await hs256({ pinghub: { subscribe: ["*"] } }, new TextEncoder().encode(esPem));
    const r = await refusal(await check(pemAccess, bearer("/a", confused), "/a", "subscribe"));
    expect(r.status).toBe(401);
    expect(r.body).toBe("unauthorized: token algorithm not accepted for this key\n");
  });
});

describe("ES256 tokens, audience and issuer", () => {
  const access = jwtAccess({ key: loadJwtKey(keyFile("es3.pem", esPem)), audience: "pinghub", issuer: "https://app" });

  test("the right audience and issuer: allowed; either wrong or missing: 401", async () => {
    const rights = { pinghub: { subscribe: ["/a"] } };
    const good = await es256({ ...rights, aud: "pinghub", iss: "https://app" });
    expect((await check(access, bearer("/a", good), "/a", "subscribe")).allowed).toBe(true);
    const bodies = [
      [await es256({ ...rights, aud: "other", iss: "https://app" }), "unauthorized: token audience not accepted\n"],
      [await es256({ ...rights, iss: "https://app" }), "unauthorized: token audience not accepted\n"],
      [await es256({ ...rights, aud: "pinghub", iss: "https://evil" }), "unauthorized: token issuer not accepted\n"],
      [
        await hs256({ ...rights, aud: "pinghub", iss: "https://app" }),
        "unauthorized: token algorithm not accepted for this key\n",
      ],
    ];
    for (const [token = "", body] of bodies) {
      const r = await refusal(await check(access, bearer("/a", token), "/a", "subscribe"));
      expect(r.status).toBe(401);
      expect(r.body).toBe(body ?? "");
    }
  });

  test("a token seen before is answered at once, without a promise, for its own channels only", async () => {
    const token = await es256({ pinghub: { subscribe: ["/a"] }, aud: "pinghub", iss: "https://app" });
    const first = access.check(bearer("/a", token), "/a", "subscribe");
    expect(first).toBeInstanceOf(Promise);
    expect((await first).allowed).toBe(true);
    const again = access.check(bearer("/a", token), "/a", "subscribe");
    expect(again).not.toBeInstanceOf(Promise);
    expect((again as Decision).allowed).toBe(true);
    expect((access.check(bearer("/b", token), "/b", "subscribe") as Decision).allowed).toBe(false);
  });

  test("a refused token is remembered too: answered 401 at once, every time, unless only its nbf is ahead", async () => {
    const rights = { pinghub: { subscribe: ["/a"] } };
    const wrongAudience = await es256({ ...rights, aud: "other", iss: "https://app" });
    const first = access.check(bearer("/a", wrongAudience), "/a", "subscribe");
    expect(first).toBeInstanceOf(Promise);
    expect((await refusal(await first)).body).toBe("unauthorized: token audience not accepted\n");
    for (let time = 0; time < 2; time++) {
      const again = access.check(bearer("/a", wrongAudience), "/a", "subscribe");
      expect(again).not.toBeInstanceOf(Promise);
      expect(await refusal(again as Decision)).toEqual({
        status: 401,
        challenge: 'Bearer error="invalid_token"',
        reason: "unauthorized",
        body: "unauthorized: token audience not accepted\n",
      });
    }
    // Not valid yet is not refused for good: that token is checked again when it comes back.
    const nbf = Math.floor(Date.now() / 1000) + JWT_LEEWAY_SECONDS + 60;
    const notYet = await es256({ ...rights, aud: "pinghub", iss: "https://app", nbf });
    for (let time = 0; time < 2; time++) {
      const decision = access.check(bearer("/a", notYet), "/a", "subscribe");
      expect(decision).toBeInstanceOf(Promise);
      expect((await refusal(await decision)).body).toBe("unauthorized: token not valid yet (nbf)\n");
    }
  });

  test("refused tokens remembered: at most 10,000, the oldest forgotten first, none longer than 2,048 characters", async () => {
    const junk = (n: number) => `junk.${n}.x`;
    expect(await access.check(bearer("/a", junk(0)), "/a", "subscribe")).toMatchObject({ allowed: false });
    expect(access.check(bearer("/a", junk(0)), "/a", "subscribe")).not.toBeInstanceOf(Promise);
    for (let n = 1; n <= MAX_REMEMBERED_TOKENS; n++) await access.check(bearer("/a", junk(n)), "/a", "subscribe");
    // junk(0) was the oldest of 10,001: forgotten, so checked (by jose, a promise) again; the newest still known.
    expect(access.check(bearer("/a", junk(0)), "/a", "subscribe")).toBeInstanceOf(Promise);
    expect(access.check(bearer("/a", junk(MAX_REMEMBERED_TOKENS)), "/a", "subscribe")).not.toBeInstanceOf(Promise);
    const long = `junk.${"x".repeat(MAX_REMEMBERED_REFUSED_TOKEN_CHARS)}.x`;
    for (let time = 0; time < 2; time++) {
      const decision = access.check(bearer("/a", long), "/a", "subscribe");
      expect(decision).toBeInstanceOf(Promise);
      expect((await refusal(await decision)).body).toBe("unauthorized: malformed token\n");
    }
  });
});
