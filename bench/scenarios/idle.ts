// Scenario 2, idle connections: many subscribers, each on a channel of its own, doing nothing. What one costs
// in server memory, and how long they all take to connect.

import { memory } from "../../test/support/process-stats.ts";
import { closeAll, connectAll, warmUp } from "../load/ws-client.ts";
import { cpuSince, cpuSnapshot } from "../measure.ts";
import type { Pinning } from "../pinning.ts";
import type { Plan } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";

export interface IdleRun {
  connections: number;
  connectMs: number;
  /** Server RSS before the first connection and after the last, settled. */
  baselineRssBytes: number;
  rssBytes: number;
  /** (rss − baseline) / connections. */
  bytesPerConnection: number;
  /** Share of the machine other processes took while connecting and settling: a disturbed connect time. */
  otherShare: number;
}

export async function idleRun(kind: ServerKind, plan: Plan["idle"], pinning: Pinning): Promise<IdleRun> {
  const server = await startServer(kind, pinning);
  let conns: Awaited<ReturnType<typeof connectAll>> = [];
  try {
    await warmUp(server.port);
    const baseline = memory(server.pid).rss;
    const cpu = cpuSnapshot(server.pid);
    const started = performance.now();
    conns = await connectAll({
      port: server.port,
      count: plan.connections,
      path: (i) => `/bench/idle/${i}`,
      channel: (i) => i,
      handlers: { text() {} },
    });
    const connectMs = performance.now() - started;
    // Let the server finish what the connections set off (buffers freed after the handshakes) before reading.
    await Bun.sleep(plan.settleSeconds * 1000);
    const rss = memory(server.pid).rss;
    const used = cpuSince(cpu, server.pid);
    return {
      connections: plan.connections,
      connectMs,
      baselineRssBytes: baseline,
      rssBytes: rss,
      bytesPerConnection: (rss - baseline) / plan.connections,
      otherShare: used.other / used.seconds,
    };
  } finally {
    await server.stop();
    await closeAll(conns);
  }
}
