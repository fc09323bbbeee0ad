// What a process costs, read from /proc: resident memory, open file descriptors, CPU time; and the CPU time of
// the whole machine. The tests, the soak and fuzz scripts and the benchmark all measure pinghub from outside,
// as its own process, so that the load generator's own memory and CPU never count and nothing is added to the
// server to measure it.

import { readdirSync, readFileSync } from "node:fs";

/** Clock ticks per second of utime and stime in /proc/PID/stat: USER_HZ, 100 on every Linux build there is. */
const CLOCK_TICKS = Number(Bun.spawnSync(["getconf", "CLK_TCK"]).stdout.toString().trim()) || 100;

/** Resident memory of a process now (VmRSS) and at its peak (VmHWM), in bytes. */
export function memory(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, "latin1");
  return { rss: statusKiB(pid, status, "VmRSS") * 1024, peak: statusKiB(pid, status, "VmHWM") * 1024 };
}

/** Resident set size (VmRSS) of a process, in bytes. */
export function rssBytes(pid: number): number {
  return memory(pid).rss;
}

function statusKiB(pid: number, status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, "m").exec(status);
  if (!match?.[1]) throw new Error(`no ${field} for process ${pid}`);
  return Number(match[1]);
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

/** CPU seconds a process has used so far, user and system, all its threads (GC and I/O threads too). */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  // The command name in parentheses may hold spaces; the fields are counted from after its closing one.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // utime and stime are fields 14 and 15 of the line, 12 and 13 here (state is field 3, index 0).
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

/**
 * CPU seconds that processes on the whole machine, every core, have used so far. Less the server's and the
 * load generator's, it is other work on the machine, which disturbs what is measured.
 * Interrupt time is left out: the kernel counts it to a process or not depending on its build.
 */
export function machineProcessSeconds(): number {
  const line = readFileSync("/proc/stat", "latin1").split("\n", 1)[0] ?? "";
  // "cpu  user nice system idle ...", in clock ticks.
  const [, user, nice, system] = line.trim().split(/\s+/).map(Number);
  return ((user ?? 0) + (nice ?? 0) + (system ?? 0)) / CLOCK_TICKS;
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

/**
 * A process and every process below it, children first found through /proc/PID/task/TID/children: a server
 * run with --workers is a parent and its workers, and all of them are the server's cost.
 */
export function processTree(pid: number): number[] {
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    const parent = tree[i] as number;
    let tasks: string[];
    try {
      tasks = readdirSync(`/proc/${parent}/task`);
    } catch {
      continue; // exited meanwhile
    }
    for (const task of tasks) {
      try {
        const children = readFileSync(`/proc/${parent}/task/${task}/children`, "latin1").trim();
        if (children !== "") tree.push(...children.split(" ").map(Number));
      } catch {}
    }
  }
  return tree;
}

/**
 * A reading of the CPU time of processes and every process below them: each thread's time on a CPU so far, in
 * nanoseconds (the first field of /proc/PID/task/TID/schedstat), and the same time as utime + stime count it.
 */
export interface CpuReading {
  /** Nanoseconds by "PID/TID". */
  threads: Map<string, number>;
  /** treeCpuSeconds of the same processes: whole clock ticks. */
  ticks: number;
}

export function cpuReading(pids: readonly number[]): CpuReading {
  const threads = new Map<string, number>();
  let ticks = 0;
  for (const pid of pids.flatMap(processTree)) {
    try {
      ticks += cpuSeconds(pid);
      for (const tid of readdirSync(`/proc/${pid}/task`)) {
        const ns = Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "latin1").split(" ", 1)[0]);
        threads.set(`${pid}/${tid}`, ns);
      }
    } catch {
      // Exited meanwhile: its threads are missing from this reading, which cpuSecondsBetween notices.
    }
  }
  return { threads, ticks };
}

/**
 * CPU seconds used between two readings of the same processes. utime and stime count whole clock ticks, 10 ms:
 * over a benchmark's 10,000 connects that is 1 µs per connect either way, a fifth of what a token adds to one, so
 * the ratio of two such runs jumped by 0.06 on ticks alone. Each thread's schedstat counts nanoseconds. A thread
 * that ended between the readings took its count with it (and its id may be reused): then the ticks are all
 * there is.
 */
export function cpuSecondsBetween(start: CpuReading, end: CpuReading): number {
  let ns = 0;
  for (const [thread, before] of start.threads) {
    const after = end.threads.get(thread);
    if (after === undefined || after < before) return end.ticks - start.ticks;
    ns += after - before;
  }
  // Threads started in between: all their time is in between.
  for (const [thread, after] of end.threads) if (!start.threads.has(thread)) ns += after;
  return ns / 1e9;
}

/** CPU seconds of a process and every process below it (processTree); a process gone meanwhile counts 0. */
export function treeCpuSeconds(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      return sum + cpuSeconds(p);
    } catch {
      return sum;
    }
  }, 0);
}

/** Resident memory of a process and every process below it, in bytes. */
export function treeRssBytes(pid: number): number {
  return processTree(pid).reduce((sum, p) => {
    try {
      return sum + memory(p).rss;
    } catch {
      return sum;
    }
  }, 0);
}
