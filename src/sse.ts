// Subscribing with Server-Sent Events: a GET on a channel path that accepts `text/event-stream` gets a stream
// of the channel's messages, one event each, for `curl -N`, EventSource in browsers, or any HTTP client. With
// history on, every event has an id, every stream opens with its position (an `id:` with no data, so that a
// stream cut before its first message still resumes), a subscriber that comes back with `Last-Event-ID`
// (EventSource sends it by itself when it reconnects; `?lastEventId=` for a first connection) is given what it
// missed first, and a new one may ask for the newest N kept messages with `?last=N`.
//
// EventSource gives up for good on any answer but 200 with this content type, and reconnects after a stream
// that ends. So a subscriber pinghub cannot serve for now (Redis away, shutting down) gets a stream that says
// why in a comment and ends at once, and EventSource tries again; only a refusal that is meant (a foreign
// Origin, a bad path) gets an error status.

import type { Server } from "bun";
import type { Decision, DoorContext } from "./access.ts";
import { type BacklogBudget, type Backlogged, OVER_MAX_BACKLOG } from "./backlog.ts";
import type { Config } from "./config.ts";
import { ExpiryWheel } from "./expiry.ts";
import { parseId, type Resume } from "./history.ts";
import { EVENT_STREAMS, type Hub } from "./hub.ts";
import { lastFromUrl } from "./last-query.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { plainText } from "./plain-text.ts";
import { clientAddress } from "./refusal.ts";
import { commentBytes, eventBytes, gapEventBytes, retryBytes } from "./sse-event.ts";
import { type PendingEvent, PendingEvents } from "./sse-pending.ts";

/** A comment at least this often keeps proxies (nginx's proxy_read_timeout is 60 s) from closing a quiet stream. */
export const HEARTBEAT_MS = 15_000;
/** What EventSource is told to wait before reconnecting: soon, since the history covers the gap. */
export const RECONNECT_MS = 1000;
/** The query parameter that stands for Last-Event-ID on a first connection, where EventSource cannot set it. */
export const LAST_EVENT_ID_PARAMETER = "lastEventId";

export interface SseSubscribers {
  /** Answers an SSE subscription to `channel`. */
  subscribe(req: Request, server: Server<unknown>, channel: string): Response | Promise<Response>;
  /** Stops the heartbeat, at shutdown, once the hub has ended every stream. */
  stop(): void;
}

/** Whether a GET asks for an event stream rather than the channel page. */
export function wantsEventStream(req: Request): boolean {
  return req.headers.get("accept")?.includes("text/event-stream") === true;
}

export function createSseSubscribers(hub: Hub, config: Config, door: DoorContext): SseSubscribers {
  const { refused, debug, access } = door;
  // Streams whose token expires wait here to be ended, each as the function that ends it: one timer for all.
  const expiries = new ExpiryWheel<() => void>((end) => end());
  // A busy channel's events go out several to a write (sse-pending.ts); after each write, the backlog budget
  // looks at what the streams that fell behind now hold.
  const budget = hub.backlog;
  const pending = new PendingEvents<SseStream>(() => budget.enforce());
  const group = hub.group<SseStream>(EVENT_STREAMS, {
    fanOut(channel, streams, message, id) {
      // The event's bytes are built once, here, for every stream of the channel; Bun copies them into each
      // socket (or its buffer), and a stream that falls too far behind cuts itself off as it writes.
      const bytes = eventBytes(message, id);
      // While any subscriber is behind, each message is written at once, as the hub's budget checks it (a
      // message waiting here would be in no backlog yet); Bun's buffer joins the events of a stream behind.
      if (budget.behindCount === 0) pending.add(channel, streams, bytes, id);
      else {
        pending.flush(channel);
        for (const stream of streams) stream.send(bytes, id);
      }
      return streams.size;
    },
    end(stream) {
      // What was published before the shutdown goes out first.
      pending.flush(stream.channel);
      stream.end("server shutting down");
    },
    slow: (stream) => stream.slow,
    // Cluster mode, after an outage the history did not cover: the gap event, and where the channel rejoined.
    gap(channel, streams, reason, position) {
      pending.add(channel, streams, gapEventBytes(reason, position), undefined);
    },
  });
  const open = new Set<SseStream>();
  let heartbeat: ReturnType<typeof setInterval> | undefined;
  const keepalive = commentBytes("keepalive");
  const beat = () => {
    for (const stream of open) stream.comment(keepalive);
  };

  function headers(req: Request): Record<string, string> {
    const result: Record<string, string> = {
      "Content-Type": "text/event-stream; charset=utf-8",
      "Cache-Control": "no-cache",
      // nginx must pass each event on as it comes, not fill a buffer first.
      "X-Accel-Buffering": "no",
      Vary: "Accept, Origin",
    };
    // Cross-origin EventSource: the allowed origin (any, without --origin) may read the stream. With its cookies
    // (withCredentials) only where --origin names the sites: an auth proxy in front may let cookies choose the
    // channels a visitor can read, and no other site's page may read them in the visitor's name.
    const origin = req.headers.get("origin");
    if (origin !== null) {
      result["Access-Control-Allow-Origin"] = origin;
      if (config.origin !== undefined) result["Access-Control-Allow-Credentials"] = "true";
    }
    return result;
  }

  /** A stream that says why in a comment and ends at once: EventSource tries again after RECONNECT_MS. */
  function comeBackLater(req: Request, channel: string, reason: string): Response {
    refused("redis_down", channel, req);
    const body = new Blob([retryBytes(RECONNECT_MS), commentBytes(`unavailable: ${reason}`)]);
    return new Response(body, { headers: headers(req) });
  }

  /**
   * Opens a stream, joined to the channel before the history is read, so that nothing published meanwhile falls
   * between the two; until the history is written, live events wait in the stream. With history on, the answer
   * waits for the history (a round trip to Redis in cluster mode), so that the stream's first bytes name its
   * position. A token's `expiresAtMs` ends it.
   */
  function start(
    req: Request,
    client: string,
    channel: string,
    from: From,
    expiresAtMs: number | undefined,
  ): Response | Promise<Response> {
    const history = hub.broker.history;
    let expiry: { slot: number; end: () => void } | undefined;
    const stream = new SseStream(channel, hub.backlog, history, (why) => {
      if (expiry !== undefined) expiries.remove(expiry.slot, expiry.end);
      if (why === OVER_MAX_BACKLOG) hub.slowSubscriber(channel);
      if (!group.leave(channel, stream)) return;
      open.delete(stream);
      if (open.size === 0 && heartbeat !== undefined) {
        clearInterval(heartbeat);
        heartbeat = undefined;
      }
      debug?.(`SSE stream closed: channel ${JSON.stringify(channel)} from ${client}, ${why}`);
    });
    const respond = () => new Response(stream.body, { headers: headers(req) });
    // Without history a stream with no Last-Event-ID is exactly what it was: nothing to read, nothing held.
    const read = history || from.lastId !== undefined;
    if (read) stream.holdLive();
    // Events published before the stream joined are not its own: they go out to the others first.
    pending.flush(channel);
    if (!group.join(channel, stream)) return respond();
    debug?.(`SSE stream opened: channel ${JSON.stringify(channel)} from ${client}`);
    // A token's exp ends the stream, and EventSource comes back with a fresh token (pinghub.js asks for one).
    if (expiresAtMs !== undefined) {
      const end = () => {
        expiry = undefined;
        // What was published before its token expired is still its own.
        pending.flush(channel);
        refused("token_expired", channel, req);
        stream.endWith("token expired", "its token expired");
      };
      expiry = { slot: expiries.add(expiresAtMs, end), end };
    }
    open.add(stream);
    heartbeat ??= setInterval(beat, HEARTBEAT_MS);
    req.signal.addEventListener("abort", () => stream.gone(), { once: true });
    if (!read) return respond();
    const broker = hub.broker;
    const result = from.lastId === undefined ? broker.latest(channel, from.last) : broker.since(channel, from.lastId);
    if (!(result instanceof Promise)) {
      stream.catchUp(result);
      return respond();
    }
    return result.then(
      (given) => {
        stream.catchUp(given);
        return respond();
      },
      // Redis went away while asked: the stream ends, and EventSource asks again with the same id.
      (error: Error) => {
        stream.endWith(`unavailable: ${error.message}`, "the history was unavailable");
        return respond();
      },
    );
  }

  return {
    subscribe(req, server, channel) {
      if (!originAllowed(config.origin, req.headers.get("origin"))) {
        refused("bad_origin", channel, req);
        return forbiddenOrigin(config.origin);
      }
      const last = lastFromUrl(req.url);
      if (last.error !== undefined) {
        refused("bad_query", channel, req);
        return plainText(`${last.error}\n`, 400);
      }
      if (access === undefined) return admit(req, server, channel, last.count, undefined);
      const decision = access.check(req, channel, "subscribe");
      if (!(decision instanceof Promise)) return admitIfAllowed(req, server, channel, last.count, decision);
      return decision.then((d) => admitIfAllowed(req, server, channel, last.count, d));
    },
    stop() {
      pending.stop();
      if (heartbeat !== undefined) clearInterval(heartbeat);
      heartbeat = undefined;
      expiries.stop();
    },
  };

  /** A subscriber that access answered: admitted, or refused with an answer, not a stream. */
  function admitIfAllowed(req: Request, server: Server<unknown>, channel: string, last: number, decision: Decision) {
    if (decision.allowed) return admit(req, server, channel, last, decision.expiresAtMs);
    // EventSource gives up on an answer that is not a stream, which is meant: a token missing or bad.
    refused(decision.reason, channel, req);
    return decision.response;
  }

  /** A subscriber allowed in, until `expiresAtMs` if its token says: admitted through the hub, then streamed. */
  function admit(
    req: Request,
    server: Server<unknown>,
    channel: string,
    last: number,
    expiresAtMs: number | undefined,
  ) {
    // Bun's idle timeout for HTTP requests would cut a quiet stream; the heartbeat keeps it alive instead.
    server.timeout(req, 0);
    const from = { lastId: lastEventId(req), last };
    const client = debug === undefined ? "" : clientAddress(req, server);
    // A stream with history opens once the history is read, so its door answers with a promise; a promise of
    // a promise is one promise once awaited, as Bun does.
    return hub.admit<Response | Promise<Response>>(channel, {
      open: () => start(req, client, channel, from, expiresAtMs),
      unavailable: (reason) => comeBackLater(req, channel, reason),
    }) as Response | Promise<Response>;
  }
}

/** Where a new stream starts: after the message the client last saw, else with the newest `last` kept. */
interface From {
  lastId: string | undefined;
  last: number;
}

function lastEventId(req: Request): string | undefined {
  const header = req.headers.get("last-event-id");
  if (header !== null && header !== "") return header;
  const query = req.url.indexOf("?");
  if (query < 0) return undefined;
  return new URLSearchParams(req.url.slice(query + 1)).get(LAST_EVENT_ID_PARAMETER) ?? undefined;
}

/**
 * One SSE subscriber: a Bun direct stream, written straight into the response with no queue in JavaScript
 * (a default ReadableStream's enqueue, size callback and pull bookkeeping were most of what an SSE delivery
 * cost beyond a websocket's). Bun's controller.write takes the bytes either way and answers a number while the
 * socket keeps up, or a promise of its drain once its own buffer is building up: only from then on are bytes
 * counted, as the subscriber's backlog, until that promise says the buffer is empty again.
 */
class SseStream implements Backlogged {
  slow = false;
  /** Bytes written since Bun last said the socket was backed up, not yet drained: what it holds for us. */
  backlog = 0;
  stuck = false;
  checkedTurn = 0;
  movedTurn = 0;
  moved = false;
  readonly body: ReadableStream<Uint8Array>;
  /** Set when Bun starts the stream, a moment after the response is returned: until then, `early` holds. */
  private controller: ReadableStreamDirectController | undefined;
  private early: Uint8Array[] | undefined = [];
  /** How the stream ends, once Bun has started it: in order (resolve), or reset at once (reject). */
  private settle: { end: () => void; reset: (reason: undefined) => void } | undefined;
  /** Ended before Bun started it: in order, or reset. */
  private endedEarly: "end" | "reset" | undefined;
  private done = false;
  /** Whether a drain promise is being waited for. */
  private draining = false;
  private readonly drained = () => {
    this.draining = false;
    this.budget.update(this, 0);
  };
  /** Whether the stream's first bytes were written. */
  private started = false;
  /** Live events held while the history is read, with their ids, so the two can be joined without a duplicate. */
  private held: Array<{ bytes: Uint8Array; id: string | undefined }> | undefined;
  /** After a resume: the last id the subscriber has been given; live events up to it are dropped. */
  private floor: { incarnation: string; sequence: number } | undefined;

  constructor(
    readonly channel: string,
    private readonly budget: BacklogBudget,
    /** With history on, the first bytes wait for the position, which catchUp writes with them. */
    positioned: boolean,
    /** Told once, when the stream is over, with why (for the debug line). */
    private readonly onDone: (why: string) => void,
  ) {
    // The first bytes go out at once, so clients and proxies see the stream open.
    if (!positioned) this.start(undefined);
    const source: Bun.DirectUnderlyingSource<Uint8Array> = {
      type: "direct",
      // Bun calls this once, when it starts sending the body; the stream lasts until the promise settles.
      pull: (controller) => {
        const early = this.early ?? [];
        this.early = undefined;
        for (const bytes of early) controller.write(bytes);
        if (this.endedEarly === "end") return controller.close();
        // biome-ignore lint/suspicious/noExplicitAny: a rejection with no reason is Bun's silent reset.
        if (this.endedEarly === "reset") return Promise.reject(undefined as any);
        this.controller = controller;
        return new Promise<void>((end, reset) => {
          this.settle = { end, reset };
        });
      },
      // The client went away: Bun cancels the stream, and writes from now on would return 0.
      cancel: () => this.gone(),
    };
    // Bun's own overload for a direct source is hidden by the DOM library's ReadableStream type.
    this.body = new ReadableStream<Uint8Array>(source as unknown as UnderlyingDefaultSource<Uint8Array>);
  }

  holdLive(): void {
    this.held = [];
  }

  /**
   * Writes one event's bytes (`id` is the message's id, if it has one). Returns false if the subscriber is now
   * past --max-backlog: it has cut itself off and left.
   */
  send(bytes: Uint8Array, id: string | undefined): boolean {
    if (this.done) return true;
    if (this.held !== undefined) {
      this.held.push({ bytes, id });
      return true;
    }
    if (this.floor !== undefined && id !== undefined) {
      const parsed = parseId(id);
      const floor = this.floor;
      // Already given, from the history or by the client's own Last-Event-ID: sent once only.
      if (parsed?.incarnation === floor.incarnation && parsed.sequence <= floor.sequence) return true;
      // The live stream has passed the history: nothing later can be in it, so no more look-ups.
      this.floor = undefined;
    }
    return this.write(bytes);
  }

  /**
   * Writes several events at once (`joined`: their bytes end to end), one write where nothing is decided per
   * event; false as send says. While the history is read, or up to the floor, each event is looked at alone.
   */
  sendJoined(joined: Uint8Array, events: readonly PendingEvent[]): boolean {
    if (this.done) return true;
    if (this.held === undefined && this.floor === undefined) return this.write(joined);
    for (const event of events) if (!this.send(event.bytes, event.id)) return false;
    return true;
  }

  comment(bytes: Uint8Array): void {
    // Never before the first bytes: the position must come first, and the answer is not out yet anyway.
    if (!this.done && this.started) this.write(bytes);
  }

  /**
   * Writes what the history gave, then the live events held meanwhile that it did not already hold. In cluster
   * mode a message can also come live after the history was read, though the history held it (the two come on
   * different connections): the floor, the subscriber's position, keeps such a late copy out too.
   *
   * When no kept message is given, the first bytes name the position in an `id:` field with no data: EventSource
   * takes it as its lastEventId without dispatching an event, so a stream cut before any message still resumes
   * from it. A kept message carries its own id.
   */
  catchUp(result: Resume): void {
    if (this.done) return;
    const held = this.held ?? [];
    this.held = undefined;
    this.start(result.messages.length === 0 ? result.position : undefined);
    if (result.gap !== undefined && !this.write(gapEventBytes(result.gap))) return;
    for (const kept of result.messages) if (!this.write(eventBytes(kept.message, kept.id))) return;
    this.floor = result.position === undefined ? undefined : parseId(result.position);
    for (const event of held) if (!this.send(event.bytes, event.id)) return;
  }

  /** Ends the stream in order (shutdown): what is queued goes out, then EventSource reconnects. */
  end(why: string): void {
    if (this.done) return;
    this.start(undefined);
    this.finish(why);
    if (this.settle === undefined) this.endedEarly = "end";
    else this.settle.end();
  }

  endWith(comment: string, why: string): void {
    if (this.done) return;
    this.start(undefined);
    this.write(commentBytes(comment));
    this.end(why);
  }

  /** Cut off for its backlog: dropped at once, since an orderly end would only queue behind what it cannot read. */
  cutOff(why: string): void {
    if (this.done) return;
    this.slow = true;
    // What was written before Bun started the stream goes too: the connection is reset.
    this.early = undefined;
    this.finish(why);
    // With no reason given, Bun resets the connection without printing an error of its own.
    if (this.settle === undefined) this.endedEarly = "reset";
    else this.settle.reset(undefined);
  }

  /** The first bytes, once: how long EventSource waits to reconnect, the position if given, and a comment. */
  private start(position: string | undefined): void {
    if (this.started) return;
    this.started = true;
    this.write(retryBytes(RECONNECT_MS, position));
    this.write(commentBytes(`pinghub channel ${this.channel}`));
  }

  /** The client went away. */
  gone(): void {
    if (!this.done) this.finish("the client went away");
  }

  /** Writes bytes; false if that put the subscriber past --max-backlog, and so cut it off. */
  private write(bytes: Uint8Array): boolean {
    const controller = this.controller;
    if (controller === undefined) {
      this.early?.push(bytes);
      return true;
    }
    const written = controller.write(bytes);
    // The usual case: the socket took it, or Bun's buffer was empty; nothing to count.
    if (typeof written === "number") return true;
    // Progress is Bun's buffer having emptied since an earlier write found it backed up: Bun says when it has
    // emptied, not how much went out meanwhile.
    const progressed = !this.draining;
    if (!this.draining) {
      this.draining = true;
      written.then(this.drained, this.drained);
    }
    this.budget.update(this, this.backlog + bytes.byteLength, progressed);
    if (this.backlog <= this.budget.maxBacklog) return true;
    this.cutOff(OVER_MAX_BACKLOG);
    return false;
  }

  private finish(why: string): void {
    this.done = true;
    this.held = undefined;
    this.budget.update(this, 0);
    this.onDone(why);
  }
}
