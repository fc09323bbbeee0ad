// The benchmark: pinghub against the bare-Bun floor, in four scenarios, then a report.
//
//   bun run bench                      the full run, about 10 minutes; writes bench/results/
//   bun run bench --smoke              every scenario at tiny sizes, in seconds (CI); writes to a temp folder
//   bun run bench --only fanout,post   some scenarios only
//   bun run bench --out DIR            where report.md, results.json and growth.svg go
//   bun run bench --post-tool bun      the Bun POST load generator even where wrk is installed
//   bun run bench --pairs N            N floor/pinghub pairs in every scenario instead of the plan's
//   bun run bench --rerender DIR       write DIR's report.md and growth.svg again from its results.json
//
// It asserts nothing about speed: it exits 0 once the report is written, whatever the figures.
// Every load goes to 127.0.0.1 only, and every one is bounded in connections and in time.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { alternate } from "./compare.ts";
import { type PostTool, postToolAvailable } from "./load/post.ts";
import { describeMachine } from "./measure.ts";
import { pinLoadGenerator } from "./pinning.ts";
import { FULL, type Plan, SMOKE } from "./plan.ts";
import { renderGrowthSvg } from "./plot.ts";
import { type Results, renderReport, targets } from "./report.ts";
import { fanoutOtherShare, fanoutRun } from "./scenarios/fanout.ts";
import { growthPoints, growthRun } from "./scenarios/growth.ts";
import { idleRun } from "./scenarios/idle.ts";
import { postRun } from "./scenarios/post.ts";
import { killAllServers } from "./servers.ts";

const SCENARIOS = ["fanout", "idle", "post", "growth"] as const;
type Scenario = (typeof SCENARIOS)[number];

const { values: flags } = parseArgs({
  args: Bun.argv.slice(2),
  options: {
    smoke: { type: "boolean", default: process.env.PINGHUB_BENCH_SMOKE === "1" },
    only: { type: "string" },
    out: { type: "string" },
    "post-tool": { type: "string" },
    pairs: { type: "string" },
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
  pairs === undefined ? chosen : { ...chosen, pairs, postPairs: pairs, growth: { ...chosen.growth, pairs } };
const only = (flags.only?.split(",") ?? SCENARIOS) as Scenario[];
const unknown = only.filter((s) => !SCENARIOS.includes(s));
if (unknown.length > 0) fail(`unknown scenario ${unknown.join(", ")}: choose from ${SCENARIOS.join(", ")}`);
const postTool = (flags["post-tool"] ?? postToolAvailable()) as PostTool;
if (postTool !== "wrk" && postTool !== "bun") fail(`--post-tool must be wrk or bun, not ${postTool}`);
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
const pinning = pinLoadGenerator();
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
      async (kind, pair) => {
        const run = await fanoutRun(kind, plan.fanout, pinning);
        const phases = run.phases.map(
          (p) =>
            `${p.name} ${(p.result.deliveriesPerSecond / 1e6).toFixed(2)} M/s ` +
            `${(p.result.serverCpuMicrosPerDelivery * 1000).toFixed(0)} ns/delivery p99 ${p.result.latencyP99Ms.toFixed(1)} ms`,
        );
        note(`fanout  ${kind.padEnd(7)} pair ${pair + 1}: ${phases.join("; ")}; other ${pct(fanoutOtherShare(run))}`);
        return run;
      },
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
      async (kind, pair) => {
        const run = await postRun(kind, plan.post, postTool, pinning);
        note(
          `post    ${kind.padEnd(7)} pair ${pair + 1}: ${(run.requestsPerSecond / 1000).toFixed(1)} k req/s, ` +
            `${run.serverCpuMicrosPerRequest.toFixed(1)} µs/request, p99 ${run.latencyP99Ms.toFixed(2)} ms, ` +
            `${run.errors} errors; other ${pct(run.cpu.other / run.cpu.seconds)}`,
        );
        return run;
      },
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
note(`done in ${results.seconds.toFixed(1)} s: ${join(outDir, "report.md")}`);
process.exit(0);

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
