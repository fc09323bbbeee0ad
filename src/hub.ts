// The hub: the one place that knows channels. A channel is a Bun pub/sub topic with at least one subscriber;
// it exists from its first subscriber to its last. Bun's uWebSockets core does the fan-out natively, so
// publishing is one call whatever the number of subscribers: no JavaScript runs per subscriber.

import type { Server, ServerWebSocket } from "bun";

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
  private websocketCount = 0;
  private server: Server<Subscriber> | undefined;
  /** Set by closeAll: a websocket whose upgrade was under way at shutdown is closed as it opens. */
  private closing: { code: number; reason: string } | undefined;

  constructor(
    private readonly maxBacklog: number,
    /** Told once about each subscriber cut off for its backlog. */
    private readonly onSlowSubscriber: (subscriber: SubscriberSocket) => void = () => {},
  ) {}

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
    if (subscribers.size === 0) this.channels.delete(channel);
    if (ws.data.slow) this.counters.slowSubscribers++;
  }

  /** Closes every websocket, and any that opens from now on, as at shutdown. */
  closeAll(code: number, reason: string): void {
    this.closing = { code, reason };
    for (const subscribers of this.channels.values()) {
      for (const ws of subscribers) ws.close(code, reason);
    }
  }

  /** Publishes a message that came in a POST; returns the number of subscribers it went to. */
  publishPost(channel: string, message: string): number {
    this.counters.postMessages++;
    return this.publish(channel, message);
  }

  /** Publishes a message that a websocket client sent to its own channel. */
  publishWebsocket(channel: string, message: string): number {
    this.counters.websocketMessages++;
    return this.publish(channel, message);
  }

  private publish(channel: string, message: string): number {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined || this.server === undefined) {
      this.counters.droppedMessages++;
      return 0;
    }
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
