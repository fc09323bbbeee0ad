// The benchmark: pinghub against the bare-Bun floor, in four scenarios; then pinghub against itself: SSE
// subscribers against websockets, a node with history against one without, a cluster node through Redis
// against a single node, `--workers 2` against one process, a cluster node through Redis Sentinel and through a
// Redis Cluster against one through one Redis; then the stalled herd; then a report. Where Debian's nginx and
// libnginx-mod-nchan are installed, Nchan, the peer, runs as one more side of the same rounds in the fan-out,
// POST, SSE, cluster (Nchan on Redis) and stalled-herd scenarios; where they are not, its figures say "not
// installed".
//
//   bun run bench                      the full run, about 20 minutes; writes bench/results/
//   bun run bench --smoke              every scenario at tiny sizes, in seconds (CI); writes to a temp folder
//   bun run bench --only fanout,post   some scenarios only (fanout, idle, post, growth, sse, history, cluster,
//                                      herd, workers, sentinel, rcluster, auth)
//   bun run bench --out DIR            where report.md, results.json and growth.svg go
//   bun run bench --post-tool bun      the Bun POST load generator even where wrk is installed
//   bun run bench --pairs N            N floor/pinghub (single/cluster) pairs in every scenario instead of the plan's
//   bun run bench --redis-core load    redis-server on the load generator's core instead of the server's
//   bun run bench --no-peer            without Nchan even where it is installed (its figures say why)
//   bun run bench --rerender DIR       write DIR's report.md and growth.svg again from its results.json
//
// It asserts nothing about speed: it exits 0 once the report is written, whatever the figures. A smoke run
// judges no target at all: its figures mean nothing, and it says so once.
// Every load goes to 127.0.0.1 only, and every one is bounded in connections and in time. The cluster and
// workers scenarios need Debian's redis-server: without it the scenario is skipped, loudly, except under CI=true, where the
// run fails. Every redis-server it starts is its own, on a free loopback port, stopped with its node.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { missingRedisServer } from "../test/support/redis-server.ts";
import { alternate } from "./compare.ts";
import { fixed as fix, pct } from "./format.ts";
import { herdTargets } from "./herd-targets.ts";
import { TRANSPORTS } from "./load/fanout.ts";
import { type PostTool, postToolAvailable } from "./load/post.ts";
import { MAX_HTTP_REQUESTS } from "./load/sse-client.ts";
import { describeMachine } from "./measure.ts";
import { missingNchan, nchanVersion } from "./peers/nchan.ts";
import { type Pinning, pinLoadGenerator, REDIS_PLACES, type RedisPlace } from "./pinning.ts";
import { FULL, type Plan, SMOKE } from "./plan.ts";
import { renderGrowthSvg } from "./plot.ts";
import { renderReport } from "./report.ts";
import type { BrokerResults, Results, WithPeer } from "./results.ts";
import { connectRun, type TokenUse } from "./scenarios/connect.ts";
import { type FanoutRun, fanoutOtherShare, fanoutRun } from "./scenarios/fanout.ts";
import { growthPoints, growthRun } from "./scenarios/growth.ts";
import { herdOtherShare, herdRun } from "./scenarios/herd.ts";
import { idleRun } from "./scenarios/idle.ts";
import { type PostRun, postRun } from "./scenarios/post.ts";
import {
  CLUSTER_KINDS,
  FORWARD_KINDS,
  HISTORY_KINDS,
  HISTORY_MESSAGES,
  JWT_KINDS,
  killAllServers,
  RCLUSTER_KINDS,
  SENTINEL_KINDS,
  SERVER_KINDS,
  type ServerKind,
  WORKERS,
  WORKERS_KINDS,
} from "./servers.ts";
import {
  judged,
  PAIRED_SCENARIOS,
  type PairedScenario,
  type PairedTarget,
  pairedTargets,
  SMOKE_NOTE,
  targets,
} from "./targets.ts";

const SCENARIOS = [
  "fanout",
  "idle",
  "post",
  "growth",
  "sse",
  "history",
  "cluster",
  "herd",
  "workers",
  "sentinel",
  "rcluster",
  "auth",
] as const;
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
    "no-peer": { type: "boolean", default: false },
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
    : {
        ...chosen,
        pairs,
        postPairs: pairs,
        cluster: { pairs, postPairs: pairs },
        sse: { ...chosen.sse, pairs },
        history: { pairs, postPairs: pairs },
        herd: { ...chosen.herd, pairs },
        workers: { pairs, postPairs: pairs },
        sentinel: { pairs, postPairs: pairs },
        rcluster: { pairs, postPairs: pairs },
        auth: { pairs, connectPairs: pairs, postPairs: pairs },
        growth: { ...chosen.growth, pairs },
      };
const only = (flags.only?.split(",") ?? SCENARIOS) as Scenario[];
const unknown = only.filter((s) => !SCENARIOS.includes(s));
if (unknown.length > 0) fail(`unknown scenario ${unknown.join(", ")}: choose from ${SCENARIOS.join(", ")}`);
// Bun's fetch runs at most BUN_CONFIG_MAX_HTTP_REQUESTS requests at once (256 unless set) and queues the rest,
// and it reads the variable once, as the process starts: the SSE scenario's streams need more, so the benchmark
// runs again, as it is, in a process that has it. This one only waits for it (and passes signals on).
const streamsNeeded = plan.fanout.subscribers + 64;
if (only.includes("sse") && !(Number(process.env.BUN_CONFIG_MAX_HTTP_REQUESTS) >= streamsNeeded)) {
  const child = Bun.spawn([process.execPath, ...Bun.argv.slice(1)], {
    env: { ...process.env, BUN_CONFIG_MAX_HTTP_REQUESTS: String(MAX_HTTP_REQUESTS) },
    stdio: ["inherit", "inherit", "inherit"],
  });
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.on(signal, () => child.kill(signal));
  process.exit(await child.exited);
}
const postTool = (flags["post-tool"] ?? postToolAvailable()) as PostTool;
if (postTool !== "wrk" && postTool !== "bun") fail(`--post-tool must be wrk or bun, not ${postTool}`);
const redisPlace = flags["redis-core"] as RedisPlace;
if (!REDIS_PLACES.includes(redisPlace)) fail(`--redis-core must be ${REDIS_PLACES.join(" or ")}, not ${redisPlace}`);
// Known before anything is measured: CI must not find out at the end that the cluster scenario could not run.
const redisMissing = only.some((s) => ["cluster", "workers", "sentinel", "rcluster"].includes(s))
  ? missingRedisServer()
  : undefined;
if (redisMissing !== undefined) {
  if (process.env.CI === "true") fail(`${redisMissing}; CI must run the cluster and workers scenarios`);
  process.stderr.write(`\n*** bench: SKIPPING the cluster and workers scenarios: ${redisMissing} ***\n\n`);
}
// The peer runs where it is installed; without it, everything else does, and the report says "not installed".
const nchanMissing = flags["no-peer"] ? "not run (--no-peer)" : missingNchan();
if (nchanMissing !== undefined) process.stderr.write(`\n*** bench: Nchan ${nchanMissing} ***\n\n`);
/** A scenario's sides, with the peer's added when it is installed. */
function withPeer<K extends string, P extends string>(kinds: readonly K[], peer: P): readonly (K | P)[] {
  return nchanMissing === undefined ? [...kinds, peer] : kinds;
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
  peers: { nchan: nchanMissing === undefined ? { version: nchanVersion() } : { missing: nchanMissing } },
};
note(`${plan.name} run; ${pinning.description}; POST load by ${postTool}; report in ${outDir}`);

try {
  if (only.includes("fanout")) {
    results.fanout = await alternate(
      plan.pairs,
      async (kind, pair) => noteFanout("fanout ", kind, pair, await fanoutRun(kind, plan.fanout, pinning)),
      fanoutOtherShare,
      plan.patience,
      withPeer(SERVER_KINDS, "nchan"),
    );
  }
  writeOutputs();
  if (only.includes("idle")) {
    results.idle = await alternate(
      plan.pairs,
      async (kind, pair) => {
        const run = await idleRun(kind, plan.idle, pinning);
        note(
          `idle    ${kind.padEnd(7)} pair ${pair + 1}: ${fix(run.bytesPerConnection / 1024, 2)} KiB/connection, ` +
            `connected in ${fix(run.connectMs, 0)} ms; other ${pct(run.otherShare)}`,
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
      withPeer(SERVER_KINDS, "nchan"),
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
            `growth  ${kind.padEnd(7)} ${point.axis} ${point.value}: ${fix(run.serverCpuMicrosPerDelivery * 1000, 0)} ns/delivery, ` +
              `${fix(run.deliveriesPerSecond / 1e6, 2)} M/s; other ${pct(run.otherShare)}`,
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
  if (only.includes("sse")) await runSse(pinning);
  writeOutputs();
  if (only.includes("history")) await runHistory(pinning);
  writeOutputs();
  if (only.includes("cluster")) await runCluster(pinning);
  writeOutputs();
  if (only.includes("herd")) await runHerd(pinning);
  writeOutputs();
  if (only.includes("workers")) await runWorkers(pinning);
  writeOutputs();
  if (only.includes("sentinel")) await runBroker("sentinel", SENTINEL_KINDS, pinning);
  writeOutputs();
  if (only.includes("rcluster")) await runBroker("rcluster", RCLUSTER_KINDS, pinning);
  writeOutputs();
  if (only.includes("auth")) await runAuth(pinning);
} catch (error) {
  killAllServers();
  fail(`benchmark failed: ${(error as Error).stack ?? error}`);
}

writeOutputs();

if (judged(results)) {
  for (const t of targets(results)) {
    const absolute = t.unit === "" ? String(t.measured) : `${fix(t.measured, 2)} ${t.unit}`;
    const figure = t.ratio === undefined ? absolute : `${fix(t.ratio, 2)} × floor`;
    note(`target  ${t.met ? "met   " : "MISSED"} ${t.name}: ${figure} (${t.goal})`);
  }
  for (const scenario of Object.keys(PAIRED_SCENARIOS) as PairedScenario[]) {
    notePaired(scenario, pairedTargets(results, scenario), PAIRED_SCENARIOS[scenario].than);
  }
  for (const t of herdTargets(results)) {
    const verdict = t.met === undefined ? "info  " : t.met ? "met   " : "MISSED";
    // A count (no unit) as a whole number.
    const shown = (v: number) => (t.unit === "" ? fix(v, 0) : fix(v, 1, t.unit));
    const go = t.go === undefined ? "" : `, Go ${shown(t.go)} (issue 20)`;
    note(
      `target  ${verdict} herd: ${t.name}: ${shown(t.pinghub)}, rounds ${shown(t.range[0])} to ` +
        `${shown(t.range[1])}${go} (goal: ${t.goal})`,
    );
  }
} else {
  note(SMOKE_NOTE);
}
if (redisMissing !== undefined) note(`*** the cluster and workers scenarios were SKIPPED: ${redisMissing} ***`);
note(`done in ${fix(results.seconds, 1)} s: ${join(outDir, "report.md")}`);
process.exit(0);

/** One line per target of a paired scenario; a figure without a goal is "info". */
function notePaired(scenario: string, list: PairedTarget[], than: string): void {
  for (const t of list) {
    const absolute = t.unit === "" ? String(t.measured) : `${fix(t.measured, 2)} ${t.unit}`;
    const compared =
      t.added !== undefined ? `${fix(t.added, 2)} ${t.unit} added` : `${fix(t.ratio ?? Number.NaN, 2)} × ${than}`;
    const figure = t.ratio === undefined && t.added === undefined ? absolute : compared;
    const verdict = t.met === undefined ? "info  " : t.met ? "met   " : "MISSED";
    note(`target  ${verdict} ${scenario}: ${t.name}: ${figure} (goal: ${t.goal})`);
  }
}

/**
 * Scenario 6, SSE: the fan-out's fixed rates on a single node, with websocket subscribers and then with SSE
 * subscribers (and a websocket publisher), in pairs, alternating. No closed loop: its pace would be the SSE
 * client's, not the server's.
 */
async function runSse(pinning: Pinning): Promise<void> {
  const ssePlan = { ...plan.fanout, rates: plan.sse.rates, maxSeconds: 0 };
  // "nchan": Nchan's EventSource subscribers, on the same rates, in the same rounds.
  results.sse = await alternate(
    plan.sse.pairs,
    async (side, pair) => {
      const run =
        side === "nchan"
          ? await fanoutRun("nchan", ssePlan, pinning, "sse")
          : await fanoutRun("pinghub", ssePlan, pinning, side);
      return noteFanout("sse", side, pair, run);
    },
    fanoutOtherShare,
    plan.patience,
    withPeer(TRANSPORTS, "nchan"),
  );
}

/**
 * Scenario 11, the stalled herd: pinghub, then Nchan, in turns; each run a fresh server with its stalled
 * subscribers and its readers.
 */
async function runHerd(pinning: Pinning): Promise<void> {
  results.herd = await alternate(
    plan.herd.pairs,
    async (kind, pair) => {
      const run = await herdRun(kind, plan.herd, pinning);
      note(
        `herd    ${kind.padEnd(7)} pair ${pair + 1}: readers p50 ${fix(run.readersP50Ms, 1)} ms p99 ${fix(run.readersP99Ms, 1)} ms, ` +
          `peak RSS ${fix(run.peakRssBytes / 2 ** 20, 1)} MiB, ${run.lost} lost, ${run.readersDisconnected} readers cut, ` +
          `${run.postErrors} POST errors; other ${pct(herdOtherShare(run))}`,
      );
      return run;
    },
    herdOtherShare,
    plan.patience,
    withPeer(["pinghub"] as const, "nchan"),
  );
}

/**
 * Scenario 7, history: the fan-out and POST loads on a node without history and on one with --history, in
 * pairs, alternating.
 */
async function runHistory(pinning: Pinning): Promise<void> {
  const history: NonNullable<Results["history"]> = { messages: HISTORY_MESSAGES };
  results.history = history;
  await pairedFanoutAndPost("history", plan.history, HISTORY_KINDS, pinning, history);
}

/**
 * Scenario 15, authorization: pinghub without it against --jwt-key (connects with a token each and with one
 * token for all, fan-out, POST), and against --auth-url with cached answers (POST); in pairs, alternating.
 */
async function runAuth(pinning: Pinning): Promise<void> {
  const auth: NonNullable<Results["auth"]> = {};
  results.auth = auth;
  const connects = (use: TokenUse) =>
    alternate(
      plan.auth.connectPairs,
      async (kind, pair) => {
        const run = await connectRun(kind, plan.idle, pinning, use);
        note(
          `auth connect (${use} token) ${kind.padEnd(7)} pair ${pair + 1}: ` +
            `${fix(run.serverCpuMicrosPerConnect, 1)} µs server CPU/connect, ${run.connections} in ` +
            `${fix(run.connectMs, 0)} ms; other ${pct(run.otherShare)}`,
        );
        return run;
      },
      (run) => run.otherShare,
      plan.patience,
      JWT_KINDS,
    );
  auth.connect = await connects("own");
  writeOutputs();
  auth.connectShared = await connects("shared");
  writeOutputs();
  await pairedFanoutAndPost("auth", plan.auth, JWT_KINDS, pinning, auth);
  writeOutputs();
  auth.forwardPost = await alternate(
    plan.auth.postPairs,
    async (kind, pair) => notePost("auth post", kind, pair, await postRun(kind, plan.post, postTool, pinning)),
    (run) => run.cpu.other / run.cpu.seconds,
    plan.patience,
    FORWARD_KINDS,
  );
}

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
  await pairedFanoutAndPost("cluster", plan.cluster, withPeer(CLUSTER_KINDS, "nchan-redis"), pinning, cluster);
}

/**
 * Scenario 12, workers: the fan-out and POST loads on one process and on `--workers 2` (each worker a cluster node
 * on a redis-server of its own, the workers not pinned), in pairs, alternating. No target: on two cores the load
 * generator needs one of them; bench/big-machine.ts measures where more cores exist.
 */
async function runWorkers(pinning: Pinning): Promise<void> {
  if (redisMissing !== undefined) {
    results.workers = { workers: WORKERS, redis: pinning.redisDescription, redisPlace, skipped: redisMissing };
    return;
  }
  const workers: NonNullable<Results["workers"]> = { workers: WORKERS, redis: pinning.redisDescription, redisPlace };
  results.workers = workers;
  await pairedFanoutAndPost("workers", plan.workers, WORKERS_KINDS, pinning, workers);
}

/**
 * Scenarios 13 and 14, the highly available brokers: the fan-out and POST loads on a cluster node through one
 * Redis and on one through Redis Sentinel, or through a Redis Cluster, in pairs, alternating.
 */
async function runBroker(
  scenario: "sentinel" | "rcluster",
  kinds: readonly ["cluster", "sentinel"] | readonly ["cluster", "rcluster"],
  pinning: Pinning,
): Promise<void> {
  const missing = redisMissing ?? missingFor(scenario);
  const into: BrokerResults<"cluster" | "sentinel" | "rcluster"> = { redis: pinning.redisDescription, redisPlace };
  results[scenario] = into;
  if (missing !== undefined) {
    into.skipped = missing;
    if (process.env.CI === "true") fail(`${missing}; CI must run the ${scenario} scenario`);
    note(`*** SKIPPING the ${scenario} scenario: ${missing} ***`);
    return;
  }
  await pairedFanoutAndPost<"cluster" | "sentinel" | "rcluster">(scenario, plan[scenario], kinds, pinning, into);
}

/** Why a broker's scenario cannot run here, naming the Debian package; undefined when it can. */
function missingFor(scenario: "sentinel" | "rcluster"): string | undefined {
  const program = scenario === "sentinel" ? "redis-sentinel" : "redis-cli";
  const pkg = scenario === "sentinel" ? "redis-sentinel" : "redis-tools";
  return Bun.which(program) === null
    ? `${program} not found on the PATH: install the Debian package ${pkg}`
    : undefined;
}

/**
 * The fan-out and then the POST load on a scenario's two kinds of server, in pairs, alternating; each result
 * stored in `into` as soon as it is measured, so that the report written meanwhile has it.
 */
async function pairedFanoutAndPost<K extends ServerKind>(
  name: string,
  sizes: { pairs: number; postPairs: number },
  kinds: readonly K[],
  pinning: Pinning,
  // Every side's runs, the peer's too: a peer's is optional where the results are declared.
  into: { fanout?: WithPeer<FanoutRun, never, NoInfer<K>>; post?: WithPeer<PostRun, never, NoInfer<K>> },
): Promise<void> {
  into.fanout = await alternate(
    sizes.pairs,
    async (kind, pair) => noteFanout(`${name} fanout`, kind, pair, await fanoutRun(kind, plan.fanout, pinning)),
    fanoutOtherShare,
    plan.patience,
    kinds,
  );
  writeOutputs();
  into.post = await alternate(
    sizes.postPairs,
    async (kind, pair) => notePost(`${name} post`, kind, pair, await postRun(kind, plan.post, postTool, pinning)),
    (run) => run.cpu.other / run.cpu.seconds,
    plan.patience,
    kinds,
  );
}

function noteFanout(scenario: string, kind: string, pair: number, run: FanoutRun): FanoutRun {
  const phases = run.phases.map(
    (p) =>
      `${p.name} ${fix(p.result.deliveriesPerSecond / 1e6, 2)} M/s ` +
      `${fix(p.result.serverCpuMicrosPerDelivery * 1000, 0)} ns/delivery p99 ${fix(p.result.latencyP99Ms, 1)} ms` +
      (onRedis(kind) ? ` redis ${pct(p.result.cpu.redis / p.result.cpu.seconds)}` : ""),
  );
  note(`${scenario} ${kind.padEnd(7)} pair ${pair + 1}: ${phases.join("; ")}; other ${pct(fanoutOtherShare(run))}`);
  return run;
}

/** Whether a server of this kind publishes through Redis, whose CPU share the notes then print. */
function onRedis(kind: string): boolean {
  return ["cluster", "nchan-redis", "workers", "sentinel", "rcluster"].includes(kind);
}

function notePost(scenario: string, kind: string, pair: number, run: PostRun): PostRun {
  const redis = onRedis(kind) ? `, redis ${pct(run.cpu.redis / run.cpu.seconds)}` : "";
  note(
    `${scenario} ${kind.padEnd(7)} pair ${pair + 1}: ${fix(run.requestsPerSecond / 1000, 1)} k req/s, ` +
      `${fix(run.serverCpuMicrosPerRequest, 1)} µs/request, p99 ${fix(run.latencyP99Ms, 2)} ms, ` +
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

function fail(line: string): never {
  process.stderr.write(`bench: ${line}\n`);
  process.exit(1);
}
