// What the benchmark measures of a server process (read from /proc by test/support/process-stats.ts) and of
// the machine. /proc is read rather than asked of the server so that the floor and pinghub are measured the
// same way, from outside, with nothing added to either.

import { readFileSync } from "node:fs";
import { availableParallelism, release, totalmem } from "node:os";
import {
  type CpuReading,
  cpuReading,
  cpuSecondsBetween,
  machineProcessSeconds,
  memory,
} from "../test/support/process-stats.ts";

/** This process's CPU seconds so far: the load generator's own load, to tell when it is the bottleneck. */
export function ownCpuSeconds(): number {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
}

export interface Machine {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  bun: string;
  wrk: string | undefined;
  commit: string;
  date: string;
}

export function describeMachine(): Machine {
  const cpuinfo = readFileSync("/proc/cpuinfo", "latin1");
  const wrkPath = Bun.which("wrk");
  return {
    cpus: availableParallelism(),
    cpuModel: /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    bun: Bun.version,
    // `wrk -v` prints its version and exits with status 1; the first line is all we want.
    wrk: wrkPath === null ? undefined : Bun.spawnSync([wrkPath, "-v"]).stdout.toString().split("\n")[0]?.trim(),
    commit: gitCommit(),
    date: new Date().toISOString(),
  };
}

/** The commit measured, with "+changes" when the work tree differs from it: figures belong to code. */
function gitCommit(): string {
  const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"]);
  if (head.exitCode !== 0) return "unknown";
  const dirty = Bun.spawnSync(["git", "status", "--porcelain", "--", "src"]).stdout.toString();
  return `${head.stdout.toString().trim()}${dirty.trim() === "" ? "" : "+changes"}`;
}

/** Where the CPU time went over a measurement, in CPU seconds, and how long it took. */
export interface CpuUse {
  seconds: number;
  server: number;
  /** The load generator: this process, plus a load tool it ran (wrk) when given. */
  load: number;
  /** A cluster node's redis-server; 0 for the other servers (and absent from results of older runs). */
  redis: number;
  /** Everything else on the machine: other people's work, which disturbs the figures. */
  other: number;
}

export interface CpuSnapshot {
  at: number;
  /** The server's whole tree: one process, or a --workers parent and its workers, or nginx and its worker. */
  server: CpuReading;
  own: number;
  machine: number;
  /** The redis-servers whose CPU time is counted apart, and a reading of it. */
  redisPid: RedisPids;
  redis: CpuReading;
}

/** The redis-server of a cluster node, or all of those behind it (Sentinel's, a Redis Cluster's), or none. */
export type RedisPids = number | readonly number[] | undefined;

/** CPU times now: the server's, and the redis-servers' when `redisPid` is given (a cluster node's). */
export function cpuSnapshot(serverPid: number, redisPid?: RedisPids): CpuSnapshot {
  return {
    at: performance.now(),
    server: cpuReading([serverPid]),
    own: ownCpuSeconds(),
    machine: machineProcessSeconds(),
    redisPid,
    redis: cpuReading([redisPid ?? []].flat()),
  };
}

/** CPU use since `start`; `toolCpu` is what a child load tool (wrk) used meanwhile, counted to the load. */
export function cpuSince(start: CpuSnapshot, serverPid: number, toolCpu = 0): CpuUse {
  const now = cpuSnapshot(serverPid, start.redisPid);
  const server = cpuSecondsBetween(start.server, now.server);
  const load = now.own - start.own + toolCpu;
  const redis = cpuSecondsBetween(start.redis, now.redis);
  return {
    seconds: (now.at - start.at) / 1000,
    server,
    load,
    redis,
    // Ticks are counted per core and per process separately, so this may dip a little below zero.
    other: Math.max(0, now.machine - start.machine - server - load - redis),
  };
}

/**
 * Waits, up to `maxSeconds`, for a second in which processes on the machine used under `share` of one core
 * (the benchmark itself is idle between runs). Returns the seconds waited. Starting a measurement while other
 * work runs would only get it measured again.
 */
export async function waitForQuiet(maxSeconds: number, share = 0.1): Promise<number> {
  const started = performance.now();
  while ((performance.now() - started) / 1000 < maxSeconds) {
    const before = machineProcessSeconds();
    await Bun.sleep(1000);
    if (machineProcessSeconds() - before < share) break;
  }
  return (performance.now() - started) / 1000;
}

/** Resident memory of a process and every process descended from it (nginx's master and its worker), in bytes. */
export function treeRssBytes(rootPid: number): number {
  let total = 0;
  const pending = [rootPid];
  while (pending.length > 0) {
    const pid = pending.pop() as number;
    try {
      total += memory(pid).rss;
      const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "latin1").trim();
      if (children !== "") pending.push(...children.split(/\s+/).map(Number));
    } catch {
      // Gone meanwhile: it holds no memory now.
    }
  }
  return total;
}
