// The long fuzzing run: `bun scripts/fuzz.ts --seconds 600 --seed 123`. Starts its own pinghub on a free
// loopback port, throws seeded random hostile websocket, HTTP and path traffic at it from many connections at
// once while a canary channel must receive every message in order, then reports and exits 1 on any problem.
// `--case LANE:INDEX` (or `c:N` for a classic case) replays a single case that failed, with the same seed.

import { parseArgs } from "node:util";
import { parseSeed } from "../test/support/fuzz.ts";
import { fuzzSession } from "../test/support/fuzz-session.ts";
import { mib } from "../test/support/process-stats.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    seed: { type: "string" },
    lanes: { type: "string", default: "16" },
    case: { type: "string" },
    "max-rss-mib": { type: "string", default: "256" },
    slowloris: { type: "string" },
    "no-classics": { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(`usage: bun scripts/fuzz.ts [--seconds 60] [--seed N] [--lanes 16] [--case LANE:INDEX|c:N]
                          [--max-rss-mib 256] [--slowloris N] [--no-classics]`);
  process.exit(0);
}

const seconds = Number(values.seconds);
const seed = parseSeed(values.seed, "--seed");
const maxRss = Number(values["max-rss-mib"]) * 1024 * 1024;
// Slowloris connections take Bun's 10-second request timeout each; only a run long enough gets them.
const slowloris = Number(values.slowloris ?? (seconds >= 30 ? 8 : 0));
console.log(`fuzz seed ${seed} (replay with --seed ${seed}), ${seconds} s, ${values.lanes} lanes`);

const report = await fuzzSession({
  seed,
  durationMs: seconds * 1000,
  lanes: Number(values.lanes),
  classics: !values["no-classics"] && values.case === undefined,
  only: values.case,
  slowloris: slowloris > 0 && values.case === undefined ? { count: slowloris, durationMs: 20_000 } : undefined,
  sampleMs: 500,
  log: (line) => console.log(line),
});

const { fuzz, canary, rss, fds } = report;
const problems = [...fuzz.failures, ...canary.violations, ...report.problems];
if (rss.peak > maxRss) problems.push(`server RSS peaked at ${mib(rss.peak)} MiB, over the ${mib(maxRss)} MiB bound`);

console.log(`\n== fuzz, seed ${seed}, ${(report.elapsedMs / 1000).toFixed(1)} s`);
console.log(
  `cases: ${fuzz.cases} (${Object.entries(fuzz.byKind)
    .map(([k, n]) => `${k} ${n}`)
    .join(", ")})`,
);
console.log(
  `seen: ${Object.entries(fuzz.seen)
    .map(([k, n]) => `${k} ×${n}`)
    .join(", ")}`,
);
console.log(
  `canary: ${canary.sent} sent, received ${canary.received.join(" and ")}, ${canary.violations.length} violations, ` +
    `slowest ${canary.maxLatencyMs} ms`,
);
console.log(`server RSS: ${mib(rss.start)} MiB at start, peak ${mib(rss.peak)} MiB, ${mib(rss.end)} MiB at the end`);
const tenths = [0.1, 0.25, 0.5, 0.75, 1].map(
  (f) => rss.samples[Math.min(rss.samples.length - 1, Math.floor(f * (rss.samples.length - 1)))],
);
console.log(
  `RSS over time: ${tenths.map((s) => `${((s?.at ?? 0) / 1000).toFixed(0)} s ${mib(s?.rss ?? 0)} MiB`).join(", ")}`,
);
console.log(`server fds: ${fds.start} at start, peak ${fds.peak}, ${fds.end} at the end`);
console.log(`server CPU: ${report.serverCpuSeconds.toFixed(1)} s`);
console.log(`server warnings and errors: ${report.logLines.length === 0 ? "none" : ""}`);
for (const [line, n] of report.logLines) console.log(`  ×${n} ${line}`);
if (problems.length > 0) {
  console.log(`\n${problems.length} problem(s):`);
  for (const p of problems) console.log(`- ${p}`);
  console.log(`\nreplay: bun scripts/fuzz.ts --seed ${seed} --seconds ${seconds}`);
  process.exit(1);
}
console.log("\nno problems");
