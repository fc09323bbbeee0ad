// How access answers: the token a request brings, and the refusals every Access gives (401, 403, 503), each with
// its one-line body, never echoing a token.

import type { AccessRefusalReason, Action, Refused } from "./access.ts";
import { plainText } from "./plain-text.ts";
import { RETRY_AFTER_SECONDS } from "./try-again.ts";

/** The query parameter that carries a token where browsers cannot set a header (WebSocket, EventSource). */
export const TOKEN_PARAMETER = "token";
const TOKEN_KEY = `${TOKEN_PARAMETER}=`;

/**
 * The client's bearer token: `Authorization: Bearer TOKEN`, else `?token=TOKEN`. The query is read by hand, not
 * by URLSearchParams: this runs before every POST of a publisher, and a request without a token pays a string
 * search and nothing more.
 */
export function bearerToken(req: Request): string | undefined {
  const header = req.headers.get("authorization");
  if (header !== null) {
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
    if (match?.[1] !== undefined) return match[1];
  }
  return queryToken(req.url);
}

/**
 * `?token=` from a request URL. Apart from bearerToken, which runs once per connect: a function this size gets
 * JavaScriptCore's optimizing tier after fewer calls, and for less compiling (jwt-hmac.ts says more).
 */
function queryToken(url: string): string | undefined {
  const query = url.indexOf("?");
  if (query < 0) return undefined;
  let at = url.indexOf(TOKEN_KEY, query);
  // Only the parameter itself, at the query's start or after an `&`, not `xtoken=`.
  while (at >= 0 && url[at - 1] !== "?" && url[at - 1] !== "&") at = url.indexOf(TOKEN_KEY, at + 1);
  if (at < 0) return undefined;
  const start = at + TOKEN_KEY.length;
  const end = url.indexOf("&", start);
  const raw = end < 0 ? url.slice(start) : url.slice(start, end);
  if (raw === "") return undefined;
  // A JWT is base64url and dots: it needs no decoding, but a client may still have percent-encoded it.
  if (!raw.includes("%") && !raw.includes("+")) return raw;
  try {
    return decodeURIComponent(raw.replaceAll("+", " "));
  } catch {
    return raw;
  }
}

/** 401 for a request that brought no token: RFC 6750 says a plain `Bearer` challenge, without an error. */
export function noToken(action: Action): Refused {
  return {
    allowed: false,
    reason: "unauthorized",
    response: plainText(`unauthorized: a bearer token is needed to ${action}\n`, 401, {
      "WWW-Authenticate": "Bearer",
    }),
  };
}

/** 401 for a token given and bad; `why` is pinghub's own words, never the token's. */
export function invalidToken(why: string, reason: AccessRefusalReason = "unauthorized"): Refused {
  return {
    allowed: false,
    reason,
    response: plainText(`unauthorized: ${why}\n`, 401, { "WWW-Authenticate": 'Bearer error="invalid_token"' }),
  };
}

/** 403 for a client known but without the right. */
export function forbidden(why: string, headers: Record<string, string> = {}): Refused {
  return { allowed: false, reason: "forbidden", response: plainText(`forbidden: ${why}\n`, 403, headers) };
}

/** 503 with Retry-After: who asks cannot be told yes or no now, and is never let in for it. */
export function unavailable(why: string): Refused {
  return {
    allowed: false,
    reason: "auth_unavailable",
    response: plainText(`unavailable: ${why}\n`, 503, { "Retry-After": String(RETRY_AFTER_SECONDS) }),
  };
}
