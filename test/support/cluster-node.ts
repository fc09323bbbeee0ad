// Cluster nodes for the tests of cluster mode under Redis's faults: a pinghub process on free ports with --redis,
// and what those tests ask of it (health, a scrape, its log lines), and a pool of websocket subscribers. Also the
// plainer node the tests that pass --redis themselves start, and the SIGKILL that ends them all after a test.

import type { Subscriber } from "./clients.ts";
import { subscribe } from "./clients.ts";
import { freePort } from "./ports.ts";
import type { RedisServer } from "./redis.ts";
import { type PinghubProcess, sample, spawnPinghub } from "./server.ts";

/** A pinghub process serving on free ports. */
export interface ServingNode extends PinghubProcess {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  ws(path: string): string;
  /** `http://127.0.0.1:MPORT` */
  metrics: string;
}

/** Starts pinghub on a free port and metrics port, with further `args` and `env`, and waits until it serves. */
export async function startServingNode(args: string[], env: Record<string, string> = {}): Promise<ServingNode> {
  const mport = freePort();
  const node = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", String(mport), ...args], env);
  const [, url = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
  const port = Number(new URL(url).port);
  return {
    ...node,
    url,
    port,
    ws: (path: string) => `ws://127.0.0.1:${port}${path}`,
    metrics: `http://127.0.0.1:${mport}`,
  };
}

/** The status and body of a process's `/healthz`, on its metrics endpoint. */
export async function health(target: { metrics: string }): Promise<{ status: number; text: string }> {
  const response = await fetch(`${target.metrics}/healthz`);
  return { status: response.status, text: await response.text() };
}

/** A process's `/metrics`, scraped now. */
export async function scrape(target: { metrics: string }): Promise<string> {
  return (await fetch(`${target.metrics}/metrics`)).text();
}

/** Empties `running`, SIGKILLs each process and waits until all have exited. */
export async function killAll(running: PinghubProcess[]): Promise<void> {
  const all = running.splice(0);
  for (const node of all) node.proc.kill("SIGKILL");
  await Promise.all(all.map((node) => node.exited));
}

export interface ClusterNode extends PinghubProcess {
  /** `http://127.0.0.1:PORT` */
  url: string;
  port: number;
  ws(path: string): string;
  /** `http://127.0.0.1:MPORT` */
  metrics: string;
  health(): Promise<{ status: number; text: string }>;
  scrape(): Promise<string>;
  /** One sample of the node's metrics, scraped now. */
  sample(series: string): Promise<number | undefined>;
  /** The number of stderr lines matching `pattern`. */
  lines(pattern: RegExp): number;
  stop(): Promise<void>;
}

/**
 * Starts a node and waits until it serves. The Redis URL goes in PINGHUB_REDIS, as the README says a URL with a
 * password must; `args` are further flags.
 */
export async function startClusterNode(redisUrl: string, args: string[] = [], env: Record<string, string> = {}) {
  const mport = freePort();
  const node = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", String(mport), ...args], {
    PINGHUB_REDIS: redisUrl,
    ...env,
  });
  let url: string;
  try {
    url = (await node.waitForStderr(/serving (http:\/\/[^\s,]+)/))[1] ?? "";
  } catch (error) {
    node.proc.kill("SIGKILL");
    throw error;
  }
  const port = Number(new URL(url).port);
  const metrics = `http://127.0.0.1:${mport}`;
  const scrapeNode = () => scrape({ metrics });
  const started: ClusterNode = {
    ...node,
    url,
    port,
    metrics,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
    health: () => health({ metrics }),
    scrape: scrapeNode,
    sample: async (series) => sample(await scrapeNode(), series),
    lines: (pattern) =>
      node
        .stderr()
        .split("\n")
        .filter((line) => pattern.test(line)).length,
    async stop() {
      node.proc.kill("SIGKILL");
      await node.exited;
    },
  };
  return started;
}

/**
 * What a test of cluster nodes on one Redis starts, remembered so that `stopAll` (its afterEach) closes the
 * subscribers, stops the nodes and then the Redis that a failed test left running.
 */
export function clusterBed() {
  const nodes: ClusterNode[] = [];
  const pool = subscriberPool();
  const bed = {
    /** The Redis to stop after the test. */
    redis: undefined as RedisServer | undefined,
    async node(redisUrl: string, args: string[] = []): Promise<ClusterNode> {
      const started = await startClusterNode(redisUrl, args);
      nodes.push(started);
      return started;
    },
    open: pool.open,
    async stopAll() {
      pool.closeAll();
      await Promise.all(nodes.splice(0).map((node) => node.stop()));
      await bed.redis?.stop();
      bed.redis = undefined;
    },
  };
  return bed;
}

/** Opens websocket subscribers and remembers them, so that `closeAll` closes whatever a failed test left open. */
export function subscriberPool() {
  const open: Subscriber[] = [];
  return {
    async open(url: string): Promise<Subscriber> {
      const s = await subscribe(url);
      open.push(s);
      return s;
    },
    closeAll() {
      for (const s of open.splice(0)) s.close();
    },
  };
}
