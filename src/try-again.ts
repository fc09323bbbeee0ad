// How pinghub refuses what it cannot carry for now (cluster mode, Redis away): the client is told to try again,
// never left thinking a message went out. A POST or an upgrade gets 503 with Retry-After; a websocket that
// publishes is closed with 1013, "try again later".

import { plainText } from "./plain-text.ts";

/** Seconds a refused client is told to wait: the broker tries to reach Redis again at least this often. */
export const RETRY_AFTER_SECONDS = 1;

/** Close code for a websocket whose message could not be published now (RFC 6455's "try again later"). */
export const CLOSE_TRY_AGAIN_LATER = 1013;

/** 503 with Retry-After and the one-line reason. */
export function tryAgainLater(reason: string): Response {
  return plainText(`unavailable: ${reason}\n`, 503, { "Retry-After": String(RETRY_AFTER_SECONDS) });
}
