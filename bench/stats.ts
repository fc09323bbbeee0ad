// Latency histograms and medians. A run records millions of latencies, so they go into fixed log-linear
// buckets (about 1.5 % wide) rather than an array: recording is two integer operations and no allocation.

/** Values below this many microseconds get a bucket each; above, each power of two is split in this many. */
const LINEAR = 128;
const SUB_BUCKETS_BITS = 6;
const SUB_BUCKETS = 1 << SUB_BUCKETS_BITS;
/** Enough buckets for 2^32 µs, over an hour: anything later is clamped into the last. */
const BUCKETS = LINEAR + (32 - 7) * SUB_BUCKETS;

export class LatencyHistogram {
  private readonly counts = new Float64Array(BUCKETS);
  count = 0;
  max = 0;

  /** Records one latency, in whole microseconds. */
  record(micros: number): void {
    const v = micros < 0 ? 0 : micros > 0xffffffff ? 0xffffffff : micros >>> 0;
    const b = bucketOf(v);
    this.counts[b] = (this.counts[b] as number) + 1;
    this.count++;
    if (v > this.max) this.max = v;
  }

  /** The latency below which `fraction` of the recorded ones fall, in milliseconds; NaN when empty. */
  quantileMs(fraction: number): number {
    if (this.count === 0) return Number.NaN;
    // The rank-th smallest, counting from 1: fraction 0 is the smallest recorded, not bucket 0.
    const rank = Math.max(1, Math.ceil(fraction * this.count));
    let seen = 0;
    for (let b = 0; b < BUCKETS; b++) {
      seen += this.counts[b] ?? 0;
      if (seen >= rank) return Math.min(upperBoundOf(b), this.max) / 1000;
    }
    return this.max / 1000;
  }

  reset(): void {
    this.counts.fill(0);
    this.count = 0;
    this.max = 0;
  }
}

function bucketOf(v: number): number {
  if (v < LINEAR) return v;
  // v has `bits` significant bits, at least 8; its top 7 bits (1 then six more) pick the sub-bucket.
  const bits = 32 - Math.clz32(v);
  const sub = (v >>> (bits - 1 - SUB_BUCKETS_BITS)) - SUB_BUCKETS;
  return Math.min(LINEAR + (bits - 8) * SUB_BUCKETS + sub, BUCKETS - 1);
}

function upperBoundOf(bucket: number): number {
  if (bucket < LINEAR) return bucket;
  const bits = Math.floor((bucket - LINEAR) / SUB_BUCKETS) + 8;
  const sub = (bucket - LINEAR) % SUB_BUCKETS;
  const shift = bits - 1 - SUB_BUCKETS_BITS;
  // Multiplied, not shifted: the top bucket's bound is 2^32, past a 32-bit shift.
  return (SUB_BUCKETS + sub + 1) * 2 ** shift - 1;
}

/** The median of some numbers; NaN for none. With an even count, the mean of the middle two. */
export function median(values: readonly number[]): number {
  const sorted = values.filter((v) => !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return Number.NaN;
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
