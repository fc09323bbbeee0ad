// Access by JSON Web Token (--jwt-key): a client brings a token, signed by the application, whose `pinghub` claim
// lists the channels it may subscribe to and publish on. Stateless, so every node of a cluster decides alike.
//
// The key file is an HMAC secret or a PEM public key, and which one it is fixes the algorithms accepted: an HMAC
// token is never checked against a public key (the algorithm confusion that lets anyone who has the public key
// forge tokens), and a file that looks like PEM but does not parse is an error, never taken as a secret. The
// checking itself is jose's; nothing here is cryptography.

import { createPublicKey, type KeyObject } from "node:crypto";
import { readFileSync } from "node:fs";
import { errors, importSPKI, type JWTPayload, type JWTVerifyGetKey, jwtVerify } from "jose";
import type { Access, Action, Decision, Refused } from "./access.ts";
import { bearerToken, forbidden, invalidToken, noToken } from "./access-answers.ts";
import { ConfigError } from "./config-error.ts";

/** Clock skew forgiven between the application that signs and pinghub, for `exp` and `nbf` when checking. */
export const JWT_LEEWAY_SECONDS = 5;
/** Shortest HMAC secret: RFC 7518 asks for at least the hash's size, 32 bytes for HS256. */
export const MIN_HMAC_SECRET_BYTES = 32;
/**
 * Tokens verified and remembered, so that a publisher POSTing with one token, or clients reconnecting, cost a
 * map lookup rather than a signature check. Past this many the oldest are forgotten.
 */
export const MAX_REMEMBERED_TOKENS = 10_000;
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
  subscribe: ChannelPatterns;
  publish: ChannelPatterns;
  /** Seconds since the epoch, as in the token. */
  exp: number | undefined;
  nbf: number | undefined;
}

export function jwtAccess(settings: JwtSettings): Access {
  const remembered = new Map<string, Grant>();
  const getKey = cryptoKeys(settings.key);
  const options = {
    algorithms: settings.key.algorithms,
    audience: settings.audience,
    issuer: settings.issuer,
    clockTolerance: JWT_LEEWAY_SECONDS,
  };

  async function verify(token: string): Promise<Grant | Refused> {
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, getKey, options));
    } catch (error) {
      return refusal(error);
    }
    const grant: Grant = {
      subscribe: patternsOf(payload, "subscribe"),
      publish: patternsOf(payload, "publish"),
      exp: payload.exp,
      nbf: payload.nbf,
    };
    if (remembered.size >= MAX_REMEMBERED_TOKENS) {
      const oldest = remembered.keys().next().value;
      if (oldest !== undefined) remembered.delete(oldest);
    }
    remembered.set(token, grant);
    return grant;
  }

  return {
    check(req, channel, action) {
      const token = bearerToken(req);
      if (token === undefined) return noToken(action);
      const grant = remembered.get(token);
      if (grant !== undefined) return decide(grant, channel, action);
      return verify(token).then((verified) => ("allowed" in verified ? verified : decide(verified, channel, action)));
    },
  };
}

/**
 * The key as WebCrypto keys, one per algorithm, each imported once, when a token first names its algorithm:
 * given the bytes or a KeyObject, jose imports a CryptoKey for every token it checks (about a tenth of the
 * check's cost here). jose checks the token's algorithm against the allowed ones before asking for its key.
 */
function cryptoKeys(key: JwtKey): JWTVerifyGetKey {
  const imported = new Map<string, Promise<CryptoKey>>();
  // loadJwtKey's secret is a copy of its own, on an ArrayBuffer, as WebCrypto's types ask.
  const raw = key.key as Uint8Array<ArrayBuffer> | KeyObject;
  const spki = raw instanceof Uint8Array ? "" : (raw.export({ type: "spki", format: "pem" }) as string);
  return (header) => {
    const alg = header.alg ?? "";
    let cryptoKey = imported.get(alg);
    if (cryptoKey === undefined) {
      cryptoKey =
        raw instanceof Uint8Array
          ? crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: `SHA-${alg.slice(2)}` }, false, ["verify"])
          : importSPKI(spki, alg);
      imported.set(alg, cryptoKey);
    }
    return cryptoKey;
  };
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
  if (!rights.matches(channel)) {
    return forbidden(`the token does not grant ${action} on this channel`, {
      "WWW-Authenticate": 'Bearer error="insufficient_scope"',
    });
  }
  return {
    allowed: true,
    publish: action === "publish" || grant.publish.matches(channel),
    expiresAtMs: grant.exp === undefined ? undefined : grant.exp * 1000,
  };
}

/** jose's reason, in pinghub's words: never the token, nor anything taken from it. */
function refusal(error: unknown): Refused {
  if (error instanceof errors.JWTExpired) return invalidToken("token expired", "token_expired");
  if (error instanceof errors.JWTClaimValidationFailed) {
    const claim = {
      nbf: "token not valid yet (nbf)",
      aud: "token audience not accepted",
      iss: "token issuer not accepted",
    };
    return invalidToken(claim[error.claim as keyof typeof claim] ?? `token claim ${error.claim} not valid`);
  }
  if (error instanceof errors.JWSSignatureVerificationFailed) return invalidToken("token signature does not verify");
  if (error instanceof errors.JOSEAlgNotAllowed || error instanceof errors.JOSENotSupported) {
    return invalidToken("token algorithm not accepted for this key");
  }
  return invalidToken("malformed token");
}

/**
 * A token's patterns for one action. A pattern matches a channel when it is the channel's name, or ends with `*`
 * and the name starts with what comes before it (`*` alone: every channel). Anything but an array of strings
 * grants nothing.
 */
export class ChannelPatterns {
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

function patternsOf(payload: JWTPayload, action: Action): ChannelPatterns {
  const claim = payload[RIGHTS_CLAIM];
  const list = typeof claim === "object" && claim !== null ? (claim as Record<string, unknown>)[action] : undefined;
  return new ChannelPatterns(Array.isArray(list) ? list.filter((p): p is string => typeof p === "string") : []);
}
