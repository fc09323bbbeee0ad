// Who may subscribe and who may publish: the one question every door asks first (a websocket upgrade, an SSE
// GET, a POST), before the hub hears of the request. Chosen once at start-up, like the broker: none (everyone
// may, as the original), JWT (--jwt-key, jwt-access.ts) or forward auth (--auth-url, forward-auth.ts). It knows
// HTTP requests and tokens, never the hub; the hub never knows who asked.
//
// Nothing here runs per message: a websocket's right to publish is decided at its upgrade and kept on the
// socket, and its token's expiry is one entry in a shared wheel (expiry.ts).

import type { Config } from "./config.ts";
import { type ForwardAuthHooks, forwardAuth } from "./forward-auth.ts";
import { jwtAccess } from "./jwt-access.ts";
import type { Refuse } from "./refusal.ts";

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
  /**
   * May this request do `action` on `channel` (the decoded name)? Answered at once when it can be (a token seen
   * before, a cached answer), so that the common case costs no promise.
   */
  check(req: Request, channel: string, action: Action): Decision | Promise<Decision>;
}

/** What every door is given: how it reports a refusal, the debug log, and who may. */
export interface DoorContext {
  refused: Refuse;
  /** At --log-level debug: one line per subscriber opened and closed. */
  debug: ((line: string) => void) | undefined;
  /** Who may subscribe and publish; undefined: everyone. */
  access: Access | undefined;
}

/** Allowed everything, for ever: a subscriber's rights where no flag asks for authorization. */
export const EVERYONE: Allowed = { allowed: true, publish: true, expiresAtMs: undefined };

/**
 * The Access the config asks for: JWT, forward auth, or undefined when everyone may do everything. `peer` gives
 * the address of a request's connection itself (forward auth sends it on in X-Forwarded-For).
 */
export function createAccess(
  config: Config,
  peer: (req: Request) => string,
  hooks: ForwardAuthHooks = {},
): Access | undefined {
  if (config.jwtKey !== undefined) {
    return jwtAccess({ key: config.jwtKey, audience: config.jwtAudience, issuer: config.jwtIssuer });
  }
  if (config.authUrl !== undefined) {
    return forwardAuth({ url: config.authUrl, timeout: config.authTimeout, peer }, hooks);
  }
  return undefined;
}
