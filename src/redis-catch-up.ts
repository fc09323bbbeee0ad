// With --history, no message is lost while a node is away from Redis. Redis pub/sub forgets what it published
// while a node's subscriber connection was down (a network cut, a Redis pause, Redis closing a connection too far
// behind), but every message is also in its channel's stream (redis-history.ts). So the node keeps, per channel
// it serves, the id of the last message it delivered; when its subscriber connection is lost it starts holding
// what comes live on those channels, and once it has subscribed again it reads from each stream what came after
// that id, delivers it, then the live messages held meanwhile, each id once: its subscribers, connected
// throughout, miss nothing and see one order. What a stream no longer holds is a gap: an SSE `gap` event (then the
// position at which the channel rejoined, when no message follows to carry one), and for websockets (whose
// protocol has no such event) a loss, counted and logged.
//
// While Redis is healthy this costs one Map write per batch of messages (the last id); nothing per subscriber.

import type { Deliver } from "./broker.ts";
import type { GapReason, Kept } from "./history.ts";
import type { CatchUpReply } from "./redis-history.ts";
import type { Pair } from "./redis-wire.ts";

/** Live messages one channel may hold while it catches up; past this it gives up catching up, with a gap. */
export const MAX_HELD_MESSAGES = 10_000;

export interface CatchUpParts {
  deliver: Deliver;
  /**
   * This node's subscribers of the channel missed messages that can no longer be given. `position` is where the
   * channel's stream stands after the gap, when no message delivered next carries one; else undefined.
   */
  gap(channel: string, reason: GapReason, position: string | undefined): void;
  /** The id of the stream's last message now, "" when it has none. */
  position(channel: string): Promise<string>;
  /**
   * What the stream holds after `lastId` ("" for all of it); undefined when Redis refused to say (out of memory,
   * no permission): a gap. A rejection means Redis is away, and the read is tried again with the next connection.
   */
  read(channel: string, lastId: string): Promise<CatchUpReply | undefined>;
  /** History's time to live: a stream gone after an outage this long may have taken messages with it. */
  ttlMs: number;
}

export class CatchUp {
  /**
   * Each channel the node follows, with the id of the last message delivered on it: "" when its stream was empty
   * when the node subscribed, undefined until its position is known.
   */
  private readonly lastIds = new Map<string, string | undefined>();
  /** Channels catching up, with the live messages that came meanwhile, in order. */
  private readonly held = new Map<string, Kept[]>();
  /** When each held channel was lost, for an outage long enough to outlast its stream. */
  private readonly lostAt = new Map<string, number>();
  /** Counts each channel's losses: a catch-up that spans one more is not done. */
  private readonly losses = new Map<string, number>();
  /** Channels whose stream is being read now: one read at a time per channel. */
  private readonly reading = new Set<string>();
  /**
   * Channels just caught up, with the last id the catch-up delivered. The stream is read on the command
   * connection and live messages come on the subscriber connection, so a message published just before the read
   * can be in the stream's reply and still be on its way live: it comes after the catch-up is done, and was
   * delivered already. Live messages up to this id are dropped; the first one past it ends the check.
   */
  private readonly caughtUpTo = new Map<string, string>();

  constructor(private readonly parts: CatchUpParts) {}

  /** True while some channel has not caught up: the node is not up yet. */
  get pending(): boolean {
    return this.held.size > 0;
  }

  /** True while this channel has not caught up. */
  holding(channel: string): boolean {
    return this.held.has(channel);
  }

  /** A batch from Redis, checked (redis-wire.ts): delivered now, or held while its channel catches up. */
  receive(channel: string, batch: Pair[]): void {
    if (this.held.size !== 0) {
      const held = this.held.get(channel);
      if (held !== undefined) {
        for (const [id, message] of batch) held.push({ id, message });
        if (held.length > MAX_HELD_MESSAGES) this.giveUp(channel, held);
        return;
      }
    }
    let first = 0;
    if (this.caughtUpTo.size !== 0) {
      const upTo = this.caughtUpTo.get(channel);
      if (upTo !== undefined) {
        while (first < batch.length && compareIds((batch[first] as Pair)[0], upTo) <= 0) first++;
        if (first === batch.length) return;
        this.caughtUpTo.delete(channel);
      }
    }
    const deliver = this.parts.deliver;
    for (let i = first; i < batch.length; i++) {
      const [id, message] = batch[i] as Pair;
      deliver(channel, message, id);
    }
    // Only channels the node follows: a message in flight after an UNSUBSCRIBE must not bring one back.
    if (this.lastIds.has(channel)) this.lastIds.set(channel, (batch[batch.length - 1] as Pair)[0]);
  }

  /** The node now hears this channel: learn where its stream stands, unless a message tells first. */
  follow(channel: string): void {
    if (this.lastIds.has(channel)) return;
    this.lastIds.set(channel, undefined);
    this.parts.position(channel).then(
      (id) => {
        if (this.lastIds.has(channel) && this.lastIds.get(channel) === undefined) this.lastIds.set(channel, id);
      },
      // Redis away: the channel has no position, and a loss now is a gap for it (see resume).
      () => {},
    );
  }

  /** The node no longer hears this channel. */
  forget(channel: string): void {
    this.lastIds.delete(channel);
    this.caughtUpTo.delete(channel);
    this.held.delete(channel);
    this.lostAt.delete(channel);
    this.losses.delete(channel);
  }

  /**
   * The node no longer hears these channels (by default every one it follows: the subscriber connection is lost;
   * on a Redis Cluster, the channels of one shard): from now on each holds what comes until it caught up. `since`
   * is when Redis was last heard, where the outage began: a silent cut is declared a loss seconds after it.
   */
  lost(since: number, channels: Iterable<string> = this.lastIds.keys()): void {
    for (const channel of channels) {
      if (!this.lastIds.has(channel)) continue;
      this.losses.set(channel, (this.losses.get(channel) ?? 0) + 1);
      if (this.held.has(channel)) continue;
      this.held.set(channel, []);
      this.lostAt.set(channel, since);
    }
  }

  /**
   * Once subscribed again: reads each held channel's stream (by default every one; on a Redis Cluster, those
   * heard again) and delivers what it missed, then what was held. Resolves true when those channels caught up;
   * false when some could not be read (Redis away again), to be tried again with the next subscription.
   */
  async resume(now: number, channels: Iterable<string> = this.held.keys()): Promise<boolean> {
    const reading = [...channels].filter((channel) => this.held.has(channel) && !this.reading.has(channel));
    await Promise.all(reading.map((channel) => this.catchUp(channel, now - (this.lostAt.get(channel) ?? now))));
    return reading.every((channel) => !this.held.has(channel));
  }

  private async catchUp(channel: string, outageMs: number): Promise<void> {
    this.reading.add(channel);
    try {
      await this.read(channel, outageMs);
    } finally {
      this.reading.delete(channel);
    }
  }

  private async read(channel: string, outageMs: number): Promise<void> {
    const lastId = this.lastIds.get(channel);
    if (lastId === undefined) {
      // Lost before the node knew where the stream stood: what came meanwhile cannot be told apart.
      const held = this.held.get(channel);
      if (held !== undefined) this.giveUp(channel, held);
      return;
    }
    const losses = this.losses.get(channel);
    let reply: CatchUpReply | undefined;
    try {
      reply = await this.parts.read(channel, lastId);
    } catch {
      return;
    }
    const held = this.held.get(channel);
    // Forgotten, or given up, while the stream was read.
    if (held === undefined) return;
    if (reply === undefined) {
      this.giveUp(channel, held);
      return;
    }
    // Lost again meanwhile: what was read is delivered, and the channel holds again for the next catch-up.
    const again = this.losses.get(channel) !== losses;
    if (again) this.held.set(channel, []);
    else {
      this.held.delete(channel);
      this.lostAt.delete(channel);
    }
    // What is new to this node, each id once: the stream's messages after lastId, then those held after them.
    const fresh: Kept[] = [];
    let last = lastId;
    for (const list of [reply.messages, held]) {
      for (const kept of list) {
        if (last !== "" && compareIds(kept.id, last) <= 0) continue;
        fresh.push(kept);
        last = kept.id;
      }
    }
    // A stream gone (or made anew, empty) where the node had a place: after an outage as long as the history's
    // TTL, it may have expired with messages the node never heard. Its position unchanged says nothing was.
    const expired =
      reply.status === "empty" && lastId !== "" && reply.position !== lastId && outageMs >= this.parts.ttlMs;
    const reason =
      reply.status === "dropped"
        ? "messages dropped"
        : reply.status === "unknown" || expired
          ? "unknown id"
          : undefined;
    // Nothing follows to carry an id: the channel's position now (an `empty` reply's) is where it rejoined.
    const position = fresh.length === 0 ? reply.position : undefined;
    if (reason !== undefined) this.parts.gap(channel, reason, position);
    const deliver = this.parts.deliver;
    for (const { id, message } of fresh) deliver(channel, message, id);
    this.lastIds.set(channel, position ?? last);
    // Live again: what the read gave may still come live too (caughtUpTo). Holding again, the next catch-up
    // tells them apart itself.
    if (!again && last !== "") this.caughtUpTo.set(channel, last);
  }

  /** Stops catching up a channel: a gap, then what it holds, delivered as it came. */
  private giveUp(channel: string, held: Kept[]): void {
    this.held.delete(channel);
    this.lostAt.delete(channel);
    // No position to give: the stream was not read. The held messages carry their own ids.
    this.parts.gap(channel, "messages dropped", undefined);
    for (const { id, message } of held) this.parts.deliver(channel, message, id);
    if (held.length > 0) this.lastIds.set(channel, held[held.length - 1]?.id);
  }
}

/**
 * Orders two stream ids, INCARNATION-SEQUENCE, both parts decimal: a later incarnation (a stream created
 * later) comes after every message of an earlier one.
 */
export function compareIds(a: string, b: string): number {
  const [aIncarnation = "", aSequence = ""] = a.split("-");
  const [bIncarnation = "", bSequence = ""] = b.split("-");
  return compareDecimal(aIncarnation, bIncarnation) || compareDecimal(aSequence, bSequence);
}

function compareDecimal(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
