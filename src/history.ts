// A channel's recent messages, kept so that a subscriber coming back can be given exactly what it missed. This
// is the single node's history, in process; in cluster mode the same thing lives in Redis (redis-history.ts).
//
// Message ids are `INCARNATION-SEQUENCE`: the incarnation is drawn at random when a channel's history starts
// (at its first message, and again after it expired or was evicted), the sequence counts that history's
// messages from 1. So an id from before a restart, or from a history since forgotten, names an incarnation that
// no longer exists and is recognised as unknown, never taken for a place in today's history.

/** The history flags as the command line gives them (Config has them under these names). */
export interface HistoryFlags {
  /** --history: messages kept per channel, 0 for none. */
  history: number;
  /** --history-ttl, in seconds. */
  historyTtl: number;
  /** --history-memory, in bytes. */
  historyMemory: number;
}

/** The history the flags ask for, or undefined for none (--history 0). */
export function historySettings(flags: HistoryFlags): HistorySettings | undefined {
  if (flags.history === 0) return undefined;
  return { size: flags.history, ttlMs: flags.historyTtl * 1000, maxBytes: flags.historyMemory };
}

/** A kept message and its id. */
export interface Kept {
  id: string;
  message: string;
}

/**
 * What a subscriber is given as it joins, before the live messages: a gap to report first, if any; the kept
 * messages, oldest first; and its position, from which it can resume later.
 *
 * Coming back with the id of the last message it saw: the messages after it that are still kept (none when it
 * missed nothing). Or a gap: `unknown id` (an id of no history there now: the subscriber starts from the
 * channel's position), or `messages dropped` (some after it are no longer kept: it is given those still kept).
 */
export interface Resume {
  gap: GapReason | undefined;
  messages: Kept[];
  /**
   * The id of the channel's newest kept message, or, when it has kept none, a position that means "everything
   * this history keeps from now on": the id of the last message given, or what stands for it when none was.
   * Undefined only when history is off.
   */
  position: string | undefined;
}
export type GapReason = "unknown id" | "messages dropped";

/** What a subscriber coming back with an id is given when history is off: the id is unknown, nothing is kept. */
export const NO_HISTORY: Resume = { gap: "unknown id", messages: [], position: undefined };
/** What a new subscriber is given when history is off: nothing, and no position. */
export const NOTHING_KEPT: Resume = { gap: undefined, messages: [], position: undefined };

export interface HistorySettings {
  /** Messages kept per channel; 0 keeps none. */
  size: number;
  /** How long a channel's history is kept after its last message, in milliseconds. */
  ttlMs: number;
  /** Bytes all channels' histories may hold together; the least recently published are forgotten first. */
  maxBytes: number;
}

/** What one kept message is reckoned to cost beyond its text: the entry, its id, the ring slot. */
const ENTRY_OVERHEAD_BYTES = 96;
/** What a channel's history is reckoned to cost with nothing kept yet: the map entry, the record, its ring. */
const HISTORY_OVERHEAD_BYTES = 160;
/** How often expired histories are swept away, at most: a sweep walks only the oldest ones. */
const SWEEP_INTERVAL_MS = 1000;

interface ChannelHistory {
  incarnation: string;
  /**
   * Sequence number of the newest message; the oldest kept is `last - entries.length + 1`. 0 while nothing was
   * kept: `INCARNATION-0` is then the channel's position, and its first message will be `INCARNATION-1`.
   */
  last: number;
  entries: string[];
  bytes: number;
  expiresAt: number;
}

/** Parses an id into its incarnation and sequence; undefined for anything else. */
export function parseId(id: string): { incarnation: string; sequence: number } | undefined {
  const dash = id.lastIndexOf("-");
  if (dash <= 0) return undefined;
  const sequence = Number(id.slice(dash + 1));
  if (!Number.isSafeInteger(sequence) || sequence < 0 || !/^\d+$/.test(id.slice(dash + 1))) return undefined;
  return { incarnation: id.slice(0, dash), sequence };
}

export class LocalHistory {
  /** In order of last message, oldest first: Map keeps insertion order, and a publish moves a channel last. */
  private readonly channels = new Map<string, ChannelHistory>();
  private totalBytes = 0;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(private readonly settings: HistorySettings) {
    this.sweeper = setInterval(() => this.sweep(Date.now()), Math.min(SWEEP_INTERVAL_MS, settings.ttlMs));
    // The sweep frees memory; it is no reason to keep a process alive.
    this.sweeper.unref();
  }

  get bytes(): number {
    return this.totalBytes;
  }

  get channelCount(): number {
    return this.channels.size;
  }

  /** Keeps a message and returns its id. */
  add(channel: string, message: string): string {
    const now = Date.now();
    const history = this.current(channel, now) ?? this.start();
    this.channels.delete(channel);
    this.channels.set(channel, history);
    history.last++;
    history.expiresAt = now + this.settings.ttlMs;
    history.entries.push(message);
    const cost = message.length * 2 + ENTRY_OVERHEAD_BYTES;
    history.bytes += cost;
    this.totalBytes += cost;
    if (history.entries.length > this.settings.size) {
      const dropped = history.entries.shift() ?? "";
      const freed = dropped.length * 2 + ENTRY_OVERHEAD_BYTES;
      history.bytes -= freed;
      this.totalBytes -= freed;
    }
    this.bound(history);
    return `${history.incarnation}-${history.last}`;
  }

  /** What a subscriber that last saw `lastId` on `channel` is to be given. */
  since(channel: string, lastId: string): Resume {
    const id = parseId(lastId);
    const history = this.current(channel, Date.now());
    if (
      id === undefined ||
      history === undefined ||
      id.incarnation !== history.incarnation ||
      id.sequence > history.last
    )
      return { gap: "unknown id", messages: [], position: this.position(channel) };
    const oldest = history.last - history.entries.length + 1;
    // Dropped: the subscriber is told, then given what is still kept.
    if (id.sequence + 1 < oldest)
      return {
        gap: "messages dropped",
        messages: this.kept(history, history.entries.length),
        position: this.position(channel),
      };
    return {
      gap: undefined,
      messages: this.kept(history, history.last - id.sequence),
      position: this.position(channel),
    };
  }

  /** What a new subscriber asking for the newest `count` kept messages of `channel` is given (0: just its position). */
  latest(channel: string, count: number): Resume {
    const history = this.current(channel, Date.now());
    const messages = history === undefined ? [] : this.kept(history, count);
    return { gap: undefined, messages, position: this.position(channel) };
  }

  close(): void {
    clearInterval(this.sweeper);
  }

  /**
   * The channel's position: its newest kept message's id. A channel that has kept nothing is given a history
   * now, empty, so that its position `INCARNATION-0` names the place before its first message; an empty history
   * lasts --history-ttl after the last position it gave, as a history does after its last message.
   */
  private position(channel: string): string {
    const now = Date.now();
    let history = this.current(channel, now);
    if (history === undefined) {
      history = this.start();
      this.channels.set(channel, history);
      history.expiresAt = now + this.settings.ttlMs;
      this.bound(history);
    } else if (history.last === 0) {
      // Moved last, as a publish would: the sweep relies on the map's order being that of expiry.
      this.channels.delete(channel);
      this.channels.set(channel, history);
      history.expiresAt = now + this.settings.ttlMs;
    }
    return `${history.incarnation}-${history.last}`;
  }

  /** The newest `count` kept messages, oldest first, with their ids. */
  private kept(history: ChannelHistory, count: number): Kept[] {
    const from = Math.max(0, history.entries.length - count);
    const first = history.last - history.entries.length + 1;
    return history.entries.slice(from).map((message, i) => ({
      id: `${history.incarnation}-${first + from + i}`,
      message,
    }));
  }

  /** The channel's history if it has one that has not expired; an expired one is forgotten. */
  private current(channel: string, now: number): ChannelHistory | undefined {
    const history = this.channels.get(channel);
    if (history === undefined || history.expiresAt > now) return history;
    this.forget(channel, history);
    return undefined;
  }

  /** A new, empty history under a new incarnation, counted but not yet in the map. */
  private start(): ChannelHistory {
    this.totalBytes += HISTORY_OVERHEAD_BYTES;
    return { incarnation: newIncarnation(), last: 0, entries: [], bytes: HISTORY_OVERHEAD_BYTES, expiresAt: 0 };
  }

  /**
   * Over the memory bound: forgets whole histories, least recently published first (never `kept`, unless it
   * alone is over the bound). Their ids become unknown, so their subscribers are told of a gap.
   */
  private bound(kept: ChannelHistory): void {
    for (const [name, oldest] of this.channels) {
      if (this.totalBytes <= this.settings.maxBytes || oldest === kept) break;
      this.forget(name, oldest);
    }
  }

  private forget(channel: string, history: ChannelHistory): void {
    this.channels.delete(channel);
    this.totalBytes -= history.bytes;
  }

  /** Forgets the histories whose time is up; the oldest come first, so the walk stops at the first still kept. */
  private sweep(now: number): void {
    for (const [channel, history] of this.channels) {
      if (history.expiresAt > now) break;
      this.forget(channel, history);
    }
  }
}

/** 48 random bits in base 36: two histories never share one in practice. */
function newIncarnation(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  let n = 0;
  for (const b of bytes) n = n * 256 + b;
  return n.toString(36);
}
