// The websocket side of a channel: Bun's native handler, not Hono's upgradeWebSocket, because Hono builds a
// context object per event and a message bus cannot pay that per message.

import type { WebSocketHandler } from "bun";
import type { Config } from "./config.ts";
import type { Hub, Subscriber } from "./hub.ts";
import type { RefusalReason } from "./metrics.ts";
import type { Refuse } from "./refusal.ts";
import { CLOSE_TRY_AGAIN_LATER } from "./try-again.ts";

/** Close codes pinghub sends itself; Bun sends 1007 (not UTF-8) and 1009 (too large) on its own. */
export const CLOSE_UNSUPPORTED_DATA = 1003;

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
      const published = hub.publishWebsocket(ws.data.channel, message);
      // Cluster mode: a message Redis could not take is refused loudly, by closing its sender, never dropped.
      if (typeof published !== "number") {
        published.catch((error: unknown) => {
          refused("redis_down", ws.data.channel, ws.data.client);
          ws.close(CLOSE_TRY_AGAIN_LATER, closeReason(hub.refusedBecause(error)));
        });
      }
    },

    close(ws, reported, reason) {
      const bunClose = BUN_CLOSE_REASONS[reason];
      const code = bunClose?.code ?? reported;
      hub.leave(ws, code);
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
