// Which core runs what. On two cores the server gets one and the load generator the other, so that neither
// steals time from the other and the server's CPU seconds are its own work. Without taskset, or on one core,
// nothing is pinned and the report says so.

export interface Pinning {
  /** Core the servers run on, or undefined when nothing is pinned. */
  serverCore: number | undefined;
  /** Core this process (the load generator) and its children, wrk included, run on. */
  loadCore: number | undefined;
  /** One line for the report. */
  description: string;
}

/** Pins this process, all its threads, to the load generator's core, and says where servers will go. */
export function pinLoadGenerator(): Pinning {
  const taskset = Bun.which("taskset");
  const cores = navigator.hardwareConcurrency;
  if (taskset === null || cores < 2) {
    const why = taskset === null ? "no taskset on this machine" : "only one core";
    return { serverCore: undefined, loadCore: undefined, description: `not pinned (${why})` };
  }
  const serverCore = 0;
  const loadCore = 1;
  // -a: every thread, so that Bun's own threads (the GC's helpers, the HTTP client's) move too. Children
  // started later (wrk) inherit the mask.
  const pin = Bun.spawnSync([taskset, "-a", "-p", "-c", String(loadCore), String(process.pid)]);
  if (pin.exitCode !== 0) {
    return {
      serverCore: undefined,
      loadCore: undefined,
      description: `not pinned (taskset failed: ${pin.stderr.toString().trim()})`,
    };
  }
  return {
    serverCore,
    loadCore,
    description: `server on CPU ${serverCore} (taskset -c ${serverCore}), load generator and wrk on CPU ${loadCore} (taskset -a -p -c ${loadCore})`,
  };
}

/** The command that starts a server on its core. */
export function serverCommand(pinning: Pinning, command: string[]): string[] {
  const taskset = Bun.which("taskset");
  if (pinning.serverCore === undefined || taskset === null) return command;
  return [taskset, "-c", String(pinning.serverCore), ...command];
}
