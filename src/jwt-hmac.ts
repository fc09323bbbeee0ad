// HMAC tokens (HS256/384/512) checked synchronously, where jose would check them through WebCrypto.
//
// Why not jose here: jose 6 verifies only through WebCrypto, and Bun's `crypto.subtle.verify` is asynchronous,
// handing every check to a worker thread and back. Measured in Bun 1.4.5 (20,000 tokens, CPU per check): jose's
// `jwtVerify` with a key imported once, 63 µs one at a time (11.7 µs with all in flight at once);
// `crypto.subtle.verify` alone 46 µs; node:crypto's `createHmac` 1.5 µs; `Bun.CryptoHasher`'s HMAC 0.5–1 µs.
// Against 17 µs of server CPU for a websocket connect without authorization, the hand-off alone made a connect
// with a token of its own cost 3 × (issue 17 asks at most 1.3 ×). So the signature is Bun's native HMAC, compared
// with node:crypto's `timingSafeEqual`: library crypto, none written here. What is written here is the JWS
// framing around it, and it is strict: anything jose would refuse is refused, with jose's own error classes (so
// that jwt-access.ts answers both paths alike), and a few things jose lets through are refused too:
//   - a segment not in canonical base64url (padding, whitespace, other characters, stray trailing bits): jose
//     decodes with `Uint8Array.fromBase64`'s loose mode, which skips whitespace and padding;
//   - any `crit` header (jose accepts `crit: ["b64"]` with `b64: true`) and any `b64` other than true (jose
//     ignores `b64: false` without `crit`). pinghub needs no JWS extension and takes none.
// The rest is jose's, rule for rule and in jose's order (jose 6.2's lib/jws_verify.js and lib/jwt_claims_set.js),
// so that a token refused for two reasons gets the same reason from both: three segments; a header that is a JSON
// object; `alg` a string among the allowed ones (HS256/384/512: never "none", never an asymmetric algorithm
// against the secret); the signature; then a payload that is a JSON object; `iss` and `aud` present and equal to
// the configured ones when configured; `iat`, `nbf`, `exp` numbers when present; `nbf` and `exp` with the leeway.
// `typ` is not looked at, as jose does not by default (an RFC 9068 `at+jwt` access token is a JWT too).
// test/jwt-hmac.test.ts holds the corpus that compares every verdict with jose's.

import { isUtf8 } from "node:buffer";
import { timingSafeEqual } from "node:crypto";
import { errors, type JWTPayload } from "jose";

export interface HmacJwtOptions {
  /** The --jwt-key secret's bytes. */
  secret: Uint8Array;
  /** The algorithms a token may name: HMAC ones only (anything else is refused as not allowed). */
  algorithms: readonly string[];
  audience: string | undefined;
  issuer: string | undefined;
  /** Leeway for `exp` and `nbf`, as jose's `clockTolerance`. */
  clockToleranceSeconds: number;
}

/** Checks a compact JWS token: its claims, or one of jose's errors thrown, as jose's `jwtVerify` would throw. */
export type HmacJwtVerifier = (token: string) => JWTPayload;

/** An algorithm's keyed hasher, the length of its signature in base64url, and the buffers its checks reuse. */
interface Signer {
  hasher: Bun.CryptoHasher;
  encodedLength: number;
  /** What Bun's digest writes into, and the signature's bytes of it. */
  digest: Buffer;
  digested: Buffer;
  /** The token's signature, decoded. */
  given: Buffer;
}

/** Bun's `digest(buffer)` refuses a buffer shorter than this, whatever the hash. */
const MIN_DIGEST_BUFFER_BYTES = 64;
/** A payload decoded into a buffer kept for the purpose, grown for a longer one. */
const PAYLOAD_SCRATCH_BYTES = 4096;

/** The hash of each HMAC algorithm, by its JWS name. */
const HMAC_HASHES: Readonly<Record<string, Bun.SupportedCryptoAlgorithms>> = {
  HS256: "sha256",
  HS384: "sha384",
  HS512: "sha512",
};

/** RFC 4648 §5's alphabet, and nothing else: no padding, no whitespace. */
const BASE64URL = /^[A-Za-z0-9_-]*$/;
const BASE64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
/**
 * Each ASCII character's value in that alphabet, -1 for the others: strayBits looked it up with `charAt` and
 * `indexOf`, 0.19 µs per token for its two segments (a CPU profile of 100,000 checks, Bun 1.4.5).
 */
const BASE64URL_VALUES = Int8Array.from({ length: 128 }, (_, code) =>
  BASE64URL_ALPHABET.indexOf(String.fromCharCode(code)),
);

/** Headers whose verdict is remembered, and the longest remembered: a header is parsed once, not per token. */
const MAX_REMEMBERED_HEADERS = 64;
const MAX_REMEMBERED_HEADER_CHARS = 512;

/** jose's reason for failed claim checks. */
const CHECK_FAILED = "check_failed";

export function hmacJwtVerifier(options: HmacJwtOptions): HmacJwtVerifier {
  const allowed = new Set(options.algorithms);
  // Per algorithm: a keyed hasher, copied per token (the key is laid out once), and buffers reused by every check
  // (the server checks one token at a time), so that a check allocates no buffer for the signature.
  const signers = new Map<string, Signer>();
  for (const alg of allowed) {
    const hash = HMAC_HASHES[alg];
    if (hash === undefined) continue;
    const hasher = new Bun.CryptoHasher(hash, options.secret);
    const bytes = hasher.copy().digest().byteLength;
    // Bun's digest into a buffer asks for at least 64 bytes whatever the hash.
    const digest = Buffer.alloc(Math.max(bytes, MIN_DIGEST_BUFFER_BYTES));
    signers.set(alg, {
      hasher,
      encodedLength: Math.ceil((bytes * 4) / 3),
      digest,
      digested: digest.subarray(0, bytes),
      given: Buffer.alloc(bytes),
    });
  }
  // What a payload is decoded into, grown for a longer one: the server checks one token at a time.
  let scratch = Buffer.alloc(PAYLOAD_SCRATCH_BYTES);
  // The verdict on each header seen lately: an application's tokens share one header, so it is parsed once.
  const headers = new Map<string, string | Error>();
  // And the last one, compared as a string: a Map lookup hashes the header, a substring made for each token, and
  // took 0.15 µs per token where the comparison takes a few ns (Bun 1.4.5, CPU profile of 100,000 checks).
  let lastHeader: string | undefined;
  let lastVerdict: string | Error = "";

  /** The header's algorithm, checked as jose does; or the error jose would throw for it. */
  function headerAlg(encodedHeader: string): string {
    let verdict = encodedHeader === lastHeader ? lastVerdict : headers.get(encodedHeader);
    if (verdict === undefined) {
      verdict = checkHeader(encodedHeader, allowed);
      if (encodedHeader.length <= MAX_REMEMBERED_HEADER_CHARS) {
        if (headers.size >= MAX_REMEMBERED_HEADERS) headers.clear();
        headers.set(encodedHeader, verdict);
      }
    }
    if (encodedHeader.length <= MAX_REMEMBERED_HEADER_CHARS) {
      lastHeader = encodedHeader;
      lastVerdict = verdict;
    }
    if (verdict instanceof Error) throw verdict;
    return verdict;
  }

  /** The payload's claims, decoded into the scratch buffer, or jose's error for them. */
  function claimsOf(payload: string): JWTPayload {
    // A payload's bytes are never more than its characters.
    if (payload.length > scratch.length) scratch = Buffer.alloc(payload.length);
    const claims = jsonObject(payload, scratch) as JWTPayload | undefined;
    if (claims === undefined) throw new errors.JWTInvalid("JWT Claims Set must be a top-level JSON object");
    return claims;
  }

  // The check is cut into functions of a few hundred bytecodes each: JavaScriptCore compiles a function with its
  // optimizing tier (FTL) after a number of calls that grows with its size, so one large function here was still
  // being compiled, about 20 ms on the server's CPU, after 10,000 connects with tokens of their own (Bun 1.4.5,
  // BUN_JSC_reportCompileTimes=1). Smaller ones are compiled sooner, and each for less. (Two lines more here, 507 -> 609
  // bytecodes, and this function was again compiled inside the bench's window: 24 ms. Hence claimsOf.)
  return (token) => {
    const firstDot = token.indexOf(".");
    const secondDot = firstDot < 0 ? -1 : token.indexOf(".", firstDot + 1);
    if (secondDot < 0 || token.indexOf(".", secondDot + 1) >= 0) throw new errors.JWSInvalid("Invalid Compact JWS");
    const signer = signers.get(headerAlg(token.slice(0, firstDot)));
    // headerAlg answers only an allowed algorithm, and every allowed one has its signer.
    if (signer === undefined)
      throw new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
    // The payload's text is checked after the signature, as jose does: a forged token costs no parsing.
    checkSignature(signer, token, secondDot);
    const claims = claimsOf(token.slice(firstDot + 1, secondDot));
    checkClaims(claims, options, Math.floor(Date.now() / 1000));
    return claims;
  };
}

/** The token's signature against `signer`'s HMAC of what precedes it, or jose's error for it. */
function checkSignature(signer: Signer, token: string, secondDot: number): void {
  const encodedSignature = token.slice(secondDot + 1);
  if (!BASE64URL.test(encodedSignature) || encodedSignature.length % 4 === 1) {
    throw new errors.JWSInvalid("Failed to base64url decode the signature");
  }
  // The length is the algorithm's, no secret. A signature with stray bits decodes to the same bytes as the
  // canonical one: refused all the same, it is not what was signed.
  if (encodedSignature.length !== signer.encodedLength || strayBits(encodedSignature)) {
    throw new errors.JWSSignatureVerificationFailed();
  }
  signer.given.write(encodedSignature, "base64url");
  signer.hasher.copy().update(token.slice(0, secondDot)).digest(signer.digest);
  if (!timingSafeEqual(signer.given, signer.digested)) throw new errors.JWSSignatureVerificationFailed();
}

/** The header's allowed algorithm, or the error jose would throw for it (returned, to be remembered). */
function checkHeader(encodedHeader: string, allowed: ReadonlySet<string>): string | Error {
  const header = jsonObject(encodedHeader);
  if (header === undefined) return new errors.JWSInvalid("JWS Protected Header is invalid");
  if (header.crit !== undefined) return critRefused(header.crit);
  if (header.b64 !== undefined && header.b64 !== true) return new errors.JWSInvalid("unencoded payload (b64)");
  const alg = header.alg;
  if (typeof alg !== "string" || alg === "") return new errors.JWSInvalid('JWS "alg" Header Parameter invalid');
  if (!allowed.has(alg)) return new errors.JOSEAlgNotAllowed('"alg" (Algorithm) Header Parameter value not allowed');
  return alg;
}

/**
 * Every `crit` is refused, with the error jose gives where it refuses one too: a `crit` that is not a list of
 * names is malformed; a name other than b64 is an extension not supported; b64 alone (RFC 7797's unencoded
 * payload, which a JWT may not use) is malformed, as jose finds it once it has checked the signature.
 */
function critRefused(crit: unknown): Error {
  if (!Array.isArray(crit) || crit.length === 0 || crit.some((name) => typeof name !== "string" || name === "")) {
    return new errors.JWSInvalid('"crit" (Critical) Header Parameter invalid');
  }
  if (crit.some((name) => name !== "b64")) return new errors.JOSENotSupported("JWS extension not supported (crit)");
  return new errors.JWSInvalid("unencoded payload (b64) not accepted in a JWT");
}

/**
 * A segment's JSON object, or undefined when it is not canonical base64url, UTF-8, JSON, or an object.
 *
 * Canonical without a regular expression: Bun's base64url decoder (node:buffer's) skips a character outside the
 * alphabet, or stops at `=` or at one outside Latin-1, so any of them leaves fewer bytes than the segment's length
 * gives; only standard base64's `+` and `/`, which it decodes too, are looked for apart (two native searches).
 * The regular expression cost 0.13 µs per payload of the bench's tokens (about 130 characters, Bun 1.4.5, warm),
 * as much as decoding it; test/jwt-hmac-canonical.test.ts holds the characters this relies on being refused.
 */
function jsonObject(segment: string, into?: Buffer): Record<string, unknown> | undefined {
  if (segment.length % 4 === 1 || strayBits(segment)) return undefined;
  const length = Math.floor((segment.length * 3) / 4);
  // Decoded into `into` (the verifier's scratch) when given, which is at least as long: nothing allocated.
  const bytes = into ?? Buffer.alloc(length);
  if (bytes.write(segment, "base64url") !== length || segment.includes("+") || segment.includes("/")) {
    return undefined;
  }
  const text = utf8Text(bytes, length);
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  // JSON.parse makes plain objects and arrays only, so this is jose's isObject for what it returns.
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : undefined;
}

/**
 * The first `length` bytes, UTF-8, as text, or undefined when they are not UTF-8: what a fatal TextDecoder answers,
 * a leading byte order mark dropped as it drops one. node:buffer's native `toString` took 0.1 µs per payload where
 * the TextDecoder took 0.4 (Bun 1.4.5, 10,000 bench tokens), and this runs once per new token. It puts U+FFFD for
 * what is not UTF-8, so `isUtf8` is asked only when one is there (a payload may hold U+FFFD itself): asking it
 * always needed a view of the scratch buffer, `subarray`, which cost 0.15 µs per token (a CPU profile of 100,000).
 */
function utf8Text(bytes: Buffer, length: number): string | undefined {
  const start = length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  const text = bytes.toString("utf8", start, length);
  if (text.includes("\uFFFD") && !isUtf8(bytes.subarray(0, length))) return undefined;
  return text;
}

/**
 * Whether the last character of a base64url text carries bits past the bytes it encodes: such a text decodes to
 * the same bytes as the canonical one, and is not canonical. Two characters of a last group encode one byte (4
 * bits left over), three encode two (2 left).
 */
function strayBits(segment: string): boolean {
  const rest = segment.length % 4;
  if (rest === 0) return false;
  const code = segment.charCodeAt(segment.length - 1);
  // -1 (all bits set) for a character outside the alphabet: refused as well.
  const value = code < BASE64URL_VALUES.length ? (BASE64URL_VALUES[code] as number) : -1;
  return (value & (rest === 2 ? 0b1111 : 0b11)) !== 0;
}

/** jose's claim checks, in jose's order, with the options jwt-access.ts gives jose: iss, aud, iat, nbf, exp. */
function checkClaims(claims: JWTPayload, options: HmacJwtOptions, now: number): void {
  if (options.issuer !== undefined || options.audience !== undefined) checkParties(claims, options);
  numericDate(claims, "iat");
  const nbf = numericDate(claims, "nbf");
  if (nbf !== undefined && nbf > now + options.clockToleranceSeconds) throw notYet(claims);
  const exp = numericDate(claims, "exp");
  if (exp !== undefined && exp <= now - options.clockToleranceSeconds) throw expired(claims);
}

/** `iss` and `aud`, when configured: both present first, then both equal, as jose checks them. */
function checkParties(claims: JWTPayload, { issuer, audience }: HmacJwtOptions): void {
  if (issuer !== undefined && !Object.hasOwn(claims, "iss")) throw missing(claims, "iss");
  if (audience !== undefined && !Object.hasOwn(claims, "aud")) throw missing(claims, "aud");
  if (issuer !== undefined && claims.iss !== issuer) throw unexpected(claims, "iss");
  if (audience !== undefined) {
    const aud = claims.aud;
    if (!(aud === audience || (Array.isArray(aud) && aud.includes(audience)))) throw unexpected(claims, "aud");
  }
}

function notYet(claims: JWTPayload): Error {
  return new errors.JWTClaimValidationFailed('"nbf" claim timestamp check failed', claims, "nbf", CHECK_FAILED);
}

function expired(claims: JWTPayload): Error {
  return new errors.JWTExpired('"exp" claim timestamp check failed', claims, "exp", CHECK_FAILED);
}

function numericDate(claims: JWTPayload, claim: "iat" | "nbf" | "exp"): number | undefined {
  const value = claims[claim];
  if (value === undefined) return undefined;
  if (typeof value !== "number") {
    throw new errors.JWTClaimValidationFailed(`"${claim}" claim must be a number`, claims, claim, "invalid");
  }
  return value;
}

function missing(claims: JWTPayload, claim: string): Error {
  return new errors.JWTClaimValidationFailed(`missing required "${claim}" claim`, claims, claim, "missing");
}

function unexpected(claims: JWTPayload, claim: string): Error {
  return new errors.JWTClaimValidationFailed(`unexpected "${claim}" claim value`, claims, claim, CHECK_FAILED);
}
