// What subscribers that fall behind may cost the node: each one at most --max-backlog bytes queued in pinghub's
// process, and all of them together at most --max-backlog-total. A subscriber's backlog is what Bun holds for
// it beyond the kernel's socket buffers (a websocket's getBufferedAmount, a stream's bytes written since Bun
// said the socket was backed up): it is copied for each subscriber, so a herd of clients that stop reading
// would otherwise hold their number × --max-backlog, the readers waiting while it is copied.
//
// Nothing here runs per subscriber while subscribers keep up: a transport reports a backlog only when Bun has
// said a socket is backed up (publish's answer, a write's promise), and the budget is checked once per message.
//
// Past the total, the first to go are the subscribers seen stuck: behind at two checks with (next to) nothing
// sent in between, the two in different turns of the event loop (within one turn no socket can send: several messages
// published in one turn would make every subscriber look stuck). Size alone would not do: while a herd first
// fills its kernel buffers the node is busy, the readers' sockets (their kernel buffers small, since they read)
// back up too, and a reader can hold as much here as a member of the herd whose kernel buffers took most of it.
// A reader shows progress by the next turn; a socket that never reads never does.
//
// And the stuck go before the next message, not after it: server.publish copies a message into every socket
// that cannot take it, so a herd of 1000 seen stuck only after a 60 KB message has already cost 60 MB, and
// after each of the messages queued behind it in the same turn (a node that was busy takes several at once)
// another 60 MB. So when a message copied into everyone behind would pass the total (wouldPass), the hub holds
// it, one copy, until the sockets have been polled again (1 ms), where the stuck can be told from the readers; cutStuck cuts them, then the
// held messages go out in order. Longest stuck first, then furthest behind: a herd that stopped reading has not
// moved since it fell behind, while a reader the machine starves for a moment moved a turn or two ago; and one
// ever seen sending while behind goes after all that never were, however long ago it last moved.

/** A subscriber that is behind, as a transport reports it. */
export interface Backlogged {
  /** Bytes last known queued for it in this process; set through BacklogBudget.update only. */
  backlog: number;
  /** Whether nothing was sent between two of its checks in different turns; set through update only. */
  stuck: boolean;
  /** The turn of its last check; set through update only. */
  checkedTurn: number;
  /** The turn it last sent something, or fell behind; set through update only. */
  movedTurn: number;
  /** Whether it was ever seen sending while behind: a reader, however slow; set through update only. */
  moved: boolean;
  /**
   * Bytes queued for it now, for a transport that can look (a websocket's getBufferedAmount); without it, the
   * transport's own reports are all the budget knows.
   */
  measure?(): number;
  /** Drops its connection at once (a close would only queue behind the backlog); it is counted slow as it leaves. */
  cutOff(why: string): void;
}

/** Why a subscriber was cut off, for the log. */
export const OVER_MAX_BACKLOG = "cut off: over --max-backlog";
export const OVER_MAX_BACKLOG_TOTAL = "cut off: stuck longest when all backlogs together passed --max-backlog-total";

export class BacklogBudget {
  /** The sum of every subscriber's last known backlog: an upper bound, since a backlog only shrinks unseen. */
  total = 0;
  /** Subscribers cut off because the total passed its limit. */
  cutOffOverTotal = 0;
  private readonly behind = new Set<Backlogged>();
  /** Counts turns of the event loop, while anyone is behind: one setImmediate a turn at most. */
  private turn = 0;
  private turnCounted = false;
  private readonly nextTurn = () => {
    this.turn++;
    this.turnCounted = false;
  };

  constructor(
    /** Bytes one subscriber may fall behind (--max-backlog). */
    readonly maxBacklog: number,
    /** Bytes all subscribers together may fall behind (--max-backlog-total). */
    readonly maxTotal: number,
    /** Told after each cut of the subscribers stuck longest: how many, and the total before. */
    private readonly onOverTotal: (cut: number, total: number) => void = () => {},
  ) {}

  /** Subscribers with a backlog now. */
  get behindCount(): number {
    return this.behind.size;
  }

  /**
   * A subscriber's backlog is now `bytes` (0: drained, or gone); `progressed` unless the transport knows that
   * nothing left it since its last check.
   */
  update(subscriber: Backlogged, bytes: number, progressed = true): void {
    const wasBehind = subscriber.backlog > 0;
    this.total += bytes - subscriber.backlog;
    subscriber.backlog = bytes;
    if (bytes === 0 || progressed) {
      subscriber.stuck = false;
      subscriber.movedTurn = this.turn;
      if (wasBehind) subscriber.moved = true;
    } else if (subscriber.checkedTurn !== this.turn) subscriber.stuck = true;
    subscriber.checkedTurn = this.turn;
    if (bytes > 0) this.behind.add(subscriber);
    else this.behind.delete(subscriber);
  }

  /**
   * Whether a message `bytes` long (about: its length in UTF-16 units) would take all backlogs together past
   * --max-backlog-total if copied into every subscriber behind now. One comparison while no one is behind.
   */
  wouldPass(bytes: number): boolean {
    return this.behind.size > 0 && this.total + this.behind.size * bytes > this.maxTotal;
  }

  /**
   * Before messages held back by the hub (`bytes` in all) go out, once the sockets have been polled again:
   * those behind are looked at again, and the stuck ones are cut off, longest stuck first, until the total fits
   * with the messages copied into each stuck one left. Readers have moved since; a herd that stopped has not.
   */
  cutStuck(bytes: number): void {
    const before = this.total;
    for (const subscriber of this.behind) {
      if (subscriber.measure === undefined) continue;
      const now = subscriber.measure();
      // Moved: sent at least half of what it held. A member of a herd whose kernel buffers still take a trickle
      // (the kernel, short of memory for all their buffers, lets each a little at a time) has not.
      this.update(subscriber, now, now <= subscriber.backlog / 2);
    }
    const stuck = [...this.behind].filter((subscriber) => subscriber.stuck).sort(longestStuckFirst);
    let projected = this.total + stuck.length * bytes;
    let cut = 0;
    for (const subscriber of stuck) {
      if (projected <= this.maxTotal) break;
      projected -= subscriber.backlog + bytes;
      this.update(subscriber, 0);
      subscriber.cutOff(OVER_MAX_BACKLOG_TOTAL);
      cut++;
    }
    if (cut === 0) return;
    this.cutOffOverTotal += cut;
    this.onOverTotal(cut, before);
  }

  /**
   * Once per message, after its fan-out: past --max-backlog-total, the stuck subscribers are cut off until the
   * total fits again, longest stuck first, then furthest behind. A herd that stopped reading is then cut off as a
   * whole long before each of its members reaches --max-backlog, while a reader that keeps up, and so shows
   * progress, stays. Only past twice the total are subscribers not yet seen stuck cut off too, furthest behind
   * first: none has shown anything else yet.
   */
  enforce(): void {
    if (this.behind.size > 0 && !this.turnCounted) {
      this.turnCounted = true;
      setImmediate(this.nextTurn);
    }
    if (this.total <= this.maxTotal) return;
    const before = this.total;
    const behind = [...this.behind];
    let cut = this.cut(behind.sort(longestStuckFirst), this.maxTotal, true);
    if (this.total > this.maxTotal * 2) cut += this.cut(behind.sort(furthestFirst), this.maxTotal, false);
    if (cut === 0) return;
    this.cutOffOverTotal += cut;
    this.onOverTotal(cut, before);
  }

  private cut(order: Backlogged[], limit: number, stuckOnly: boolean): number {
    let cut = 0;
    for (const subscriber of order) {
      if (this.total <= limit) break;
      if (subscriber.backlog === 0 || (stuckOnly && !subscriber.stuck)) continue;
      // Counted out here, not when the transport reports it gone: a websocket's close comes later.
      this.update(subscriber, 0);
      subscriber.cutOff(OVER_MAX_BACKLOG_TOTAL);
      cut++;
    }
    return cut;
  }
}

/**
 * The order in which subscribers are cut: those never seen sending while behind before any seen doing so (a reader
 * the machine starved for a while can have moved longer ago than a herd that only just filled its kernel buffers),
 * then the one that moved longest ago, then the one furthest behind.
 */
function longestStuckFirst(a: Backlogged, b: Backlogged): number {
  return Number(a.moved) - Number(b.moved) || a.movedTurn - b.movedTurn || b.backlog - a.backlog;
}

function furthestFirst(a: Backlogged, b: Backlogged): number {
  return b.backlog - a.backlog;
}
