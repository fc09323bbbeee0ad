// How a refusal is reported: counted by reason for the metrics always, and at --log-level debug written as one
// line with the channel and the client (and the Origin refused, for bad_origin), so that an operator chasing refusals has more than counters. Never
// the message itself.

import type { Server } from "bun";

/** Why a request or a websocket was refused; a small fixed set, so a metric label may carry it. */
export const REFUSAL_REASONS = [
  "bad_path",
  "bad_query",
  "bad_origin",
  "too_large",
  "not_utf8",
  "binary",
  "bad_upgrade",
  "redis_down",
  // Authorization (access.ts): no token or a bad one, a token or the application saying no, an expired token
  // (refused, or ending what it opened), --auth-url not answering yes or no, a websocket publishing where it may not.
  "unauthorized",
  "forbidden",
  "token_expired",
  "auth_unavailable",
  "websocket_publish_off",
] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/**
 * Reports one refusal: its reason, the channel (undefined when the path was not one), and the client, as the
 * request (its address is worked out only when it is logged) or an address already known.
 */
export type Refuse = (reason: RefusalReason, channel: string | undefined, client: Request | string | undefined) => void;

/**
 * The client's address: the proxy's X-Real-IP or the first X-Forwarded-For entry when set (behind nginx the
 * connection itself comes from nginx), otherwise the connection's own address.
 */
export function clientAddress(req: Request, server: Server<unknown> | undefined): string {
  const real = req.headers.get("x-real-ip");
  if (real !== null && real !== "") return real;
  const forwarded = req.headers.get("x-forwarded-for")?.split(",")[0]?.trim();
  if (forwarded !== undefined && forwarded !== "") return forwarded;
  return server?.requestIP(req)?.address || "unix socket";
}

export function createRefuse(
  count: (reason: RefusalReason) => void,
  debug: ((line: string) => void) | undefined,
  server: () => Server<unknown> | undefined,
): Refuse {
  if (debug === undefined) return (reason) => count(reason);
  return (reason, channel, client) => {
    count(reason);
    const from =
      client === undefined ? "unknown" : typeof client === "string" ? client : clientAddress(client, server());
    // The Origin is the client's own word, so quoted as JSON: it cannot forge a line of the log.
    const origin = reason === "bad_origin" && typeof client === "object" ? client.headers.get("origin") : null;
    const named = origin === null ? "" : `, origin ${JSON.stringify(origin)}`;
    debug(
      `refused ${reason}: channel ${channel === undefined ? "(none)" : JSON.stringify(channel)} from ${from}${named}`,
    );
  };
}
