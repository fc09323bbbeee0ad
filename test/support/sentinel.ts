// Real Redis Sentinel for the tests: a master and a replica (Debian's redis-server) watched by three sentinels
// (Debian's redis-sentinel), all on free loopback ports, with timings short enough that a failover takes
// seconds. Sentinels rewrite their own configuration file, so each gets one in the test's scratch directory.

import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import Redis from "ioredis";
import { freePort } from "./ports.ts";
import { type RedisServer, startRedis } from "./redis.ts";

export const REDIS_SENTINEL = "/usr/bin/redis-sentinel";
export const MASTER_NAME = "pinghub-test";
/** A master silent this long is taken for down by a sentinel. */
const DOWN_AFTER_MS = 1000;
const FAILOVER_TIMEOUT_MS = 5000;

/** Skips loudly when redis-sentinel is missing, except in CI, where it must run. */
export function skipWithoutSentinel(): boolean {
  if (existsSync(REDIS_SENTINEL)) return false;
  const missing = `${REDIS_SENTINEL} not found: install the Debian package redis-sentinel`;
  if (process.env.CI === "true") throw new Error(`${missing} (CI must run the Sentinel tests)`);
  console.warn(`\n*** SKIPPING Sentinel tests: ${missing} ***\n`);
  return true;
}

export interface SentinelSetup {
  master: RedisServer;
  replica: RedisServer;
  sentinelPorts: number[];
  /** Every process of the setup: master, replica, sentinels. */
  pids(): number[];
  /** `redis+sentinel://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3/MASTER_NAME` */
  url: string;
  /** The port of the master as the sentinels now name it. */
  masterPort(): Promise<number>;
  stop(): Promise<void>;
}

/** Starts the master, its replica and three sentinels, and waits until the sentinels know each other. */
export async function startSentinels(dir: string): Promise<SentinelSetup> {
  // A replica's first sync writes the master's snapshot to its directory, whatever --save says: the scratch one.
  const master = await startRedis(freePort(), ["--dir", dir]);
  const replica = await startRedis(freePort(), ["--dir", dir, "--replicaof", "127.0.0.1", String(master.port)]);
  const sentinelPorts = [freePort(), freePort(), freePort()];
  const sentinels: Subprocess[] = sentinelPorts.map((port, i) => {
    const file = join(dir, `sentinel-${i + 1}.conf`);
    writeFileSync(
      file,
      [
        `port ${port}`,
        "bind 127.0.0.1",
        "daemonize no",
        `dir ${dir}`,
        `sentinel monitor ${MASTER_NAME} 127.0.0.1 ${master.port} 2`,
        `sentinel down-after-milliseconds ${MASTER_NAME} ${DOWN_AFTER_MS}`,
        `sentinel failover-timeout ${MASTER_NAME} ${FAILOVER_TIMEOUT_MS}`,
        `sentinel parallel-syncs ${MASTER_NAME} 1`,
        "",
      ].join("\n"),
    );
    return Bun.spawn([REDIS_SENTINEL, file, "--loglevel", "warning"], {
      stdin: "ignore",
      stdout: "ignore",
      stderr: "ignore",
    });
  });
  const clients = sentinelPorts.map((port) => {
    const client = new Redis({ port, host: "127.0.0.1", retryStrategy: () => 50 });
    client.on("error", () => {});
    return client;
  });
  const ask = (client: Redis, ...args: string[]) => client.call("SENTINEL", ...args) as Promise<unknown>;
  // A failover needs a majority of sentinels that know each other, and a replica they know of; sentinels learn
  // both from the master every few seconds.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const views = await Promise.all(
      clients.map(async (client) => {
        try {
          const fields = (await ask(client, "MASTER", MASTER_NAME)) as string[];
          const field = (name: string) => Number(fields[fields.indexOf(name) + 1]);
          return field("num-other-sentinels") === 2 && field("num-slaves") === 1;
        } catch {
          return false;
        }
      }),
    );
    if (views.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error("the sentinels never came to know each other and the replica");
    await Bun.sleep(100);
  }
  return {
    master,
    replica,
    sentinelPorts,
    pids: () => [master.pid(), replica.pid(), ...sentinels.map((s) => s.pid)].filter((p) => p !== undefined),
    url: `redis+sentinel://${sentinelPorts.map((p) => `127.0.0.1:${p}`).join(",")}/${MASTER_NAME}`,
    async masterPort() {
      const [, port] = (await ask(clients[0] as Redis, "GET-MASTER-ADDR-BY-NAME", MASTER_NAME)) as string[];
      return Number(port);
    },
    async stop() {
      for (const client of clients) client.disconnect();
      for (const sentinel of sentinels) sentinel.kill("SIGKILL");
      await Promise.all(sentinels.map((s) => s.exited));
      await Promise.all([master.stop(), replica.stop()]);
    },
  };
}
