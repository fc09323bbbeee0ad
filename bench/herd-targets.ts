// The stalled herd's targets (issue 20, part 2): pinghub against the original Go pinghub, whose figures are the
// issue's table (measured on this machine when the issue was filed; Go's server is not available here to run
// beside pinghub), with Nchan's figures from the same rounds shown beside them where it is installed. Every
// pinghub round must meet a goal, not only the median: a herd is an attack, and one bad round is the answer.

import { medianOf } from "./compare.ts";
import type { Results } from "./results.ts";
import type { HerdRun } from "./scenarios/herd.ts";

/** The original Go pinghub in the same scenario: issue 20's table, "one core", not measured by this benchmark. */
export const GO_HERD_FROM_ISSUE = {
  readersP50Ms: 210,
  readersP99Ms: 3100,
  /** "94 MB", read as 94 × 10^6 bytes: the stricter of the two readings. */
  peakRssBytes: 94e6,
} as const;

/** The issue's readers' p99 goal: Go's or this, whichever is larger. */
const READERS_P99_FLOOR_MS = 100;
/** The issue's memory goal: peak RSS at most this many times Go's. */
const PEAK_RSS_TIMES_GO = 2;
const MIB = 1024 * 1024;

export interface HerdTarget {
  name: string;
  unit: string;
  /** Go's figure from the issue; undefined where the issue gives none. */
  go: number | undefined;
  /** Nchan's median over the same rounds; undefined when it did not run. */
  nchan: number | undefined;
  /** pinghub's median, and its lowest and highest round. */
  pinghub: number;
  range: [number, number];
  goal: string;
  /** Whether every pinghub round met the goal; undefined for a figure reported without one. */
  met: boolean | undefined;
}

/** The herd's targets, or none when the scenario did not run. */
export function herdTargets(results: Results): HerdTarget[] {
  const herd = results.herd;
  if (herd === undefined || herd.pinghub.length === 0) return [];
  const runs = herd.pinghub;
  const nchan = herd.nchan;
  const row = (
    name: string,
    unit: string,
    go: number | undefined,
    figure: (r: HerdRun) => number,
    most: number | undefined,
    goal: string,
  ): HerdTarget => {
    const values = runs.map(figure);
    const worst = Math.max(...values);
    return {
      name,
      unit,
      go,
      nchan: nchan === undefined || nchan.length === 0 ? undefined : medianOf(nchan, figure),
      pinghub: medianOf(runs, figure),
      range: [Math.min(...values), worst],
      goal,
      met: most === undefined ? undefined : worst <= most,
    };
  };
  const go = GO_HERD_FROM_ISSUE;
  const rssMost = (PEAK_RSS_TIMES_GO * go.peakRssBytes) / MIB;
  const p99Most = Math.max(go.readersP99Ms, READERS_P99_FLOOR_MS);
  return [
    row(
      "peak RSS, server process tree",
      "MiB",
      go.peakRssBytes / MIB,
      (r) => r.peakRssBytes / MIB,
      rssMost,
      `≤ ${PEAK_RSS_TIMES_GO} × Go (${rssMost.toFixed(1)} MiB), every round`,
    ),
    row(
      "readers' latency p99",
      "ms",
      go.readersP99Ms,
      (r) => r.readersP99Ms,
      p99Most,
      `≤ Go's or ${READERS_P99_FLOOR_MS} ms, the larger (${p99Most} ms), every round`,
    ),
    row("readers' latency p50", "ms", go.readersP50Ms, (r) => r.readersP50Ms, undefined, "none"),
    row("lost to readers, readers cut off", "", undefined, (r) => r.lost + r.readersDisconnected, 0, "0, every round"),
  ];
}
