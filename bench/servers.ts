// The servers under test, each started as a real process of its own, pinned to the server's core: pinghub
// exactly as deployed (metrics server on), the floor, a cluster node: pinghub with --redis and a redis-server
// of its own, a node with history: pinghub with --history; `--workers 2` with a redis-server of its own, the one
// server not pinned, since its point is to use more than one core; a cluster node on Redis Sentinel or on a
// Redis Cluster; and the peer, Nchan, alone or through a redis-server of its own (bench/peers/nchan.ts). Every
// measurement gets fresh processes, so that no run inherits another's heap, JIT state, Redis state or sockets in
// TIME_WAIT.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { freePort, listening } from "../test/support/ports.ts";
import { type RedisClusterSetup, startRedisCluster } from "../test/support/redis-cluster.ts";
import { startRedisServer } from "../test/support/redis-server.ts";
import { type SentinelSetup, startSentinels } from "../test/support/sentinel.ts";
import { until } from "../test/support/until.ts";
import { forwardAuthUrl, jwtKeyFile, WIDE_TOKEN_QUERY } from "./auth-setup.ts";
import type { RedisPids } from "./measure.ts";
import { nchanCommand, nginxWorker } from "./peers/nchan.ts";
import { type Pinning, pinRunning, redisCommand, serverCommand } from "./pinning.ts";

/**
 * The environment pinghub is deployed with (package.json's `pinghub` script, examples/pinghub.service): Bun's
 * allocator, mimalloc, gives memory back to the system at once rather than a second later, so what a herd of
 * cut-off subscribers held leaves the resident memory as they go (README, "Limits").
 */
export const PINGHUB_ENV = { MIMALLOC_PURGE_DELAY: "0" };

export type ServerKind =
  | "floor"
  | "pinghub"
  | "cluster"
  | "history"
  | "workers"
  | "sentinel"
  | "rcluster"
  | "jwt"
  | "forward"
  | NchanKind;
/** The peer: Nchan on a single node, and Nchan publishing through Redis (nostore). */
export type NchanKind = "nchan" | "nchan-redis";
/** The headline comparison: the floor, then pinghub. */
export const SERVER_KINDS = ["floor", "pinghub"] as const;
export type FloorKind = (typeof SERVER_KINDS)[number];
/** The cluster scenarios' comparison: a single node, then one cluster node through Redis. */
export const CLUSTER_KINDS = ["pinghub", "cluster"] as const;
export type ClusterKind = (typeof CLUSTER_KINDS)[number];
/** The history scenario's comparison: a single node, then the same node keeping each channel's last messages. */
export const HISTORY_KINDS = ["pinghub", "history"] as const;
export type HistoryKind = (typeof HISTORY_KINDS)[number];
/** The workers scenario's comparison: one process, then `--workers WORKERS` on the same port through Redis. */
export const WORKERS_KINDS = ["pinghub", "workers"] as const;
export type WorkersKind = (typeof WORKERS_KINDS)[number];
/**
 * The highly available brokers' comparisons: a cluster node on one Redis, then one on Redis Sentinel (a master,
 * a replica, three sentinels), or on a Redis Cluster (three masters, a replica each).
 */
export const SENTINEL_KINDS = ["cluster", "sentinel"] as const;
export type SentinelKind = (typeof SENTINEL_KINDS)[number];
export const RCLUSTER_KINDS = ["cluster", "rcluster"] as const;
export type RclusterKind = (typeof RCLUSTER_KINDS)[number];
/** Workers of a "workers" server: one per core of a 2-core machine. */
export const WORKERS = 2;
/** The auth scenario's comparisons: pinghub without authorization, then with --jwt-key, or with --auth-url. */
export const JWT_KINDS = ["pinghub", "jwt"] as const;
export type JwtKind = (typeof JWT_KINDS)[number];
export const FORWARD_KINDS = ["pinghub", "forward"] as const;
export type ForwardKind = (typeof FORWARD_KINDS)[number];
/** Messages a "history" node keeps per channel: `--history 100`. */
export const HISTORY_MESSAGES = 100;

const ROOT = new URL("..", import.meta.url).pathname;

/** How long a server may take to listen, and to exit once told to. */
const START_TIMEOUT_MS = 15_000;
const STOP_TIMEOUT_MS = 5_000;

export interface RunningServer {
  kind: ServerKind;
  /**
   * The process whose CPU time is the server's, with its descendants': pinghub's (with --workers, the parent
   * and its workers), or nginx's one worker.
   */
  pid: number;
  /** The process the others (nginx's worker) descend from: the server's memory is that whole tree's. */
  rootPid: number;
  port: number;
  /** A cluster node's redis-server (or Sentinel's, a Redis Cluster's): pids, to read CPU time from /proc. */
  redisPid: RedisPids;
  /**
   * What every request's path takes after it: `?token=...` for a "jwt" server (a token granting everything
   * under /bench/), "" for the others. A "forward" server's application allows everything, cached.
   */
  query: string;
  /** Stops the server (then its redis-server) and waits for it to exit; its sockets close from its side. */
  stop(): Promise<void>;
}

/** Every server still running, so that an interrupted benchmark leaves none behind. */
const running = new Set<Subprocess>();
/** Nchan's temporary directories not yet removed, for the same reason. */
const directories = new Set<string>();

export async function startServer(kind: ServerKind, pinning: Pinning): Promise<RunningServer> {
  // A cluster node's Redis first: the node waits for it at start-up, and would serve 503s without it.
  const redis = await startBroker(kind, pinning);
  const port = freePort();
  const mport = freePort();
  // Nchan's config, logs and temporary files go in a directory of its own, removed when it stops.
  const nchan = kind === "nchan" || kind === "nchan-redis" ? nchanCommand(port, redis?.port) : undefined;
  const command =
    nchan !== undefined
      ? nchan.command
      : kind === "floor"
        ? [process.execPath, "bench/floor.ts", String(port)]
        : [
            process.execPath,
            "src/main.ts",
            "--addr",
            `127.0.0.1:${port}`,
            // As users run it: metrics served, on a port of its own that nobody scrapes during the runs.
            "--mport",
            String(mport),
            "--log-level",
            "warn",
            ...(redis === undefined ? [] : ["--redis", redis.url]),
            ...(kind === "history" ? ["--history", String(HISTORY_MESSAGES)] : []),
            ...(kind === "workers" ? ["--workers", String(WORKERS)] : []),
            ...(kind === "jwt" ? ["--jwt-key", await jwtKeyFile()] : []),
            ...(kind === "forward" ? ["--auth-url", forwardAuthUrl()] : []),
          ];
  if (nchan !== undefined) directories.add(nchan.dir);
  const removeDir = () => {
    if (nchan === undefined) return;
    rmSync(nchan.dir, { recursive: true, force: true });
    directories.delete(nchan.dir);
  };
  let proc: Subprocess | undefined;
  let worker: number | undefined;
  try {
    proc = await spawnListening(
      kind === "workers" ? command : serverCommand(pinning, command),
      port,
      // pinghub as `bun run pinghub` and the systemd unit start it; the floor and Nchan as they are.
      kind === "floor" || nchan !== undefined ? {} : PINGHUB_ENV,
    );
    worker = proc.pid;
    // The port answers once the first worker listens; the others may not yet, and a connection the kernel
    // hashes only among listening workers would land unevenly. /healthz is 200 once every worker serves.
    if (kind === "workers") await until(() => healthy(mport), "every worker serves", START_TIMEOUT_MS);
    if (nchan !== undefined) {
      // nginx's master opens the listening socket (the kernel then accepts connections) before it forks its one
      // worker, which answers them: wait for the worker; and Nchan on Redis answers 503 until it has connected.
      worker = await nginxWorker(proc.pid, START_TIMEOUT_MS);
      if (worker === undefined) throw new Error("nginx listens but has no worker process");
      if (kind === "nchan-redis") await nchanReady(port);
    }
  } catch (error) {
    if (proc !== undefined) await stopProcess(proc);
    await redis?.stop();
    removeDir();
    throw error;
  }
  const started = proc;
  return {
    kind,
    // `taskset` execs the server in its own place, so this is the server's pid, the one /proc is read for.
    pid: worker,
    rootPid: started.pid,
    port,
    redisPid: redis?.pids,
    query: kind === "jwt" ? await WIDE_TOKEN_QUERY : "",
    async stop() {
      await stopProcess(started);
      await redis?.stop();
      removeDir();
    },
  };
}

/** Waits until Nchan takes a POST (not 503: Redis not connected yet); throws if it never does. */
async function nchanReady(port: number): Promise<void> {
  const deadline = performance.now() + START_TIMEOUT_MS;
  while (performance.now() < deadline) {
    const res = await fetch(`http://127.0.0.1:${port}/bench/ready`, { method: "POST", body: "ready" });
    await res.arrayBuffer();
    if (res.ok) return;
    await Bun.sleep(20);
  }
  throw new Error(`Nchan on Redis still refuses a POST after ${START_TIMEOUT_MS} ms`);
}

interface Broker {
  url: string;
  /** One redis-server's port (Nchan on Redis is given it); undefined for Sentinel and a Redis Cluster. */
  port: number | undefined;
  /** The processes whose CPU time is Redis's. */
  pids: number[];
  stop(): Promise<void>;
}

/**
 * What a server of `kind` publishes through: one redis-server (cluster, workers, Nchan on Redis), Sentinel's
 * five processes or a Redis Cluster's six (started as the tests start them, then moved onto Redis's core), or
 * nothing.
 */
async function startBroker(kind: ServerKind, pinning: Pinning): Promise<Broker | undefined> {
  if (kind === "cluster" || kind === "workers" || kind === "nchan-redis") {
    const redis = await startRedis(pinning);
    return { url: `redis://127.0.0.1:${redis.port}`, port: redis.port, pids: [redis.proc.pid], stop: redis.stop };
  }
  if (kind !== "sentinel" && kind !== "rcluster") return undefined;
  const dir = mkdtempSync(join(tmpdir(), `pinghub-bench-${kind}-`));
  const setup = kind === "sentinel" ? await startSentinels(dir) : await startRedisCluster(dir);
  const pids =
    kind === "sentinel"
      ? (setup as SentinelSetup).pids()
      : (setup as RedisClusterSetup).nodes.flatMap((n) => n.pid() ?? []);
  for (const pid of pids) pinRunning(pinning.redisCore, pid);
  return {
    url: setup.url,
    port: undefined,
    pids,
    async stop() {
      await setup.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Whether the metrics server on 127.0.0.1:`port` answers /healthz with 200. */
async function healthy(port: number): Promise<boolean> {
  try {
    return (await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200;
  } catch {
    return false;
  }
}

/** A redis-server for one cluster node, as the cluster tests start it, on the core the pinning gives it. */
async function startRedis(pinning: Pinning): Promise<{ proc: Subprocess; port: number; stop(): Promise<void> }> {
  const { proc, port } = await startRedisServer({ wrap: (command) => redisCommand(pinning, command) });
  running.add(proc);
  return { proc, port, stop: () => stopProcess(proc) };
}

/** Starts a process and waits until it accepts connections on `port`; it is killed if it does not. */
async function spawnListening(command: string[], port: number, env: Record<string, string>): Promise<Subprocess> {
  const proc = Bun.spawn(command, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "ignore",
    // Warnings (a subscriber cut off for its backlog) go to the benchmark's own stderr, where they are seen.
    stderr: "inherit",
  });
  running.add(proc);
  try {
    await listening(proc, port, "server", START_TIMEOUT_MS);
  } catch (error) {
    proc.kill("SIGKILL");
    running.delete(proc);
    throw error;
  }
  return proc;
}

/** SIGTERM, then SIGKILL if it is still there after STOP_TIMEOUT_MS; resolves once it has exited. */
async function stopProcess(proc: Subprocess): Promise<void> {
  proc.kill("SIGTERM");
  const timer = setTimeout(() => proc.kill("SIGKILL"), STOP_TIMEOUT_MS);
  await proc.exited;
  clearTimeout(timer);
  running.delete(proc);
}

/** Kills whatever servers (and redis-servers) are left; for an exit in the middle of a run. */
export function killAllServers(): void {
  for (const proc of running) proc.kill("SIGKILL");
  running.clear();
  for (const dir of directories) rmSync(dir, { recursive: true, force: true });
  directories.clear();
}
