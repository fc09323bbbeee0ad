// Real Redis for the cluster tests: Debian's redis-server, started by the test on a free loopback port with
// persistence off, never a system service. It can be killed (SIGKILL) and started again on the same port.

import { existsSync } from "node:fs";
import type { Subprocess } from "bun";
import Redis from "ioredis";
import { freePort } from "./server.ts";

export const REDIS_SERVER = "/usr/bin/redis-server";

/** A line naming the Debian package when redis-server is missing; an empty string when it is there. */
export function missingRedis(): string {
  return existsSync(REDIS_SERVER) ? "" : `${REDIS_SERVER} not found: install the Debian package redis-server`;
}

/**
 * Skips the calling test file loudly when redis-server is missing, except in CI, where it must run: the
 * returned flag is what `describe.skipIf` takes.
 */
export function skipWithoutRedis(): boolean {
  const missing = missingRedis();
  if (missing === "") return false;
  if (process.env.CI === "true") throw new Error(`${missing} (CI must run the cluster tests)`);
  console.warn(`\n*** SKIPPING cluster tests: ${missing} ***\n`);
  return true;
}

export interface RedisServer {
  port: number;
  /** `redis://127.0.0.1:PORT` */
  url: string;
  /** A plain client for the test's own questions (PUBSUB NUMSUB, CLIENT KILL). */
  client(): Redis;
  /** SIGKILL: gone at once, as in a crash. */
  kill(): Promise<void>;
  /** SIGSTOP: connections stay open but nothing is answered, as through a network cut. */
  pause(): void;
  /** SIGCONT after pause. */
  resume(): void;
  /** Starts redis-server again on the same port. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts redis-server; `password` is what the test's own clients use when `extraArgs` set --requirepass. */
export async function startRedis(port = freePort(), extraArgs: string[] = [], password?: string): Promise<RedisServer> {
  let proc: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  const clients: Redis[] = [];
  const launch = async () => {
    proc = Bun.spawn(
      [
        REDIS_SERVER,
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
        "--loglevel",
        "warning",
        ...extraArgs,
      ],
      { stdin: "ignore", stdout: "pipe", stderr: "pipe" },
    );
    const deadline = Date.now() + 10_000;
    for (;;) {
      if (proc.exitCode !== null) throw new Error(`redis-server exited with ${proc.exitCode}`);
      const probe = new Redis({ port, host: "127.0.0.1", password, lazyConnect: true, retryStrategy: () => null });
      probe.on("error", () => {});
      try {
        await probe.connect();
        await probe.ping();
        probe.disconnect();
        return;
      } catch {
        probe.disconnect();
        if (Date.now() > deadline) throw new Error(`redis-server never answered on port ${port}`);
        await Bun.sleep(20);
      }
    }
  };
  const kill = async () => {
    if (proc === undefined) return;
    proc.kill("SIGKILL");
    // A stopped process takes SIGKILL too, but is woken so that it goes at once.
    proc.kill("SIGCONT");
    await proc.exited;
    proc = undefined;
  };
  await launch();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    client() {
      const client = new Redis({ port, host: "127.0.0.1", password });
      client.on("error", () => {});
      clients.push(client);
      return client;
    },
    kill,
    pause: () => proc?.kill("SIGSTOP"),
    resume: () => proc?.kill("SIGCONT"),
    restart: launch,
    async stop() {
      for (const client of clients) client.disconnect();
      await kill();
    },
  };
}

/** Subscribers of each Redis channel, as Redis counts them (PUBSUB NUMSUB). */
export async function numsub(client: Redis, channels: string[]): Promise<number[]> {
  const reply = (await client.pubsub("NUMSUB", ...channels)) as Array<string | number>;
  return channels.map((_, i) => Number(reply[i * 2 + 1]));
}
