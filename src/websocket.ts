// The websocket side of a channel: Bun's native handler, not Hono's upgradeWebSocket, because Hono builds a
// context object per event and a message bus cannot pay that per message.

import type { WebSocketHandler } from "bun";
import type { Config } from "./config.ts";
import type { ExpiryWheel } from "./expiry.ts";
import type { Hub, PublishRefusal, Subscriber } from "./hub.ts";
import type { RefusalReason } from "./metrics.ts";
import type { Refuse } from "./refusal.ts";
import { CLOSE_TRY_AGAIN_LATER } from "./try-again.ts";

/** Close codes pinghub sends itself; Bun sends 1007 (not UTF-8) and 1009 (too large) on its own. */
export const CLOSE_UNSUPPORTED_DATA = 1003;
/** RFC 6455's "policy violation": a message it may not publish, a token expired. */
export const CLOSE_POLICY_VIOLATION = 1008;

/** --websocket-publish no: websockets subscribe only, POST publishes. */
export const PUBLISHING_OFF: PublishRefusal = {
  reason: "websocket_publish_off",
  text: "publishing by websocket is off",
};
/** The websocket's token or the application did not grant it publish on its channel. */
export const NOT_ALLOWED_TO_PUBLISH: PublishRefusal = { reason: "forbidden", text: "not allowed to publish" };
export const TOKEN_EXPIRED = "token expired";

/** The reasons Bun gives its own closes, which it reports to us as 1006 with this text, and the codes it sent. */
const BUN_CLOSE_REASONS: Record<string, { refusal: RefusalReason; code: number }> = {
  "Received invalid UTF-8": { refusal: "not_utf8", code: 1007 },
  "Received too big message": { refusal: "too_large", code: 1009 },
};

export function websocketHandler(
  hub: Hub,
  config: Config,
  refused: Refuse,
  /** At --log-level debug: one line per websocket opened and closed. */
  debug?: (line: string) => void,
  /** Where websockets whose token expires wait to be closed. */
  expiries?: ExpiryWheel,
): WebSocketHandler<Subscriber> {
  return {
    // Bun closes with 1009 a message larger than this, before any of it reaches us.
    maxPayloadLength: config.maxMessageSize,
    // The hub, not Bun, cuts off a subscriber past --max-backlog: Bun's own cut-off comes when it flushes a burst
    // after publish returned, unseen by the hub, so it would go uncounted and unlogged. Bun reports -1 from
    // publish while any subscriber is backed up, and the hub then checks them (hub.ts). Bun's limit stays out of
    // reach so that it never drops a message silently.
    backpressureLimit: 2 ** 31 - 1,
    closeOnBackpressureLimit: false,
    // Bun pings a connection silent for most of this time (all but 4 to 16 s, in its steps of 4 s) and closes
    // it once the whole time passes with nothing received; any frame, a pong too, restarts the count.
    idleTimeout: config.idleTimeout,
    sendPings: true,
    // Compression would cost CPU per subscriber on every message; notifications are small.
    perMessageDeflate: false,

    open(ws) {
      hub.join(ws);
      const expiresAtMs = ws.data.expiresAtMs;
      if (expiresAtMs !== undefined && expiries !== undefined) {
        // One entry in a shared wheel, not a timer per websocket, and nothing per message.
        ws.data.expiry = expiries.add(expiresAtMs, () => {
          ws.data.expiry = undefined;
          refused("token_expired", ws.data.channel, ws.data.client);
          ws.close(CLOSE_POLICY_VIOLATION, TOKEN_EXPIRED);
        });
      }
      debug?.(`websocket opened: channel ${JSON.stringify(ws.data.channel)} from ${ws.data.client}`);
    },

    message(ws, message) {
      if (typeof message !== "string") {
        refused("binary", ws.data.channel, ws.data.client);
        ws.close(CLOSE_UNSUPPORTED_DATA, "binary messages are not accepted: send text");
        return;
      }
      // An empty message is a keepalive: answered to its sender alone, never published.
      if (message.length === 0) {
        ws.send("");
        return;
      }
      // Decided once, at the upgrade: a property read per message, whatever the way of authorizing.
      const refusal = ws.data.publishRefused;
      if (refusal !== undefined) {
        refused(refusal.reason, ws.data.channel, ws.data.client);
        ws.close(CLOSE_POLICY_VIOLATION, refusal.text);
        return;
      }
      const published = hub.publishWebsocket(ws.data.channel, message);
      // Cluster mode: a message Redis could not take is refused loudly, by closing its sender, never dropped.
      if (typeof published !== "number") {
        published.catch(() => {
          refused("redis_down", ws.data.channel, ws.data.client);
          ws.close(CLOSE_TRY_AGAIN_LATER, closeReason(hub.refusedBecause()));
        });
      }
    },

    close(ws, reported, reason) {
      const bunClose = BUN_CLOSE_REASONS[reason];
      const code = bunClose?.code ?? reported;
      hub.leave(ws, code);
      if (ws.data.expiry !== undefined) expiries?.remove(ws.data.expiry);
      if (bunClose !== undefined) refused(bunClose.refusal, ws.data.channel, ws.data.client);
      debug?.(`websocket closed: channel ${JSON.stringify(ws.data.channel)} from ${ws.data.client}, code ${code}`);
    },
  };
}

/** A close reason must fit in 123 bytes of UTF-8. */
function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return bytes.length <= 123 ? text : new TextDecoder().decode(bytes.slice(0, 120)).replace(/\uFFFD$/, "");
}
