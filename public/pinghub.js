// pinghub.js: a browser client for pinghub channels, as one small ES module with no dependencies.
//
//   import { connect } from "https://example.com/pinghub/.pinghub/pinghub.js";
//   const channel = connect("https://example.com/pinghub/alerts", {
//     onMessage: (text) => console.log("got", text),
//     onState: (state) => {
//       console.log(state.status);
//       if (state.status === "live") channel.send("hello");
//     },
//   });
//
// send() publishes only while the channel is live: it returns false, and sends nothing, until the websocket has
// opened (so not right after connect() returns), while reconnecting, and for an empty text. Nothing is queued.
//
// It keeps the connection up by itself: an empty keepalive message every 30 s (the server echoes it to the
// sender alone; it never reaches onMessage), and after any close a new connection with exponential backoff and
// jitter, until close() is called. The pinghub channel page is built on this module.
//
// Where pinghub asks for a token (--jwt-key), give `token`: a string, or a function returning one (or a promise
// of one), called before every connection and reconnection, so that a token that expired (pinghub closes the
// websocket at its `exp`) is replaced by a fresh one. It goes in the URL's `token` query parameter, the one
// place a browser's WebSocket can carry it.

/** Milliseconds between keepalive messages, as the original pinghub page sent them. */
export const KEEPALIVE_MS = 30_000;

/** Reconnect delays: the first retry waits 0.5 to 1 s, each failure doubles that, up to 15 to 30 s. */
export const MIN_RETRY_MS = 1_000;
export const MAX_RETRY_MS = 30_000;

/** A connection that stayed up this long counts as healthy: the next retry starts from the shortest delay. */
const STABLE_MS = 5_000;

/** Close code the client uses for a connection that stopped answering keepalives (4000-4999 are private). */
export const CLOSE_NO_ANSWER = 4000;

/**
 * @typedef {{ status: "connecting", attempt: number }
 *   | { status: "live" }
 *   | { status: "reconnecting", code: number, reason: string, wasLive: boolean, attempt: number,
 *       delayMs: number, retryAt: number }
 *   | { status: "closed", code: number, reason: string }} PinghubState
 *
 * - connecting: a websocket is being opened (attempt 0 is the first, then one per retry);
 * - live: open, messages flow;
 * - reconnecting: the last websocket closed with `code` and `reason` (`wasLive` false when it never opened);
 *   the next attempt starts at `retryAt` (a Date.now() time), `delayMs` after the close;
 * - closed: close() was called; nothing more happens.
 */

/**
 * @typedef {object} ConnectOptions
 * @property {(text: string) => void} [onMessage] every non-empty text message of the channel, in order
 * @property {(state: PinghubState) => void} [onState] every change of state, the first ("connecting") included
 * @property {number} [keepaliveMs] time between keepalives (default 30 s); 0 turns keepalives off
 * @property {number} [minRetryMs] the shortest reconnect delay before jitter (default 1 s)
 * @property {number} [maxRetryMs] the longest reconnect delay before jitter (default 30 s)
 * @property {string | (() => string | Promise<string>)} [token] a token for pinghub's --jwt-key, or a function
 *   called before each (re)connect for a fresh one; a function that throws counts as a failed attempt
 */

/**
 * @typedef {object} PinghubChannel
 * @property {string} url the websocket URL (ws: or wss:)
 * @property {PinghubState} state the current state
 * @property {(text: string) => boolean} send publishes `text` to the channel; false, and nothing sent, when
 *   the text is empty or the channel is not live
 * @property {() => void} reconnect when reconnecting, tries again now instead of waiting
 * @property {() => void} close closes the connection for good
 */

/**
 * The websocket URL for a channel URL: http: becomes ws:, https: becomes wss:, the fragment goes. A relative
 * URL is taken relative to the current page, so `websocketUrl(location.href)` is the channel of this page.
 * @param {string | URL} url
 * @returns {string}
 */
export function websocketUrl(url) {
  const target = new URL(url, globalThis.location?.href);
  if (target.protocol === "http:") target.protocol = "ws:";
  else if (target.protocol === "https:") target.protocol = "wss:";
  if (target.protocol !== "ws:" && target.protocol !== "wss:") {
    throw new TypeError(`pinghub: not an http(s) or ws(s) URL: ${target.href}`);
  }
  target.hash = "";
  return target.href;
}

/** The query parameter pinghub reads a token from. */
export const TOKEN_PARAMETER = "token";

/**
 * The websocket URL with `token` in its query, replacing any token already there.
 * @param {string} url
 * @param {string} token
 * @returns {string}
 */
export function withToken(url, token) {
  const target = new URL(url);
  target.searchParams.set(TOKEN_PARAMETER, token);
  return target.href;
}

/**
 * Subscribes to the channel at `url` (http:, https:, ws: or wss:, absolute or relative to the page) and keeps
 * the subscription up until close().
 * @param {string | URL} url
 * @param {ConnectOptions} [options]
 * @returns {PinghubChannel}
 */
export function connect(url, options = {}) {
  const target = websocketUrl(url);
  const keepaliveMs = options.keepaliveMs ?? KEEPALIVE_MS;
  const minRetryMs = options.minRetryMs ?? MIN_RETRY_MS;
  const maxRetryMs = options.maxRetryMs ?? MAX_RETRY_MS;

  /** @type {WebSocket | null} */
  let socket = null;
  /** @type {PinghubState} */
  let state = { status: "connecting", attempt: 0 };
  let attempt = 0;
  let openedAt = 0;
  let awaitingAnswer = false;
  let stopped = false;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let retryTimer;
  /** @type {ReturnType<typeof setInterval> | undefined} */
  let keepaliveTimer;
  /** Counts attempts, so that a token arriving after a newer attempt (or close()) is not used. */
  let generation = 0;

  /** @param {PinghubState} next */
  const setState = (next) => {
    state = Object.freeze(next);
    options.onState?.(state);
  };

  const open = () => {
    clearTimeout(retryTimer);
    retryTimer = undefined;
    setState({ status: "connecting", attempt });
    openedAt = 0;
    const token = options.token;
    if (typeof token !== "function") {
      openWith(token);
      return;
    }
    const mine = ++generation;
    Promise.resolve()
      .then(token)
      .then(
        (fresh) => {
          if (mine === generation && !stopped) openWith(fresh);
        },
        (error) => {
          if (mine === generation && !stopped) {
            dropped(null, 1006, `no token: ${error instanceof Error ? error.message : String(error)}`);
          }
        },
      );
  };

  /** @param {string | undefined} token */
  const openWith = (token) => {
    let ws;
    try {
      ws = new WebSocket(token === undefined || token === "" ? target : withToken(target, token));
    } catch (error) {
      // Blocked before it started (a Content-Security-Policy, say): count it as a failed attempt.
      dropped(null, 1006, error instanceof Error ? error.message : String(error));
      return;
    }
    socket = ws;
    ws.onopen = () => {
      openedAt = Date.now();
      awaitingAnswer = false;
      if (keepaliveMs > 0) keepaliveTimer = setInterval(keepalive, keepaliveMs);
      setState({ status: "live" });
    };
    ws.onmessage = (event) => {
      // Anything from the server proves the connection alive; the empty echo of a keepalive is nothing more.
      awaitingAnswer = false;
      if (typeof event.data === "string" && event.data !== "") options.onMessage?.(event.data);
    };
    ws.onclose = (event) => dropped(ws, event.code, event.reason);
  };

  const keepalive = () => {
    if (socket === null || socket.readyState !== WebSocket.OPEN) return;
    if (awaitingAnswer) {
      // Not even the echo of the last keepalive came back in a whole interval: the connection is dead though
      // the browser has not noticed (a laptop asleep, a NAT that forgot us). Do not wait for its close.
      const dead = socket;
      dropped(dead, CLOSE_NO_ANSWER, "no answer to keepalive");
      dead.close(CLOSE_NO_ANSWER, "no answer to keepalive");
      return;
    }
    awaitingAnswer = true;
    socket.send("");
  };

  /**
   * @param {WebSocket | null} ws the websocket that closed; a stale one is ignored
   * @param {number} code
   * @param {string} reason
   */
  const dropped = (ws, code, reason) => {
    if (ws !== socket || stopped) return;
    if (ws !== null) ws.onopen = ws.onmessage = ws.onclose = null;
    socket = null;
    clearInterval(keepaliveTimer);
    const wasLive = openedAt !== 0;
    if (wasLive && Date.now() - openedAt >= STABLE_MS) attempt = 0;
    // Exponential backoff with "equal jitter": somewhere in the upper half of the current step, so that the
    // clients of a restarted server spread out but none hammers it.
    const step = Math.min(maxRetryMs, minRetryMs * 2 ** attempt);
    const delayMs = Math.round(step / 2 + (Math.random() * step) / 2);
    attempt++;
    setState({ status: "reconnecting", code, reason, wasLive, attempt, delayMs, retryAt: Date.now() + delayMs });
    retryTimer = setTimeout(open, delayMs);
  };

  const reconnectNow = () => {
    if (!stopped && state.status === "reconnecting") open();
  };
  globalThis.addEventListener?.("online", reconnectNow);

  open();

  return {
    url: target,
    get state() {
      return state;
    },
    send(text) {
      const message = String(text);
      if (message === "" || socket === null || socket.readyState !== WebSocket.OPEN) return false;
      socket.send(message);
      return true;
    },
    reconnect: reconnectNow,
    close() {
      if (stopped) return;
      stopped = true;
      generation++;
      clearTimeout(retryTimer);
      clearInterval(keepaliveTimer);
      globalThis.removeEventListener?.("online", reconnectNow);
      if (socket !== null) {
        socket.onopen = socket.onmessage = socket.onclose = null;
        socket.close(1000, "closed by the client");
        socket = null;
      }
      setState({ status: "closed", code: 1000, reason: "closed by the client" });
    },
  };
}
