// Tokens remembered with what was decided about them, so that a token seen lately costs a lookup, not a check.
//
// Two generations of Maps: every token goes into the newer, and once it holds its share the older is dropped
// whole and the newer takes its place. Forgetting thus costs nothing per token. Forgetting the oldest entry one at
// a time (`map.keys().next()`, then `delete`) is what a single Map would need, and in JavaScriptCore it is slow:
// a Map keeps deleted entries in place until it rehashes, and every `keys().next()` walks past all of them. With
// 10,000 tokens held, each new token cost 5 to 8 µs that way (Bun 1.4.5), a third of a whole websocket connect.

export class RecentTokens<V> {
  private newer = new Map<string, V>();
  private older = new Map<string, V>();
  /** How many one generation holds before it becomes the older. */
  private readonly generation: number;

  /** Holds at most `max` tokens (and at least the newest half of that many). */
  constructor(max: number) {
    this.generation = Math.max(1, Math.floor(max / 2));
  }

  get(token: string): V | undefined {
    const value = this.newer.get(token);
    if (value !== undefined) return value;
    const old = this.older.get(token);
    // A token still in use moves to the newer generation, so that it outlives the older one.
    if (old !== undefined) this.set(token, old);
    return old;
  }

  set(token: string, value: V): void {
    if (this.newer.size >= this.generation) {
      this.older = this.newer;
      this.newer = new Map();
    }
    this.newer.set(token, value);
  }
}

/** Characters taken from the end of a token for its fingerprint. */
const FINGERPRINT_CHARS = 8;
/** Fibonacci hashing's multiplier (2^32 / φ): spreads a fingerprint's bits over a table's index. */
const SPREAD = 0x9e3779b1;

/**
 * Which tokens came lately, known by a small integer mixed from their last characters, with no string kept. A JWS
 * ends with its signature, as good as random, so two tokens share a fingerprint only by a rare accident (among
 * 10,000 tokens, a pair once in twenty); and then all that happens is that the second is remembered at its first
 * visit.
 *
 * Each generation is a table of integers with open addressing, allocated once and emptied in place, rather than a
 * Set: every new token comes here once (jwt-access.ts asks before anything else), and a Set of small integers that
 * grows to its generation's size, is dropped and grown again took 0.16-0.18 µs per new token, this 0.07 (the
 * fingerprint included; Bun 1.4.5, 10,000 bench tokens, warm, min and median of six rounds).
 */
export class SeenTokens {
  private newer: Int32Array;
  private older: Int32Array;
  /** Fingerprints in the newer table. */
  private count = 0;
  private readonly generation: number;
  /** log2 of a table's size; the index is the top bits of the spread fingerprint. */
  private readonly indexBits: number;

  constructor(max: number) {
    this.generation = Math.max(1, Math.floor(max / 2));
    // At most half full, so that a probe finds an empty slot within a few steps.
    this.indexBits = Math.max(4, Math.ceil(Math.log2(this.generation * 2)));
    this.newer = new Int32Array(1 << this.indexBits);
    this.older = new Int32Array(1 << this.indexBits);
  }

  /** Whether `token` came before; it is noted as come, either way. */
  seenBefore(token: string): boolean {
    // Kept in 30 bits, so that it stays an int32, and one more than that, so that no fingerprint is 0 (an empty slot).
    let fingerprint = 0;
    for (let i = Math.max(0, token.length - FINGERPRINT_CHARS); i < token.length; i++) {
      fingerprint = (fingerprint * 31 + token.charCodeAt(i)) & 0x3fffffff;
    }
    fingerprint++;
    const start = Math.imul(fingerprint, SPREAD) >>> (32 - this.indexBits);
    let free = slotOf(this.newer, start, fingerprint);
    if (free < 0) return true;
    const seen = slotOf(this.older, start, fingerprint) < 0;
    if (this.count >= this.generation) {
      const emptied = this.older.fill(0);
      this.older = this.newer;
      this.newer = emptied;
      this.count = 0;
      free = start;
    }
    this.newer[free] = fingerprint;
    this.count++;
    return seen;
  }
}

/** The empty slot where `fingerprint` would go, probing on from `start`; -1 when the table holds it already. */
function slotOf(table: Int32Array, start: number, fingerprint: number): number {
  const mask = table.length - 1;
  for (let i = start; ; i = (i + 1) & mask) {
    const held = table[i];
    if (held === fingerprint) return -1;
    if (held === 0) return i;
  }
}
