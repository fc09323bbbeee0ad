// Scenario 1, fan-out: one channel with many subscribers, one of them publishing by websocket; at fixed rates,
// then as fast as the load generator can take. The headline figures: server CPU per delivery, deliveries per
// second, latency, and whether anything was lost or reordered. The cluster and history scenarios run it too,
// on a single node and on a cluster node or a node with history; the SSE scenario runs its fixed rates with
// SSE subscribers and with websockets.

import { FanoutLoad, type PhaseResult, type Transport } from "../load/fanout.ts";
import type { Pinning } from "../pinning.ts";
import type { Plan } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";

export interface FanoutPhase {
  /** "300 msg/s", or "max" for the closed loop. */
  name: string;
  result: PhaseResult;
}

export interface FanoutRun {
  connectMs: number;
  /** The plan's fixed rates in order, then the closed loop (unless the plan's maxSeconds is 0). */
  phases: FanoutPhase[];
}

/** The fan-out on a fresh server of `kind`, its subscribers websockets or (`transport` "sse") SSE streams. */
export async function fanoutRun(
  kind: ServerKind,
  plan: Plan["fanout"],
  pinning: Pinning,
  transport: Transport = "websocket",
): Promise<FanoutRun> {
  const server = await startServer(kind, pinning);
  let load: FanoutLoad;
  try {
    load = await FanoutLoad.open({
      port: server.port,
      channels: 1,
      subscribersPerChannel: plan.subscribers,
      messageSize: plan.messageSize,
      transport,
      query: server.query,
    });
  } catch (error) {
    await server.stop();
    throw error;
  }
  try {
    const maxPace = { kind: "window", inFlightPerChannel: plan.window } as const;
    const { pid, redisPid } = server;
    await load.run(maxPace, plan.warmupSeconds * 1000, pid, redisPid);
    const phases: FanoutPhase[] = [];
    for (const rate of plan.rates) {
      const pace = { kind: "rate", messagesPerSecond: rate } as const;
      phases.push({ name: `${rate} msg/s`, result: await load.run(pace, plan.rateSeconds * 1000, pid, redisPid) });
    }
    if (plan.maxSeconds > 0) {
      phases.push({ name: "max", result: await load.run(maxPace, plan.maxSeconds * 1000, pid, redisPid) });
    }
    return { connectMs: load.connectMs, phases };
  } finally {
    // The server first, so that it closes the connections and holds their TIME_WAIT, not the load generator.
    await server.stop();
    await load.close();
  }
}

/** The largest share of the machine that other processes took in any phase of a run. */
export function fanoutOtherShare(run: FanoutRun): number {
  return Math.max(...run.phases.map((p) => p.result.cpu.other / p.result.cpu.seconds));
}
