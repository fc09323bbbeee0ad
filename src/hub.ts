// The hub: the one place that knows channels. A channel exists from its first subscriber on this node to its
// last; its subscribers are held in one group per transport (subscribers.ts): websockets on Bun's pub/sub
// topics, whose native fan-out runs no JavaScript per subscriber, and Server-Sent Events streams. A transport's
// own file gives the hub its group's way of reaching subscribers; every subscriber comes in through `admit`
// (admission.ts), whatever its door.
//
// A message goes from the hub that accepted it through the broker (broker.ts) to the hubs that deliver it: on a
// single node the broker hands it straight back, in cluster mode it goes through Redis. The broker hears of a
// channel's first subscriber on this node through admission, and of its last after a delay.

import { Admission, type Door } from "./admission.ts";
import { BacklogBudget } from "./backlog.ts";
import { type Broker, type BrokerFactory, BrokerUnavailable, localBroker } from "./broker.ts";
import type { GapReason } from "./history.ts";
import { type GroupOwner, SubscriberGroup, type Transport } from "./subscribers.ts";

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

/** How far subscribers may fall behind (--max-backlog, --max-backlog-total), in bytes. */
export interface BacklogLimits {
  maxBacklog: number;
  maxBacklogTotal: number;
}

/** What the hub tells its owner (main.ts logs it). */
export interface HubEvents {
  /** A subscriber of `channel` was cut off for passing --max-backlog. */
  slowSubscriber?(channel: string): void;
  /** All backlogs together passed --max-backlog-total (`total` bytes): `cut` stuck subscribers went. */
  overBacklogTotal?(cut: number, total: number): void;
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
 * How long a message is held while a herd is told from the readers. Bun runs setImmediate callbacks before it
 * polls the sockets again, so a reader's progress (Bun writing what it held once the reader has read) shows only
 * after a poll; a timer, even of 1 ms, comes after one. Measured: a reader 1.4 MB behind had taken it all 1 ms
 * later, and none of it after two setImmediate turns.
 */
const HOLD_MS = 1;

/** The names the two transports give their groups (websocket.ts, sse.ts), for the counts the metrics read. */
export const WEBSOCKETS = "websocket";
export const EVENT_STREAMS = "sse";

export class Hub implements GroupOwner {
  readonly counters: HubCounters = {
    postMessages: 0,
    websocketMessages: 0,
    droppedMessages: 0,
    sentMessages: 0,
    slowSubscribers: 0,
    websocketsOpened: 0,
    websocketsClosed: { normal: 0, going_away: 0, no_close_frame: 0, refused: 0, other: 0 },
  };
  readonly broker: Broker;
  /** The backlogs of subscribers that fell behind, of every transport, against their limits. */
  readonly backlog: BacklogBudget;
  /** Set by closeAll: a subscriber whose door was opening at shutdown is ended as it joins. */
  private shutdown: { code: number; reason: string } | undefined;
  private readonly groups: SubscriberGroup<unknown>[] = [];
  private readonly admission: Admission;
  /** Messages held back for a turn while a herd that stopped reading is told from the readers (see hold). */
  private held: Array<{ channel: string; message: string; id: string | undefined }> | undefined;

  constructor(
    limits: BacklogLimits,
    private readonly events: HubEvents = {},
    createBroker: BrokerFactory = localBroker(),
  ) {
    this.backlog = new BacklogBudget(limits.maxBacklog, limits.maxBacklogTotal, (cut, total) =>
      events.overBacklogTotal?.(cut, total),
    );
    this.broker = createBroker(
      (channel, message, id) => this.deliver(channel, message, id),
      (channel, reason, position) => this.gap(channel, reason, position),
    );
    this.admission = new Admission(this.broker, (channel) => this.hasSubscribers(channel));
  }

  /** Adds a transport's group of subscribers; its file does this once, as the server starts. */
  group<S>(name: string, transport: Transport<S>): SubscriberGroup<S> {
    const group = new SubscriberGroup(name, transport, this);
    this.groups.push(group as SubscriberGroup<unknown>);
    return group;
  }

  /**
   * Admits a new subscriber of `channel` through a door (see admission.ts): the door's answer, synchronously on
   * a single node, or a promise of it in cluster mode while the broker subscribes to the channel.
   */
  admit<T>(channel: string, door: Door<T>): T | Promise<T> {
    return this.admission.admit(channel, door);
  }

  /** From the groups: set once the hub is shutting down. */
  get closing(): { code: number; reason: string } | undefined {
    return this.shutdown;
  }

  /** Bytes a subscriber may fall behind before it is cut off (--max-backlog). */
  get maxBacklog(): number {
    return this.backlog.maxBacklog;
  }

  /** A transport cut off a subscriber for passing --max-backlog. */
  slowSubscriber(channel: string): void {
    this.events.slowSubscriber?.(channel);
  }

  /** From the groups: a subscriber left. */
  left(channel: string, slow: boolean, emptied: boolean): void {
    if (slow) this.counters.slowSubscribers++;
    if (emptied) this.admission.left(channel);
  }

  /** Channels with a subscriber on this node; asked at a scrape, not per message. */
  get channelCount(): number {
    let count = 0;
    this.groups.forEach((group, i) => {
      if (i === 0) count += group.channelCount;
      else for (const channel of group.channelNames()) if (!this.inEarlierGroup(channel, i)) count++;
    });
    return count;
  }

  private inEarlierGroup(channel: string, index: number): boolean {
    for (let i = 0; i < index; i++) if (this.groups[i]?.has(channel)) return true;
    return false;
  }

  /** Subscribers of one transport, by its group's name. */
  subscribers(transport: string): number {
    let count = 0;
    for (const group of this.groups) if (group.name === transport) count += group.size;
    return count;
  }

  get websockets(): number {
    return this.subscribers(WEBSOCKETS);
  }

  /** Server-Sent Events subscribers. */
  get eventStreams(): number {
    return this.subscribers(EVENT_STREAMS);
  }

  subscriberCount(channel: string): number {
    let count = 0;
    for (const group of this.groups) count += group.count(channel);
    return count;
  }

  private hasSubscribers(channel: string): boolean {
    return this.groups.some((group) => group.has(channel));
  }

  /**
   * Why a new subscriber or message cannot be taken now (cluster mode, Redis away), in one line; undefined
   * when it can.
   */
  get unavailable(): string | undefined {
    return this.broker.problem;
  }

  /**
   * Why a publish was refused, for the client: the broker's problem, or the broker's own one-line refusal (Redis's
   * reason, such as OOM or NOPERM), never a library's raw error.
   */
  refusedBecause(error?: unknown): string {
    if (this.broker.problem !== undefined) return this.broker.problem;
    return error instanceof BrokerUnavailable ? error.message : "redis did not take the message; try again";
  }

  /** Stops the broker's work for the node, at shutdown, after every subscriber was ended. */
  async close(): Promise<void> {
    this.admission.close();
    await this.broker.close();
  }

  /** Ends every subscriber of every transport, and any that joins from now on, as at shutdown. */
  closeAll(code: number, reason: string): void {
    this.shutdown = { code, reason };
    for (const group of this.groups) group.endAll(code, reason);
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
   * Two comparisons unless subscribers are so far behind that the message's copies would pass
   * --max-backlog-total: then it waits a turn (hold).
   */
  private deliver(channel: string, message: string, id: string | undefined): number {
    if (this.held !== undefined || this.backlog.wouldPass(message.length)) return this.hold(channel, message, id);
    return this.fanOut(channel, message, id);
  }

  /**
   * Holds a message, one copy, until the event loop has polled the sockets again, where the budget can tell the
   * stuck subscribers it would be copied into from the readers (backlog.ts); later messages wait behind it, in
   * order. Returns the subscribers it will go to, as a fan-out would.
   */
  private hold(channel: string, message: string, id: string | undefined): number {
    if (this.held === undefined) {
      this.held = [];
      setTimeout(this.release, HOLD_MS);
    }
    this.held.push({ channel, message, id });
    let subscribers = 0;
    for (const group of this.groups) subscribers += group.count(channel);
    return subscribers;
  }

  /** The held messages go out, in order, once the stuck subscribers they would be copied into are cut off. */
  private readonly release = () => {
    const held = this.held ?? [];
    this.held = undefined;
    let bytes = 0;
    for (const m of held) bytes += m.message.length;
    this.backlog.cutStuck(bytes);
    for (const m of held) this.fanOut(m.channel, m.message, m.id);
  };

  private fanOut(channel: string, message: string, id: string | undefined): number {
    let delivered = 0;
    const groups = this.groups;
    // An indexed loop: no iterator object on the per-message path.
    for (let i = 0; i < groups.length; i++)
      delivered += (groups[i] as SubscriberGroup<unknown>).deliver(channel, message, id);
    this.counters.sentMessages += delivered;
    // One comparison unless subscribers are so far behind that together they pass --max-backlog-total.
    this.backlog.enforce();
    return delivered;
  }

  /**
   * This node's subscribers of the channel missed messages that can no longer be given (cluster mode, after an
   * outage): each transport tells its own, if it can (SSE streams get a `gap` event, then the position at which
   * the channel rejoined, when given). Returns the number of subscribers that could not be told: websockets,
   * whose protocol has no such event.
   */
  private gap(channel: string, reason: GapReason, position: string | undefined): number {
    let untold = 0;
    for (const group of this.groups) untold += group.gap(channel, reason, position);
    return untold;
  }
}
