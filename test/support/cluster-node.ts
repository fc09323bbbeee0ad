// Cluster nodes for the tests of cluster mode under Redis's faults: a pinghub process on free ports with --redis,
// and what those tests ask of it (health, a scrape, its log lines), and a pool of websocket subscribers.

import type { Subscriber } from "./clients.ts";
import { subscribe } from "./clients.ts";
import { freePort } from "./ports.ts";
import { type PinghubProcess, sample, spawnPinghub } from "./server.ts";

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
  const scrape = async () => (await fetch(`${metrics}/metrics`)).text();
  const started: ClusterNode = {
    ...node,
    url,
    port,
    metrics,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
    async health() {
      const response = await fetch(`${metrics}/healthz`);
      return { status: response.status, text: await response.text() };
    },
    scrape,
    sample: async (series) => sample(await scrape(), series),
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
