// The big machine's measurement (issue 19), for a machine with many cores: one channel with 18,000 subscribers at
// 10, 60 and 150 messages/s, on one pinghub process and on `--workers 4` and `--workers 8`, each worker a
// cluster node on a redis-server reached through its UNIX socket on the same machine. For each: server CPU per
// delivery (the parent's and every worker's), deliveries/s, latency p50 and p99, and what was lost. The target,
// on such a machine: p99 under 75 ms at 18,000 × 10 messages/s with --workers 4, nothing lost.
//
//   bun bench/big-machine.ts                                     the sizes (needs 8 cores or more)
//   bun bench/big-machine.ts --subscribers 2000 --seconds 5 --workers 2   a quick look on a smaller machine
//
// Nothing is pinned: the workers are meant to spread over the cores. The load generator is this one process,
// on one core: its CPU share is printed beside each phase, and a phase where it is near 100 % measured the load
// generator, not pinghub (at 150 messages/s, 18,000 subscribers are 2.7 million deliveries a second). Raise the
// open-files limit first (`ulimit -n 65536`): every subscriber is a socket on each side.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import type { Subprocess } from "bun";
import { freePort, listening } from "../test/support/ports.ts";
import { redisServerCommand } from "../test/support/redis-server.ts";
import { until } from "../test/support/until.ts";
import { fixed, ms, num } from "./format.ts";
import { FanoutLoad, type PhaseResult } from "./load/fanout.ts";

const { values: flags } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    subscribers: { type: "string", default: "18000" },
    rates: { type: "string", default: "10,60,150" },
    seconds: { type: "string", default: "20" },
    workers: { type: "string", default: "4,8" },
  },
});
const SUBSCRIBERS = Number(flags.subscribers);
const RATES = (flags.rates ?? "").split(",").map(Number);
const SECONDS = Number(flags.seconds);
/** 1 is the single process, without Redis; then each --workers count. */
const SETUPS = [1, ...(flags.workers ?? "").split(",").map(Number)];
const MESSAGE_BYTES = 64;
const WARMUP_MS = 3000;
const ROOT = new URL("..", import.meta.url).pathname;

interface Server {
  pid: number;
  port: number;
  redisPid: number | undefined;
  stop(): Promise<void>;
}

const dir = mkdtempSync(join(tmpdir(), "pinghub-big-machine-"));
process.stderr.write(
  `big machine: ${navigator.hardwareConcurrency} cores; ${SUBSCRIBERS} subscribers on one channel, ` +
    `${RATES.join(", ")} msg/s for ${SECONDS} s each; setups: ${SETUPS.map(name).join(", ")}\n`,
);
const rows: string[] = [];
try {
  for (const workers of SETUPS) {
    const server = await start(workers);
    try {
      const load = await FanoutLoad.open({
        port: server.port,
        channels: 1,
        subscribersPerChannel: SUBSCRIBERS,
        messageSize: MESSAGE_BYTES,
      });
      try {
        await load.run({ kind: "rate", messagesPerSecond: RATES[0] ?? 10 }, WARMUP_MS, server.pid, server.redisPid);
        for (const rate of RATES) {
          const pace = { kind: "rate", messagesPerSecond: rate } as const;
          const result = await load.run(pace, SECONDS * 1000, server.pid, server.redisPid);
          const row = describe(workers, rate, result);
          rows.push(row);
          process.stderr.write(`${row}\n`);
        }
      } finally {
        await server.stop();
        await load.close();
      }
    } catch (error) {
      await server.stop();
      throw error;
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
process.stdout.write(
  [
    "| setup | msg/s | deliveries/s | server CPU per delivery | Redis CPU per delivery | p50 | p99 | lost | out of order | load generator CPU |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
    "",
  ].join("\n"),
);

function name(workers: number): string {
  return workers === 1 ? "one process" : `--workers ${workers}`;
}

function describe(workers: number, rate: number, r: PhaseResult): string {
  const perDelivery = (seconds: number) => fixed((seconds / r.deliveries) * 1e6, 3, "µs");
  return (
    `| ${name(workers)} | ${rate} | ${num(r.deliveriesPerSecond)} | ${perDelivery(r.cpu.server)} | ` +
    `${workers === 1 ? "–" : perDelivery(r.cpu.redis)} | ${ms(r.latencyP50Ms)} | ${ms(r.latencyP99Ms)} | ` +
    `${r.lost} | ${r.outOfOrder} | ${fixed((r.cpu.load / r.cpu.seconds) * 100, 0, "%")} |`
  );
}

/** One pinghub process, or `--workers N` on a redis-server of its own on a UNIX socket; once every worker serves. */
async function start(workers: number): Promise<Server> {
  let redis: Subprocess | undefined;
  const socket = join(dir, `redis-${workers}.sock`);
  if (workers > 1) {
    const redisPort = freePort();
    redis = Bun.spawn(
      redisServerCommand(redisPort, ["--unixsocket", socket, "--unixsocketperm", "700", "--maxclients", "100000"]),
      { stdin: "ignore", stdout: "ignore", stderr: "inherit" },
    );
    await listening(redis, redisPort, "redis-server");
  }
  const port = freePort();
  const mport = freePort();
  const args = ["--addr", `127.0.0.1:${port}`, "--mport", String(mport), "--log-level", "warn"];
  if (workers > 1) args.push("--workers", String(workers), "--redis", socket);
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
  });
  const stop = async () => {
    proc.kill("SIGTERM");
    await proc.exited;
    redis?.kill("SIGTERM");
    await redis?.exited;
  };
  try {
    await until(
      async () => {
        if (proc.exitCode !== null) throw new Error(`pinghub exited with ${proc.exitCode}`);
        const response = await fetch(`http://127.0.0.1:${mport}/healthz`).catch(() => undefined);
        return response?.status === 200;
      },
      `${name(workers)} serves`,
      30_000,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { pid: proc.pid, port, redisPid: redis?.pid, stop };
}
