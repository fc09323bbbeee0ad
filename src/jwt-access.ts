// Access by JSON Web Token (--jwt-key): a client brings a token, signed by the application, whose `pinghub` claim
// lists the channels it may subscribe to and publish on. Stateless, so every node of a cluster decides alike.
//
// The key file is an HMAC secret or a PEM public key, and which one it is fixes the algorithms accepted: an HMAC
// token is never checked against a public key (the algorithm confusion that lets anyone who has the public key
// forge tokens), and a file that looks like PEM but does not parse is an error, never taken as a secret. The
// checking itself is jose's for a public key, and for an HMAC secret Bun's native HMAC with jose's rules around it
// (jwt-hmac.ts, which says why); nothing here is cryptography.

import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { errors, importSPKI, type JWTPayload, type JWTVerifyGetKey, type JWTVerifyOptions, jwtVerify } from "jose";
import type { Access, AccessRefusalReason, Action, Decision, Refused } from "./access.ts";
import { bearerToken, forbidden, invalidToken, noToken } from "./access-answers.ts";
import { ConfigError } from "./config-error.ts";
import { hmacJwtVerifier } from "./jwt-hmac.ts";
import { RecentTokens, SeenTokens } from "./recent-tokens.ts";

/** Clock skew forgiven between the application that signs and pinghub, for `exp` and `nbf` when checking. */
export const JWT_LEEWAY_SECONDS = 5;
/** Shortest HMAC secret: RFC 7518 asks for at least the hash's size, 32 bytes for HS256. */
export const MIN_HMAC_SECRET_BYTES = 32;
/**
 * Tokens verified and remembered, so that a publisher POSTing with one token, or clients reconnecting, cost a
 * map lookup rather than a signature check. Past this many the older half is forgotten (recent-tokens.ts).
 */
export const MAX_REMEMBERED_TOKENS = 10_000;
/**
 * Longest refused token remembered (another 10,000 at most, apart from the verified ones so that junk cannot push
 * those out): 10,000 of these hold at most 20 million characters. A longer one is checked again each time it
 * comes, which for an HMAC key costs a few microseconds.
 */
export const MAX_REMEMBERED_REFUSED_TOKEN_CHARS = 2048;
/** The claim that carries the rights. */
export const RIGHTS_CLAIM = "pinghub";

/** A verification key, and the algorithms it may verify: fixed by the key itself, never by a token. */
export interface JwtKey {
  key: Uint8Array | KeyObject;
  algorithms: string[];
  /** "an HMAC secret" or "an ES256 public key", for the start-up line. */
  description: string;
}

export interface JwtSettings {
  key: JwtKey;
  audience: string | undefined;
  issuer: string | undefined;
}

/**
 * Reads --jwt-key's file; a ConfigError (exit 2) for a file that cannot be read or used, naming the value as it
 * was given (`--jwt-key` or `PINGHUB_JWT_KEY_FILE`).
 */
export function loadJwtKey(path: string, name = "--jwt-key"): JwtKey {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new ConfigError(`bad ${name} "${path}": cannot read it: ${(error as NodeJS.ErrnoException).code}`);
  }
  const text = new TextDecoder().decode(bytes);
  if (text.includes("-----BEGIN")) return publicKey(path, name, text);
  // A secret's trailing line feed is the editor's, not the secret's.
  let end = bytes.length;
  if (bytes[end - 1] === 0x0a) end--;
  if (bytes[end - 1] === 0x0d) end--;
  const secret = bytes.slice(0, end);
  if (secret.length < MIN_HMAC_SECRET_BYTES) {
    throw new ConfigError(
      `bad ${name} "${path}": an HMAC secret must be at least ${MIN_HMAC_SECRET_BYTES} bytes, this one has ${secret.length}`,
    );
  }
  return { key: secret, algorithms: ["HS256", "HS384", "HS512"], description: "an HMAC secret" };
}

function publicKey(path: string, name: string, pem: string): JwtKey {
  let key: KeyObject;
  try {
    // A private key is taken for the public key it holds: what matters is that it is PEM, and parses.
    key = createPublicKey(pem);
  } catch {
    throw new ConfigError(`bad ${name} "${path}": it looks like PEM but is not a public key that parses`);
  }
  const type = key.asymmetricKeyType;
  const curve = key.asymmetricKeyDetails?.namedCurve;
  const algorithms =
    type === "rsa"
      ? ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512"]
      : type === "rsa-pss"
        ? ["PS256", "PS384", "PS512"]
        : type === "ed25519"
          ? ["EdDSA", "Ed25519"]
          : type === "ec"
            ? ({ prime256v1: ["ES256"], secp384r1: ["ES384"], secp521r1: ["ES512"] }[curve ?? ""] ?? [])
            : [];
  if (algorithms.length === 0) {
    throw new ConfigError(
      `bad ${name} "${path}": a ${type}${curve === undefined ? "" : ` ${curve}`} key signs no JWT algorithm; ` +
        "use RSA, EC P-256/P-384/P-521 or Ed25519",
    );
  }
  return { key, algorithms, description: `a ${type === "ec" ? algorithms[0] : type} public key` };
}

/** The rights a token grants, with its times, once verified. */
interface Grant {
  subscribe: Patterns;
  publish: Patterns;
  /** Seconds since the epoch, as in the token. */
  exp: number | undefined;
  nbf: number | undefined;
}

/** Why a token was refused, in pinghub's words: all that is kept of a refused token, to answer it again. */
interface TokenRefusal {
  why: string;
  reason: AccessRefusalReason;
}

export function jwtAccess(settings: JwtSettings): Access {
  const remembered = new RecentTokens<Grant>(MAX_REMEMBERED_TOKENS);
  const refusedTokens = new RecentTokens<TokenRefusal>(MAX_REMEMBERED_TOKENS);
  const { key, algorithms } = settings.key;
  const { audience, issuer } = settings;
  // An HMAC token is checked again in a few µs, while every token remembered is memory that the garbage collector
  // walks: remembering 10,000 tokens used once each cost their connects 2 to 4 µs of server CPU each (Bun 1.4.5).
  // So an HMAC token is remembered at its second visit (a client reconnecting, a publisher's next POST), and one
  // used once (as pinghub.js clients that fetch a fresh token for each connect use theirs) is never kept. A token
  // checked against a public key costs far more to check again, and is remembered at its first.
  const seen = key instanceof Uint8Array ? new SeenTokens(MAX_REMEMBERED_TOKENS) : undefined;
  // An HMAC secret: checked synchronously (jwt-hmac.ts says why); a public key: by jose, through WebCrypto.
  const verify: (token: string) => JWTPayload | Promise<JWTPayload> =
    key instanceof Uint8Array
      ? hmacJwtVerifier({ secret: key, algorithms, audience, issuer, clockToleranceSeconds: JWT_LEEWAY_SECONDS })
      : joseVerifier(key, { algorithms, audience, issuer, clockTolerance: JWT_LEEWAY_SECONDS });

  /** A verified token's rights, remembered for its next visit when `remember`. */
  function granted(token: string, payload: JWTPayload, remember: boolean): Grant {
    const grant: Grant = {
      subscribe: patternsOf(payload, "subscribe"),
      publish: patternsOf(payload, "publish"),
      exp: payload.exp,
      nbf: payload.nbf,
    };
    if (remember) remembered.set(token, grant);
    return grant;
  }

  /**
   * An HMAC token at its first visit (as far as `seen` knows): in neither map, since a granted one is remembered
   * from its second visit and a refused one is noted in `seen` as it comes. So it is checked at once, without
   * looking it up in the two maps first: with 10,000 tokens held, those lookups (the whole token hashed, about 200
   * characters, and four Maps probed) cost a fresh bench token 0.32 µs (Bun 1.4.5, warm), paid for nothing by
   * every client that brings a fresh token to each connect. If `seen` forgot a token still in a map (it
   * holds as many as each map but forgets them sooner, since every token goes through it), that token is checked
   * again: the same answer, a few µs later.
   */
  function firstVisit(token: string, channel: string, action: Action): Decision | Promise<Decision> {
    return verifyNow(token, channel, action, false);
  }

  /** Verifies a token now; a granted one is remembered for its next visit if `remember`. */
  function verifyNow(token: string, channel: string, action: Action, remember: boolean): Decision | Promise<Decision> {
    let payload: JWTPayload | Promise<JWTPayload>;
    try {
      payload = verify(token);
    } catch (error) {
      return refused(token, error);
    }
    if (!(payload instanceof Promise)) return decide(granted(token, payload, remember), channel, action);
    return verifiedLater(token, payload, channel, action, remember);
  }

  function refused(token: string, error: unknown): Refused {
    const refusal = tokenRefusal(error);
    // Remembered unless it may change (nbf not reached yet), and unless the token is long enough for a client to
    // fill memory with junk: a refused token costs its sender nothing to make.
    if (!notYetValid(error) && token.length <= MAX_REMEMBERED_REFUSED_TOKEN_CHARS) {
      refusedTokens.set(token, refusal);
    }
    return invalidToken(refusal.why, refusal.reason);
  }

  /**
   * A token not remembered as granted: refused before, or checked now. Apart from `check`, as are the promise's
   * handlers, so that each function stays small: JavaScriptCore compiles a function with its optimizing tier
   * after a number of calls that grows with its size, and `check` whole was still compiled, 25 ms of the
   * server's CPU, after 10,000 connects with tokens of their own (jwt-hmac.ts says more).
   */
  function unremembered(token: string, channel: string, action: Action): Decision | Promise<Decision> {
    // A client that keeps coming back with a bad token costs a lookup, and is still answered 401 every time.
    const known = refusedTokens.get(token);
    if (known !== undefined) return invalidToken(known.why, known.reason);
    return verifyNow(token, channel, action, true);
  }

  function verifiedLater(
    token: string,
    payload: Promise<JWTPayload>,
    channel: string,
    action: Action,
    remember: boolean,
  ): Promise<Decision> {
    return payload.then(
      (verified) => decide(granted(token, verified, remember), channel, action),
      (error: unknown) => refused(token, error),
    );
  }

  /**
   * A token brought: new (for an HMAC key, as far as `seen` knows), remembered, or neither. Apart from `check`,
   * which is inlined into the websocket upgrade's functions and those into the server's fetch: with this in it,
   * `check` (178 -> 275 bytecodes) changed what JavaScriptCore inlined where, and the server's fetch, compiled with
   * FTL inside the bench's window anyway, took 17 ms to compile rather than 4 (BUN_JSC_reportCompileTimes=1).
   */
  function brought(token: string, channel: string, action: Action): Decision | Promise<Decision> {
    if (seen !== undefined && !seen.seenBefore(token)) return firstVisit(token, channel, action);
    const grant = remembered.get(token);
    if (grant !== undefined) return decide(grant, channel, action);
    return unremembered(token, channel, action);
  }

  return {
    check(req, channel, action) {
      const token = bearerToken(req);
      if (token === undefined) return noToken(action);
      return brought(token, channel, action);
    },
  };
}

/**
 * jose's check against a public key, its WebCrypto key imported once per algorithm, when a token first names it:
 * given a KeyObject, jose imports a CryptoKey for every token it checks (about a tenth of the check's cost here).
 * jose checks the token's algorithm against the allowed ones before asking for its key.
 */
function joseVerifier(key: KeyObject, options: JWTVerifyOptions): (token: string) => Promise<JWTPayload> {
  const imported = new Map<string, Promise<CryptoKey>>();
  const spki = key.export({ type: "spki", format: "pem" }) as string;
  const getKey: JWTVerifyGetKey = (header) => {
    const alg = header.alg ?? "";
    let cryptoKey = imported.get(alg);
    if (cryptoKey === undefined) {
      cryptoKey = importSPKI(spki, alg);
      imported.set(alg, cryptoKey);
    }
    return cryptoKey;
  };
  return async (token) => (await jwtVerify(token, getKey, options)).payload;
}

/**
 * The rights of a verified token on one channel. The times are checked again here because a remembered token
 * was verified earlier; signature, audience and issuer do not change with time.
 */
function decide(grant: Grant, channel: string, action: Action): Decision {
  const now = Date.now() / 1000;
  if (grant.exp !== undefined) {
    // A subscriber is let in only before `exp`: past it, what it opened would be closed at once.
    const limit = action === "subscribe" ? now : now - JWT_LEEWAY_SECONDS;
    if (grant.exp <= limit) return invalidToken("token expired", "token_expired");
  }
  if (grant.nbf !== undefined && grant.nbf > now + JWT_LEEWAY_SECONDS) {
    return invalidToken("token not valid yet (nbf)");
  }
  const rights = action === "subscribe" ? grant.subscribe : grant.publish;
  if (!matches(rights, channel)) {
    return forbidden(`the token does not grant ${action} on this channel`, {
      "WWW-Authenticate": 'Bearer error="insufficient_scope"',
    });
  }
  return {
    allowed: true,
    publish: action === "publish" || matches(grant.publish, channel),
    expiresAtMs: grant.exp === undefined ? undefined : grant.exp * 1000,
  };
}

/**
 * jose's reason, in pinghub's words: never the token, nor anything taken from it. jwt-hmac.ts throws jose's own
 * error classes, so that both ways of checking answer alike.
 */
export function tokenRefusal(error: unknown): TokenRefusal {
  if (error instanceof errors.JWTExpired) return { why: "token expired", reason: "token_expired" };
  const reason = "unauthorized";
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = {
      nbf: "token not valid yet (nbf)",
      aud: "token audience not accepted",
      iss: "token issuer not accepted",
    };
    return { why: claim[error.claim as keyof typeof claim] ?? `token claim ${error.claim} not valid`, reason };
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return { why: "token signature does not verify", reason };
  if (error instanceof errors.JOSEAlgNotAllowed) return { why: "token algorithm not accepted for this key", reason };
  // jose throws this in checking a token only for a `crit` header naming an extension it does not know.
  if (error instanceof errors.JOSENotSupported) return { why: "token header extension not supported (crit)", reason };
  return { why: "malformed token", reason };
}

/** A token refused only for its `nbf`, which a later check may find passed. */
function notYetValid(error: unknown): boolean {
  return error instanceof errors.JWTClaimValidationFailed && error.claim === "nbf" && error.reason === "check_failed";
}

/**
 * A token's patterns for one action, as the token lists them (its strings; anything but an array of strings grants
 * nothing). A pattern matches a channel when it is the channel's name, or ends with `*` and the name starts with
 * what comes before it (`*` alone: every channel).
 *
 * Kept as the token's own list, searched in turn: a token names few, and building an index per token was most
 * of the cost of a connect with a token of its own (a CPU profile of 10,000 of them: a fifth of the server's
 * samples in building two Sets per token). A list longer than MAX_LISTED_PATTERNS is indexed after all.
 */
type Patterns = readonly string[] | IndexedPatterns;

/** Patterns a token's list holds before they are indexed rather than searched in turn. */
const MAX_LISTED_PATTERNS = 16;
const NO_PATTERNS: Patterns = [];

/** `*`, which ends a pattern that matches every name it is a prefix of. */
const STAR = 0x2a;

// Plain indexed loops and character codes here and in patternsOf, not for-of, every() or endsWith(): these run
// once per connect, and the JIT compiles them while a fresh server's first thousands of connects come, on threads
// whose CPU is the server's. With the array builtins inlined, the JIT took 33 ms on `granted` and 21 ms on
// `decide`, of 120 ms compiling during 10,000 connects with tokens of their own; with plain loops 19 and 13 ms
// (Bun 1.4.5, BUN_JSC_reportCompileTimes=1).
function matches(patterns: Patterns, channel: string): boolean {
  if (patterns instanceof IndexedPatterns) return patterns.matches(channel);
  for (let i = 0; i < patterns.length; i++) {
    const pattern = patterns[i] as string;
    if (pattern === channel) return true;
    const last = pattern.length - 1;
    if (pattern.charCodeAt(last) === STAR && channel.startsWith(pattern.slice(0, last))) return true;
  }
  return false;
}

/** A long list of patterns: the exact names in a Set, the prefixes in a list. */
class IndexedPatterns {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const pattern of patterns) {
      if (pattern.endsWith("*")) this.prefixes.push(pattern.slice(0, -1));
      else this.exact.add(pattern);
    }
  }

  matches(channel: string): boolean {
    if (this.exact.has(channel)) return true;
    for (const prefix of this.prefixes) if (channel.startsWith(prefix)) return true;
    return false;
  }
}

function patternsOf(payload: JWTPayload, action: Action): Patterns {
  const claim = payload[RIGHTS_CLAIM];
  const list = typeof claim === "object" && claim !== null ? (claim as Record<string, unknown>)[action] : undefined;
  if (!Array.isArray(list)) return NO_PATTERNS;
  // The token's own array when it holds strings only, as it should: nothing copied.
  for (let i = 0; i < list.length; i++) if (typeof list[i] !== "string") return listed(list.filter(isString));
  return listed(list);
}

/** A token's strings, searched in turn, or indexed when they are many. */
function listed(strings: string[]): Patterns {
  return strings.length > MAX_LISTED_PATTERNS ? new IndexedPatterns(strings) : strings;
}

function isString(value: unknown): value is string {
  return typeof value === "string";
}
