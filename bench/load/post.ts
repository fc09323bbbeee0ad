// The POST load: keep-alive connections each sending one POST after another to one channel, for a fixed time.
// wrk (Debian's package) does it when installed, being C and cheap per request; otherwise a Bun loop of
// fetch calls does, which costs the load generator more per request, so its figures are lower.

import { LatencyHistogram } from "../stats.ts";

export type PostTool = "wrk" | "bun";

export interface PostLoad {
  port: number;
  path: string;
  connections: number;
  seconds: number;
  tool: PostTool;
}

export interface PostResult {
  tool: PostTool;
  requests: number;
  seconds: number;
  requestsPerSecond: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  /** Answers other than 200, and requests that failed outright. */
  errors: number;
  /** CPU seconds the load tool itself used (wrk's, or this process's for the Bun loop). */
  toolCpuSeconds: number;
}

/** The wrk script: the POST method and a 64-byte body; the same body the Bun loop sends. */
const WRK_SCRIPT = new URL("./post.lua", import.meta.url).pathname;
const BODY = "x".repeat(64);

export function postToolAvailable(): PostTool {
  return Bun.which("wrk") === null ? "bun" : "wrk";
}

export function runPost(load: PostLoad): Promise<PostResult> {
  return load.tool === "wrk" ? runWrk(load) : runBunLoop(load);
}

async function runWrk(load: PostLoad): Promise<PostResult> {
  const url = `http://127.0.0.1:${load.port}${load.path}`;
  // One thread: wrk has one core, the load generator's, to itself.
  const wrk = Bun.spawn(
    ["wrk", "-t1", `-c${load.connections}`, `-d${load.seconds}s`, "--latency", "-s", WRK_SCRIPT, url],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err, status] = await Promise.all([
    new Response(wrk.stdout).text(),
    new Response(wrk.stderr).text(),
    wrk.exited,
  ]);
  if (status !== 0) throw new Error(`wrk exited with status ${status}: ${err.trim()}`);
  const usage = wrk.resourceUsage();
  const requests = /(\d+) requests in ([\d.]+)(\w+)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  if (!requests) throw new Error(`cannot read wrk's output:\n${out}`);
  const seconds = toMs(Number(requests[2]), requests[3] as string) / 1000;
  return {
    tool: "wrk",
    requests: Number(requests[1]),
    seconds,
    requestsPerSecond: Number(requests[1]) / seconds,
    latencyP50Ms: wrkPercentile(out, "50%"),
    latencyP99Ms: wrkPercentile(out, "99%"),
    errors: Number(non2xx?.[1] ?? 0) + (socketErrors?.slice(1).reduce((sum, n) => sum + Number(n), 0) ?? 0),
    toolCpuSeconds: usage === undefined ? Number.NaN : Number(usage.cpuTime.total) / 1e6,
  };
}

/** A line of wrk's "Latency Distribution", such as "     99%    6.26ms", in milliseconds. */
function wrkPercentile(out: string, label: string): number {
  const match = new RegExp(`^\\s+${label}\\s+([\\d.]+)(\\w+)`, "m").exec(out);
  return match ? toMs(Number(match[1]), match[2] as string) : Number.NaN;
}

function toMs(value: number, unit: string): number {
  const scale: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
  const factor = scale[unit];
  if (factor === undefined) throw new Error(`unknown unit in wrk's output: ${unit}`);
  return value * factor;
}

/** The fallback: `connections` loops, each awaiting one fetch after another; Bun's fetch keeps them alive. */
async function runBunLoop(load: PostLoad): Promise<PostResult> {
  const url = `http://127.0.0.1:${load.port}${load.path}`;
  const latency = new LatencyHistogram();
  let requests = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  const deadline = t0 + load.seconds * 1000;
  const loop = async () => {
    while (performance.now() < deadline) {
      const sent = performance.now();
      try {
        const res = await fetch(url, { method: "POST", body: BODY, headers: { "Content-Type": "text/plain" } });
        await res.arrayBuffer();
        // Any 2xx: Nchan answers a POST 201 or 202, pinghub 200.
        if (!res.ok) errors++;
      } catch {
        errors++;
      }
      latency.record((performance.now() - sent) * 1000);
      requests++;
    }
  };
  await Promise.all(Array.from({ length: load.connections }, loop));
  const seconds = (performance.now() - t0) / 1000;
  const cpu = process.cpuUsage(cpu0);
  return {
    tool: "bun",
    requests,
    seconds,
    requestsPerSecond: requests / seconds,
    latencyP50Ms: latency.quantileMs(0.5),
    latencyP99Ms: latency.quantileMs(0.99),
    errors,
    toolCpuSeconds: (cpu.user + cpu.system) / 1e6,
  };
}
