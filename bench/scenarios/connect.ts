// The auth scenario's connects: many websockets, each on a channel of its own and, on a "jwt" server, each with
// a token of its own (as many users would bring: a signature checked per connect), or all with one token (the
// same clients coming back: checked once, then remembered), connected as fast as the server takes them. What a
// connect costs the server in CPU, with authorization and without.

import { benchToken } from "../auth-setup.ts";
import { closeAll, connectAll, warmUp } from "../load/ws-client.ts";
import { cpuSince, cpuSnapshot } from "../measure.ts";
import type { Pinning } from "../pinning.ts";
import type { Plan } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";

export interface ConnectRun {
  connections: number;
  connectMs: number;
  /** Server CPU time per connect, handshake and authorization included. */
  serverCpuMicrosPerConnect: number;
  /** Share of the machine other processes took while connecting. */
  otherShare: number;
}

/** Whether each connect brings a token of its own, or all bring the same one. */
export type TokenUse = "own" | "shared";

export async function connectRun(
  kind: ServerKind,
  plan: Plan["idle"],
  pinning: Pinning,
  use: TokenUse,
): Promise<ConnectRun> {
  const count = plan.connections;
  // Signed before the server starts, so that the load generator's signing is no part of the measured time.
  const shared = await benchToken(["/bench/connect/*"]);
  const tokens =
    kind !== "jwt"
      ? []
      : use === "own"
        ? await Promise.all(Array.from({ length: count }, (_, i) => benchToken([channel(i)])))
        : Array.from({ length: count }, () => shared);
  const server = await startServer(kind, pinning);
  let conns: Awaited<ReturnType<typeof connectAll>> = [];
  try {
    await warmUp(server.port, 64, server.query);
    const cpu = cpuSnapshot(server.pid);
    const started = performance.now();
    conns = await connectAll({
      port: server.port,
      count,
      path: (i) => (kind === "jwt" ? `${channel(i)}?token=${tokens[i]}` : channel(i)),
      channel: (i) => i,
      handlers: { text() {} },
    });
    const connectMs = performance.now() - started;
    const used = cpuSince(cpu, server.pid);
    return {
      connections: count,
      connectMs,
      serverCpuMicrosPerConnect: (used.server / count) * 1e6,
      otherShare: used.other / used.seconds,
    };
  } finally {
    await server.stop();
    await closeAll(conns);
  }
}

function channel(i: number): string {
  return `/bench/connect/${i}`;
}
