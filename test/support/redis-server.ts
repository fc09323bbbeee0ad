// redis-server as the tests, the benchmark and `bun run cluster` start it: Debian's, on a loopback port, in the
// foreground, persistence off (no RDB snapshot, no append-only file), never a system service. One place, so
// that the three start the same Redis and say the same thing when it is missing.

import type { Subprocess } from "bun";
import { freePort, listening } from "./ports.ts";

/** redis-server on the PATH, or undefined. */
export function redisServerPath(): string | undefined {
  return Bun.which("redis-server") ?? undefined;
}

/** Why Redis cannot be started here, naming the Debian package; undefined when redis-server is there. */
export function missingRedisServer(): string | undefined {
  return redisServerPath() === undefined
    ? "redis-server not found on the PATH: install the Debian package redis-server"
    : undefined;
}

/** The command line of a redis-server on 127.0.0.1:`port`, with `extraArgs` (--requirepass, --unixsocket) after. */
export function redisServerCommand(port: number, extraArgs: string[] = []): string[] {
  const path = redisServerPath();
  if (path === undefined) throw new Error(missingRedisServer());
  return [
    path,
    ...["--port", String(port), "--bind", "127.0.0.1"],
    ...["--save", "", "--appendonly", "no"],
    ...["--daemonize", "no", "--loglevel", "warning"],
    ...extraArgs,
  ];
}

export interface RedisServerOptions {
  port?: number;
  extraArgs?: string[];
  /** Wraps the command, e.g. in `taskset -c CORE` (the benchmark pins Redis to a core). */
  wrap?: (command: string[]) => string[];
}

/**
 * Starts redis-server and resolves with its process once it accepts connections. Its log goes to stdout, which
 * is dropped: at "warning", a line or two about the machine; errors that stop it show as its exit status.
 */
export async function startRedisServer(options: RedisServerOptions = {}): Promise<{ proc: Subprocess; port: number }> {
  const port = options.port ?? freePort();
  const command = redisServerCommand(port, options.extraArgs);
  const proc = Bun.spawn(options.wrap?.(command) ?? command, { stdin: "ignore", stdout: "ignore", stderr: "inherit" });
  try {
    await listening(proc, port, "redis-server");
  } catch (error) {
    proc.kill("SIGKILL");
    throw error;
  }
  return { proc, port };
}
