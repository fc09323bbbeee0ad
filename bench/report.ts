// The report: every figure as a median over each side's runs, the measured side's ratio to the other (the
// median of the ratios within each pair), the targets and whether each is met, and, from the CPU shares, what
// limited each figure. Each comparison is a row of one table (the floor against pinghub, then the paired
// scenarios: cluster, SSE, history, and pinghub beside Nchan), and every fan-out and POST section is drawn by
// the same two functions. Where Nchan was not installed, its sections say "not installed".
// Tables and figures only: how each scenario measures, and what the figures mean, is in BENCHMARKS.md.

import { type Alternated, medianOf, pairedDifferences, pairedRatio, pairedRatios } from "./compare.ts";
import { bytes, figure, fixed, int, KIB, micros, micros3, ms, num, orDash, pct, signedMs } from "./format.ts";
import { GO_HERD_FROM_ISSUE, type HerdTarget, herdTargets } from "./herd-targets.ts";
import type { CpuUse } from "./measure.ts";
import type { RedisPlace } from "./pinning.ts";
import type { Plan } from "./plan.ts";
import type { Results } from "./results.ts";
import type { ConnectRun } from "./scenarios/connect.ts";
import type { FanoutRun } from "./scenarios/fanout.ts";
import type { GrowthPoint, GrowthRun } from "./scenarios/growth.ts";
import type { HerdRun } from "./scenarios/herd.ts";
import type { IdleRun } from "./scenarios/idle.ts";
import type { PostRun } from "./scenarios/post.ts";
import { median } from "./stats.ts";
import {
  type Comparison,
  FLOOR,
  FORWARD_AUTH,
  judged,
  PAIRED_SCENARIOS,
  type PairedScenario,
  type PairedTarget,
  pairedTargets,
  phaseAt,
  type Sides,
  SMOKE_NOTE,
  targets,
} from "./targets.ts";

/** A CPU share at or above this means that core was the limit. */
const BUSY = 0.9;

type Out = (...lines: string[]) => void;

export function renderReport(results: Results, plotFile: string | undefined): string {
  const { plan, machine } = results;
  const lines: string[] = [];
  const out: Out = (...more) => lines.push(...more);
  out(
    `# pinghub against the bare-Bun floor: ${plan.name} run`,
    "",
    `- When: ${machine.date}, pinghub commit ${machine.commit}; the run took ${fixed(results.seconds, 0)} s.`,
    `- Command: \`${results.command}\``,
    `- Machine: ${machine.cpus} CPUs (${machine.cpuModel}), ${machine.memoryGiB} GiB, Linux ${machine.kernel}, ` +
      `Bun ${machine.bun}, ${machine.wrk ?? "no wrk"}.`,
    `- Pinning: ${results.pinning}.`,
    `- Peer: ${results.peers === undefined ? "not measured" : (results.peers.nchan.version ?? `Nchan ${results.peers.nchan.missing}`)}.`,
    `- Pairs: ${plan.pairs} for fan-out and idle, ${plan.postPairs} for POST, ${plan.growth.pairs} per growth ` +
      `point; ${redoneSummary(results)}.`,
    "- How each scenario measures, and how to read these tables: BENCHMARKS.md.",
    "",
  );
  if (judged(results)) {
    targetsTable(out, FLOOR, targets(results));
    for (const [key, comparison] of Object.entries(PAIRED_SCENARIOS)) {
      const list = pairedTargets(results, key as PairedScenario);
      const missing = notInstalled(results, comparison);
      if (list.length === 0 && missing !== undefined) out(`## ${comparison.targetsTitle}`, "", missing, "");
      else targetsTable(out, comparison, list);
    }
    herdTargetsTable(out, herdTargets(results), results.herd?.nchan !== undefined);
  } else out(`**${SMOKE_NOTE}**`, "");

  const floorFanout = FLOOR.fanout(results);
  if (floorFanout) {
    out(`## 1. Fan-out: ${fanoutSize(plan)}`, "", `${phasesLine(plan, plan.fanout.rates, true)}`, "");
    fanoutSection(out, "###", FLOOR, floorFanout);
  }
  if (results.idle) idleSection(out, results.idle);
  const floorPost = FLOOR.post(results);
  if (floorPost) {
    out(`## 3. POST publishing: ${postSize(plan)}`, "");
    postSection(out, FLOOR, floorPost);
  }
  if (results.growth) growthSection(out, results.growth, plan, plotFile);
  if (results.cluster) {
    out(`## ${PAIRED_SCENARIOS.cluster.heading}`, "");
    if (results.cluster.skipped !== undefined) out(`Not run: ${results.cluster.skipped}.`, "");
    else out(`${results.cluster.redis}; Redis's CPU time is counted apart from the server's.`, "");
    pairedSection(out, results, "cluster", results.cluster.redisPlace);
  }
  if (results.sse) {
    out(`## ${PAIRED_SCENARIOS.sse.heading}`, "", `${phasesLine(plan, plan.sse.rates, false)}`, "");
    pairedSection(out, results, "sse");
  }
  if (results.history) {
    out(`## ${PAIRED_SCENARIOS.history.heading}`, "", `History: \`--history ${results.history.messages}\`.`, "");
    pairedSection(out, results, "history");
  }
  for (const scenario of ["nchan", "nchanSse", "nchanRedis"] as const) {
    const comparison: Comparison = PAIRED_SCENARIOS[scenario];
    if (!comparison.fanout(results) && !comparison.post(results)) {
      const missing = notInstalled(results, comparison);
      if (missing !== undefined) out(`## ${comparison.heading}`, "", missing, "");
      continue;
    }
    out(`## ${comparison.heading}`, "", `${results.peers?.nchan.version ?? "Nchan"}, nothing stored (nostore).`, "");
    if (scenario === "nchanSse") out(`${phasesLine(plan, plan.sse.rates, false)}`, "");
    pairedSection(out, results, scenario, scenario === "nchanRedis" ? results.cluster?.redisPlace : undefined);
  }
  if (results.herd) herdSection(out, results.herd, plan, results.peers?.nchan.missing);
  if (results.workers) {
    out(`## ${PAIRED_SCENARIOS.workers.heading}`, "");
    if (results.workers.skipped !== undefined) out(`Not run: ${results.workers.skipped}.`, "");
    else {
      out(
        `\`--workers ${results.workers.workers}\`, each worker a cluster node, against one process without Redis. ` +
          "The workers are not pinned: they and the load generator share both cores, so no target is set here " +
          "(the load generator needs a core too); the server's CPU is the parent's and every worker's. " +
          `${results.workers.redis}; Redis's CPU time is counted apart from the server's.`,
        "",
      );
    }
    pairedSection(out, results, "workers", results.workers.redisPlace);
  }
  for (const scenario of ["sentinel", "rcluster"] as const) {
    const measured = results[scenario];
    if (measured === undefined) continue;
    out(`## ${PAIRED_SCENARIOS[scenario].heading}`, "");
    if (measured.skipped !== undefined) out(`Not run: ${measured.skipped}.`, "");
    else {
      out(
        `${measured.redis}; every Redis process of the setup on it (Sentinel: the master, its replica and three ` +
          "sentinels; a Redis Cluster: three masters and their replicas), their CPU counted apart from the server's.",
        "",
      );
    }
    pairedSection(out, results, scenario, measured.redisPlace);
  }
  if (results.auth) authSection(out, results);
  return `${lines.join("\n")}\n`;
}

/** "Nchan not installed (why)", for a comparison with the peer that did not run; else undefined. */
function notInstalled(results: Results, comparison: Comparison): string | undefined {
  const missing = results.peers?.nchan.missing;
  return comparison.peer && missing !== undefined ? `Nchan ${missing}.` : undefined;
}

/** The stalled herd: pinghub, and Nchan beside it (or "not installed"), medians and every run. */
function herdSection(out: Out, runs: Results["herd"] & object, plan: Plan, nchanMissing: string | undefined): void {
  const h = plan.herd;
  out(
    "## 11. The stalled herd: subscribers that never read beside readers",
    "",
    `${h.stalled} subscribers that complete the handshake and never read (their process stopped), beside ` +
      `${h.readers} that read, on one channel; ${bytes(h.messageSize)} messages POSTed at ${h.rate}/s for ` +
      `${h.seconds} s. Memory: the server's whole process tree, sampled every 50 ms.`,
    "",
  );
  const rows: Row<HerdRun>[] = [
    ["readers' latency p50", (r) => r.readersP50Ms, ms],
    ["readers' latency p99", (r) => r.readersP99Ms, ms],
    ["readers' latency max", (r) => r.readersMaxMs, ms],
    ["peak RSS, server process tree", (r) => r.peakRssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["RSS before the POSTs", (r) => r.baselineRssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["lost to readers", (r) => r.lost, int],
    ["readers cut off", (r) => r.readersDisconnected, int],
    ["POSTs refused or failed", (r) => r.postErrors, int],
    ["server CPU share", (r) => share(r.cpu, "server"), pct],
    ["other processes' CPU share", (r) => share(r.cpu, "other"), pct],
  ];
  const nchan = runs.nchan;
  if (nchan === undefined) {
    out(`| median of ${runs.pinghub.length} runs | pinghub | Nchan |`, "| --- | --- | --- |");
    const peer =
      nchanMissing === undefined ? "–" : nchanMissing.startsWith("not installed") ? "not installed" : "not run";
    for (const [name, figure, format] of rows) out(`| ${name} | ${format(medianOf(runs.pinghub, figure))} | ${peer} |`);
    out("");
  } else {
    pairedTable(out, ["Nchan", "pinghub", "pinghub / Nchan"], [nchan, runs.pinghub], undefined, rows);
    out("");
  }
}

/** The stalled herd's targets: Go's figures from issue 20's table, Nchan's from the same rounds, every round judged. */
function herdTargetsTable(out: Out, list: HerdTarget[], nchanRan: boolean): void {
  if (list.length === 0) return;
  const heading = "11. The stalled herd: subscribers that never read beside readers";
  out(
    "## Targets: the stalled herd (issue 20)",
    "",
    `See [${heading}](#${anchor(heading)}). Go's figures are issue 20's table (the original Go pinghub on this ` +
      `machine, one core: readers' p50 ${GO_HERD_FROM_ISSUE.readersP50Ms} ms, p99 ${GO_HERD_FROM_ISSUE.readersP99Ms} ms, ` +
      `peak RSS ${GO_HERD_FROM_ISSUE.peakRssBytes / 1e6} MB), not measured here: Go's server is not available. ` +
      `Nchan's are ${nchanRan ? "from the same rounds" : "absent: it did not run"}. Every pinghub round must meet a goal.`,
    "",
    "| target | Go (issue 20) | Nchan | pinghub (median) | pinghub's rounds | goal | met |",
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  const shown = (v: number | undefined, unit: string) => (v === undefined ? "–" : figure(v, unit));
  for (const t of list) {
    const met = t.met === undefined ? "–" : t.met ? "yes" : "**no**";
    out(
      `| ${t.name} | ${shown(t.go, t.unit)} | ${shown(t.nchan, t.unit)} | ${figure(t.pinghub, t.unit)} | ` +
        `${figure(t.range[0], t.unit)} to ${figure(t.range[1], t.unit)} | ${t.goal} | ${met} |`,
    );
  }
  out("");
}

/** A comparison's targets: the base side, the measured side, the paired ratio or difference, the goal. */
function targetsTable(out: Out, comparison: Comparison, list: PairedTarget[]): void {
  if (list.length === 0) return;
  out(`## ${comparison.targetsTitle}`, "");
  if (comparison.heading !== "") out(`See [${comparison.heading}](#${anchor(comparison.heading)}).`, "");
  out(
    `| target | ${comparison.labels.join(" | ")} | pairs' range | goal | met |`,
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}` : "–");
  for (const t of list) {
    const added = t.added;
    const compared =
      added !== undefined ? `${signed(added)} ${t.unit}` : t.ratio === undefined ? "" : fixed(t.ratio, 2, "×");
    const range =
      t.range === undefined
        ? ""
        : added !== undefined
          ? `${signed(t.range[0])} to ${signed(t.range[1])} ${t.unit}`
          : `${fixed(t.range[0], 2)}–${fixed(t.range[1], 2)}`;
    const met = t.met === undefined ? "–" : t.met ? "yes" : "**no**";
    out(
      `| ${t.name} | ${figure(t.base, t.unit)} | ${figure(t.measured, t.unit)} | ${compared} | ${range} | ${t.goal} | ${met} |`,
    );
  }
  out("");
}

/** A paired scenario's fan-out and POST, each under a heading of its own when it has both. */
function pairedSection(out: Out, results: Results, scenario: PairedScenario, redis?: RedisPlace): void {
  const comparison: Comparison = PAIRED_SCENARIOS[scenario];
  const fanout = comparison.fanout(results);
  const post = comparison.post(results);
  const { plan } = results;
  if (fanout && comparison.part !== undefined) {
    out(`### Fan-out ${comparison.part}: ${fanoutSize(plan)}`, "", `${phasesLine(plan, plan.fanout.rates, true)}`, "");
    fanoutSection(out, "####", comparison, fanout, redis);
  } else if (fanout) fanoutSection(out, "###", comparison, fanout, redis);
  if (post) {
    out(`### POST ${comparison.part}: ${postSize(plan)}`, "");
    postSection(out, comparison, post, redis);
  }
}

/** The auth scenario: the connects, then the fan-out and POST with JWT, then POST with forward auth. */
function authSection(out: Out, results: Results): void {
  const auth = results.auth;
  if (auth === undefined) return;
  const labels = PAIRED_SCENARIOS.auth.labels;
  out(`## ${PAIRED_SCENARIOS.auth.heading}`, "");
  const connects: Array<[string, ConnectRun[], ConnectRun[]] | undefined> = [
    auth.connect && ["a token each (a signature checked per connect)", auth.connect.pinghub, auth.connect.jwt],
    auth.connectShared && [
      "one token for all (checked once, then remembered)",
      auth.connectShared.pinghub,
      auth.connectShared.jwt,
    ],
  ];
  for (const part of connects) {
    if (part === undefined) continue;
    const [how, base, measured] = part;
    const n = base[0]?.connections ?? measured[0]?.connections ?? 0;
    out(`### ${n} websocket connects, each on a channel of its own, ${how}`, "");
    pairedTable(out, labels, [base, measured], undefined, [
      ["server CPU per connect", (r) => r.serverCpuMicrosPerConnect, micros],
      ["connect time, all of them", (r) => r.connectMs, ms],
      ["other processes' CPU share", (r) => r.otherShare, pct],
    ]);
    out("");
  }
  pairedSection(out, results, "auth");
  const forward = FORWARD_AUTH.post(results);
  if (forward) {
    out(`### POST ${FORWARD_AUTH.part}: ${postSize(results.plan)}`, "");
    postSection(out, FORWARD_AUTH, forward);
  }
}

function fanoutSize(plan: Plan): string {
  return `${plan.fanout.subscribers} subscribers on one channel, ${plan.fanout.messageSize}-byte messages`;
}

function postSize(plan: Plan): string {
  return `${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`;
}

/** The phases of a fan-out, from the plan: its fixed rates, then (unless `withMax` is false) the closed loop. */
function phasesLine(plan: Plan, rates: number[], withMax: boolean): string {
  const f = plan.fanout;
  const max = withMax ? `, then "max": ${f.window} messages in flight for ${f.maxSeconds} s` : "";
  return `Phases: ${rates.join(" and then ")} messages/s for ${f.rateSeconds} s each${max}; warm-up ${f.warmupSeconds} s.`;
}

/**
 * A fan-out, any two sides: one table per phase (medians, paired ratios; the p99 added and the busy cores below
 * it), then every run. With `redis` (a cluster node's), Redis's CPU is shown apart and counted on its core.
 */
function fanoutSection(out: Out, level: string, comparison: Comparison, sides: Sides<FanoutRun>, redis?: RedisPlace) {
  const { labels } = comparison;
  (sides[0][0]?.phases ?? []).forEach(({ name }, i) => {
    const phase = (r: FanoutRun) => phaseAt(r, i);
    const perDelivery = (r: FanoutRun, seconds: number) => (seconds / phase(r).deliveries) * 1e6;
    out(`${level} ${name}`, "");
    pairedTable(out, labels, sides, redis, [
      ["deliveries/s", (r) => phase(r).deliveriesPerSecond, num],
      ["server CPU per delivery", (r) => phase(r).serverCpuMicrosPerDelivery, micros3],
      ["Redis CPU per delivery", (r) => perDelivery(r, phase(r).cpu.redis), orDash(micros3), true],
      [
        "server + Redis CPU per delivery",
        (r) => perDelivery(r, phase(r).cpu.server + phase(r).cpu.redis),
        micros3,
        true,
      ],
      ["Redis CPU per message published", (r) => (phase(r).cpu.redis / phase(r).published) * 1e6, orDash(micros), true],
      ["latency p50", (r) => phase(r).latencyP50Ms, ms],
      ["latency p99", (r) => phase(r).latencyP99Ms, ms],
      ["latency max", (r) => phase(r).latencyMaxMs, ms],
      ...cpuShareRows<FanoutRun>((r) => phase(r).cpu, "load generator CPU share"),
      ["lost", (r) => phase(r).lost, int],
      ["out of order", (r) => phase(r).outOfOrder, int],
      ["subscribers disconnected", (r) => phase(r).disconnected, int],
    ]);
    out("");
    if (comparison !== FLOOR) {
      const added = pairedDifferences(...sides, (r) => phase(r).latencyP99Ms);
      out(
        `Latency p99 added (${labels[1]} − ${labels[0]}, median of the paired differences): ${signedMs(median(added))} ` +
          `(pairs: ${added.map(signedMs).join(", ")}).`,
        "",
      );
    }
    const busy = `${redisCounted(redis)}: ${busyCores(labels, sides, (r) => phase(r).cpu, redis)}.`;
    // At a fixed rate the deliveries are what was offered; the cores say how much room was left.
    out(name === "max" ? `Limited by${busy}` : `Deliveries/s is the offered rate. Cores at least 90 % busy${busy}`, "");
  });
  const rows = pairRuns(labels, sides).flatMap(({ pair, label, run }) =>
    run.phases.map(({ name, result }) => ({ pair, label, name, p: result })),
  );
  runsTable(out, redis, rows, [
    ["pair", (r) => String(r.pair)],
    ["side", (r) => r.label],
    ["phase", (r) => r.name],
    ["deliveries/s", (r) => num(r.p.deliveriesPerSecond)],
    ["CPU/delivery", (r) => micros3(r.p.serverCpuMicrosPerDelivery)],
    ["Redis CPU/delivery", (r) => (r.p.cpu.redis === 0 ? "–" : micros3((r.p.cpu.redis / r.p.deliveries) * 1e6)), true],
    ["p50", (r) => ms(r.p.latencyP50Ms)],
    ["p99", (r) => ms(r.p.latencyP99Ms)],
    [sharesHeader(redis), (r) => shares(r.p.cpu, redis)],
    ["lost", (r) => String(r.p.lost)],
    ["out of order", (r) => String(r.p.outOfOrder)],
    ["disconnected", (r) => String(r.p.disconnected)],
  ]);
}

/** A POST load, any two sides: medians and paired ratios, the busy cores, then every run. */
function postSection(out: Out, comparison: Comparison, sides: Sides<PostRun>, redis?: RedisPlace): void {
  const { labels } = comparison;
  const tool = sides[0][0]?.tool ?? sides[1][0]?.tool;
  out(`Load: ${tool === "wrk" ? "wrk" : "the Bun fallback (wrk not found: its figures are lower than wrk's)"}.`, "");
  const perRequest = (seconds: number, r: PostRun) => (seconds / r.requests) * 1e6;
  pairedTable(out, labels, sides, redis, [
    ["requests/s", (r) => r.requestsPerSecond, num],
    ["latency p50", (r) => r.latencyP50Ms, ms],
    ["latency p99", (r) => r.latencyP99Ms, ms],
    ["server CPU per request", (r) => r.serverCpuMicrosPerRequest, micros],
    ["Redis CPU per request", (r) => perRequest(r.cpu.redis, r), orDash(micros), true],
    ["server + Redis CPU per request", (r) => perRequest(r.cpu.server + r.cpu.redis, r), micros, true],
    ...cpuShareRows<PostRun>((r) => r.cpu, `load generator CPU share (${tool})`),
    ["errors", (r) => r.errors, int],
    ["messages delivered to the subscriber", (r) => r.delivered, int],
  ]);
  out("", `Limited by${redisCounted(redis)}: ${busyCores(labels, sides, (r) => r.cpu, redis)}.`, "");
  runsTable(out, redis, pairRuns(labels, sides), [
    ["pair", (r) => String(r.pair)],
    ["side", (r) => r.label],
    ["requests/s", (r) => num(r.run.requestsPerSecond)],
    ["p50", (r) => ms(r.run.latencyP50Ms)],
    ["p99", (r) => ms(r.run.latencyP99Ms)],
    ["CPU/request", (r) => micros(r.run.serverCpuMicrosPerRequest)],
    ["Redis CPU/request", (r) => (r.run.cpu.redis === 0 ? "–" : micros(perRequest(r.run.cpu.redis, r.run))), true],
    [sharesHeader(redis), (r) => shares(r.run.cpu, redis)],
    ["errors", (r) => String(r.run.errors)],
    ["delivered", (r) => String(r.run.delivered)],
  ]);
}

function idleSection(out: Out, runs: Alternated<IdleRun>): void {
  const n = runs.floor[0]?.connections ?? runs.pinghub[0]?.connections ?? 0;
  out(`## 2. Idle connections: ${n} subscribers, each on a channel of its own`, "");
  pairedTable(out, FLOOR.labels, [runs.floor, runs.pinghub], undefined, [
    ["RSS per connection", (r) => r.bytesPerConnection / KIB, (v) => fixed(v, 2, "KiB")],
    ["connect time", (r) => r.connectMs, (v) => fixed(v, 0, "ms")],
    ["RSS before", (r) => r.baselineRssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["RSS after", (r) => r.rssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["other processes' CPU share", (r) => r.otherShare, pct],
  ]);
  out("");
}

function growthSection(
  out: Out,
  points: { point: GrowthPoint; runs: Alternated<GrowthRun> }[],
  plan: Plan,
  plotFile: string | undefined,
): void {
  const g = plan.growth;
  out(
    "## 4. Growth",
    "",
    `${g.seconds} s as fast as it goes per point, ${g.pairs} run(s) per server; "size": ` +
      `${g.subscribersForSizes} subscribers on one channel.`,
    "",
  );
  if (plotFile !== undefined) out(`![growth](${plotFile})`, "");
  out(
    "| axis | value | window | CPU/delivery floor | pinghub | ratio | deliveries/s floor | pinghub | KiB/conn floor | pinghub | MiB at end floor | pinghub | limit floor | pinghub |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const { point, runs } of points) {
    const both = (f: (kind: "floor" | "pinghub") => string) => `${f("floor")} | ${f("pinghub")}`;
    const m = (kind: "floor" | "pinghub", f: (r: GrowthRun) => number) => medianOf(runs[kind], f);
    // RSS grows in steps of whole pages and heap blocks: per connection, it means something from 1000 on.
    const connections = point.channels * point.subscribersPerChannel;
    const limit = (k: "floor" | "pinghub") =>
      limitName(
        runs[k].every((r) => r.serverCpuShare >= BUSY),
        runs[k].every((r) => r.loadCpuShare >= BUSY),
      );
    out(
      `| ${point.axis} | ${point.axis === "size" ? bytes(point.value) : point.value} | ${point.window} | ` +
        `${both((k) => fixed(m(k, (r) => r.serverCpuMicrosPerDelivery) * 1000, 0, "ns"))} | ` +
        `${fixed(
          pairedRatio(runs, (r) => r.serverCpuMicrosPerDelivery),
          2,
        )} | ` +
        `${both((k) => num(m(k, (r) => r.deliveriesPerSecond)))} | ` +
        `${both((k) => (connections < 1000 ? "–" : fixed(m(k, (r) => r.idleBytesPerConnection) / KIB, 1)))} | ` +
        `${both((k) => fixed(m(k, (r) => r.loadedRssBytes) / KIB / KIB, 1))} | ${both(limit)} |`,
    );
  }
  const bad = points.reduce(
    (sum, { runs }) =>
      sum + [...runs.floor, ...runs.pinghub].reduce((s, r) => s + r.lost + r.outOfOrder + r.disconnected, 0),
    0,
  );
  out("", `Lost, out of order or disconnected over all growth runs: ${bad}.`, "");
}

/** Pairs measured again because other work disturbed them, per scenario, and the time spent waiting. */
function redoneSummary(results: Results): string {
  const measured: (readonly [string, { redone: number; waited: number } | undefined])[] = [
    ["fan-out", results.fanout],
    ["idle", results.idle],
    ["POST", results.post],
    ...(results.growth ?? []).map((g) => ["growth", g.runs] as const),
    ["cluster fan-out", results.cluster?.fanout],
    ["cluster POST", results.cluster?.post],
    ["workers fan-out", results.workers?.fanout],
    ["workers POST", results.workers?.post],
    ["sentinel fan-out", results.sentinel?.fanout],
    ["sentinel POST", results.sentinel?.post],
    ["Redis Cluster fan-out", results.rcluster?.fanout],
    ["Redis Cluster POST", results.rcluster?.post],
    ["SSE", results.sse],
    ["history fan-out", results.history?.fanout],
    ["history POST", results.history?.post],
    ["stalled herd", results.herd],
    ["auth connects", results.auth?.connect],
    ["auth connects (one token)", results.auth?.connectShared],
    ["auth fan-out", results.auth?.fanout],
    ["auth POST", results.auth?.post],
    ["auth POST (forward)", results.auth?.forwardPost],
  ];
  const redone = new Map<string, number>();
  let waited = 0;
  for (const [name, runs] of measured) {
    if (runs === undefined) continue;
    redone.set(name, (redone.get(name) ?? 0) + runs.redone);
    waited += runs.waited;
  }
  const parts = [...redone].map(([name, n]) => `${name} ${n}`);
  return `pairs redone: ${parts.join(", ")}; waited ${fixed(waited, 0)} s in all`;
}

// ---------------------------------------------------------------------------------------------------------
// Tables and figures

/** A row of medians: its name, the figure from one run, its format; the last flag: Redis's, cluster only. */
type Row<T> = [string, (run: T) => number, (value: number) => string, redisOnly?: boolean];
/** A column of a table of runs: its header, its cell; the last flag: Redis's, cluster only. */
type Column<T> = [string, (row: T) => string, redisOnly?: boolean];

/** A table of medians, one row per figure: the base side, the measured side, the paired ratios' median. */
function pairedTable<T>(
  out: Out,
  labels: [string, string, string],
  [base, measured]: Sides<T>,
  redis: RedisPlace | undefined,
  rows: Row<T>[],
): void {
  out(
    `| median of ${Math.max(base.length, measured.length)} runs | ${labels.join(" | ")} |`,
    "| --- | --- | --- | --- |",
  );
  for (const [name, figure, format] of rows.filter((row) => redis !== undefined || row[3] !== true)) {
    const ratio = median(pairedRatios(base, measured, figure));
    out(
      `| ${name} | ${format(medianOf(base, figure))} | ${format(medianOf(measured, figure))} | ` +
        `${Number.isFinite(ratio) ? ratio.toFixed(2) : ""} |`,
    );
  }
}

/** Every run, in the order measured, one row each (or one per phase). */
function runsTable<T>(out: Out, redis: RedisPlace | undefined, rows: T[], columns: Column<T>[]): void {
  const shown = columns.filter((column) => redis !== undefined || column[2] !== true);
  out("Every run, in the order measured:", "", `| ${shown.map(([header]) => header).join(" | ")} |`);
  out(`|${" --- |".repeat(shown.length)}`);
  for (const row of rows) out(`| ${shown.map(([, cell]) => cell(row)).join(" | ")} |`);
  out("");
}

/** The CPU share rows of a medians table: the server's, Redis's (cluster only), the load generator's, others'. */
function cpuShareRows<T>(cpu: (run: T) => CpuUse, load: string): Row<T>[] {
  return [
    ["server CPU share", (r) => share(cpu(r), "server"), pct],
    ["Redis CPU share", (r) => share(cpu(r), "redis"), orDash(pct), true],
    [load, (r) => share(cpu(r), "load"), pct],
    ["other processes' CPU share", (r) => share(cpu(r), "other"), pct],
  ];
}

/** Each pair's runs in the order measured, the base side's first, with the pair's number and the side's name. */
function pairRuns<T>(labels: [string, string, string], [base, measured]: Sides<T>) {
  const rows: { pair: number; label: string; run: T }[] = [];
  for (let i = 0; i < Math.max(base.length, measured.length); i++) {
    for (const [k, run] of [base[i], measured[i]].entries())
      if (run !== undefined) rows.push({ pair: i + 1, label: labels[k] as string, run });
  }
  return rows;
}

/** Which cores were at least 90 % busy in every run of each side, in words; Redis's time on its core. */
function busyCores<T>(
  labels: [string, string, string],
  sides: Sides<T>,
  cpu: (run: T) => CpuUse,
  redis: RedisPlace | undefined,
): string {
  return sides
    .map((runs, k) => {
      const all = runs.map((r) => cpu(r));
      const on = (core: "server" | "load") => (c: CpuUse) =>
        share(c, core) + (redis === core ? share(c, "redis") : 0) >= BUSY;
      return `${labels[k]}: ${limitName(all.every(on("server")), all.every(on("load")))}`;
    })
    .join("; ");
}

/** Where Redis's CPU time was counted, for a cluster scenario's words on the busy cores. */
function redisCounted(redis: RedisPlace | undefined): string {
  if (redis === undefined) return "";
  return ` (Redis counted on ${redis === "server" ? "the server's" : "the load generator's"} core)`;
}

function share(cpu: CpuUse, who: "server" | "load" | "redis" | "other"): number {
  return cpu[who] / cpu.seconds;
}

function sharesHeader(redis: RedisPlace | undefined): string {
  return redis === undefined ? "server / load / other CPU" : "server / Redis / load / other CPU";
}

/** "server / load / other" CPU shares, with Redis's after the server's for a cluster scenario. */
function shares(cpu: CpuUse, redis: RedisPlace | undefined): string {
  const who =
    redis === undefined ? (["server", "load", "other"] as const) : (["server", "redis", "load", "other"] as const);
  return who.map((w) => pct(share(cpu, w))).join(" / ");
}

/** Which core was full, from the CPU shares: the limit on a closed-loop figure. */
function limitName(server: boolean, load: boolean): string {
  if (server && load) return "both cores";
  if (server) return "server core";
  if (load) return "load generator core";
  return "neither core full";
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchor(heading: string): string {
  return heading
    .toLowerCase()
    .replace(/[^\p{L}\p{N} -]/gu, "")
    .replaceAll(" ", "-");
}
