// What subscribers that fall behind may cost the node: each one at most --max-backlog bytes queued in pinghub's
// process, and all of them together at most --max-backlog-total. A subscriber's backlog is what Bun holds for
// it beyond the kernel's socket buffers (a websocket's getBufferedAmount, a stream's bytes written since Bun
// said the socket was backed up): it is copied for each subscriber, so a herd of clients that stop reading
// would otherwise hold their number × --max-backlog, the readers waiting while it is copied.
//
// Nothing here runs per subscriber while subscribers keep up: a transport reports a backlog only when Bun has
// said a socket is backed up (publish's answer, a write's promise), and the budget is checked once per message.

/** A subscriber that is behind, as a transport reports it. */
export interface Backlogged {
  /** Bytes last known queued for it in this process; set through BacklogBudget.update only. */
  backlog: number;
  /** Drops its connection at once (a close would only queue behind the backlog); it is counted slow as it leaves. */
  cutOff(why: string): void;
}

/** Why a subscriber was cut off, for the log. */
export const OVER_MAX_BACKLOG = "cut off: over --max-backlog";
export const OVER_MAX_BACKLOG_TOTAL = "cut off: furthest behind when all backlogs together passed --max-backlog-total";

export class BacklogBudget {
  /** The sum of every subscriber's last known backlog: an upper bound, since a backlog only shrinks unseen. */
  total = 0;
  /** Subscribers cut off because the total passed its limit. */
  cutOffOverTotal = 0;
  private readonly behind = new Set<Backlogged>();

  constructor(
    /** Bytes one subscriber may fall behind (--max-backlog). */
    readonly maxBacklog: number,
    /** Bytes all subscribers together may fall behind (--max-backlog-total). */
    readonly maxTotal: number,
    /** Told after each cut of the subscribers furthest behind: how many, and the total before. */
    private readonly onOverTotal: (cut: number, total: number) => void = () => {},
  ) {}

  /** Subscribers with a backlog now. */
  get behindCount(): number {
    return this.behind.size;
  }

  /** A subscriber's backlog is now `bytes` (0: drained, or gone). */
  update(subscriber: Backlogged, bytes: number): void {
    this.total += bytes - subscriber.backlog;
    subscriber.backlog = bytes;
    if (bytes > 0) this.behind.add(subscriber);
    else this.behind.delete(subscriber);
  }

  /**
   * Once per message, after its fan-out: past --max-backlog-total, the subscribers furthest behind are cut off
   * until the total fits again. A herd that stopped reading is then cut off as a whole long before each of its
   * members reaches --max-backlog, while a reader that keeps up has next to nothing queued and stays.
   */
  enforce(): void {
    if (this.total <= this.maxTotal) return;
    const before = this.total;
    const furthestFirst = [...this.behind].sort((a, b) => b.backlog - a.backlog);
    let cut = 0;
    for (const subscriber of furthestFirst) {
      if (this.total <= this.maxTotal) break;
      // Counted out here, not when the transport reports it gone: a websocket's close comes later.
      this.update(subscriber, 0);
      subscriber.cutOff(OVER_MAX_BACKLOG_TOTAL);
      cut++;
    }
    this.cutOffOverTotal += cut;
    this.onOverTotal(cut, before);
  }
}
