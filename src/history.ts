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
 * What a subscriber coming back with the id of the last message it saw is given: the messages after it that
 * are still kept (none when it missed nothing), or a gap: the id is unknown, or messages after it were dropped.
 */
export type Resume = { kind: "messages"; messages: Kept[] } | { kind: "gap"; reason: GapReason };
export type GapReason = "unknown id" | "messages dropped";

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
/** How often expired histories are swept away, at most: a sweep walks only the oldest ones. */
const SWEEP_INTERVAL_MS = 1000;

interface ChannelHistory {
  incarnation: string;
  /** Sequence number of the newest message; the oldest kept is `last - entries.length + 1`. */
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
    let history = this.channels.get(channel);
    if (history !== undefined && history.expiresAt <= now) {
      this.forget(channel, history);
      history = undefined;
    }
    if (history === undefined) {
      history = { incarnation: newIncarnation(), last: 0, entries: [], bytes: 0, expiresAt: 0 };
    } else {
      this.channels.delete(channel);
    }
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
    // Over the memory bound: forget whole histories, least recently published first (never the one just added,
    // unless it alone is over the bound). Their ids become unknown, so their subscribers are told of a gap.
    for (const [name, oldest] of this.channels) {
      if (this.totalBytes <= this.settings.maxBytes || oldest === history) break;
      this.forget(name, oldest);
    }
    return `${history.incarnation}-${history.last}`;
  }

  /** What a subscriber that last saw `lastId` on `channel` is to be given. */
  since(channel: string, lastId: string): Resume {
    const id = parseId(lastId);
    const history = this.channels.get(channel);
    if (id === undefined || history === undefined || history.expiresAt <= Date.now()) {
      return { kind: "gap", reason: "unknown id" };
    }
    if (id.incarnation !== history.incarnation || id.sequence > history.last)
      return { kind: "gap", reason: "unknown id" };
    const oldest = history.last - history.entries.length + 1;
    if (id.sequence + 1 < oldest) return { kind: "gap", reason: "messages dropped" };
    const from = id.sequence + 1 - oldest;
    const messages = history.entries.slice(from).map((message, i) => ({
      id: `${history.incarnation}-${id.sequence + 1 + i}`,
      message,
    }));
    return { kind: "messages", messages };
  }

  close(): void {
    clearInterval(this.sweeper);
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
