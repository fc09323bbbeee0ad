// Who may subscribe and who may publish: the one question every door asks first (a websocket upgrade, an SSE
// GET, a POST), before the hub hears of the request. Chosen once at start-up, like the broker: none (everyone
// may, as the original), JWT (--jwt-key, jwt-access.ts) or forward auth (--auth-url, forward-auth.ts). It knows
// HTTP requests and tokens, never the hub; the hub never knows who asked.
//
// Nothing here runs per message: a websocket's right to publish is decided at its upgrade and kept on the
// socket, and its token's expiry is one entry in a shared wheel (expiry.ts).

import { plainText } from "./plain-text.ts";
import { RETRY_AFTER_SECONDS } from "./try-again.ts";

/** What a request asks to do on a channel. */
export type Action = "subscribe" | "publish";

/** Why access was refused; a small fixed set, for the refusal metrics and debug lines. */
export const ACCESS_REFUSAL_REASONS = ["unauthorized", "forbidden", "token_expired", "auth_unavailable"] as const;
export type AccessRefusalReason = (typeof ACCESS_REFUSAL_REASONS)[number];

export interface Allowed {
  allowed: true;
  /** Whether a websocket opened by this request may publish on its channel (asked at a subscribe). */
  publish: boolean;
  /** When what this request opens must end (its token's `exp`), in ms since the epoch; undefined: never. */
  expiresAtMs: number | undefined;
}

export interface Refused {
  allowed: false;
  reason: AccessRefusalReason;
  /** The answer to the client: 401, 403 or 503, a one-line body that never echoes a token. */
  response: Response;
}

export type Decision = Allowed | Refused;

export interface Access {
  /** "jwt" or "forward", for the start-up line. */
  readonly kind: string;
  /**
   * May this request do `action` on `channel` (the decoded name)? Answered at once when it can be (a token seen
   * before, a cached answer), so that the common case costs no promise. `peer` gives the address of the
   * connection itself, looked up only by a check that needs it.
   */
  check(req: Request, channel: string, action: Action, peer: () => string): Decision | Promise<Decision>;
}

/** Allowed for everything, for ever: what a door does without an Access. */
export const ALLOW_ALL: Allowed = { allowed: true, publish: true, expiresAtMs: undefined };

/** The query parameter that carries a token where browsers cannot set a header (WebSocket, EventSource). */
export const TOKEN_PARAMETER = "token";

/**
 * The client's bearer token: `Authorization: Bearer TOKEN`, else `?token=TOKEN`. The query is searched only
 * when it holds the parameter's name, so a request without one pays a string search and nothing more.
 */
export function bearerToken(req: Request): string | undefined {
  const header = req.headers.get("authorization");
  if (header !== null) {
    const match = /^Bearer[ \t]+([^\s]+)[ \t]*$/i.exec(header);
    if (match?.[1] !== undefined) return match[1];
  }
  const url = req.url;
  const query = url.indexOf("?");
  if (query < 0 || !url.includes(`${TOKEN_PARAMETER}=`, query)) return undefined;
  const token = new URLSearchParams(url.slice(query + 1)).get(TOKEN_PARAMETER);
  return token === null || token === "" ? undefined : token;
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
