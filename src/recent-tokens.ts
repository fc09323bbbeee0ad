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

/**
 * Which tokens came lately, known by a small integer mixed from their last characters, with no string kept (a Set
 * of small integers is the cheapest JavaScriptCore has). A JWS ends with its signature, as good as random, so two
 * tokens share a fingerprint only by a rare accident (among 10,000 tokens, a pair once in twenty); and then all that happens
 * is that the second is remembered at its first visit.
 */
export class SeenTokens {
  private newer = new Set<number>();
  private older = new Set<number>();
  private readonly generation: number;

  constructor(max: number) {
    this.generation = Math.max(1, Math.floor(max / 2));
  }

  /** Whether `token` came before; it is noted as come, either way. */
  seenBefore(token: string): boolean {
    let fingerprint = 0;
    for (let i = Math.max(0, token.length - FINGERPRINT_CHARS); i < token.length; i++) {
      // Kept in 30 bits, so that it stays an int32 (an int, not a double, in the Set).
      fingerprint = (fingerprint * 31 + token.charCodeAt(i)) & 0x3fffffff;
    }
    if (this.newer.has(fingerprint)) return true;
    const seen = this.older.has(fingerprint);
    if (this.newer.size >= this.generation) {
      this.older = this.newer;
      this.newer = new Set();
    }
    this.newer.add(fingerprint);
    return seen;
  }
}
