// Which channels this node is subscribed to in Redis, as a state machine of its own: pure logic, fed with events
// (the hub wants or no longer wants a channel, the subscriber connection came or went, Redis answered a
// SUBSCRIBE), answering with the commands to send. It knows neither ioredis nor the hub; redis-broker.ts wires
// it to both, and its tests drive it directly (test/redis-subscriptions.test.ts).
//
// The set of WANTED channels is the single source of truth: re-subscribing after a reconnect sends exactly it,
// and the metrics count it. Everything else here (what was sent on the current connection, what Redis
// confirmed, who waits) is bookkeeping about the current connection, and is forgotten with it.

import { ChannelWaiters } from "./channel-waiters.ts";

/** One SUBSCRIBE to send; its reply is to be reported with `subscribed` or `refused` and this batch number. */
export interface SubscribeCommand {
  readonly batch: number;
  readonly channels: readonly string[];
}

/** What a flush asks to send, in this order: every UNSUBSCRIBE, then every SUBSCRIBE. */
export interface Commands {
  readonly unsubscribe: readonly (readonly string[])[];
  readonly subscribe: readonly SubscribeCommand[];
}

export interface SubscriptionEvents {
  /** The wanted set changed: call `flush` soon, once for every change made meanwhile (the broker: next turn). */
  flushSoon(): void;
  /** After a (re)connection, Redis confirmed every channel that was wanted then: the node hears them all. */
  ready(): void;
}

/** Channels per SUBSCRIBE or UNSUBSCRIBE command: one command for thousands, yet no single huge reply. */
export const CHANNELS_PER_COMMAND = 1000;

const NOTHING: Commands = { unsubscribe: [], subscribe: [] };

export class Subscriptions {
  /** Channels this node has local subscribers for, or is about to: what Redis should have us subscribed to. */
  private readonly wanted = new Set<string>();
  /** Channels whose last command sent on the current connection was SUBSCRIBE. */
  private readonly sent = new Set<string>();
  /** Channels Redis has confirmed on the current connection. */
  private readonly confirmed = new Set<string>();
  /** For each channel, the SUBSCRIBE batch that last named it: only that batch's reply decides for it. */
  private readonly lastBatch = new Map<string, number>();
  /** The channels of each SUBSCRIBE sent on the current connection and not yet answered. */
  private readonly inFlight = new Map<number, readonly string[]>();
  /** The re-subscribing batches of the current connection not yet answered: ready once none is left. */
  private readonly resubscribing = new Set<number>();
  private readonly waiters = new ChannelWaiters();
  /** Channels whose wanted state changed since the last flush. */
  private readonly changed = new Set<string>();
  private batch = 0;
  private connected = false;
  private resubscribed = false;

  constructor(private readonly events: SubscriptionEvents) {}

  /** Wanted channels: the figure the metrics show and re-subscribing sends. */
  get size(): number {
    return this.wanted.size;
  }

  /** Connected, and every channel wanted at the connection confirmed by Redis. */
  get ready(): boolean {
    return this.connected && this.resubscribed;
  }

  wants(channel: string): boolean {
    return this.wanted.has(channel);
  }

  /**
   * The node is to hear this channel: undefined if Redis already confirmed it on this connection, else a
   * promise that settles with the SUBSCRIBE that decides it (rejected if refused or the connection is lost).
   */
  want(channel: string): Promise<void> | undefined {
    this.wanted.add(channel);
    if (this.confirmed.has(channel) && this.sent.has(channel)) return undefined;
    this.change(channel);
    return this.waiters.wait(channel);
  }

  /** The node no longer needs this channel. Anyone still waiting for it is told it was given up. */
  unwant(channel: string): void {
    if (!this.wanted.delete(channel)) return;
    this.waiters.settle(channel, new Error(`gave up subscribing to ${JSON.stringify(channel)}`));
    this.change(channel);
  }

  /**
   * What changed since the last flush, as commands for the current connection: nothing while there is none
   * (`connected` then sends whatever is wanted by that time).
   */
  flush(): Commands {
    if (!this.connected) {
      this.changed.clear();
      return NOTHING;
    }
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    for (const channel of this.changed) {
      const want = this.wanted.has(channel);
      if (want && !this.sent.has(channel)) subscribe.push(channel);
      else if (!want && this.sent.has(channel)) unsubscribe.push(channel);
    }
    this.changed.clear();
    for (const channel of unsubscribe) {
      this.sent.delete(channel);
      this.confirmed.delete(channel);
      this.lastBatch.delete(channel);
    }
    return { unsubscribe: chunks(unsubscribe), subscribe: chunks(subscribe).map((c) => this.send(c)) };
  }

  /**
   * A subscriber connection is ready: every wanted channel is to be subscribed on it. `ready` is told once
   * Redis has confirmed them all (at once if none is wanted).
   */
  connect(): SubscribeCommand[] {
    this.connected = true;
    this.resubscribed = false;
    // Whatever changed before is in the wanted set, which is sent whole.
    this.changed.clear();
    const commands = chunks([...this.wanted]).map((c) => this.send(c));
    for (const command of commands) this.resubscribing.add(command.batch);
    this.checkResubscribed();
    return commands;
  }

  /** The subscriber connection is gone, and every subscription with it; whoever waits is told `error`. */
  disconnect(error: Error): void {
    this.connected = false;
    this.resubscribed = false;
    this.sent.clear();
    this.confirmed.clear();
    this.lastBatch.clear();
    this.inFlight.clear();
    this.resubscribing.clear();
    this.waiters.settleAll(error);
  }

  /** Redis confirmed SUBSCRIBE `batch`. A reply from a connection since lost is ignored. */
  subscribed(batch: number): void {
    const channels = this.inFlight.get(batch);
    if (channels === undefined) return;
    this.inFlight.delete(batch);
    for (const channel of channels) {
      // A later UNSUBSCRIBE or SUBSCRIBE of the channel, sent after this one, decides instead.
      if (this.lastBatch.get(channel) !== batch || !this.sent.has(channel)) continue;
      this.confirmed.add(channel);
      this.waiters.settle(channel, undefined);
    }
    if (this.resubscribing.delete(batch)) this.checkResubscribed();
  }

  /**
   * Redis refused SUBSCRIBE `batch` (its reply was an error; the connection stays). Redis refuses the whole
   * command for one channel it may not give (ACL), so a refused command of several channels is tried again one
   * channel each: returned, to send now. A channel refused alone is left as if never asked: not wanted, not sent,
   * and everyone waiting for it told `error`.
   */
  refused(batch: number, error: Error): SubscribeCommand[] {
    const channels = this.inFlight.get(batch);
    if (channels === undefined) return [];
    this.inFlight.delete(batch);
    const decided = channels.filter((channel) => this.lastBatch.get(channel) === batch);
    const resubscribing = this.resubscribing.delete(batch);
    if (channels.length > 1) {
      const retries = decided.map((channel) => this.send([channel]));
      if (resubscribing) {
        for (const retry of retries) this.resubscribing.add(retry.batch);
        this.checkResubscribed();
      }
      return retries;
    }
    for (const channel of decided) {
      this.lastBatch.delete(channel);
      this.sent.delete(channel);
      this.wanted.delete(channel);
      this.waiters.settle(channel, error);
    }
    if (resubscribing) this.checkResubscribed();
    return [];
  }

  private change(channel: string): void {
    if (this.changed.size === 0) this.events.flushSoon();
    this.changed.add(channel);
  }

  private send(channels: string[]): SubscribeCommand {
    const batch = ++this.batch;
    for (const channel of channels) {
      this.sent.add(channel);
      this.lastBatch.set(channel, batch);
    }
    this.inFlight.set(batch, channels);
    return { batch, channels };
  }

  private checkResubscribed(): void {
    if (this.resubscribed || !this.connected || this.resubscribing.size > 0) return;
    this.resubscribed = true;
    this.events.ready();
  }
}

function chunks(channels: string[]): string[][] {
  const result: string[][] = [];
  for (let i = 0; i < channels.length; i += CHANNELS_PER_COMMAND) {
    result.push(channels.slice(i, i + CHANNELS_PER_COMMAND));
  }
  return result;
}
