// Which core runs what. On two cores the server gets one and the load generator the other, so that neither
// steals time from the other and the server's CPU seconds are its own work. Without taskset, or on one core,
// nothing is pinned and the report says so. The cluster scenarios' redis-server has no core of its own: it
// shares one of the two, and the report says which.

export interface Pinning {
  /** Core the servers run on, or undefined when nothing is pinned. */
  serverCore: number | undefined;
  /** Core this process (the load generator) and its children, wrk included, run on. */
  loadCore: number | undefined;
  /** Core the cluster scenarios' redis-server runs on: one of the two above. */
  redisCore: number | undefined;
  /** One line for the report. */
  description: string;
  /** Where redis-server runs, in words, for the report. */
  redisDescription: string;
}

/**
 * Which core redis-server shares in the cluster scenarios: the server's, so that the cluster's whole server
 * side (the node and Redis) has one core as the single node has, or the load generator's.
 */
export type RedisPlace = "server" | "load";
export const REDIS_PLACES: readonly RedisPlace[] = ["server", "load"];

/** Pins this process, all its threads, to the load generator's core, and says where servers will go. */
export function pinLoadGenerator(redisPlace: RedisPlace): Pinning {
  const taskset = Bun.which("taskset");
  const cores = navigator.hardwareConcurrency;
  if (taskset === null || cores < 2) {
    const why = taskset === null ? "no taskset on this machine" : "only one core";
    return unpinned(why);
  }
  const serverCore = 0;
  const loadCore = 1;
  // -a: every thread, so that Bun's own threads (the GC's helpers, the HTTP client's) move too. Children
  // started later (wrk) inherit the mask.
  const pin = Bun.spawnSync([taskset, "-a", "-p", "-c", String(loadCore), String(process.pid)]);
  if (pin.exitCode !== 0) return unpinned(`taskset failed: ${pin.stderr.toString().trim()}`);
  const redisCore = redisPlace === "server" ? serverCore : loadCore;
  const shared = redisPlace === "server" ? "the server's core" : "the load generator's core";
  return {
    serverCore,
    loadCore,
    redisCore,
    description: `server on CPU ${serverCore} (taskset -c ${serverCore}), load generator and wrk on CPU ${loadCore} (taskset -a -p -c ${loadCore})`,
    redisDescription: `redis-server on CPU ${redisCore} (taskset -c ${redisCore}), sharing ${shared}`,
  };
}

function unpinned(why: string): Pinning {
  return {
    serverCore: undefined,
    loadCore: undefined,
    redisCore: undefined,
    description: `not pinned (${why})`,
    redisDescription: `redis-server not pinned (${why})`,
  };
}

/** Moves a running process, every thread of it, onto `core` (nothing when nothing is pinned). */
export function pinRunning(core: number | undefined, pid: number): void {
  const taskset = Bun.which("taskset");
  if (core === undefined || taskset === null) return;
  Bun.spawnSync([taskset, "-a", "-p", "-c", String(core), String(pid)], { stdout: "ignore", stderr: "ignore" });
}

/** The command that starts a server on its core. */
export function serverCommand(pinning: Pinning, command: string[]): string[] {
  return onCore(pinning.serverCore, command);
}

/** The command that starts redis-server on its core. */
export function redisCommand(pinning: Pinning, command: string[]): string[] {
  return onCore(pinning.redisCore, command);
}

function onCore(core: number | undefined, command: string[]): string[] {
  const taskset = Bun.which("taskset");
  if (core === undefined || taskset === null) return command;
  return [taskset, "-c", String(core), ...command];
}
