// Scenario 3, POST publishing: keep-alive connections POSTing to one channel as fast as answers come, with one
// websocket subscriber reading every message, so that each POST is really delivered. The cluster scenario runs
// it too, on a single node and on a cluster node.

import { type PostResult, type PostTool, runPost } from "../load/post.ts";
import { closeAll, connectAll } from "../load/ws-client.ts";
import type { CpuUse } from "../measure.ts";
import { cpuSince, cpuSnapshot } from "../measure.ts";
import type { Pinning } from "../pinning.ts";
import type { Plan } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";

export interface PostRun extends PostResult {
  /** Messages the subscriber received: every POST answered, give or take those in flight at the end. */
  delivered: number;
  serverCpuMicrosPerRequest: number;
  cpu: CpuUse;
}

const CHANNEL = "/bench/post";

export async function postRun(
  kind: ServerKind,
  plan: Plan["post"],
  tool: PostTool,
  pinning: Pinning,
): Promise<PostRun> {
  const server = await startServer(kind, pinning);
  let delivered = 0;
  const subscriber = await connectAll({
    port: server.port,
    count: 1,
    path: () => `${CHANNEL}${server.query}`,
    channel: () => 0,
    handlers: {
      text() {
        delivered++;
      },
    },
  });
  try {
    const load = { port: server.port, path: `${CHANNEL}${server.query}`, connections: plan.connections, tool };
    if (plan.warmupSeconds > 0) await runPost({ ...load, seconds: plan.warmupSeconds });
    await Bun.sleep(100);
    delivered = 0;
    const start = cpuSnapshot(server.pid, server.redisPid);
    const result = await runPost({ ...load, seconds: plan.seconds });
    // wrk's CPU is its own process's; the Bun loop's is already this process's.
    const cpu = cpuSince(start, server.pid, tool === "wrk" ? result.toolCpuSeconds : 0);
    // The last answers' messages may still be on their way to the subscriber.
    await Bun.sleep(100);
    return { ...result, delivered, serverCpuMicrosPerRequest: (cpu.server / result.requests) * 1e6, cpu };
  } finally {
    await server.stop();
    await closeAll(subscriber);
  }
}
