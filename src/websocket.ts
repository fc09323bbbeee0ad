// Subscribing with a websocket: the upgrade (the door, through the hub's admission) and the socket's life, on
// Bun's native handler, not Hono's upgradeWebSocket, because Hono builds a context object per event and a
// message bus cannot pay that per message. A channel's websockets are a Bun pub/sub topic: `server.publish`
// reaches them all natively, so no JavaScript runs per subscriber.

import type { Server, ServerWebSocket, WebSocketHandler } from "bun";
import { type Access, type Decision, type DoorContext, EVERYONE } from "./access.ts";
import { type Backlogged, OVER_MAX_BACKLOG } from "./backlog.ts";
import type { Config } from "./config.ts";
import { ExpiryWheel } from "./expiry.ts";
import { closeClass, type Hub, WEBSOCKETS } from "./hub.ts";
import { lastFromUrl } from "./last-query.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { plainText } from "./plain-text.ts";
import { clientAddress, type RefusalReason } from "./refusal.ts";
import type { SubscriberGroup } from "./subscribers.ts";
import { CLOSE_TRY_AGAIN_LATER, tryAgainLater } from "./try-again.ts";
import { WebsocketReplay } from "./websocket-replay.ts";

/** What pinghub keeps on each websocket. */
export interface Subscriber {
  channel: string;
  /** Set when the subscriber was found over its backlog and is being cut off. */
  slow: boolean;
  /** The client's address, for debug lines; empty unless --log-level is debug. */
  client: string;
  /** Why pinghub cut it off, for the debug line as it closes. */
  why?: string;
  /** Its account with the hub's backlog budget, made the first time it is found behind. */
  behind?: BehindSocket;
  /** `?last=N`: the newest N kept messages are sent first (websocket-replay.ts); 0 for none. */
  last: number;
  // Set only with --websocket-publish no, --jwt-key or --auth-url: without them a websocket's data keeps its
  // four fields, and its memory, as before.
  /** Why a message from it is refused (decided at its upgrade: access.ts); absent when it may publish. */
  publishRefused?: PublishRefusal;
  /** When its token expires, in ms since the epoch; then its slot in the expiry wheel, once open. */
  expiresAtMs?: number;
  expiry?: number;
}

/** A websocket's message refused: counted under `reason`, the websocket closed with 1008 and `text`. */
export interface PublishRefusal {
  reason: RefusalReason;
  text: string;
}

export type SubscriberSocket = ServerWebSocket<Subscriber>;

/** Close codes pinghub sends itself; Bun sends 1007 (not UTF-8) and 1009 (too large) on its own. */
export const CLOSE_UNSUPPORTED_DATA = 1003;
/** RFC 6455's "policy violation": a message it may not publish, a token expired. */
export const CLOSE_POLICY_VIOLATION = 1008;

/** --websocket-publish no: websockets subscribe only, POST publishes. */
export const PUBLISHING_OFF: PublishRefusal = {
  reason: "websocket_publish_off",
  text: "publishing by websocket is off",
};
/** The websocket's token, or the application, did not grant it publish on its channel. */
export const NOT_ALLOWED_TO_PUBLISH: PublishRefusal = { reason: "forbidden", text: "not allowed to publish" };
export const TOKEN_EXPIRED = "token expired";

/** The reasons Bun gives its own closes, which it reports to us as 1006 with this text, and the codes it sent. */
const BUN_CLOSE_REASONS: Record<string, { refusal: RefusalReason; code: number }> = {
  "Received invalid UTF-8": { refusal: "not_utf8", code: 1007 },
  "Received too big message": { refusal: "too_large", code: 1009 },
};

export interface Websockets {
  /** Answers a websocket upgrade to `channel`: undefined once upgraded, or the refusal. */
  subscribe(
    req: Request,
    server: Server<Subscriber>,
    channel: string,
  ): Response | undefined | Promise<Response | undefined>;
  /** Bun's handler for the server's websockets. */
  handler: WebSocketHandler<Subscriber>;
  /** The server whose topics carry the channels; set once it is listening. */
  attach(server: Server<Subscriber>): void;
}

export function createWebsockets(hub: Hub, config: Config, door: DoorContext): Websockets {
  const { refused, debug, access } = door;
  // Websockets whose token expires wait here to be closed: one timer for them all, nothing per message.
  const expiries = new ExpiryWheel<SubscriberSocket>((ws) => {
    ws.data.expiry = undefined;
    refused("token_expired", ws.data.channel, ws.data.client);
    ws.close(CLOSE_POLICY_VIOLATION, TOKEN_EXPIRED);
  });
  let listening: Server<Subscriber> | undefined;
  /** Websockets that asked for recent messages (?last=N) and get them before their topic's. */
  const replay = new WebsocketReplay();
  const group: SubscriberGroup<SubscriberSocket> = hub.group(WEBSOCKETS, {
    fanOut(channel, subscribers, message, id) {
      // Bun answers 0 or -1 when some subscriber's send queue is building up. Only then do we look at the
      // subscribers one by one, to cut off those past --max-backlog (Bun's own limit is out of reach, below).
      if (listening !== undefined && listening.publish(channel, message) <= 0) findSlow(subscribers, message.length);
      // After the topic: a websocket that leaves the replay for its topic must not get this message twice.
      replay.deliver(channel, message, id);
      return subscribers.size;
    },
    end: (ws, code, reason) => ws.close(code, reason),
    slow: (ws) => ws.data.slow,
  });

  /**
   * Cuts off those past --max-backlog, and tells the hub's budget (backlog.ts) what the others hold, so that
   * all backlogs together stay under --max-backlog-total. The hub checks that total after the fan-out.
   */
  function findSlow(subscribers: ReadonlySet<SubscriberSocket>, added: number): void {
    const budget = hub.backlog;
    for (const ws of subscribers) {
      if (ws.data.slow) continue;
      const buffered = ws.getBufferedAmount();
      if (buffered > budget.maxBacklog) {
        hub.slowSubscriber(ws.data.channel);
        cutOff(ws, OVER_MAX_BACKLOG);
      } else if (buffered > 0 || ws.data.behind !== undefined) {
        ws.data.behind ??= new BehindSocket(ws);
        const before = ws.data.behind.backlog;
        // Stuck: behind at the last check too, and falling further behind, having sent less than half of the
        // message's bytes (at least its length in UTF-16 units) since. A member of a herd whose kernel buffers
        // still take a trickle is stuck too; those stuck longest go first.
        budget.update(ws.data.behind, buffered, before === 0 || buffered < before + added / 2);
      }
    }
  }

  function subscribe(req: Request, server: Server<Subscriber>, channel: string) {
    if (!originAllowed(config.origin, req.headers.get("origin"))) {
      refused("bad_origin", channel, req);
      return forbiddenOrigin(config.origin);
    }
    const { count: last, error: badLast } = lastFromUrl(req.url);
    if (badLast !== undefined) {
      refused("bad_query", channel, req);
      return plainText(`${badLast}\n`, 400);
    }
    if (access === undefined) return admit(req, server, channel, last, EVERYONE);
    return authorized(access, req, server, channel, last);
  }

  /**
   * The upgrade asked of access first. A function apart from subscribe's checks, so that each stays small:
   * JavaScriptCore compiles a function with its optimizing tier after a number of calls that grows with its size
   * (jwt-hmac.ts says what that cost).
   */
  function authorized(access: Access, req: Request, server: Server<Subscriber>, channel: string, last: number) {
    // A token seen before or a cached answer is decided at once: no promise, no closure per upgrade.
    const decision = access.check(req, channel, "subscribe");
    if (!(decision instanceof Promise)) return admit(req, server, channel, last, decision);
    return decision.then((d) => admit(req, server, channel, last, d));
  }

  /** A websocket allowed in, with its rights, admitted through the hub and upgraded; or its refusal. */
  function admit(req: Request, server: Server<Subscriber>, channel: string, last: number, rights: Decision) {
    if (!rights.allowed) {
      refused(rights.reason, channel, req);
      return rights.response;
    }
    // Decided once, here: whether its messages are published, and when its token ends it.
    const publishRefused = !config.websocketPublish
      ? PUBLISHING_OFF
      : rights.publish
        ? undefined
        : NOT_ALLOWED_TO_PUBLISH;
    const expiresAtMs = rights.expiresAtMs;
    return hub.admit<Response | undefined>(channel, {
      // Bun runs the websocket's open, and so its joining the group, inside upgrade.
      open() {
        const client = debug === undefined ? "" : clientAddress(req, server as Server<unknown>);
        const data: Subscriber =
          publishRefused === undefined && expiresAtMs === undefined
            ? { channel, slow: false, client, last }
            : { channel, slow: false, client, last, publishRefused, expiresAtMs, expiry: undefined };
        if (server.upgrade(req, { data })) return undefined;
        refused("bad_upgrade", channel, req);
        return new Response("bad websocket upgrade: expected GET with Sec-WebSocket-Key and Version 13\n", {
          status: 400,
        });
      },
      unavailable(reason) {
        refused("redis_down", channel, req);
        return tryAgainLater(reason);
      },
    });
  }

  /**
   * ?last=N with history on: the newest N messages first, then the topic. Apart from `open`, which every connect
   * runs, to keep that small: JavaScriptCore compiles a function with its optimizing tier after a number of calls
   * that grows with its size (jwt-hmac.ts says what that cost).
   */
  function startReplay(ws: SubscriberSocket, channel: string): void {
    replay.start(ws, channel, hub.broker.latest(channel, ws.data.last), (socket, error) => {
      refused("redis_down", channel, ws.data.client);
      socket.close(CLOSE_TRY_AGAIN_LATER, closeReason(`unavailable: ${hub.broker.problem ?? error.message}`));
    });
  }

  const handler: WebSocketHandler<Subscriber> = {
    // Bun closes with 1009 a message larger than this, before any of it reaches us.
    maxPayloadLength: config.maxMessageSize,
    // The hub, not Bun, cuts off a subscriber past --max-backlog: Bun's own cut-off comes when it flushes a burst
    // after publish returned, unseen by the hub, so it would go uncounted and unlogged. Bun reports -1 from
    // publish while any subscriber is backed up, and findSlow then checks them. Bun's limit stays out of reach
    // so that it never drops a message silently.
    backpressureLimit: 2 ** 31 - 1,
    closeOnBackpressureLimit: false,
    // Bun pings a connection silent for most of this time (all but 4 to 16 s, in its steps of 4 s) and closes
    // it once the whole time passes with nothing received; any frame, a pong too, restarts the count.
    idleTimeout: config.idleTimeout,
    sendPings: true,
    // Compression would cost CPU per subscriber on every message; notifications are small.
    perMessageDeflate: false,

    // Bun calls this once a socket that was backed up can take more: its backlog is what is left, usually none.
    drain(ws) {
      const behind = ws.data.behind;
      if (behind !== undefined && !ws.data.slow) hub.backlog.update(behind, ws.getBufferedAmount());
    },

    open(ws) {
      const channel = ws.data.channel;
      if (group.join(channel, ws)) {
        hub.counters.websocketsOpened++;
        // Without history, or without ?last, the websocket is on its topic at once, as it always was.
        if (ws.data.last === 0 || !hub.broker.history) ws.subscribe(channel);
        else startReplay(ws, channel);
      }
      const expiresAtMs = ws.data.expiresAtMs;
      if (expiresAtMs !== undefined) {
        // One place in a shared wheel, not a timer per websocket, and nothing per message.
        ws.data.expiry = expiries.add(expiresAtMs, ws);
      }
      debug?.(`websocket opened: channel ${JSON.stringify(channel)} from ${ws.data.client}`);
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
        published.catch((error: unknown) => {
          refused("redis_down", ws.data.channel, ws.data.client);
          ws.close(CLOSE_TRY_AGAIN_LATER, closeReason(hub.refusedBecause(error)));
        });
      }
    },

    close(ws, reported, reason) {
      const bunClose = BUN_CLOSE_REASONS[reason];
      const code = bunClose?.code ?? reported;
      if (ws.data.behind !== undefined) hub.backlog.update(ws.data.behind, 0);
      replay.leave(ws, ws.data.channel);
      if (group.leave(ws.data.channel, ws)) hub.counters.websocketsClosed[closeClass(code)]++;
      if (ws.data.expiry !== undefined) expiries.remove(ws.data.expiry, ws);
      if (bunClose !== undefined) refused(bunClose.refusal, ws.data.channel, ws.data.client);
      const why = ws.data.why === undefined ? "" : `, ${ws.data.why}`;
      debug?.(
        `websocket closed: channel ${JSON.stringify(ws.data.channel)} from ${ws.data.client}, code ${code}${why}`,
      );
    },
  };

  return {
    subscribe,
    handler,
    attach(server) {
      listening = server;
    },
  };
}

/** Drops a websocket at once: a close frame would only queue behind the backlog it cannot read. */
function cutOff(ws: SubscriberSocket, why: string): void {
  ws.data.slow = true;
  ws.data.why = why;
  ws.terminate();
}

/** A websocket as the backlog budget sees it, once it has been found behind. */
class BehindSocket implements Backlogged {
  backlog = 0;
  stuck = false;
  checkedTurn = 0;
  movedTurn = 0;
  moved = false;
  constructor(private readonly ws: SubscriberSocket) {}
  measure(): number {
    return this.ws.data.slow ? 0 : this.ws.getBufferedAmount();
  }
  cutOff(why: string): void {
    if (!this.ws.data.slow) cutOff(this.ws, why);
  }
}

/** A close reason must fit in 123 bytes of UTF-8. */
function closeReason(text: string): string {
  const bytes = new TextEncoder().encode(text);
  return bytes.length <= 123 ? text : new TextDecoder().decode(bytes.slice(0, 120)).replace(/\uFFFD$/, "");
}
