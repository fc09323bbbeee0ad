// Real Redis Cluster for the tests: six Debian redis-server processes (three masters, a replica each) on free
// loopback ports, joined by `redis-cli --cluster create`, with a node timeout short enough that a master's
// failover takes seconds. Each node keeps its cluster state file in the test's scratch directory.

import { join } from "node:path";
import Redis from "ioredis";
import { freePort } from "./ports.ts";
import { type RedisServer, startRedis } from "./redis.ts";

export const REDIS_CLI = "/usr/bin/redis-cli";
/** A master silent this long is failed over by its replica. */
const NODE_TIMEOUT_MS = 1000;

export interface RedisClusterSetup {
  /** Every node, masters first as created (nodes[i + 3] replicates nodes[i]). */
  nodes: RedisServer[];
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,127.0.0.1:P3` */
  url: string;
  /** The port of the master serving `slot` now, as CLUSTER SHARDS says on a live node. */
  ownerOf(slot: number): Promise<number>;
  /** Moves a slot, and its keys, from the master that has it to the one on `toPort`, as redis-cli --cluster does. */
  migrateSlot(slot: number, toPort: number): Promise<void>;
  stop(): Promise<void>;
}

export async function startRedisCluster(dir: string): Promise<RedisClusterSetup> {
  const nodes: RedisServer[] = [];
  for (let i = 0; i < 6; i++) {
    const port = freePort();
    nodes.push(
      await startRedis(port, [
        // A replica's first sync writes the master's snapshot to its directory, whatever --save says.
        "--dir",
        dir,
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        join(dir, `nodes-${port}.conf`),
        // The cluster bus on a free port of its own: Redis's default, the port plus 10,000, may be taken by
        // another connection (or past 65535 for a port above 55535), and redis-server then exits at start.
        "--cluster-port",
        String(freePort()),
        "--cluster-node-timeout",
        String(NODE_TIMEOUT_MS),
        // A replica takes over however long it had been cut off: the test kills masters on purpose.
        "--cluster-replica-validity-factor",
        "0",
        // A replica's first sync starts at once, not after Redis's default 5 s wait for more replicas: a master
        // killed early must leave a replica that holds its data (the streams, with --history).
        "--repl-diskless-sync-delay",
        "0",
      ]),
    );
  }
  const create = Bun.spawnSync(
    [
      REDIS_CLI,
      "--cluster",
      "create",
      ...nodes.map((n) => `127.0.0.1:${n.port}`),
      "--cluster-replicas",
      "1",
      "--cluster-yes",
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (create.exitCode !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`);
  const clients = new Map<number, Redis>();
  const client = (port: number) => {
    let c = clients.get(port);
    if (c === undefined) {
      c = new Redis({ port, host: "127.0.0.1", retryStrategy: () => null, lazyConnect: false });
      c.on("error", () => {});
      clients.set(port, c);
    }
    return c;
  };
  /** Asks each node in turn until one answers. */
  const ask = async <T>(question: (c: Redis) => Promise<T>): Promise<T> => {
    let last: unknown;
    for (const node of nodes) {
      try {
        return await question(client(node.port));
      } catch (error) {
        last = error;
      }
    }
    throw last;
  };
  // Every node must agree the cluster is whole before it is used.
  const deadline = Date.now() + 20_000;
  for (;;) {
    const states = await Promise.all(
      nodes.map(async (n) => ((await client(n.port).cluster("INFO")) as string).includes("cluster_state:ok")),
    );
    if (states.every(Boolean)) break;
    if (Date.now() > deadline) throw new Error("the Redis Cluster never reached cluster_state:ok");
    await Bun.sleep(100);
  }
  // And every replica must have its master's data: from then on, what a master takes reaches its replica.
  for (;;) {
    const infos = await Promise.all(nodes.map(async (n) => (await client(n.port).info("replication")) as string));
    const replicas = infos.filter((info) => info.includes("role:slave"));
    if (replicas.length === 3 && replicas.every((info) => info.includes("master_link_status:up"))) break;
    if (Date.now() > deadline) throw new Error("the Redis Cluster's replicas never synced with their masters");
    await Bun.sleep(100);
  }
  const ownerOf = (slot: number) =>
    ask(async (c) => {
      const slots = await c.cluster("SLOTS");
      const range = slots.find(([from, to]) => from <= slot && slot <= to);
      const port = range?.[2]?.[1];
      if (port === undefined) throw new Error(`no node serves slot ${slot}`);
      return port;
    });
  const nodeId = async (port: number) => (await client(port).cluster("MYID")) as string;
  return {
    nodes,
    url: `redis+cluster://${nodes
      .slice(0, 3)
      .map((n) => `127.0.0.1:${n.port}`)
      .join(",")}`,
    ownerOf,
    async migrateSlot(slot, toPort) {
      const fromPort = await ownerOf(slot);
      const [from, to] = [client(fromPort), client(toPort)];
      const [fromId, toId] = [await nodeId(fromPort), await nodeId(toPort)];
      await to.cluster("SETSLOT", slot, "IMPORTING", fromId);
      await from.cluster("SETSLOT", slot, "MIGRATING", toId);
      for (;;) {
        const keys = (await from.cluster("GETKEYSINSLOT", slot, 100)) as string[];
        if (keys.length === 0) break;
        await from.migrate("127.0.0.1", toPort, "", 0, 5000, "KEYS", ...keys);
      }
      // The new owner first, then the old one, then every other master, as redis-cli --cluster reshard does.
      await to.cluster("SETSLOT", slot, "NODE", toId);
      await from.cluster("SETSLOT", slot, "NODE", toId);
      for (const node of nodes) {
        if (node.port === fromPort || node.port === toPort) continue;
        await client(node.port)
          .cluster("SETSLOT", slot, "NODE", toId)
          .catch(() => {});
      }
    },
    async stop() {
      for (const c of clients.values()) c.disconnect();
      await Promise.all(nodes.map((n) => n.stop()));
    },
  };
}
