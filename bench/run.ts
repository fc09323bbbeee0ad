// The benchmark: pinghub against the bare-Bun floor, in four scenarios, then a cluster node through Redis
// against a single node in a fifth, then a report.
//
//   bun run bench                      the full run, about 15 minutes; writes bench/results/
//   bun run bench --smoke              every scenario at tiny sizes, in seconds (CI); writes to a temp folder
//   bun run bench --only fanout,post   some scenarios only (fanout, idle, post, growth, cluster)
//   bun run bench --out DIR            where report.md, results.json and growth.svg go
//   bun run bench --post-tool bun      the Bun POST load generator even where wrk is installed
//   bun run bench --pairs N            N floor/pinghub (single/cluster) pairs in every scenario instead of the plan's
//   bun run bench --redis-core load    redis-server on the load generator's core instead of the server's
//   bun run bench --rerender DIR       write DIR's report.md and growth.svg again from its results.json
//
// It asserts nothing about speed: it exits 0 once the report is written, whatever the figures.
// Every load goes to 127.0.0.1 only, and every one is bounded in connections and in time. The cluster scenario
// needs Debian's redis-server: without it the scenario is skipped, loudly, except under CI=true, where the
// run fails. Every redis-server it starts is its own, on a free loopback port, stopped with its node.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { alternate } from "./compare.ts";
import { type PostTool, postToolAvailable } from "./load/post.ts";
import { describeMachine } from "./measure.ts";
import { type Pinning, pinLoadGenerator, REDIS_PLACES, type RedisPlace } from "./pinning.ts";
import { FULL, type Plan, SMOKE } from "./plan.ts";
import { renderGrowthSvg } from "./plot.ts";
import { clusterTargets, type Results, renderReport, targets } from "./report.ts";
import { type FanoutRun, fanoutOtherShare, fanoutRun } from "./scenarios/fanout.ts";
import { growthPoints, growthRun } from "./scenarios/growth.ts";
import { idleRun } from "./scenarios/idle.ts";
import { type PostRun, postRun } from "./scenarios/post.ts";
import { CLUSTER_KINDS, killAllServers, missingRedis, type ServerKind } from "./servers.ts";

const SCENARIOS = ["fanout", "idle", "post", "growth", "cluster"] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values: flags } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    smoke: { type: "boolean", default: process.env.PINGHUB_BENCH_SMOKE === "1" },
    only: { type: "string" },
    out: { type: "string" },
    "post-tool": { type: "string" },
    pairs: { type: "string" },
    "redis-core": { type: "string", default: "server" },
    rerender: { type: "string" },
  },
});

if (flags.rerender !== undefined) {
  // The figures stay as measured; only their presentation is made again (after a change to report.ts).
  const saved: Results = JSON.parse(readFileSync(join(flags.rerender, "results.json"), "utf8"));
  if (saved.growth) writeFileSync(join(flags.rerender, "growth.svg"), renderGrowthSvg(saved.growth));
  writeFileSync(join(flags.rerender, "report.md"), renderReport(saved, saved.growth ? "growth.svg" : undefined));
  process.exit(0);
}

const chosen: Plan = flags.smoke ? SMOKE : FULL;
// --pairs N: that many pairs in every scenario, for a quicker look or a steadier figure.
const pairs = flags.pairs === undefined ? undefined : Number(flags.pairs);
if (pairs !== undefined && !(Number.isInteger(pairs) && pairs > 0)) fail(`--pairs must be a whole number above 0`);
const plan: Plan =
  pairs === undefined
    ? chosen
    : { ...chosen, pairs, postPairs: pairs, cluster: { pairs, postPairs: pairs }, growth: { ...chosen.growth, pairs } };
const only = (flags.only?.split(",") ?? SCENARIOS) as Scenario[];
const unknown = only.filter((s) => !SCENARIOS.includes(s));
if (unknown.length > 0) fail(`unknown scenario ${unknown.join(", ")}: choose from ${SCENARIOS.join(", ")}`);
const postTool = (flags["post-tool"] ?? postToolAvailable()) as PostTool;
if (postTool !== "wrk" && postTool !== "bun") fail(`--post-tool must be wrk or bun, not ${postTool}`);
const redisPlace = flags["redis-core"] as RedisPlace;
if (!REDIS_PLACES.includes(redisPlace)) fail(`--redis-core must be ${REDIS_PLACES.join(" or ")}, not ${redisPlace}`);
// Known before anything is measured: CI must not find out at the end that the cluster scenario could not run.
const redisMissing = only.includes("cluster") ? missingRedis() : undefined;
if (redisMissing !== undefined) {
  if (process.env.CI === "true") fail(`${redisMissing}; CI must run the cluster scenario`);
  process.stderr.write(`\n*** bench: SKIPPING the cluster scenario: ${redisMissing} ***\n\n`);
}
// The smoke run writes outside the work tree, so that CI leaves no trace in it.
const outDir =
  flags.out ?? (flags.smoke ? join(tmpdir(), "pinghub-bench-smoke") : new URL("results", import.meta.url).pathname);

// Whatever happens, no server outlives the benchmark.
for (const signal of ["SIGINT", "SIGTERM"] as const) {
  process.on(signal, () => {
    killAllServers();
    process.exit(130);
  });
}

const started = performance.now();
const pinning = pinLoadGenerator(redisPlace);
const results: Results = {
  plan,
  machine: describeMachine(),
  pinning: pinning.description,
  command: `bun run bench ${Bun.argv.slice(2).join(" ")}`.trim(),
  seconds: 0,
};
note(`${plan.name} run; ${pinning.description}; POST load by ${postTool}; report in ${outDir}`);

try {
  if (only.includes("fanout")) {
    results.fanout = await alternate(
      plan.pairs,
      async (kind, pair) => noteFanout("fanout ", kind, pair, await fanoutRun(kind, plan.fanout, pinning)),
      fanoutOtherShare,
      plan.patience,
    );
  }
  writeOutputs();
  if (only.includes("idle")) {
    results.idle = await alternate(
      plan.pairs,
      async (kind, pair) => {
        const run = await idleRun(kind, plan.idle, pinning);
        note(
          `idle    ${kind.padEnd(7)} pair ${pair + 1}: ${(run.bytesPerConnection / 1024).toFixed(2)} KiB/connection, ` +
            `connected in ${run.connectMs.toFixed(0)} ms; other ${pct(run.otherShare)}`,
        );
        return run;
      },
      (run) => run.otherShare,
      plan.patience,
    );
  }
  writeOutputs();
  if (only.includes("post")) {
    results.post = await alternate(
      plan.postPairs,
      async (kind, pair) => notePost("post   ", kind, pair, await postRun(kind, plan.post, postTool, pinning)),
      (run) => run.cpu.other / run.cpu.seconds,
      plan.patience,
    );
  }
  writeOutputs();
  if (only.includes("growth")) {
    results.growth = [];
    for (const point of growthPoints(plan.growth, plan.fanout.window)) {
      const runs = await alternate(
        plan.growth.pairs,
        async (kind) => {
          const run = await growthRun(kind, point, plan.growth.seconds, pinning);
          note(
            `growth  ${kind.padEnd(7)} ${point.axis} ${point.value}: ${(run.serverCpuMicrosPerDelivery * 1000).toFixed(0)} ns/delivery, ` +
              `${(run.deliveriesPerSecond / 1e6).toFixed(2)} M/s; other ${pct(run.otherShare)}`,
          );
          return run;
        },
        (run) => run.otherShare,
        plan.patience,
      );
      results.growth.push({ point, runs });
      writeOutputs();
    }
  }
  if (only.includes("cluster")) await runCluster(pinning);
} catch (error) {
  killAllServers();
  fail(`benchmark failed: ${(error as Error).stack ?? error}`);
}

writeOutputs();

for (const t of targets(results)) {
  const absolute = t.unit === "" ? String(t.pinghub) : `${t.pinghub.toFixed(2)} ${t.unit}`;
  const figure = t.ratio === undefined ? absolute : `${t.ratio.toFixed(2)} × floor`;
  note(`target  ${t.met ? "met   " : "MISSED"} ${t.name}: ${figure} (${t.goal})`);
}
for (const t of clusterTargets(results)) {
  const absolute = t.unit === "" ? String(t.cluster) : `${t.cluster.toFixed(2)} ${t.unit}`;
  const compared =
    t.added !== undefined ? `${t.added.toFixed(2)} ${t.unit} added` : `${t.ratio?.toFixed(2)} × single node`;
  const figure = t.ratio === undefined && t.added === undefined ? absolute : compared;
  note(`target  ${t.met ? "met   " : "MISSED"} cluster: ${t.name}: ${figure} (${t.goal})`);
}
if (redisMissing !== undefined) note(`*** the cluster scenario was SKIPPED: ${redisMissing} ***`);
note(`done in ${results.seconds.toFixed(1)} s: ${join(outDir, "report.md")}`);
process.exit(0);

/**
 * Scenario 5, cluster: the fan-out and POST loads on a single node and on a cluster node, which publishes
 * every message to its own fresh redis-server and delivers it when it comes back; in pairs, alternating.
 */
async function runCluster(pinning: Pinning): Promise<void> {
  if (redisMissing !== undefined) {
    results.cluster = { redis: pinning.redisDescription, redisPlace, skipped: redisMissing };
    return;
  }
  const cluster: NonNullable<Results["cluster"]> = { redis: pinning.redisDescription, redisPlace };
  results.cluster = cluster;
  cluster.fanout = await alternate(
    plan.cluster.pairs,
    async (kind, pair) => noteFanout("cluster fanout", kind, pair, await fanoutRun(kind, plan.fanout, pinning)),
    fanoutOtherShare,
    plan.patience,
    CLUSTER_KINDS,
  );
  writeOutputs();
  cluster.post = await alternate(
    plan.cluster.postPairs,
    async (kind, pair) => notePost("cluster post", kind, pair, await postRun(kind, plan.post, postTool, pinning)),
    (run) => run.cpu.other / run.cpu.seconds,
    plan.patience,
    CLUSTER_KINDS,
  );
}

function noteFanout(scenario: string, kind: ServerKind, pair: number, run: FanoutRun): FanoutRun {
  const phases = run.phases.map(
    (p) =>
      `${p.name} ${(p.result.deliveriesPerSecond / 1e6).toFixed(2)} M/s ` +
      `${(p.result.serverCpuMicrosPerDelivery * 1000).toFixed(0)} ns/delivery p99 ${p.result.latencyP99Ms.toFixed(1)} ms` +
      (kind === "cluster" ? ` redis ${pct(p.result.cpu.redis / p.result.cpu.seconds)}` : ""),
  );
  note(`${scenario} ${kind.padEnd(7)} pair ${pair + 1}: ${phases.join("; ")}; other ${pct(fanoutOtherShare(run))}`);
  return run;
}

function notePost(scenario: string, kind: ServerKind, pair: number, run: PostRun): PostRun {
  const redis = kind === "cluster" ? `, redis ${pct(run.cpu.redis / run.cpu.seconds)}` : "";
  note(
    `${scenario} ${kind.padEnd(7)} pair ${pair + 1}: ${(run.requestsPerSecond / 1000).toFixed(1)} k req/s, ` +
      `${run.serverCpuMicrosPerRequest.toFixed(1)} µs/request, p99 ${run.latencyP99Ms.toFixed(2)} ms, ` +
      `${run.errors} errors${redis}; other ${pct(run.cpu.other / run.cpu.seconds)}`,
  );
  return run;
}

/** Writes the report of what has been measured so far: a run cut short still leaves its figures. */
function writeOutputs(): void {
  results.seconds = (performance.now() - started) / 1000;
  mkdirSync(outDir, { recursive: true });
  if (results.growth) writeFileSync(join(outDir, "growth.svg"), renderGrowthSvg(results.growth));
  writeFileSync(join(outDir, "results.json"), `${JSON.stringify(results, null, 2)}\n`);
  writeFileSync(join(outDir, "report.md"), renderReport(results, results.growth ? "growth.svg" : undefined));
}

function note(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

function pct(share: number): string {
  return `${Math.round(share * 100)} %`;
}

function fail(line: string): never {
  process.stderr.write(`bench: ${line}\n`);
  process.exit(1);
}
