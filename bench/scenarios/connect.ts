// The auth scenario's connects: many websockets, each on a channel of its own and, on a "jwt" server, each with
// a token of its own (as many users would bring: a signature checked per connect), or all with one token (the
// same clients coming back: checked once, then remembered), connected as fast as the server takes them. What a
// connect costs the server in CPU, with authorization and without.
//
// What is measured is a connect's cost on a server that has taken connects of the same kind before: each side first
// takes as many unmeasured connects of its own kind (tokens of their own, the shared token, or none) on channels of
// their own. A fresh server compiles the code each kind runs during its first thousands of connects, on the
// engine's compiler threads, whose CPU is the server's: about 100 ms for the token path (issue 17's notes in
// BENCHMARKS.md), once per process. Warming every side with the shared token, as this scenario once did, left the
// per-token code to be compiled inside the measured window of one side only.

import { benchToken } from "../auth-setup.ts";
import { closeAll, connectAll } from "../load/ws-client.ts";
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
  const paths = async (name: (i: number) => string) => {
    if (kind !== "jwt") return Array.from({ length: count }, (_, i) => name(i));
    const tokens =
      use === "own"
        ? await Promise.all(Array.from({ length: count }, (_, i) => benchToken([name(i)])))
        : Array.from({ length: count }, () => shared);
    return tokens.map((token, i) => `${name(i)}?token=${token}`);
  };
  const warmUpPaths = await paths((i) => `/bench/connect/warm-up/${i}`);
  const measuredPaths = await paths(channel);
  const server = await startServer(kind, pinning);
  let conns: Awaited<ReturnType<typeof connectAll>> = [];
  try {
    await connectAndClose(server.port, warmUpPaths);
    const cpu = cpuSnapshot(server.pid);
    const started = performance.now();
    conns = await connectAll({
      port: server.port,
      count,
      path: (i) => measuredPaths[i] as string,
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

/** The warm-up: connects of the measured kind, closed again, and a moment for the server to finish with them. */
async function connectAndClose(port: number, paths: readonly string[]): Promise<void> {
  const conns = await connectAll({
    port,
    count: paths.length,
    path: (i) => paths[i] as string,
    channel: (i) => i,
    handlers: { text() {} },
  });
  await closeAll(conns);
  await Bun.sleep(200);
}

function channel(i: number): string {
  return `/bench/connect/${i}`;
}
