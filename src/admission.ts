// The one way in for a subscriber, whatever its door (websocket upgrade, SSE GET, any later one), as
// Centrifuge's node.addSubscription: the broker's availability, the broker's subscribe on a channel's first
// subscriber on this node (cluster mode: open means subscribed), the door's own opening, during which the
// subscriber joins its transport's group (subscribers.ts), and the release afterwards, whether the door opened
// or failed (an upgrade Bun refused, a client gone meanwhile). Here too lives the other half: a channel left
// with no subscriber is unsubscribed from the broker after a delay, unless someone joins first.
//
// A door asks whoever decides access first, then admits; what comes after joining (a resume from the history)
// is the door's own, inside `open`, so nothing published meanwhile falls between the two.
//
// On a single node there is nothing to prepare: admission is synchronous, keeps nothing, and costs no promise.

import type { Broker } from "./broker.ts";

/**
 * After a channel's last subscriber leaves, how long the node stays subscribed to it in the broker: a page
 * reloaded or a client reconnecting joins again within this, without an UNSUBSCRIBE and SUBSCRIBE to Redis.
 */
export const UNSUBSCRIBE_DELAY_MS = 500;

/** A door's two answers to an admission. */
export interface Door<T> {
  /**
   * Opens the subscriber, which joins its group during this call (Bun runs a websocket's open inside
   * server.upgrade), or fails to; returns the door's answer either way.
   */
  open(): T;
  /** The answer when the channel cannot be joined now (cluster mode, Redis away), given why in one line. */
  unavailable(reason: string): T;
}

export class Admission {
  /** Doors opening per channel, waiting for the broker or opening now: the channel must not be dropped. */
  private readonly joining = new Map<string, number>();
  /** Channels left empty, and the timer that tells the broker, unless a subscriber joins first. */
  private readonly emptied = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(
    private readonly broker: Broker,
    /** Whether the channel has a subscriber on this node, of any transport. */
    private readonly hasSubscribers: (channel: string) => boolean,
  ) {}

  /**
   * Admits a subscriber of `channel` through `door`: the door's answer, at once on a single node and whenever
   * the channel is already carried, or once the broker has subscribed to it.
   */
  admit<T>(channel: string, door: Door<T>): T | Promise<T> {
    // Cluster mode with Redis away: a new subscriber could not be promised the channel's messages.
    const problem = this.broker.problem;
    if (problem !== undefined) return door.unavailable(problem);
    // A single node's channels cost nothing until a message comes.
    if (this.broker.cluster === undefined) return door.open();
    this.reserve(channel);
    const ready = this.hasSubscribers(channel) ? undefined : this.broker.subscribe(channel);
    if (ready === undefined) return this.open(channel, door);
    return ready.then(
      () => this.open(channel, door),
      (error: Error) => {
        this.release(channel);
        return door.unavailable(error.message);
      },
    );
  }

  /** A channel lost its last subscriber of one transport: unsubscribed after a delay if it has none at all. */
  left(channel: string): void {
    if (this.broker.cluster !== undefined) this.leftEmpty(channel);
  }

  /** Stops the delayed unsubscribes, at shutdown: the broker closes anyway. */
  close(): void {
    for (const timer of this.emptied.values()) clearTimeout(timer);
    this.emptied.clear();
  }

  private open<T>(channel: string, door: Door<T>): T {
    try {
      return door.open();
    } finally {
      this.release(channel);
    }
  }

  /** Keeps the channel subscribed while a door opens; a delayed unsubscribe is called off. */
  private reserve(channel: string): void {
    const timer = this.emptied.get(channel);
    if (timer !== undefined) {
      clearTimeout(timer);
      this.emptied.delete(channel);
    }
    this.joining.set(channel, (this.joining.get(channel) ?? 0) + 1);
  }

  /** The door that `reserve` was for has opened or failed: if nobody joined, the channel is left empty. */
  private release(channel: string): void {
    const count = (this.joining.get(channel) ?? 1) - 1;
    if (count > 0) this.joining.set(channel, count);
    else this.joining.delete(channel);
    this.leftEmpty(channel);
  }

  /** A channel with no subscriber and no door opening is unsubscribed from the broker, after a delay. */
  private leftEmpty(channel: string): void {
    if (this.hasSubscribers(channel) || this.joining.has(channel) || this.emptied.has(channel)) return;
    this.emptied.set(
      channel,
      setTimeout(() => {
        this.emptied.delete(channel);
        if (!this.hasSubscribers(channel) && !this.joining.has(channel)) this.broker.unsubscribe(channel);
      }, UNSUBSCRIBE_DELAY_MS),
    );
  }
}
