// The benchmark's latency histogram (bench/stats.ts), which produces every published p50 and p99: against the
// exact percentile of a sorted array on random data, and at its edges. Its buckets are exact below 128 µs and
// at most 1/64 of the value wide above, so a percentile it gives is never below the true one and never more
// than 1/64 above it. Seeded: the seed is printed, and `PINGHUB_SEED=N` replays it.

import { describe, expect, test } from "bun:test";
import { LatencyHistogram, median } from "../bench/stats.ts";
import { parseSeed, Rng } from "./support/fuzz-core.ts";

const SEED = parseSeed(process.env.PINGHUB_SEED, "PINGHUB_SEED");
const FRACTIONS = [0, 0.001, 0.1, 0.5, 0.9, 0.99, 0.999, 1];

/** The exact percentile as the histogram defines it: the smallest value with `fraction` of them at or below. */
function reference(sorted: readonly number[], fraction: number): number {
  const rank = Math.max(1, Math.ceil(fraction * sorted.length));
  return sorted[rank - 1] as number;
}

/** A histogram's answer must lie in [exact, exact + exact / 64], in microseconds, and be exact below 128 µs. */
function expectWithinBucket(histogramMs: number, exact: number, what: string): void {
  const micros = Math.round(histogramMs * 1000);
  expect(micros, `${what}: ${micros} µs below the exact ${exact} µs`).toBeGreaterThanOrEqual(exact);
  const slack = exact < 128 ? 0 : Math.floor(exact / 64);
  expect(micros, `${what}: ${micros} µs more than a bucket above the exact ${exact} µs`).toBeLessThanOrEqual(
    exact + slack,
  );
}

describe("LatencyHistogram", () => {
  test("percentiles against a sorted array, on random data of several shapes", () => {
    console.log(`stats test seed: ${SEED} (replay with PINGHUB_SEED=${SEED} bun test test/stats.test.ts)`);
    const rng = new Rng(SEED);
    const shapes: Record<string, () => number> = {
      // Spread over every order of magnitude from 1 µs to about 17 minutes, as a run's outliers are.
      "log-uniform": () => Math.floor(2 ** (rng.next() * 30)),
      // A tight cluster around 250 µs with a long tail, as a loaded fan-out looks.
      "cluster and tail": () => (rng.chance(0.98) ? rng.int(200, 300) : rng.int(300, 2_000_000)),
      // Only the exact buckets.
      "below 128 µs": () => rng.int(0, 127),
      // Few distinct values, many ties.
      ties: () => rng.pick([5, 127, 128, 129, 1000, 65_535, 65_536]),
    };
    for (const [shape, draw] of Object.entries(shapes)) {
      for (const n of [1, 2, 7, 100, 10_001]) {
        const histogram = new LatencyHistogram();
        const values = Array.from({ length: n }, draw);
        for (const v of values) histogram.record(v);
        const sorted = values.toSorted((a, b) => a - b);
        expect(histogram.count).toBe(n);
        expect(histogram.max).toBe(sorted.at(-1) as number);
        for (const fraction of FRACTIONS) {
          expectWithinBucket(
            histogram.quantileMs(fraction),
            reference(sorted, fraction),
            `${shape}, n ${n}, q ${fraction}`,
          );
        }
        // The top of the range is the largest value itself, not its bucket's bound.
        expect(histogram.quantileMs(1)).toBe((sorted.at(-1) as number) / 1000);
      }
    }
  });

  test("empty: every percentile is NaN, which the report prints as a dash", () => {
    const histogram = new LatencyHistogram();
    expect(histogram.quantileMs(0.5)).toBeNaN();
    expect(histogram.quantileMs(0.99)).toBeNaN();
  });

  test("one value: every percentile is that value", () => {
    const histogram = new LatencyHistogram();
    histogram.record(12_345);
    for (const fraction of FRACTIONS) expect(histogram.quantileMs(fraction)).toBe(12.345);
  });

  test("fractions of a microsecond are dropped, negatives count as 0, beyond 2^32 µs as 2^32 − 1", () => {
    const histogram = new LatencyHistogram();
    histogram.record(99.9);
    expect(histogram.quantileMs(1)).toBe(0.099);
    histogram.reset();
    histogram.record(-5);
    expect(histogram.quantileMs(0.5)).toBe(0);
    histogram.record(2 ** 40);
    expect(histogram.max).toBe(0xffffffff);
    expect(histogram.quantileMs(1)).toBe(0xffffffff / 1000);
  });

  test("the bucket edges: 127 and 128 exact, then 1/64 of the value at most", () => {
    for (const v of [127, 128, 129, 255, 256, 257, 1023, 1024, 1025, 0xfffffffe]) {
      const histogram = new LatencyHistogram();
      // A value above v, so that the answer is v's bucket's bound rather than the maximum.
      histogram.record(v);
      histogram.record(0xffffffff);
      expectWithinBucket(histogram.quantileMs(0.5), v, `value ${v}`);
    }
  });

  test("reset forgets everything", () => {
    const histogram = new LatencyHistogram();
    for (let v = 0; v < 1000; v++) histogram.record(v * 1000);
    histogram.reset();
    expect([histogram.count, histogram.max]).toEqual([0, 0]);
    expect(histogram.quantileMs(0.5)).toBeNaN();
    histogram.record(7);
    expect(histogram.quantileMs(0.5)).toBe(0.007);
  });
});

describe("median", () => {
  test("odd and even counts, unsorted input, NaN left out, none at all", () => {
    expect(median([3, 1, 2])).toBe(2);
    expect(median([4, 1, 3, 2])).toBe(2.5);
    expect(median([Number.NaN, 5, 1])).toBe(3);
    expect(median([])).toBeNaN();
    expect(median([Number.NaN])).toBeNaN();
  });

  test("does not reorder what it is given", () => {
    const values = [3, 1, 2];
    median(values);
    expect(values).toEqual([3, 1, 2]);
  });
});
