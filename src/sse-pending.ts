// SSE events on their way to a channel's streams, gathered so that a busy channel's events reach each stream
// several to a write. Almost all an SSE delivery costs the server is the kernel's: one send, and on loopback
// or a LAN the receiving TCP's work done in the sender's time, per socket and per write, whatever the bytes.
// Bun's direct stream already joins the writes one JavaScript callback makes to a stream into one send (its
// sink flushes once the callback returns), but a publisher's frames, a POST or a Redis reply each come in a
// callback of their own: at 300 messages/s, one send per event per subscriber.
//
// So, much as TCP's Nagle algorithm does for small segments, a busy channel's events wait a little to go out
// together. (nginx turns Nagle off only once a connection goes keep-alive, so a streamed answer has it on: that is
// what makes Nchan's EventSource cheaper per delivery at high rates, and its latency higher.) An event goes out at
// the end of the turn of the event loop it was published in, with whatever else the turn published to the
// channel, unless the channel is busy: its events have been coming less than BUSY_GAP_MS apart, on average over
// the last few. Then it waits for the end of the channel's window, at most PENDING_WINDOW_MS after it opened at an
// earlier write, and goes out with every event published meanwhile. A channel publishing less than one event per
// BUSY_GAP_MS gets each at once, as before, even when two come close together now and then; a busier one waits at
// most a window for its events, and pays one send per window per subscriber instead of one per event.

/** One event's bytes, and its message's id if it has one. */
export interface PendingEvent {
  bytes: Uint8Array;
  id: string | undefined;
}

/** What a channel's events are written to: a stream, which still decides per event (history, backlog, end). */
export interface EventTarget {
  send(bytes: Uint8Array, id: string | undefined): boolean;
  /** Several events, `joined` their bytes end to end: one write where the stream need not look at each. */
  sendJoined(joined: Uint8Array, events: readonly PendingEvent[]): boolean;
}

/**
 * How long a busy channel's events wait at most to go out together: at 300 messages/s three to a write. Short, so
 * that a busy channel's latency grows by at most this (measured: p99 28 ms with a 20 ms window at 100 and 300
 * messages/s, where Nchan's EventSource had 9 to 40 ms at 100).
 */
export const PENDING_WINDOW_MS = 10;
/**
 * A channel is busy while its events come closer together than this on average: from about 200 events/s. Half the
 * window, so that a busy channel's window gathers at least two events. A channel at 100 events/s is not held at
 * all: its events cost less than Nchan's written one by one (0.67 to 0.88 × Nchan's CPU per delivery in the
 * benchmark before this file), and holding them would only add latency (p99 10 ms to 28 ms with a 20 ms window).
 */
export const BUSY_GAP_MS = 5;
/**
 * The average gap moves a quarter of the way to each new one: it follows the last few, so a pair of events that
 * come close together once (a publisher's timer that fired late) does not make a channel busy.
 */
const GAP_SMOOTHING = 4;
/**
 * A longer gap counts as this long: a long pause does not take a channel's average out of reach, so a burst after
 * it is gathered within a few events. Twice the window: a channel publishing about once a window but unevenly (two
 * close together, then a double gap) averages a window, and is not held.
 */
const LONGEST_GAP_MS = PENDING_WINDOW_MS * 2;
/**
 * A channel's pending events are written once they come to this many bytes: past it a send's own cost is small
 * beside the copying, and large messages are checked against the backlog budget one write at a time.
 */
export const PENDING_MAX_BYTES = 16 * 1024;

interface Pending<S> {
  channel: string;
  /** The channel's streams: the hub's own set, so that a stream that leaves meanwhile is skipped. */
  streams: ReadonlySet<S>;
  /** Events not yet written, in publishing order, and their bytes. */
  events: PendingEvent[];
  bytes: number;
  /** When the last event was published (performance.now()), and the average gap between events, in ms. */
  lastEventAt: number;
  gapMs: number;
  /** When the window opened: the write it started at. */
  openedAt: number;
  /** When events were last written. */
  writtenAt: number;
  /** The end of the window: a busy channel's events wait for it; a channel quiet for a window is forgotten. */
  window: ReturnType<typeof setTimeout> | undefined;
  /** Whether the events go out at the end of this turn. */
  soon: boolean;
}

export class PendingEvents<S extends EventTarget> {
  /** Channels with events waiting or a window open: a channel is forgotten after a window with no event. */
  private readonly channels = new Map<string, Pending<S>>();
  /** Channels whose events go out at the end of this turn. */
  private soon: Pending<S>[] = [];
  private readonly writeSoon = () => {
    const soon = this.soon;
    this.soon = [];
    for (const pending of soon) {
      pending.soon = false;
      if (this.channels.get(pending.channel) === pending) this.write(pending);
    }
  };

  constructor(
    /** Told after each write of a channel's events: the backlog budget looks at what they left behind. */
    private readonly afterWrite: () => void,
  ) {}

  /** Adds one event for the channel's `streams` (the set the hub keeps for it), in publishing order. */
  add(channel: string, streams: ReadonlySet<S>, bytes: Uint8Array, id: string | undefined): void {
    const now = performance.now();
    let pending = this.channels.get(channel);
    // The channel emptied and was joined again since: the old set of streams is done with.
    if (pending !== undefined && pending.streams !== streams) {
      this.forget(pending);
      pending = undefined;
    }
    if (pending === undefined) {
      pending = {
        channel,
        streams,
        events: [],
        bytes: 0,
        lastEventAt: now,
        // A channel starts quiet.
        gapMs: LONGEST_GAP_MS,
        openedAt: now,
        writtenAt: now,
        window: undefined,
        soon: false,
      };
      this.channels.set(channel, pending);
    }
    pending.events.push({ bytes, id });
    pending.bytes += bytes.byteLength;
    pending.gapMs += (Math.min(now - pending.lastEventAt, LONGEST_GAP_MS) - pending.gapMs) / GAP_SMOOTHING;
    pending.lastEventAt = now;
    const busy = pending.gapMs < BUSY_GAP_MS;
    if (pending.bytes >= PENDING_MAX_BYTES) {
      this.write(pending);
      return;
    }
    // Busy, with a window open: the event goes out at its end, with the others published meanwhile.
    if ((busy && pending.window !== undefined) || pending.soon) return;
    pending.soon = true;
    if (this.soon.length === 0) setImmediate(this.writeSoon);
    this.soon.push(pending);
  }

  /**
   * Writes what the channel has pending now, before anything that must come after it: a stream that joins (it
   * must not be given what was published before it), a stream that ends (what was published before goes out
   * first).
   */
  flush(channel: string): void {
    const pending = this.channels.get(channel);
    if (pending !== undefined) this.write(pending);
  }

  /** Writes everything pending, and forgets every channel (shutdown). */
  stop(): void {
    for (const pending of [...this.channels.values()]) this.forget(pending);
    this.soon = [];
  }

  /** Writes the pending events; the first write after a window opens the next one. */
  private write(pending: Pending<S>): void {
    if (pending.events.length === 0) return;
    pending.writtenAt = performance.now();
    if (pending.window === undefined) this.open(pending, PENDING_WINDOW_MS);
    this.send(pending);
  }

  private open(pending: Pending<S>, ms: number): void {
    pending.openedAt = pending.writtenAt;
    pending.window = setTimeout(() => this.windowEnds(pending), ms);
  }

  private windowEnds(pending: Pending<S>): void {
    pending.window = undefined;
    if (pending.events.length > 0) {
      this.write(pending);
      return;
    }
    // Events went out at once during the window: the next window runs from the last of those writes (a timer
    // can fire late on a busy node: then that window is over too).
    const left = PENDING_WINDOW_MS - (performance.now() - pending.writtenAt);
    if (pending.writtenAt > pending.openedAt && left > 0) this.open(pending, left);
    // Quiet for a whole window: the next event goes out at once.
    else this.channels.delete(pending.channel);
  }

  private forget(pending: Pending<S>): void {
    if (pending.window !== undefined) clearTimeout(pending.window);
    pending.window = undefined;
    this.channels.delete(pending.channel);
    this.send(pending);
  }

  private send(pending: Pending<S>): void {
    const events = pending.events;
    if (events.length === 0) return;
    pending.events = [];
    const only = events.length === 1 ? events[0] : undefined;
    if (only !== undefined) for (const stream of pending.streams) stream.send(only.bytes, only.id);
    else {
      // The events' bytes end to end, built once for every stream: one call into Bun per stream, not one per event.
      const joined = new Uint8Array(pending.bytes);
      let at = 0;
      for (const event of events) {
        joined.set(event.bytes, at);
        at += event.bytes.byteLength;
      }
      for (const stream of pending.streams) stream.sendJoined(joined, events);
    }
    pending.bytes = 0;
    this.afterWrite();
  }
}
