// The two servers under test, each started as a real process of its own, pinned to the server's core: pinghub
// exactly as deployed (metrics server on), and the floor. Every measurement gets a fresh process, so that no
// run inherits another's heap, JIT state or sockets in TIME_WAIT.

import type { Subprocess } from "bun";
import { type Pinning, serverCommand } from "./pinning.ts";

export type ServerKind = "floor" | "pinghub";
export const SERVER_KINDS: readonly ServerKind[] = ["floor", "pinghub"];

const ROOT = new URL("..", import.meta.url).pathname;

/** How long a server may take to listen, and to exit once told to. */
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface RunningServer {
  kind: ServerKind;
  pid: number;
  port: number;
  /** Stops the server and waits for it to exit; its sockets close from its side. */
  stop(): Promise<void>;
}

/** Every server still running, so that an interrupted benchmark leaves none behind. */
const running = new Set<Subprocess>();

export async function startServer(kind: ServerKind, pinning: Pinning): Promise<RunningServer> {
  const port = await freePort();
  const command =
    kind === "floor"
      ? [process.execPath, "bench/floor.ts", String(port)]
      : [
          process.execPath,
          "src/main.ts",
          "--addr",
          `127.0.0.1:${port}`,
          // As users run it: metrics served, on a port of its own that nobody scrapes during the runs.
          "--mport",
          String(await freePort()),
          "--log-level",
          "warn",
        ];
  const proc = Bun.spawn(serverCommand(pinning, command), {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "ignore",
    // Warnings (a subscriber cut off for its backlog) go to the benchmark's own stderr, where they are seen.
    stderr: "inherit",
  });
  running.add(proc);
  try {
    await waitForListener(port, proc);
  } catch (error) {
    proc.kill("SIGKILL");
    running.delete(proc);
    throw error;
  }
  return {
    kind,
    // `taskset` execs the server in its own place, so this is the server's pid, the one /proc is read for.
    pid: proc.pid,
    port,
    async stop() {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
      await proc.exited;
      clearTimeout(timer);
      running.delete(proc);
    },
  };
}

/** Kills whatever servers are left; for an exit in the middle of a run. */
export function killAllServers(): void {
  for (const proc of running) proc.kill("SIGKILL");
  running.clear();
}

/** A port nobody listens on now: the system picks it, and we let it go for the server to take. */
async function freePort(): Promise<number> {
  const probe = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = probe.port;
  probe.stop(true);
  return port;
}

/** Connects until the server accepts: the one sign of readiness that both servers give. */
async function waitForListener(port: number, proc: Subprocess): Promise<void> {
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (proc.exitCode !== null) throw new Error(`server exited with status ${proc.exitCode} before listening`);
    try {
      const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
      socket.end();
      return;
    } catch {
      await Bun.sleep(20);
    }
  }
  throw new Error(`server not listening on 127.0.0.1:${port} after ${START_TIMEOUT_MS} ms`);
}
