// The hub: the one place that knows channels. A channel is a Bun pub/sub topic with at least one subscriber;
// it exists from its first subscriber to its last. Bun's uWebSockets core does the fan-out natively, so
// publishing is one call whatever the number of subscribers: no JavaScript runs per subscriber.
//
// A message goes from the hub that accepted it through the broker (broker.ts) to the hubs that deliver it: on a
// single node the broker hands it straight back, in cluster mode it goes through Redis. The hub tells the broker
// when a channel gets its first subscriber on this node and when it has lost its last.

import type { Server, ServerWebSocket } from "bun";
import { type Broker, type BrokerFactory, localBroker } from "./broker.ts";

/** What pinghub keeps on each websocket. */
export interface Subscriber {
  channel: string;
  /** Set when the subscriber was found over its backlog and is being cut off. */
  slow: boolean;
}

export type SubscriberSocket = ServerWebSocket<Subscriber>;

/** The running totals the metrics report; plain numbers so that counting costs nothing on the hot path. */
export interface HubCounters {
  postMessages: number;
  websocketMessages: number;
  droppedMessages: number;
  sentMessages: number;
  slowSubscribers: number;
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
  };
  /** Subscribers per channel: Bun's own `subscriberCount` walks its topic tree, too slow to ask per message. */
  private readonly channels = new Map<string, Set<SubscriberSocket>>();
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
    /** Told once about each subscriber cut off for its backlog. */
    private readonly onSlowSubscriber: (subscriber: SubscriberSocket) => void = () => {},
    createBroker: BrokerFactory = localBroker,
  ) {
    this.broker = createBroker((channel, message) => this.deliver(channel, message));
  }

  /** The server whose topics carry the channels; set once it is listening. */
  attach(server: Server<Subscriber>): void {
    this.server = server;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  get websockets(): number {
    return this.websocketCount;
  }

  subscriberCount(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  /**
   * Why a new subscriber or message cannot be taken now (cluster mode, Redis away), in one line; undefined
   * when it can.
   */
  get unavailable(): string | undefined {
    return this.broker.problem;
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
    if (this.channels.has(channel)) return undefined;
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
    ws.subscribe(channel);
  }

  leave(ws: SubscriberSocket): void {
    const channel = ws.data.channel;
    const subscribers = this.channels.get(channel);
    if (subscribers?.delete(ws) !== true) return;
    this.websocketCount--;
    if (subscribers.size === 0) {
      this.channels.delete(channel);
      this.leftEmpty(channel);
    }
    if (ws.data.slow) this.counters.slowSubscribers++;
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
    if (this.channels.has(channel) || this.joining.has(channel) || this.emptied.has(channel)) return;
    this.emptied.set(
      channel,
      setTimeout(() => {
        this.emptied.delete(channel);
        if (!this.channels.has(channel) && !this.joining.has(channel)) this.broker.unsubscribe(channel);
      }, UNSUBSCRIBE_DELAY_MS),
    );
  }

  /** Closes every websocket, and any that opens from now on, as at shutdown. */
  closeAll(code: number, reason: string): void {
    this.closing = { code, reason };
    for (const subscribers of this.channels.values()) {
      for (const ws of subscribers) ws.close(code, reason);
    }
  }

  /**
   * Publishes a message that came in a POST. Returns the number of subscribers it went to on a single node; in
   * cluster mode, a promise of the number of nodes that had subscribers, once Redis has taken it (rejecting with
   * BrokerUnavailable when Redis cannot be reached).
   */
  publishPost(channel: string, message: string): number | Promise<number> {
    const carried = this.broker.publish(channel, message);
    if (typeof carried === "number") {
      this.counters.postMessages++;
      if (carried === 0) this.counters.droppedMessages++;
      return carried;
    }
    return carried.then(this.countPost);
  }

  /** Publishes a message that a websocket client sent to its own channel, as publishPost does. */
  publishWebsocket(channel: string, message: string): number | Promise<number> {
    const carried = this.broker.publish(channel, message);
    if (typeof carried === "number") {
      this.counters.websocketMessages++;
      if (carried === 0) this.counters.droppedMessages++;
      return carried;
    }
    return carried.then(this.countWebsocket);
  }

  private readonly countPost = (nodes: number): number => {
    this.counters.postMessages++;
    if (nodes === 0) this.counters.droppedMessages++;
    return nodes;
  };

  private readonly countWebsocket = (nodes: number): number => {
    this.counters.websocketMessages++;
    if (nodes === 0) this.counters.droppedMessages++;
    return nodes;
  };

  /** Hands a message to this node's subscribers of the channel, as the broker says; returns how many. */
  private deliver(channel: string, message: string): number {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined || this.server === undefined) return 0;
    const result = this.server.publish(channel, message);
    this.counters.sentMessages += subscribers.size;
    // Bun answers 0 or -1 when some subscriber's send queue is building up. Only then do we look at the
    // subscribers one by one, to cut off those past --max-backlog (websocket.ts leaves this to the hub).
    if (result <= 0) this.findSlow(subscribers);
    return subscribers.size;
  }

  private findSlow(subscribers: Set<SubscriberSocket>): void {
    for (const ws of subscribers) {
      if (ws.data.slow || ws.getBufferedAmount() <= this.maxBacklog) continue;
      ws.data.slow = true;
      this.onSlowSubscriber(ws);
      // Dropped at once: a close frame would only queue behind the backlog it cannot read.
      ws.terminate();
    }
  }
}
