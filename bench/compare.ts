// Measuring the floor and pinghub the same way, in turns: floor, pinghub, floor, pinghub... Anything that
// drifts during a run (other work on the machine, the CPU's clock, the kernel's caches) then falls on both,
// and a ratio taken within each pair cancels most of it.

import { waitForQuiet } from "./measure.ts";
import { SERVER_KINDS, type ServerKind } from "./servers.ts";
import { median } from "./stats.ts";

export type PerServer<T> = Record<ServerKind, T>;

export interface Alternated<T> extends PerServer<T[]> {
  /** Pairs measured again because other work on the machine disturbed a first attempt. */
  redone: number;
  /** Seconds spent waiting for the machine to be quiet before pairs. */
  waited: number;
}

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
 * Runs `measure` `pairs` times for each server, alternating; returns each server's runs in order. A pair with
 * a disturbed run (`otherShare` above DISTURBED_SHARE) is measured again, up to `patience.attempts` times in
 * all; the last attempt is kept, disturbed or not. Each attempt waits first for a quiet machine, a while.
 */
export async function alternate<T>(
  pairs: number,
  measure: (kind: ServerKind, pair: number) => Promise<T>,
  otherShare: (run: T) => number,
  patience: Patience,
): Promise<Alternated<T>> {
  const runs: Alternated<T> = { floor: [], pinghub: [], redone: 0, waited: 0 };
  for (let pair = 0; pair < pairs; pair++) {
    for (let attempt = 1; ; attempt++) {
      if (patience.quietSeconds > 0) runs.waited += await waitForQuiet(patience.quietSeconds);
      const floor = await measure(SERVER_KINDS[0] as ServerKind, pair);
      const pinghub = await measure(SERVER_KINDS[1] as ServerKind, pair);
      const disturbed = Math.max(otherShare(floor), otherShare(pinghub)) > DISTURBED_SHARE;
      if (!disturbed || attempt >= patience.attempts) {
        runs.floor.push(floor);
        runs.pinghub.push(pinghub);
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
  return median(runs.pinghub.map((run, i) => figure(run) / figure(runs.floor[i] as T)));
}
