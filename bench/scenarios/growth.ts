// Scenario 4, growth: how the cost of a delivery and the server's memory change with the number of
// subscribers on a channel, the number of channels, and the size of a message. Each point is a fresh server
// running the fan-out load as fast as it goes.

import { memory } from "../../test/support/process-stats.ts";
import { FanoutLoad } from "../load/fanout.ts";
import { warmUp } from "../load/ws-client.ts";
import type { Pinning } from "../pinning.ts";
import { type Plan, windowFor } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";

export type GrowthAxis = "subscribers" | "channels" | "size";

export interface GrowthPoint {
  axis: GrowthAxis;
  /** The value on that axis: subscribers per channel, channels, or bytes per message. */
  value: number;
  channels: number;
  subscribersPerChannel: number;
  messageSize: number;
  window: number;
}

export interface GrowthRun {
  connectMs: number;
  deliveriesPerSecond: number;
  serverCpuMicrosPerDelivery: number;
  serverCpuShare: number;
  loadCpuShare: number;
  /** Share of the machine other processes took during the run. */
  otherShare: number;
  lost: number;
  outOfOrder: number;
  disconnected: number;
  /** Server RSS above its baseline, per connection, once every subscriber is connected. */
  idleBytesPerConnection: number;
  /** Server RSS above its baseline at the end of the run, in all. */
  loadedRssBytes: number;
}

/** Every point of the plan: each axis varied with the others at their smallest. */
export function growthPoints(plan: Plan["growth"], maxWindow: number): GrowthPoint[] {
  const point = (
    axis: GrowthAxis,
    value: number,
    channels: number,
    subscribersPerChannel: number,
    messageSize: number,
  ) => ({
    axis,
    value,
    channels,
    subscribersPerChannel,
    messageSize,
    window: windowFor(channels, messageSize, maxWindow),
  });
  return [
    ...plan.subscribersPerChannel.map((n) => point("subscribers", n, 1, n, 64)),
    // One subscriber per channel, publishing to itself: what many channels cost, apart from fan-out.
    ...plan.channels.map((n) => point("channels", n, n, 1, 64)),
    ...plan.messageSizes.map((n) => point("size", n, 1, plan.subscribersForSizes, n)),
  ];
}

export async function growthRun(
  kind: ServerKind,
  point: GrowthPoint,
  seconds: number,
  pinning: Pinning,
): Promise<GrowthRun> {
  const server = await startServer(kind, pinning);
  await warmUp(server.port);
  const baseline = memory(server.pid).rss;
  const load = await FanoutLoad.open({
    port: server.port,
    channels: point.channels,
    subscribersPerChannel: point.subscribersPerChannel,
    messageSize: point.messageSize,
  });
  try {
    const connections = point.channels * point.subscribersPerChannel;
    await Bun.sleep(200);
    const idle = memory(server.pid).rss;
    const pace = { kind: "window", inFlightPerChannel: point.window } as const;
    // A short warm-up, a tenth of the run, so that the JIT is not what the smallest points measure.
    await load.run(pace, Math.max(50, seconds * 100), server.pid);
    const result = await load.run(pace, seconds * 1000, server.pid);
    return {
      connectMs: load.connectMs,
      deliveriesPerSecond: result.deliveriesPerSecond,
      serverCpuMicrosPerDelivery: result.serverCpuMicrosPerDelivery,
      serverCpuShare: result.cpu.server / result.cpu.seconds,
      loadCpuShare: result.cpu.load / result.cpu.seconds,
      otherShare: result.cpu.other / result.cpu.seconds,
      lost: result.lost,
      outOfOrder: result.outOfOrder,
      disconnected: result.disconnected,
      idleBytesPerConnection: (idle - baseline) / connections,
      loadedRssBytes: result.serverRssBytes - baseline,
    };
  } finally {
    await server.stop();
    await load.close();
  }
}
