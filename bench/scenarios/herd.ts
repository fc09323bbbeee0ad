// Scenario 8, the stalled herd (issue 20): many subscribers that complete the handshake and then never read,
// beside a few that do, on one channel, while large messages are POSTed at a steady rate. What the readers
// see (latency p50 and p99, anything lost, any reader cut off) and what the stalled ones cost the server
// (peak resident memory of its whole process tree, sampled). The stalled subscribers live in a process of
// their own (bench/load/stalled.ts) that is stopped once they are subscribed.

import { fillMessage, nowMicros, readStamp, writeNumbers } from "../load/message.ts";
import { closeAll, connectAll } from "../load/ws-client.ts";
import { type CpuUse, cpuSince, cpuSnapshot, treeRssBytes } from "../measure.ts";
import type { Pinning } from "../pinning.ts";
import type { Plan } from "../plan.ts";
import { type ServerKind, startServer } from "../servers.ts";
import { LatencyHistogram } from "../stats.ts";

export interface HerdRun {
  stalled: number;
  readers: number;
  /** Messages POSTed and answered 2xx. */
  published: number;
  /** POSTs refused or failed. */
  postErrors: number;
  /** Latency from the POST's send to a reader's receipt, over every reader and message. */
  readersP50Ms: number;
  readersP99Ms: number;
  readersMaxMs: number;
  /** Deliveries owed to readers (published × readers) that never came. */
  lost: number;
  /** Readers whose connection ended during the run. */
  readersDisconnected: number;
  /** Highest resident memory of the server's process tree, sampled, and where it started. */
  peakRssBytes: number;
  baselineRssBytes: number;
  cpu: CpuUse;
}

const CHANNEL = "/bench/herd";
const STALLED_SCRIPT = new URL("../load/stalled.ts", import.meta.url).pathname;
/** How often the server's memory is sampled. */
const RSS_SAMPLE_MS = 50;
/** How long, after the last POST, readers may take to receive what is still on its way. */
const DRAIN_QUIET_MS = 2_000;
/** How long the stalled subscribers' process may take to subscribe them all. */
const SUBSCRIBE_TIMEOUT_MS = 60_000;

export async function herdRun(kind: ServerKind, plan: Plan["herd"], pinning: Pinning): Promise<HerdRun> {
  const server = await startServer(kind, pinning);
  const stalled = Bun.spawn([process.execPath, STALLED_SCRIPT, String(server.port), CHANNEL, String(plan.stalled)], {
    stdin: "ignore",
    stdout: "pipe",
    stderr: "inherit",
  });
  let readers: Awaited<ReturnType<typeof connectAll>> = [];
  let sampler: Timer | undefined;
  try {
    await subscribed(stalled);
    stalled.kill("SIGSTOP");
    const latency = new LatencyHistogram();
    let deliveries = 0;
    let lastDeliveryAt = performance.now();
    let closing = false;
    let readersDisconnected = 0;
    readers = await connectAll({
      port: server.port,
      count: plan.readers,
      path: () => CHANNEL,
      channel: () => 0,
      handlers: {
        text(_conn, bytes, at, _length, now) {
          latency.record(now * 1000 - readStamp(bytes, at));
          deliveries++;
          lastDeliveryAt = now;
        },
        closed() {
          if (!closing) readersDisconnected++;
        },
      },
    });
    const baselineRssBytes = treeRssBytes(server.rootPid);
    let peakRssBytes = baselineRssBytes;
    sampler = setInterval(() => {
      peakRssBytes = Math.max(peakRssBytes, treeRssBytes(server.rootPid));
    }, RSS_SAMPLE_MS);

    const body = new Uint8Array(plan.messageSize);
    fillMessage(body, 0, plan.messageSize);
    const url = `http://127.0.0.1:${server.port}${CHANNEL}`;
    let published = 0;
    let postErrors = 0;
    const posts: Promise<void>[] = [];
    const total = Math.round(plan.rate * plan.seconds);
    const cpu = cpuSnapshot(server.pid, server.redisPid);
    const t0 = performance.now();
    for (let seq = 0; seq < total; seq++) {
      // An open loop: each POST at its time, whatever became of the last one.
      const due = t0 + (seq * 1000) / plan.rate;
      const wait = due - performance.now();
      if (wait > 0) await Bun.sleep(wait);
      writeNumbers(body, 0, seq, nowMicros());
      posts.push(
        fetch(url, { method: "POST", body: body.slice(), headers: { "Content-Type": "text/plain" } }).then(
          async (res) => {
            await res.arrayBuffer();
            if (res.ok) published++;
            else postErrors++;
          },
          () => {
            postErrors++;
          },
        ),
      );
    }
    await Promise.all(posts);
    const owed = () => published * (plan.readers - readersDisconnected);
    while (deliveries < owed() && performance.now() - lastDeliveryAt < DRAIN_QUIET_MS) await Bun.sleep(5);
    clearInterval(sampler);
    peakRssBytes = Math.max(peakRssBytes, treeRssBytes(server.rootPid));
    const used = cpuSince(cpu, server.pid);
    closing = true;
    return {
      stalled: plan.stalled,
      readers: plan.readers,
      published,
      postErrors,
      readersP50Ms: latency.quantileMs(0.5),
      readersP99Ms: latency.quantileMs(0.99),
      readersMaxMs: latency.max / 1000,
      lost: Math.max(0, published * plan.readers - deliveries),
      readersDisconnected,
      peakRssBytes,
      baselineRssBytes,
      cpu: used,
    };
  } finally {
    clearInterval(sampler);
    stalled.kill("SIGKILL");
    await stalled.exited;
    await server.stop();
    await closeAll(readers);
  }
}

/** Resolves once the stalled subscribers' process says they are all subscribed; throws if it exits first. */
async function subscribed(proc: Bun.Subprocess<"ignore", "pipe", "inherit">): Promise<void> {
  const timer = setTimeout(() => proc.kill("SIGKILL"), SUBSCRIBE_TIMEOUT_MS);
  try {
    let seen = "";
    for await (const chunk of proc.stdout) {
      seen += new TextDecoder().decode(chunk);
      if (seen.includes("subscribed\n")) return;
    }
    throw new Error(`the stalled subscribers' process exited (${await proc.exited}) before subscribing`);
  } finally {
    clearTimeout(timer);
  }
}

/** The share of the machine other processes took during a run: a disturbed run is measured again. */
export function herdOtherShare(run: HerdRun): number {
  return run.cpu.other / run.cpu.seconds;
}
