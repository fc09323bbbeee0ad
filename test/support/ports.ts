// Loopback ports for the programs the tests, the benchmark and `bun run cluster` start (pinghub, redis-server,
// nginx): one the system just gave out, and the wait until a program listens on it.

import type { Subprocess } from "bun";
import { until } from "./until.ts";

/**
 * A TCP port on 127.0.0.1 that was free a moment ago: the system picks it, and it is let go at once for the
 * program that is to take it (for a flag that cannot take 0, or a port that must be known before starting).
 */
export function freePort(): number {
  const listener = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const { port } = listener;
  listener.stop(true);
  return port;
}

/** Whether something accepts a TCP connection on 127.0.0.1:`port` now. */
export async function accepts(port: number): Promise<boolean> {
  try {
    const socket = await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } });
    socket.end();
    return true;
  } catch {
    return false;
  }
}

/**
 * Resolves once `proc` accepts connections on `port`, the one sign of readiness every server here gives;
 * rejects at once if it exits first, and after `timeoutMs` if it never listens.
 */
export async function listening(proc: Subprocess, port: number, what: string, timeoutMs?: number): Promise<void> {
  await until(
    async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) {
        throw new Error(`${what} exited (${proc.exitCode ?? proc.signalCode}) before listening on port ${port}`);
      }
      return await accepts(port);
    },
    `${what} listens on 127.0.0.1:${port}`,
    timeoutMs,
  );
}
