// Real Redis for the cluster tests: Debian's redis-server, started by the test on a free loopback port with
// persistence off, never a system service. It can be killed (SIGKILL) and started again on the same port.

import type { Subprocess } from "bun";
import Redis from "ioredis";
import { freePort } from "./ports.ts";
import { missingRedisServer, startRedisServer } from "./redis-server.ts";

/**
 * Skips the calling test file loudly when redis-server is missing, except in CI, where it must run: the
 * returned flag is what `describe.skipIf` takes.
 */
export function skipWithoutRedis(): boolean {
  const missing = missingRedisServer();
  if (missing === undefined) return false;
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
  let proc: Subprocess | undefined;
  const clients: Redis[] = [];
  const launch = async () => {
    proc = (await startRedisServer({ port, extraArgs })).proc;
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
