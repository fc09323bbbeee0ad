// Ending connections when their token expires: a wheel of one-second slots and one timer for all of them, rather
// than a timer per connection, so that ten thousand subscribers with tokens cost ten thousand set entries and one
// interval, and nothing allocated per connection beyond its place in a set. A connection ends within about a
// second after its `exp` (never before it).

/** Width of a slot: how late past its expiry a connection may be ended. */
export const EXPIRY_TICK_MS = 1000;

export class ExpiryWheel<T> {
  /** Slot number (the second after the expiry) to the connections that end in it. */
  private readonly slots = new Map<number, Set<T>>();
  private timer: ReturnType<typeof setInterval> | undefined;
  private size = 0;
  /** The earliest slot not yet ended: each tick ends the slots from here to now, and nothing else is looked at. */
  private cursor = 0;

  /** `expire` is called once for each connection whose time has come, unless it was removed first. */
  constructor(private readonly expire: (item: T) => void) {}

  /**
   * Ends `item` once `atMs` (ms since the epoch) has passed; returns its slot, which `remove` takes. An item is
   * added once: added twice, it is ended once.
   */
  add(atMs: number, item: T): number {
    if (this.timer === undefined) this.cursor = Math.floor(Date.now() / EXPIRY_TICK_MS);
    // Already past: ended at the next tick, with the others due then.
    const slot = Math.max(Math.ceil(atMs / EXPIRY_TICK_MS), this.cursor);
    let set = this.slots.get(slot);
    if (set === undefined) {
      set = new Set();
      this.slots.set(slot, set);
    }
    set.add(item);
    this.size++;
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.tick(), EXPIRY_TICK_MS);
      // The wheel alone never keeps the process running: shutdown does not wait for tokens to expire.
      this.timer.unref();
    }
    return slot;
  }

  /** Takes out an item that ended first (its connection closed); nothing if it was already ended. */
  remove(slot: number, item: T): void {
    const set = this.slots.get(slot);
    if (set?.delete(item) !== true) return;
    this.size--;
    if (set.size === 0) this.slots.delete(slot);
    this.idle();
  }

  /** Connections waiting to expire. */
  get pending(): number {
    return this.size;
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  private tick(): void {
    const last = Math.floor(Date.now() / EXPIRY_TICK_MS);
    for (; this.cursor <= last; this.cursor++) {
      const set = this.slots.get(this.cursor);
      if (set === undefined) continue;
      this.slots.delete(this.cursor);
      this.size -= set.size;
      for (const item of set) this.expire(item);
    }
    this.idle();
  }

  private idle(): void {
    if (this.size === 0) this.stop();
  }
}
