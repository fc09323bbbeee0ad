// A hub's subscribers of one transport, per channel: the websockets (websocket.ts), the Server-Sent Events
// streams (sse.ts), and any later kind. The hub keeps one group per transport and, for every message, asks each
// group to reach its subscribers of the channel its own way: websockets through Bun's native pub/sub, with no
// JavaScript per subscriber; streams with the event's bytes built once. A group with no subscriber at all pays
// one comparison per message.

import type { GapReason } from "./history.ts";

/** How one transport reaches its subscribers; the transport's own file gives it to the hub. */
export interface Transport<S> {
  /** Hands a message to a channel's subscribers of this transport (never none); returns how many. */
  fanOut(channel: string, subscribers: ReadonlySet<S>, message: string, id: string | undefined): number;
  /** Ends one subscriber, at shutdown (or as it opens during shutdown): it reconnects, elsewhere if need be. */
  end(subscriber: S, code: number, reason: string): void;
  /** Whether the subscriber was cut off for its backlog; counted as it leaves. */
  slow(subscriber: S): boolean;
  /**
   * Tells a channel's subscribers of this transport (never none) that they missed messages that can no longer be
   * given (cluster mode, after an outage), and, when given, the position at which the channel rejoined. A
   * transport whose protocol has no way to say so leaves it out.
   */
  gap?(channel: string, subscribers: ReadonlySet<S>, reason: GapReason, position: string | undefined): void;
}

/** What a group asks of the hub that holds it. */
export interface GroupOwner {
  /** Set once the hub is shutting down: a subscriber joining from then on is ended at once. */
  readonly closing: { readonly code: number; readonly reason: string } | undefined;
  /** A subscriber left; `emptied` when its channel has no subscriber of this transport any more. */
  left(channel: string, slow: boolean, emptied: boolean): void;
}

export class SubscriberGroup<S> {
  /** Subscribers per channel: Bun's own `subscriberCount` walks its topic tree, too slow to ask per message. */
  private readonly channels = new Map<string, Set<S>>();
  private total = 0;

  constructor(
    /** The transport's name, for the metrics and the log: `websocket`, `sse`. */
    readonly name: string,
    private readonly transport: Transport<S>,
    private readonly owner: GroupOwner,
  ) {}

  /** Subscribers of this transport, over all channels. */
  get size(): number {
    return this.total;
  }

  /** Channels with at least one subscriber of this transport. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** The channels with at least one subscriber of this transport. */
  channelNames(): IterableIterator<string> {
    return this.channels.keys();
  }

  has(channel: string): boolean {
    return this.channels.has(channel);
  }

  count(channel: string): number {
    return this.channels.get(channel)?.size ?? 0;
  }

  /**
   * Adds a subscriber, from a door's `open` (see admission.ts); false, and the subscriber ended, when the hub is
   * shutting down.
   */
  join(channel: string, subscriber: S): boolean {
    const closing = this.owner.closing;
    if (closing !== undefined) {
      this.transport.end(subscriber, closing.code, closing.reason);
      return false;
    }
    let subscribers = this.channels.get(channel);
    if (subscribers === undefined) {
      subscribers = new Set();
      this.channels.set(channel, subscribers);
    }
    subscribers.add(subscriber);
    this.total++;
    return true;
  }

  /** Removes a subscriber; false if it was not there (it never joined, or left already). */
  leave(channel: string, subscriber: S): boolean {
    const subscribers = this.channels.get(channel);
    if (subscribers?.delete(subscriber) !== true) return false;
    this.total--;
    const emptied = subscribers.size === 0;
    if (emptied) this.channels.delete(channel);
    this.owner.left(channel, this.transport.slow(subscriber), emptied);
    return true;
  }

  deliver(channel: string, message: string, id: string | undefined): number {
    // One comparison when nobody on the node subscribes by this transport.
    if (this.total === 0) return 0;
    const subscribers = this.channels.get(channel);
    return subscribers === undefined ? 0 : this.transport.fanOut(channel, subscribers, message, id);
  }

  /** Tells a channel's subscribers of a gap (see Transport.gap); returns how many could not be told. */
  gap(channel: string, reason: GapReason, position: string | undefined): number {
    const subscribers = this.channels.get(channel);
    if (subscribers === undefined) return 0;
    if (this.transport.gap === undefined) return subscribers.size;
    this.transport.gap(channel, subscribers, reason, position);
    return 0;
  }

  /** Ends every subscriber, at shutdown; each leaves as it ends (or once it has closed). */
  endAll(code: number, reason: string): void {
    for (const subscribers of [...this.channels.values()]) {
      for (const subscriber of [...subscribers]) this.transport.end(subscriber, code, reason);
    }
  }
}
