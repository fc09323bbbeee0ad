// Measuring the floor and pinghub the same way, in turns: floor, pinghub, floor, pinghub... Anything that
// drifts during a run (other work on the machine, the CPU's clock, the kernel's caches) then falls on both,
// and a ratio taken within each pair cancels most of it.

import { waitForQuiet } from "./measure.ts";
import { type FloorKind, SERVER_KINDS } from "./servers.ts";
import { median } from "./stats.ts";

export type PerServer<T> = Record<FloorKind, T>;

/**
 * Each side's runs, in order, for the two sides of a comparison: the floor's and pinghub's by default, or two
 * servers, or one server under two loads (websocket and SSE subscribers).
 */
export type Alternated<T, K extends string = FloorKind> = Record<K, T[]> & {
  /** Pairs measured again because other work on the machine disturbed a first attempt. */
  redone: number;
  /** Seconds spent waiting for the machine to be quiet before pairs. */
  waited: number;
};

export interface Patience {
  /** Attempts at a pair that other work disturbed; the last one is kept, disturbed or not. */
  attempts: number;
  /** Longest wait, before each attempt, for a quiet machine. */
  quietSeconds: number;
}

/**
 * A run in which other processes took more than this share of the machine's CPU time (per second of the run)
 * was disturbed: it is measured again, pair and all. This machine may be shared; its other users' work lands
 * on the benchmark's pinned cores as well.
 */
export const DISTURBED_SHARE = 0.05;
/**
 * Runs `measure` `pairs` times for each side, in turns; returns each side's runs in order. A round with
 * a disturbed run (`otherShare` above DISTURBED_SHARE) is measured again, up to `patience.attempts` times in
 * all; the last attempt is kept, disturbed or not. Each attempt waits first for a quiet machine, a while.
 * `kinds` are the sides, the one compared against first: the floor and pinghub unless given; a peer (Nchan)
 * is a third side of the same rounds, so that its runs pair with the others' as theirs pair with each other.
 */
export async function alternate<T, K extends string = FloorKind>(
  pairs: number,
  measure: (kind: K, pair: number) => Promise<T>,
  otherShare: (run: T) => number,
  patience: Patience,
  kinds: readonly K[] = SERVER_KINDS as readonly string[] as readonly K[],
  // K comes from `kinds` (or is the default), never from where the answer is stored.
): Promise<Alternated<T, NoInfer<K>>> {
  const runs = { redone: 0, waited: 0 } as unknown as Alternated<T, K>;
  for (const kind of kinds) (runs as Record<string, unknown>)[kind] = [];
  for (let pair = 0; pair < pairs; pair++) {
    for (let attempt = 1; ; attempt++) {
      if (patience.quietSeconds > 0) runs.waited += await waitForQuiet(patience.quietSeconds);
      const round: T[] = [];
      for (const kind of kinds) round.push(await measure(kind, pair));
      const disturbed = Math.max(...round.map(otherShare)) > DISTURBED_SHARE;
      if (!disturbed || attempt >= patience.attempts) {
        for (const [i, kind] of kinds.entries()) (runs[kind] as T[]).push(round[i] as T);
        break;
      }
      runs.redone++;
    }
  }
  return runs;
}

/** The median over a server's runs of one figure. */
export function medianOf<T>(runs: readonly T[], figure: (run: T) => number): number {
  return median(runs.map(figure));
}

/** pinghub / floor for one figure: the median of the ratios within each pair. */
export function pairedRatio<T>(runs: PerServer<T[]>, figure: (run: T) => number): number {
  return median(pairedRatios(runs.floor, runs.pinghub, figure));
}

/** `measured` / `base` for one figure, pair by pair. */
export function pairedRatios<T>(base: readonly T[], measured: readonly T[], figure: (run: T) => number): number[] {
  return measured.map((run, i) => figure(run) / figure(base[i] as T));
}

/** `measured` − `base` for one figure, pair by pair. */
export function pairedDifferences<T>(base: readonly T[], measured: readonly T[], figure: (run: T) => number): number[] {
  return measured.map((run, i) => figure(run) - figure(base[i] as T));
}
