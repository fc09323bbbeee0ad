// The HMAC fast path against jose: a corpus of tokens, good and bad in every way we could think of, each checked
// by src/jwt-hmac.ts and by jose's own `jwtVerify` with the options jwt-access.ts gives it. For every token the
// verdicts must be the same: accepted with the same claims, or refused with the same words (tokenRefusal: the
// 401's reason and body). The only exceptions are named, in the last group: tokens jose lets through and the
// fast path refuses on purpose (not canonical base64url, a crit or b64 header), each asserted both ways so that
// the group is known to be exactly that.
//
// Tokens are signed here with WebCrypto (crypto.subtle), not with the HMAC the fast path uses, and with jose's
// SignJWT where jose can make the token at all.

import { describe, expect, test } from "bun:test";
import { type JWTPayload, jwtVerify, SignJWT } from "jose";
import { JWT_LEEWAY_SECONDS, tokenRefusal } from "../src/jwt-access.ts";
import { hmacJwtVerifier } from "../src/jwt-hmac.ts";

const SECRET = new TextEncoder().encode("the-differential-corpus-secret-more-than-32-bytes");
const OTHER_SECRET = new TextEncoder().encode("another-secret-entirely-also-more-than-32-bytes");
const ALGORITHMS = ["HS256", "HS384", "HS512"];
const AUDIENCE = "pinghub";
const ISSUER = "https://app.example";

/** The two ways pinghub is run: without --jwt-audience and --jwt-issuer, and with both. */
const SETTINGS = [
  { name: "no audience or issuer configured", audience: undefined, issuer: undefined },
  { name: "audience and issuer configured", audience: AUDIENCE, issuer: ISSUER },
] as const;
type Settings = (typeof SETTINGS)[number];

type Verdict = { accepted: JWTPayload } | { refused: { why: string; reason: string } };

function fastVerdict(token: string, settings: Settings): Verdict {
  const verify = hmacJwtVerifier({
    secret: SECRET,
    algorithms: ALGORITHMS,
    audience: settings.audience,
    issuer: settings.issuer,
    clockToleranceSeconds: JWT_LEEWAY_SECONDS,
  });
  try {
    return { accepted: verify(token) };
  } catch (error) {
    return { refused: tokenRefusal(error) };
  }
}

async function joseVerdict(token: string, settings: Settings): Promise<Verdict> {
  try {
    const { payload } = await jwtVerify(token, SECRET, {
      algorithms: ALGORITHMS,
      audience: settings.audience,
      issuer: settings.issuer,
      clockTolerance: JWT_LEEWAY_SECONDS,
    });
    return { accepted: payload };
  } catch (error) {
    return { refused: tokenRefusal(error) };
  }
}

// --- making tokens ---------------------------------------------------------------------------------------------

const HASHES: Record<string, string> = { HS256: "SHA-256", HS384: "SHA-384", HS512: "SHA-512" };

function b64url(data: string | Uint8Array): string {
  return Buffer.from(data).toString("base64url");
}

/** The HMAC of `input` with WebCrypto, base64url. */
async function hmac(input: string, hash = "SHA-256", secret = SECRET): Promise<string> {
  const key = await crypto.subtle.importKey("raw", secret, { name: "HMAC", hash }, false, ["sign"]);
  return b64url(new Uint8Array(await crypto.subtle.sign("HMAC", key, new TextEncoder().encode(input))));
}

/** A token of these exact header and payload segments, signed over them as they are. */
async function signedSegments(header: string, payload: string, hash = "SHA-256", secret = SECRET) {
  return `${header}.${payload}.${await hmac(`${header}.${payload}`, hash, secret)}`;
}

/** A token of this header and payload text (JSON or not), signed. */
function signedText(header: string, payload: string, hash = "SHA-256", secret = SECRET) {
  return signedSegments(b64url(header), b64url(payload), hash, secret);
}

/** A token of this header and these claims, JSON, signed with the header's own HMAC (HS256 when it names none). */
function signed(header: Record<string, unknown>, claims: unknown, secret = SECRET) {
  const hash = HASHES[String(header.alg)] ?? "SHA-256";
  return signedText(JSON.stringify(header), JSON.stringify(claims), hash, secret);
}

/** Claims valid under both settings, with rights. */
function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  const now = Math.floor(Date.now() / 1000);
  return {
    pinghub: { subscribe: ["/a/*"], publish: [] },
    aud: AUDIENCE,
    iss: ISSUER,
    iat: now,
    exp: now + 600,
    ...extra,
  };
}

function sign(alg: string, extra: Record<string, unknown> = {}, secret = SECRET): Promise<string> {
  return new SignJWT(claims(extra)).setProtectedHeader({ alg }).sign(secret);
}

/** The token with the character at `index` of its signature changed, still base64url and canonical. */
function flipSignature(token: string, index: number): string {
  const dot = token.lastIndexOf(".");
  const at = dot + 1 + index;
  return token.slice(0, at) + (token[at] === "A" ? "B" : "A") + token.slice(at + 1);
}

const HS256 = b64url(JSON.stringify({ alg: "HS256" }));
const PAYLOAD = b64url(JSON.stringify(claims({ sub: "someone else" })));

interface Entry {
  name: string;
  token: string;
  /** What jose says, under each settings; `accept` alone means under both. */
  expected: "accept" | "reject";
  /** Under audience and issuer configured, if different. */
  expectedChecked?: "accept" | "reject";
}

async function corpus(): Promise<Entry[]> {
  const valid = await sign("HS256");
  const validSignature = valid.slice(valid.lastIndexOf(".") + 1);
  const [header = "", payload = ""] = valid.split(".");
  const accept = (name: string, token: string): Entry => ({ name, token, expected: "accept" });
  const reject = (name: string, token: string): Entry => ({ name, token, expected: "reject" });
  /** Accepted without audience and issuer configured, refused with them. */
  const claimCheck = (name: string, token: string): Entry => ({
    name,
    token,
    expected: "accept",
    expectedChecked: "reject",
  });
  const now = Math.floor(Date.now() / 1000);
  return [
    // Good tokens.
    accept("valid HS256 (jose SignJWT)", valid),
    accept("valid HS384 with the same secret", await sign("HS384")),
    accept("valid HS512 with the same secret", await sign("HS512")),
    claimCheck("valid, minimal claims {}", await signed({ alg: "HS256" }, {})),
    claimCheck("valid, no exp", await signed({ alg: "HS256" }, { pinghub: { subscribe: ["*"] } })),
    accept("valid, typ JWT", await signed({ alg: "HS256", typ: "JWT" }, claims())),
    accept("valid, typ other (jose does not look at typ)", await signed({ alg: "HS256", typ: "at+jwt" }, claims())),
    accept("valid, typ a number", await signed({ alg: "HS256", typ: 7 }, claims())),
    accept("valid, kid and jku (never fetched)", await signed({ alg: "HS256", kid: "k", jku: "http://x" }, claims())),
    claimCheck("valid, alg given twice, HS256 last", await signedText('{"alg":"none","alg":"HS256"}', "{}")),
    claimCheck("valid, __proto__ in header", await signedText('{"alg":"HS256","__proto__":{"alg":"none"}}', "{}")),
    claimCheck("valid, __proto__ in payload", await signedText('{"alg":"HS256"}', '{"__proto__":{"exp":1}}')),
    claimCheck("valid, byte order mark before the payload", await signedText('{"alg":"HS256"}', '\ufeff{"a":1}')),
    claimCheck("valid, whitespace around the payload JSON", await signedText('{"alg":"HS256"}', ' {"a":1} ')),
    claimCheck("valid, exp beyond any date (1e400)", await signedText('{"alg":"HS256"}', '{"exp":1e400}')),
    accept("valid, unicode claims", await signed({ alg: "HS256" }, claims({ sub: "café ☕ 😀" }))),
    accept("huge token, a 64 KiB claim", await sign("HS256", { filler: "x".repeat(65536) })),
    accept("huge header, 8 KiB", await signed({ alg: "HS256", filler: "y".repeat(8192) }, claims())),

    // Signatures.
    reject("bad signature, first character changed", flipSignature(valid, 0)),
    reject("bad signature, middle character changed", flipSignature(valid, 20)),
    reject("truncated signature, two characters short", valid.slice(0, -2)),
    reject("truncated signature, ten characters left", `${header}.${payload}.${validSignature.slice(0, 10)}`),
    reject("signature one character long", `${header}.${payload}.A`),
    reject("signature with extra characters", `${valid}AAAA`),
    reject("empty signature", `${header}.${payload}.`),
    reject("signature of another secret", await sign("HS256", {}, OTHER_SECRET)),
    reject("signature over another payload", `${header}.${PAYLOAD}.${validSignature}`),
    reject("signature in standard base64 (+ /)", `${header}.${payload}.${"+/".repeat(21)}A`),
    reject("signature with a character outside base64", `${header}.${payload}.${validSignature.slice(0, -1)}!`),
    reject("HS384 header over an HS256 signature", await signedText('{"alg":"HS384"}', "{}", "SHA-256")),
    reject("HS256 header over an HS512 signature", await signedText('{"alg":"HS256"}', "{}", "SHA-512")),

    // Algorithms: only HMAC, never none, never an asymmetric one against the secret.
    reject("alg none, no signature", `${b64url('{"alg":"none"}')}.${payload}.`),
    reject("alg none, an HMAC signature", await signedText('{"alg":"none"}', "{}")),
    reject("alg None", await signedText('{"alg":"None"}', "{}")),
    reject("alg hs256 (case)", await signedText('{"alg":"hs256"}', "{}")),
    reject("RS256 header, HMAC signature with the secret", await signedText('{"alg":"RS256"}', "{}")),
    reject("ES256 header, HMAC signature with the secret", await signedText('{"alg":"ES256"}', "{}")),
    reject("PS256 header", await signedText('{"alg":"PS256"}', "{}")),
    reject("EdDSA header", await signedText('{"alg":"EdDSA"}', "{}")),
    reject("alg missing", await signedText('{"typ":"JWT"}', "{}")),
    reject("alg empty", await signedText('{"alg":""}', "{}")),
    reject("alg a number", await signedText('{"alg":256}', "{}")),
    reject("alg a list", await signedText('{"alg":["HS256"]}', "{}")),

    // Extensions: jose refuses these too.
    reject("crit naming an unknown extension", await signed({ alg: "HS256", crit: ["exp"], exp: 1 }, claims())),
    reject("crit empty", await signed({ alg: "HS256", crit: [] }, claims())),
    reject("crit not a list", await signed({ alg: "HS256", crit: "b64", b64: true }, claims())),
    reject("crit with an empty name", await signed({ alg: "HS256", crit: [""] }, claims())),
    reject("b64:false with crit (unencoded payload)", await signed({ alg: "HS256", crit: ["b64"], b64: false }, {})),
    reject(
      "b64:false with crit, the payload unencoded",
      `${b64url('{"alg":"HS256","crit":["b64"],"b64":false}')}.{}.${await hmac(`${b64url('{"alg":"HS256","crit":["b64"],"b64":false}')}.{}`)}`,
    ),
    reject("crit b64 without b64", await signed({ alg: "HS256", crit: ["b64"] }, claims())),

    // Framing.
    reject("empty token", ""),
    reject("one segment", header),
    reject("two segments", `${header}.${payload}`),
    reject("four segments", `${valid}.${validSignature}`),
    reject("a trailing dot", `${valid}.`),
    reject("a leading dot", `.${valid}`),
    reject("only dots", ".."),
    reject("empty header", await signedSegments("", payload)),
    reject("empty payload", await signedSegments(HS256, "")),
    reject("header with a character outside base64url", await signedSegments(`${HS256.slice(0, -1)}!`, payload)),
    reject("header in standard base64 (+)", await signedSegments(`${HS256.slice(0, 4)}+${HS256.slice(5)}`, payload)),
    reject("header of impossible length (4n+1)", await signedSegments(`${HS256}A`, payload)),
    reject("payload with a character outside base64url", await signedSegments(HS256, `${payload}*`)),
    reject("payload not ASCII", await signedSegments(HS256, `${payload}é`)),
    reject("payload of impossible length (4n+1)", await signedSegments(HS256, `${PAYLOAD.slice(0, -1)}AA`)),
    reject("header not JSON", await signedText("alg=HS256", "{}")),
    reject("header a list", await signedText('["HS256"]', "{}")),
    reject("header a string", await signedText('"HS256"', "{}")),
    reject("header null", await signedText("null", "{}")),
    reject("header not UTF-8", await signedSegments(b64url(new Uint8Array([0x7b, 0xff, 0x7d])), payload)),
    reject("payload not JSON", await signedText('{"alg":"HS256"}', "pinghub")),
    reject("payload a list", await signedText('{"alg":"HS256"}', '[{"pinghub":{}}]')),
    reject("payload a number", await signedText('{"alg":"HS256"}', "42")),
    reject("payload a string", await signedText('{"alg":"HS256"}', '"{}"')),
    reject("payload null", await signedText('{"alg":"HS256"}', "null")),
    reject("payload true", await signedText('{"alg":"HS256"}', "true")),
    reject("payload not UTF-8", await signedSegments(HS256, b64url(new Uint8Array([0x7b, 0xc3, 0x7d])))),
    reject("payload truncated JSON", await signedText('{"alg":"HS256"}', '{"exp":')),
    reject("a Bearer prefix left in", `Bearer ${valid}`),
    reject("a space inside", `${header}.${payload.slice(0, 8)} ${payload.slice(8)}.${validSignature}`),

    // Times (the edges of the leeway are in their own test, below).
    reject("expired an hour ago", await sign("HS256", { exp: now - 3600 })),
    reject("nbf an hour ahead", await sign("HS256", { nbf: now + 3600 })),
    accept("nbf an hour ago", await sign("HS256", { nbf: now - 3600 })),
    accept("iat in the future (no max age)", await sign("HS256", { iat: now + 3600 })),
    reject("exp a string", await sign("HS256", { exp: String(now + 600) })),
    reject("exp null", await sign("HS256", { exp: null })),
    reject("nbf a string", await sign("HS256", { nbf: "0" })),
    reject("iat a string", await sign("HS256", { iat: "now" })),
    reject("expired and a bad signature: the signature is reported", flipSignature(await sign("HS256", { exp: 1 }), 3)),
    reject("expired and the wrong issuer", await sign("HS256", { exp: 1, iss: "https://evil" })),

    // Audience and issuer: checked only when configured.
    claimCheck("aud missing", await signed({ alg: "HS256" }, { ...claims(), aud: undefined })),
    claimCheck("aud wrong", await sign("HS256", { aud: "other" })),
    claimCheck("aud differs in case", await sign("HS256", { aud: "Pinghub" })),
    accept("aud a list holding it", await sign("HS256", { aud: ["other", AUDIENCE] })),
    claimCheck("aud a list without it", await sign("HS256", { aud: ["other", "more"] })),
    claimCheck("aud an empty list", await sign("HS256", { aud: [] })),
    claimCheck("aud a number", await sign("HS256", { aud: 7 })),
    claimCheck("aud null", await sign("HS256", { aud: null })),
    claimCheck("iss missing", await signed({ alg: "HS256" }, { ...claims(), iss: undefined })),
    claimCheck("iss wrong", await sign("HS256", { iss: "https://evil.example" })),
    claimCheck("iss with a trailing slash", await sign("HS256", { iss: `${ISSUER}/` })),
    claimCheck("iss a list holding it", await sign("HS256", { iss: [ISSUER] })),
    claimCheck("iss missing and aud wrong", await signed({ alg: "HS256" }, { ...claims(), iss: undefined, aud: "x" })),
    claimCheck("iss wrong and aud missing", await signed({ alg: "HS256" }, { ...claims(), iss: "x", aud: undefined })),
  ];
}

const entries = await corpus();

describe.each(SETTINGS)("every token of the corpus, %#", (settings) => {
  test(`${settings.name}: the same verdict as jose, with the same claims or the same refusal`, async () => {
    expect(entries.length).toBeGreaterThan(100);
    const differences: unknown[] = [];
    for (const entry of entries) {
      const jose = await joseVerdict(entry.token, settings);
      const fast = fastVerdict(entry.token, settings);
      const expected = settings.audience !== undefined ? (entry.expectedChecked ?? entry.expected) : entry.expected;
      // The corpus says what jose does, so that it cannot drift into rejecting everything alike.
      if ("accepted" in jose !== (expected === "accept")) differences.push({ name: entry.name, expected, jose });
      if (!Bun.deepEquals(fast, jose, true)) differences.push({ name: entry.name, fast, jose });
    }
    expect(differences).toEqual([]);
  });
});

describe("the edges of the leeway, at the same second for both", () => {
  /**
   * Checks a token made for `now` with both, and tells whether the clock was still in that second after both had
   * answered: the edges move with the clock, so a comparison across a second's turn is made again.
   */
  async function atOneSecond(make: (now: number) => Promise<string>, expected: "accept" | "reject") {
    for (let attempt = 0; attempt < 5; attempt++) {
      const now = Math.floor(Date.now() / 1000);
      const token = await make(now);
      const jose = await joseVerdict(token, SETTINGS[0]);
      const fast = fastVerdict(token, SETTINGS[0]);
      if (Math.floor(Date.now() / 1000) !== now) continue;
      expect("accepted" in jose).toBe(expected === "accept");
      expect(fast).toEqual(jose);
      return;
    }
    throw new Error("the clock turned a second during each of five attempts");
  }

  test("exp: refused at now - leeway, accepted a second later", async () => {
    await atOneSecond((now) => sign("HS256", { exp: now - JWT_LEEWAY_SECONDS }), "reject");
    await atOneSecond((now) => sign("HS256", { exp: now - JWT_LEEWAY_SECONDS + 1 }), "accept");
    await atOneSecond((now) => sign("HS256", { exp: now - JWT_LEEWAY_SECONDS - 1 }), "reject");
    await atOneSecond((now) => sign("HS256", { exp: now }), "accept");
    await atOneSecond((now) => sign("HS256", { exp: now - JWT_LEEWAY_SECONDS + 0.5 }), "accept");
  });

  test("nbf: accepted at now + leeway, refused a second later", async () => {
    await atOneSecond((now) => sign("HS256", { nbf: now + JWT_LEEWAY_SECONDS }), "accept");
    await atOneSecond((now) => sign("HS256", { nbf: now + JWT_LEEWAY_SECONDS + 1 }), "reject");
    await atOneSecond((now) => sign("HS256", { nbf: now + JWT_LEEWAY_SECONDS + 0.5 }), "reject");
    await atOneSecond((now) => sign("HS256", { nbf: now }), "accept");
  });
});

describe("stricter than jose, on purpose: jose accepts these, the fast path refuses them", () => {
  async function strictCases(): Promise<Array<[string, string, string]>> {
    const valid = await sign("HS256");
    const [header = "", payload = "", signature = ""] = valid.split(".");
    // A payload segment whose length leaves stray bits in its last character, then those bits set.
    const shortPayload = b64url(JSON.stringify({ a: 1 }));
    expect(shortPayload.length % 4).not.toBe(0);
    const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const strayBits = (segment: string) => segment.slice(0, -1) + alphabet[alphabet.indexOf(segment.at(-1) ?? "A") | 1];
    expect(signature.length % 4).not.toBe(0);
    const padded = (segment: string) => segment + "=".repeat((4 - (segment.length % 4)) % 4);
    return [
      ["signature padded with =", `${header}.${payload}.${padded(signature)}`, "malformed token"],
      [
        "signature with a space in it",
        `${header}.${payload}.${signature.slice(0, 5)} ${signature.slice(5)}`,
        "malformed token",
      ],
      [
        "signature with stray bits set",
        `${header}.${payload}.${strayBits(signature)}`,
        "token signature does not verify",
      ],
      ["payload padded with =, signed so", await signedSegments(HS256, padded(shortPayload)), "malformed token"],
      [
        "payload with stray bits set, signed so",
        await signedSegments(HS256, strayBits(shortPayload)),
        "malformed token",
      ],
      [
        "header with a newline in it, signed so",
        await signedSegments(`${HS256.slice(0, 6)}\n${HS256.slice(6)}`, payload),
        "malformed token",
      ],
      ["crit b64 with b64 true", await signed({ alg: "HS256", crit: ["b64"], b64: true }, claims()), "malformed token"],
      ["b64 false without crit", await signed({ alg: "HS256", b64: false }, claims()), "malformed token"],
      ["b64 a string without crit", await signed({ alg: "HS256", b64: "no" }, claims()), "malformed token"],
    ];
  }

  test("each is accepted by jose, with the same claims as the token it is made from, and refused here", async () => {
    for (const [name, token, why] of await strictCases()) {
      const jose = await joseVerdict(token, SETTINGS[0]);
      expect({ name, joseAccepted: "accepted" in jose }).toEqual({ name, joseAccepted: true });
      expect({ name, verdict: fastVerdict(token, SETTINGS[0]) }).toEqual({
        name,
        verdict: { refused: { why, reason: "unauthorized" } },
      });
    }
  });
});
