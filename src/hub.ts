// The hub: the one place that knows channels. A channel is a Bun pub/sub topic with at least one subscriber;
// it exists from its first subscriber to its last. Bun's uWebSockets core does the fan-out natively, so
// publishing is one call whatever the number of subscribers: no JavaScript runs per subscriber.
//
// A message goes from the hub that accepted it through the broker (broker.ts) to the hubs that deliver it: on a
// single node the broker hands it straight back, in cluster mode it goes through Redis. The hub tells the broker
// when a channel gets its first subscriber on this node and when it has lost its last.
//
// A channel's subscribers are websockets, Server-Sent Events streams (sse.ts), or both. `server.publish` reaches
// the websockets natively; the streams, which Bun's pub/sub does not know, are written to from here, with the
// event's bytes built once per message. A channel with no stream pays nothing for them.

import type { Server, ServerWebSocket } from "bun";
import { type Broker, type BrokerFactory, localBroker } from "./broker.ts";
import type { ExpiryEntry } from "./expiry.ts";
import type { RefusalReason } from "./metrics.ts";
import { eventBytes } from "./sse-event.ts";

/** What pinghub keeps on each websocket. */
export interface Subscriber {
  channel: string;
  /** Set when the subscriber was found over its backlog and is being cut off. */
  slow: boolean;
  /** The client's address, for debug lines; empty unless --log-level is debug. */
  client: string;
  // Set only with --websocket-publish no, --jwt-key or --auth-url: without them a websocket's data keeps its
  // three fields, and its memory, as before.
  /** Why a message from it is refused (decided at its upgrade: access.ts); absent when it may publish. */
  publishRefused?: PublishRefusal;
  /** When its token expires, in ms since the epoch; then its place in the expiry wheel, once open. */
  expiresAtMs?: number;
  expiry?: ExpiryEntry;
}

/** A websocket's message refused: counted under `reason`, the websocket closed with 1008 and `text`. */
export interface PublishRefusal {
  reason: RefusalReason;
  text: string;
}

export type SubscriberSocket = ServerWebSocket<Subscriber>;

/** A Server-Sent Events subscriber, as the hub sees it (sse.ts makes them). */
export interface EventStream {
  readonly channel: string;
  /** Set once it was found past --max-backlog and cut off. */
  readonly slow: boolean;
  /**
   * Queues one event's bytes (`id` is the message's id, if it has one). Returns false if the subscriber is now
   * past --max-backlog: it has cut itself off and will leave.
   */
  send(bytes: Uint8Array, id: string | undefined): boolean;
  /** Ends the stream, at shutdown: EventSource reconnects, elsewhere if need be. */
  end(): void;
}

/** The running totals the metrics report; plain numbers so that counting costs nothing on the hot path. */
export interface HubCounters {
  postMessages: number;
  websocketMessages: number;
  droppedMessages: number;
  sentMessages: number;
  slowSubscribers: number;
  websocketsOpened: number;
  /** Websockets closed, by the class of their close code. */
  websocketsClosed: Record<CloseClass, number>;
}

/** Close codes in a few classes, so that a metric label stays bounded whatever codes clients send. */
export const CLOSE_CLASSES = ["normal", "going_away", "no_close_frame", "refused", "other"] as const;
export type CloseClass = (typeof CLOSE_CLASSES)[number];

export function closeClass(code: number): CloseClass {
  if (code === 1000) return "normal";
  if (code === 1001) return "going_away";
  // 1005: a close frame without a code; 1006: no close frame at all (a vanished client, or one cut off).
  if (code === 1005 || code === 1006) return "no_close_frame";
  // What pinghub sends when it refuses: binary, not UTF-8, policy, too large, try again later.
  if (code === 1003 || code === 1007 || code === 1008 || code === 1009 || code === 1013) return "refused";
  return "other";
}

/**
 * After a channel's last subscriber leaves, how long the node stays subscribed to it in the broker: a page
 * reloaded or a client reconnecting joins again within this, without an UNSUBSCRIBE and SUBSCRIBE to Redis.
 */
export const UNSUBSCRIBE_DELAY_MS = 500;

export class Hub {
  readonly counters: HubCounters = {
    postMessages: 0,
    websocketMessages: 0,
    droppedMessages: 0,
    sentMessages: 0,
    slowSubscribers: 0,
    websocketsOpened: 0,
    websocketsClosed: { normal: 0, going_away: 0, no_close_frame: 0, refused: 0, other: 0 },
  };
  /** Subscribers per channel: Bun's own `subscriberCount` walks its topic tree, too slow to ask per message. */
  private readonly channels = new Map<string, Set<SubscriberSocket>>();
  /** Server-Sent Events subscribers per channel. */
  private readonly streams = new Map<string, Set<EventStream>>();
  private streamCount = 0;
  /** Upgrades under way per channel, waiting for the broker to subscribe: the channel must not be dropped. */
  private readonly joining = new Map<string, number>();
  /** Channels left empty, and when the broker is to be told, unless a subscriber joins first. */
  private readonly emptied = new Map<string, ReturnType<typeof setTimeout>>();
  readonly broker: Broker;
  private websocketCount = 0;
  private server: Server<Subscriber> | undefined;
  /** Set by closeAll: a websocket whose upgrade was under way at shutdown is closed as it opens. */
  private closing: { code: number; reason: string } | undefined;

  constructor(
    private readonly maxBacklog: number,
    /** Told once about each subscriber cut off for its backlog, with its channel. */
    private readonly onSlowSubscriber: (channel: string) => void = () => {},
    createBroker: BrokerFactory = localBroker(),
  ) {
    this.broker = createBroker((channel, message, id) => this.deliver(channel, message, id));
  }

  /** The server whose topics carry the channels; set once it is listening. */
  attach(server: Server<Subscriber>): void {
    this.server = server;
  }

  get channelCount(): number {
    let count = this.channels.size;
    for (const channel of this.streams.keys()) if (!this.channels.has(channel)) count++;
    return count;
  }

  get websockets(): number {
    return this.websocketCount;
  }

  /** Server-Sent Events subscribers. */
  get eventStreams(): number {
    return this.streamCount;
  }

  subscriberCount(channel: string): number {
    return (this.channels.get(channel)?.size ?? 0) + (this.streams.get(channel)?.size ?? 0);
  }

  private hasSubscribers(channel: string): boolean {
    return this.channels.has(channel) || this.streams.has(channel);
  }

  /**
   * Why a new subscriber or message cannot be taken now (cluster mode, Redis away), in one line; undefined
   * when it can.
   */
  get unavailable(): string | undefined {
    return this.broker.problem;
  }

  /** Why a publish was refused, for the client: the broker's problem, never a library's raw error. */
  refusedBecause(): string {
    return this.broker.problem ?? "redis did not take the message; try again";
  }

  /**
   * Called before a websocket upgrade: undefined if the channel can be joined at once, or a promise that
   * settles once the broker carries the channel's messages to this node (rejecting with BrokerUnavailable). On a
   * single node, always undefined. Each call must be followed by `joined` once the upgrade is done or failed.
   */
  prepare(channel: string): Promise<void> | undefined {
    // A single node has nothing to prepare: its channels cost nothing until a message comes.
    if (this.broker.cluster === undefined) return undefined;
    const emptied = this.emptied.get(channel);
    if (emptied !== undefined) {
      clearTimeout(emptied);
      this.emptied.delete(channel);
    }
    this.joining.set(channel, (this.joining.get(channel) ?? 0) + 1);
    if (this.hasSubscribers(channel)) return undefined;
    return this.broker.subscribe(channel);
  }

  /** The upgrade that `prepare` was called for is over: the websocket is open (join ran) or it failed. */
  prepared(channel: string): void {
    if (this.broker.cluster === undefined) return;
    const count = (this.joining.get(channel) ?? 1) - 1;
    if (count > 0) this.joining.set(channel, count);
    else this.joining.delete(channel);
    this.leftEmpty(channel);
  }

  join(ws: SubscriberSocket): void {
    if (this.closing !== undefined) {
      ws.close(this.closing.code, this.closing.reason);
      return;
    }
    const channel = ws.data.channel;
    let subscribers = this.channels.get(channel);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.channels.set(channel, subscribers);
    }
    subscribers.add(ws);
    this.websocketCount++;
    this.counters.websocketsOpened++;
    ws.subscribe(channel);
  }

  leave(ws: SubscriberSocket, code: number): void {
    const channel = ws.data.channel;
    const subscribers = this.channels.get(channel);
    if (subscribers?.delete(ws) !== true) return;
    this.websocketCount--;
    this.counters.websocketsClosed[closeClass(code)]++;
    if (subscribers.size === 0) {
      this.channels.delete(channel);
      this.leftEmpty(channel);
    }
    if (ws.data.slow) this.counters.slowSubscribers++;
  }

  /** Adds a Server-Sent Events subscriber; false, and the stream ended, when the hub is shutting down. */
  joinStream(stream: EventStream): boolean {
    if (this.closing !== undefined) {
      stream.end();
      return false;
    }
    let streams = this.streams.get(stream.channel);
    if (streams === undefined) {
      streams = new Set();
      this.streams.set(stream.channel, streams);
    }
    streams.add(stream);
    this.streamCount++;
    return true;
  }

  leaveStream(stream: EventStream): void {
    const channel = stream.channel;
    const streams = this.streams.get(channel);
    if (streams?.delete(stream) !== true) return;
    this.streamCount--;
    if (streams.size === 0) {
      this.streams.delete(channel);
      this.leftEmpty(channel);
    }
    if (stream.slow) this.counters.slowSubscribers++;
  }

  /** Stops the broker's work for the node, at shutdown, after every websocket was closed. */
  async close(): Promise<void> {
    for (const timer of this.emptied.values()) clearTimeout(timer);
    this.emptied.clear();
    await this.broker.close();
  }

  /** A channel with no subscriber and no upgrade under way is unsubscribed from the broker, after a delay. */
  private leftEmpty(channel: string): void {
    // Only cluster mode has anything to undo; the single node's hub forgets the channel with its last subscriber.
    if (this.broker.cluster === undefined) return;
    if (this.hasSubscribers(channel) || this.joining.has(channel) || this.emptied.has(channel)) return;
    this.emptied.set(
      channel,
      setTimeout(() => {
        this.emptied.delete(channel);
        if (!this.hasSubscribers(channel) && !this.joining.has(channel)) this.broker.unsubscribe(channel);
      }, UNSUBSCRIBE_DELAY_MS),
    );
  }

  /** Closes every websocket and ends every stream, and any that opens from now on, as at shutdown. */
  closeAll(code: number, reason: string): void {
    this.closing = { code, reason };
    for (const subscribers of this.channels.values()) {
      for (const ws of subscribers) ws.close(code, reason);
    }
    for (const streams of [...this.streams.values()]) {
      for (const stream of [...streams]) stream.end();
    }
  }

  /**
   * Publishes a message that came in a POST. Returns the number of subscribers it went to on a single node; in
   * cluster mode, a promise of the number of nodes that had subscribers, once Redis has taken it (rejecting with
   * BrokerUnavailable when Redis cannot be reached).
   */
  publishPost(channel: string, message: string): number | Promise<number> {
    return this.publish(channel, message, "postMessages");
  }

  /** Publishes a message that a websocket client sent to its own channel, as publishPost does. */
  publishWebsocket(channel: string, message: string): number | Promise<number> {
    return this.publish(channel, message, "websocketMessages");
  }

  /** Hands a message to the broker and counts it, by the door it came in, once the broker has taken it. */
  private publish(channel: string, message: string, door: "postMessages" | "websocketMessages") {
    const carried = this.broker.publish(channel, message);
    if (typeof carried === "number") return this.count(door, carried);
    return carried.then((reached) => this.count(door, reached));
  }

  private count(door: "postMessages" | "websocketMessages", reached: number): number {
    this.counters[door]++;
    if (reached === 0) this.counters.droppedMessages++;
    return reached;
  }

  /**
   * Hands a message to this node's subscribers of the channel, as the broker says; returns how many. `id` is
   * the message's id when history is on: streams carry it, websockets keep the original protocol without.
   */
  private deliver(channel: string, message: string, id: string | undefined): number {
    let delivered = 0;
    const subscribers = this.channels.get(channel);
    if (subscribers !== undefined && this.server !== undefined) {
      const result = this.server.publish(channel, message);
      delivered = subscribers.size;
      // Bun answers 0 or -1 when some subscriber's send queue is building up. Only then do we look at the
      // subscribers one by one, to cut off those past --max-backlog (websocket.ts leaves this to the hub).
      if (result <= 0) this.findSlow(subscribers);
    }
    // One look at an empty map when nobody on the node subscribes by SSE.
    if (this.streamCount !== 0) {
      const streams = this.streams.get(channel);
      if (streams !== undefined) delivered += this.sendEvent(streams, message, id);
    }
    this.counters.sentMessages += delivered;
    return delivered;
  }

  /** Writes one event to every stream of a channel: its bytes are built once, here. */
  private sendEvent(streams: Set<EventStream>, message: string, id: string | undefined): number {
    const bytes = eventBytes(message, id);
    const count = streams.size;
    for (const stream of streams) {
      if (!stream.send(bytes, id)) this.onSlowSubscriber(stream.channel);
    }
    return count;
  }

  private findSlow(subscribers: Set<SubscriberSocket>): void {
    for (const ws of subscribers) {
      if (ws.data.slow || ws.getBufferedAmount() <= this.maxBacklog) continue;
      ws.data.slow = true;
      this.onSlowSubscriber(ws.data.channel);
      // Dropped at once: a close frame would only queue behind the backlog it cannot read.
      ws.terminate();
    }
  }
}
