// What a server process costs, read from /proc: resident memory, open file descriptors, CPU time. Tests that
// load pinghub run it as its own process and measure it here, so the load generator's own memory never counts.

import { readdirSync, readFileSync } from "node:fs";

/** Resident set size (VmRSS) of a process, in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = status.match(/^VmRSS:\s+(\d+) kB$/m);
  if (match === null) throw new Error(`no VmRSS for process ${pid}`);
  return Number(match[1]) * 1024;
}

/** Open file descriptors of a process. */
export function openFds(pid: number): number {
  return readdirSync(`/proc/${pid}/fd`).length;
}

/** The soft limit on open files of a process. */
export function fdLimit(pid: number): number {
  const line = readFileSync(`/proc/${pid}/limits`, "utf8")
    .split("\n")
    .find((l) => l.startsWith("Max open files"));
  return Number(line?.split(/\s+/)[3]);
}

/** User plus system CPU time of a process, in seconds (Linux counts it in ticks of 1/100 s). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name, which is in parentheses and may hold spaces: utime and stime are 14 and 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export const MiB = 1024 * 1024;

export interface RssSample {
  /** Milliseconds since the monitor started. */
  at: number;
  rss: number;
}

/** Samples a process's RSS at a fixed interval until stopped; keeps every sample and the peak. */
export class RssMonitor {
  readonly samples: RssSample[] = [];
  peak = 0;
  private readonly started = performance.now();
  private readonly timer: ReturnType<typeof setInterval>;

  constructor(
    private readonly pid: number,
    intervalMs = 100,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  /** Takes one sample now and returns it; after the process exited, returns the last one. */
  sample(): number {
    let rss: number;
    try {
      rss = rssBytes(this.pid);
    } catch {
      return this.samples.at(-1)?.rss ?? 0;
    }
    this.samples.push({ at: Math.round(performance.now() - this.started), rss });
    if (rss > this.peak) this.peak = rss;
    return rss;
  }

  stop(): void {
    clearInterval(this.timer);
    this.sample();
  }

  /** The highest sample taken at or after `fromMs`, and the last one. */
  peakSince(fromMs: number): number {
    return Math.max(0, ...this.samples.filter((s) => s.at >= fromMs).map((s) => s.rss));
  }
}

export const mib = (bytes: number) => (bytes / MiB).toFixed(1);
