// The report: every figure as a median over the runs of each server, pinghub's ratio to the floor (the median
// of the ratios within each pair), the targets of issue 6 and whether each is met, and, from the CPU shares,
// what limited each figure; then the paired scenarios, each against pinghub as above: a cluster node through
// Redis (issue 10), SSE subscribers against websockets, and a node with history (issue 11). Markdown, to be
// read as it is and pasted into BENCHMARKS.md. A smoke run's report judges no target (issue 12).

import {
  type Alternated,
  DISTURBED_SHARE,
  medianOf,
  type PerServer,
  pairedDifferences,
  pairedRatio,
  pairedRatios,
} from "./compare.ts";
import { type PhaseResult, TRANSPORTS, type Transport } from "./load/fanout.ts";
import type { CpuUse, Machine } from "./measure.ts";
import type { RedisPlace } from "./pinning.ts";
import type { Plan } from "./plan.ts";
import type { ConnectRun } from "./scenarios/connect.ts";
import type { FanoutRun } from "./scenarios/fanout.ts";
import type { GrowthPoint, GrowthRun } from "./scenarios/growth.ts";
import type { IdleRun } from "./scenarios/idle.ts";
import type { PostRun } from "./scenarios/post.ts";
import {
  CLUSTER_KINDS,
  type ClusterKind,
  type ForwardKind,
  HISTORY_KINDS,
  type HistoryKind,
  JWT_KINDS,
  type JwtKind,
} from "./servers.ts";
import { median } from "./stats.ts";

export interface Results {
  plan: Plan;
  machine: Machine;
  pinning: string;
  command: string;
  seconds: number;
  fanout?: Alternated<FanoutRun>;
  idle?: Alternated<IdleRun>;
  post?: Alternated<PostRun>;
  growth?: { point: GrowthPoint; runs: Alternated<GrowthRun> }[];
  cluster?: ClusterResults;
  /** Websocket subscribers against SSE subscribers, on the same single node, in pairs. */
  sse?: Alternated<FanoutRun, Transport>;
  history?: HistoryResults;
  auth?: AuthResults;
}

/**
 * The auth scenario: pinghub without authorization (`pinghub`) against --jwt-key (`jwt`) for connects, POST
 * and fan-out, and against --auth-url with a cached answer (`forward`) for POST, in pairs.
 */
export interface AuthResults {
  /** Each connect with a token of its own. */
  connect?: Alternated<ConnectRun, JwtKind>;
  /** Every connect with the same token: checked once, then remembered. */
  connectShared?: Alternated<ConnectRun, JwtKind>;
  post?: Alternated<PostRun, JwtKind>;
  forwardPost?: Alternated<PostRun, ForwardKind>;
  fanout?: Alternated<FanoutRun, JwtKind>;
}

/** The cluster scenario: a single node (`pinghub`) against a cluster node (`cluster`), in pairs. */
export interface ClusterResults {
  /** Where redis-server ran, in words. */
  redis: string;
  redisPlace: RedisPlace;
  /** Why the scenario did not run (no redis-server here), when it did not. */
  skipped?: string;
  fanout?: Alternated<FanoutRun, ClusterKind>;
  post?: Alternated<PostRun, ClusterKind>;
}

/** The history scenario: a node without history (`pinghub`) against one with `--history` (`history`), in pairs. */
export interface HistoryResults {
  /** Messages the history node kept per channel (its --history). */
  messages: number;
  fanout?: Alternated<FanoutRun, HistoryKind>;
  post?: Alternated<PostRun, HistoryKind>;
}

/**
 * A target of a paired scenario (cluster, SSE, history): the measured side's figure against the one it is
 * compared with (a single node, websocket subscribers, a node without history), pair by pair.
 */
export interface PairedTarget {
  name: string;
  unit: string;
  /** Medians over each side's runs: the side compared against, and the side measured. */
  base: number;
  measured: number;
  /** measured / base (median of the paired ratios); undefined for a target that is not a ratio. */
  ratio: number | undefined;
  /** For a target on a difference: measured − base, the median of the paired differences. */
  added?: number;
  /** The lowest and highest of the paired ratios (or differences). */
  range?: [number, number];
  /** The goal, in words; "none" for a figure reported without one. */
  goal: string;
  /** Whether the goal is met; undefined for a figure without a goal. */
  met: boolean | undefined;
}

export interface Target {
  name: string;
  unit: string;
  /** Medians over each server's runs. */
  floor: number;
  pinghub: number;
  /** pinghub / floor (median of the paired ratios); undefined for a target that is not a ratio. */
  ratio: number | undefined;
  /** The lowest and highest of the paired ratios: how far one pair can be from another. */
  range?: [number, number];
  goal: string;
  met: boolean;
}

/** A CPU share at or above this means that core was the limit. */
const BUSY = 0.9;
const KIB = 1024;
const KINDS = ["floor", "pinghub"] as const;

/** Whether the figures of a run can be judged: a smoke run's cannot (tiny sizes, one pair, no waiting). */
export function judged(results: Results): boolean {
  return results.plan.name !== "smoke";
}

/** What a smoke run says, once, in place of every verdict. */
export const SMOKE_NOTE =
  "This is a smoke run: it checks only that every scenario runs. Its figures (tiny sizes, one pair, no waiting " +
  "for a quiet machine) mean nothing, and no target is judged.";

export function targets(results: Results): Target[] {
  const list: Target[] = [];
  function ratioTarget<T>(name: string, unit: string, runs: PerServer<T[]>, figure: (r: T) => number, most: number) {
    const ratio = pairedRatio(runs, figure);
    const ratios = runs.pinghub.map((run, i) => figure(run) / figure(runs.floor[i] as T));
    const range: [number, number] = [Math.min(...ratios), Math.max(...ratios)];
    // A ceiling below 1 (CPU) or a floor below 1 (throughput): "most" says which way is better.
    const met = most >= 1 ? ratio <= most : ratio >= most;
    const goal = most >= 1 ? `≤ ${most} × floor` : `≥ ${most} × floor`;
    list.push({
      name,
      unit,
      floor: medianOf(runs.floor, figure),
      pinghub: medianOf(runs.pinghub, figure),
      ratio,
      range,
      goal,
      met,
    });
  }
  const { fanout, idle, post } = results;
  if (fanout) {
    const names = fanout.floor[0]?.phases.map((p) => p.name) ?? [];
    names.forEach((name, i) => {
      ratioTarget(
        `fan-out ${name}: server CPU per delivery`,
        "µs",
        fanout,
        (r) => phaseAt(r, i).serverCpuMicrosPerDelivery,
        1.1,
      );
    });
    ratioTarget(
      "fan-out max: deliveries/s",
      "/s",
      fanout,
      (r) => phaseAt(r, names.length - 1).deliveriesPerSecond,
      0.95,
    );
    const bad = (runs: FanoutRun[]) =>
      runs.reduce((sum, r) => sum + r.phases.reduce((s, p) => s + p.result.lost + p.result.outOfOrder, 0), 0);
    list.push({
      name: "fan-out: messages lost or out of order, all runs and phases",
      unit: "",
      floor: bad(fanout.floor),
      pinghub: bad(fanout.pinghub),
      ratio: undefined,
      goal: "0",
      met: bad(fanout.pinghub) === 0,
    });
  }
  if (idle) {
    const pinghub = medianOf(idle.pinghub, (r) => r.bytesPerConnection) / KIB;
    list.push({
      name: `server RSS per idle subscriber (${results.plan.idle.connections} on as many channels)`,
      unit: "KiB",
      floor: medianOf(idle.floor, (r) => r.bytesPerConnection) / KIB,
      pinghub,
      ratio: undefined,
      goal: "≤ 4 KiB",
      met: pinghub <= 4,
    });
  }
  if (post) {
    ratioTarget(
      `POST, ${results.plan.post.connections} keep-alive connections: requests/s`,
      "/s",
      post,
      (r) => r.requestsPerSecond,
      0.9,
    );
  }
  return list;
}

/**
 * The paired ratio of one figure as a target: `most` is a ceiling (1 and above: CPU) or a floor (below 1:
 * throughput) on measured / base, or undefined for a ratio reported without a goal. `than` names the base.
 */
function pairedRatioTarget<T>(
  name: string,
  unit: string,
  base: readonly T[],
  measured: readonly T[],
  figure: (r: T) => number,
  most: number | undefined,
  than: string,
): PairedTarget {
  const ratios = pairedRatios(base, measured, figure);
  const ratio = median(ratios);
  const goal = most === undefined ? "none" : most >= 1 ? `≤ ${most} × ${than}` : `≥ ${most} × ${than}`;
  return {
    name,
    unit,
    base: medianOf(base, figure),
    measured: medianOf(measured, figure),
    ratio,
    range: [Math.min(...ratios), Math.max(...ratios)],
    goal,
    met: most === undefined ? undefined : most >= 1 ? ratio <= most : ratio >= most,
  };
}

/** Lost, out of order and disconnected over every run and phase of a fan-out, for a target of 0. */
function fanoutFaults(runs: readonly FanoutRun[]): number {
  return runs.reduce(
    (sum, r) => sum + r.phases.reduce((s, p) => s + p.result.lost + p.result.outOfOrder + p.result.disconnected, 0),
    0,
  );
}

function faultTarget(base: readonly FanoutRun[], measured: readonly FanoutRun[]): PairedTarget {
  return {
    name: "fan-out: messages lost, out of order or disconnected, all runs and phases",
    unit: "",
    base: fanoutFaults(base),
    measured: fanoutFaults(measured),
    ratio: undefined,
    goal: "0",
    met: fanoutFaults(measured) === 0,
  };
}

/** The fixed-rate phases of a fan-out run, by name and index: the closed loop ("max") has no target. */
function ratePhases(runs: readonly FanoutRun[]): { name: string; i: number }[] {
  return (runs[0]?.phases ?? []).map((p, i) => ({ name: p.name, i })).filter((p) => p.name !== "max");
}

/** The targets of issue 10: what a cluster node costs against a single node. */
export function clusterTargets(results: Results): PairedTarget[] {
  const list: PairedTarget[] = [];
  const cluster = results.cluster;
  if (cluster === undefined) return list;
  const { fanout, post } = cluster;
  if (fanout) {
    const rates = ratePhases(fanout.pinghub);
    for (const { name, i } of rates) {
      list.push(
        pairedRatioTarget(
          `fan-out ${name}: server CPU per delivery`,
          "µs",
          fanout.pinghub,
          fanout.cluster,
          (r) => phaseAt(r, i).serverCpuMicrosPerDelivery,
          1.1,
          "single node",
        ),
      );
    }
    const first = rates[0];
    if (first !== undefined) {
      const p99 = (r: FanoutRun) => phaseAt(r, first.i).latencyP99Ms;
      const added = pairedDifferences(fanout.pinghub, fanout.cluster, p99);
      const middle = median(added);
      list.push({
        name: `fan-out ${first.name}: latency p99 added`,
        unit: "ms",
        base: medianOf(fanout.pinghub, p99),
        measured: medianOf(fanout.cluster, p99),
        ratio: undefined,
        added: middle,
        range: [Math.min(...added), Math.max(...added)],
        goal: "≤ 2 ms added",
        met: middle <= 2,
      });
    }
    list.push(faultTarget(fanout.pinghub, fanout.cluster));
  }
  if (post) {
    list.push(
      pairedRatioTarget(
        `POST, ${results.plan.post.connections} keep-alive connections: requests/s`,
        "/s",
        post.pinghub,
        post.cluster,
        (r) => r.requestsPerSecond,
        0.7,
        "single node",
      ),
    );
  }
  return list;
}

/** The SSE targets of issue 11: SSE subscribers against websocket subscribers, on the same single node. */
export function sseTargets(results: Results): PairedTarget[] {
  const sse = results.sse;
  if (sse === undefined) return [];
  const list: PairedTarget[] = [];
  const rates = ratePhases(sse.websocket);
  for (const { name, i } of rates) {
    list.push(
      pairedRatioTarget(
        `fan-out ${name}: server CPU per delivery`,
        "µs",
        sse.websocket,
        sse.sse,
        (r) => phaseAt(r, i).serverCpuMicrosPerDelivery,
        2,
        "websocket",
      ),
    );
  }
  // Latency has no goal here: it is reported, with what the SSE client's own load adds to it.
  for (const { name, i } of rates) {
    const p99 = (r: FanoutRun) => phaseAt(r, i).latencyP99Ms;
    const added = pairedDifferences(sse.websocket, sse.sse, p99);
    list.push({
      name: `fan-out ${name}: latency p99 added`,
      unit: "ms",
      base: medianOf(sse.websocket, p99),
      measured: medianOf(sse.sse, p99),
      ratio: undefined,
      added: median(added),
      range: [Math.min(...added), Math.max(...added)],
      goal: "none",
      met: undefined,
    });
  }
  list.push(faultTarget(sse.websocket, sse.sse));
  return list;
}

/** The history targets of issue 11: a node with --history against one without. */
export function historyTargets(results: Results): PairedTarget[] {
  const history = results.history;
  if (history === undefined) return [];
  const list: PairedTarget[] = [];
  const { fanout, post } = history;
  if (fanout) {
    for (const { name, i } of ratePhases(fanout.pinghub)) {
      list.push(
        pairedRatioTarget(
          `fan-out ${name}: server CPU per delivery`,
          "µs",
          fanout.pinghub,
          fanout.history,
          (r) => phaseAt(r, i).serverCpuMicrosPerDelivery,
          1.1,
          "no history",
        ),
      );
    }
    list.push(faultTarget(fanout.pinghub, fanout.history));
  }
  if (post) {
    list.push(
      pairedRatioTarget(
        `POST, ${results.plan.post.connections} keep-alive connections: requests/s`,
        "/s",
        post.pinghub,
        post.history,
        (r) => r.requestsPerSecond,
        undefined,
        "no history",
      ),
    );
  }
  return list;
}

/** The auth targets of issue 17: what --jwt-key and --auth-url cost, against pinghub without them. */
export function authTargets(results: Results): PairedTarget[] {
  const auth = results.auth;
  if (auth === undefined) return [];
  const list: PairedTarget[] = [];
  const than = "no authorization";
  if (auth.connect) {
    list.push(
      pairedRatioTarget(
        `${results.plan.idle.connections} websocket connects, a token each: server CPU per connect`,
        "µs",
        auth.connect.pinghub,
        auth.connect.jwt,
        (r) => r.serverCpuMicrosPerConnect,
        1.3,
        than,
      ),
    );
  }
  if (auth.connectShared) {
    list.push(
      pairedRatioTarget(
        `${results.plan.idle.connections} websocket connects, one token for all: server CPU per connect`,
        "µs",
        auth.connectShared.pinghub,
        auth.connectShared.jwt,
        (r) => r.serverCpuMicrosPerConnect,
        undefined,
        than,
      ),
    );
  }
  const posts = `POST, ${results.plan.post.connections} keep-alive connections: requests/s`;
  if (auth.post) {
    list.push(
      pairedRatioTarget(`${posts}, JWT`, "/s", auth.post.pinghub, auth.post.jwt, (r) => r.requestsPerSecond, 0.8, than),
    );
  }
  if (auth.forwardPost) {
    const { pinghub, forward } = auth.forwardPost;
    list.push(
      pairedRatioTarget(`${posts}, forward auth cached`, "/s", pinghub, forward, (r) => r.requestsPerSecond, 0.8, than),
    );
  }
  if (auth.fanout) {
    for (const { name, i } of ratePhases(auth.fanout.pinghub)) {
      list.push(
        pairedRatioTarget(
          `fan-out ${name}, subscribers with tokens: server CPU per delivery`,
          "µs",
          auth.fanout.pinghub,
          auth.fanout.jwt,
          (r) => phaseAt(r, i).serverCpuMicrosPerDelivery,
          1.1,
          than,
        ),
      );
    }
    list.push(faultTarget(auth.fanout.pinghub, auth.fanout.jwt));
  }
  return list;
}

function phaseAt(run: FanoutRun, i: number): PhaseResult {
  return (run.phases[i] as FanoutRun["phases"][number]).result;
}

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
    "- pinghub runs as deployed: `bun src/main.ts --addr 127.0.0.1:PORT --mport PORT2 --log-level warn`, its " +
      "metrics server on (not scraped during the runs). The floor is `bun bench/floor.ts PORT`.",
    `- Each server is a fresh process per run; the two alternate, ${plan.pairs} pairs for fan-out and idle, ` +
      `${plan.postPairs} for POST, ${plan.growth.pairs} per growth point. Figures are medians over each server's runs; a ratio is the ` +
      "median of the pinghub / floor ratios within each pair.",
    `- A pair in which other processes took over ${DISTURBED_SHARE * 100} % of the machine's CPU during a run ` +
      `was measured again (up to ${plan.patience.attempts} attempts in all), and every attempt first waited up ` +
      `to ${plan.patience.quietSeconds} s for a second in which other processes used under 10 % of a core: ` +
      `${redoneSummary(results)}.`,
    "",
  );

  if (judged(results)) renderTargets(out, results);
  else out(`**${SMOKE_NOTE}**`, "");

  if (results.fanout) renderFanout(out, results.fanout, plan);
  if (results.idle) renderIdle(out, results.idle);
  if (results.post) renderPost(out, results.post, plan);
  if (results.growth) renderGrowth(out, results.growth, plan, plotFile);
  if (results.cluster) renderCluster(out, results.cluster, plan);
  if (results.sse) renderSse(out, results.sse, plan);
  if (results.history) renderHistory(out, results.history, plan);
  if (results.auth) renderAuth(out, results.auth, plan);
  return `${lines.join("\n")}\n`;
}

/** The targets tables: against the floor, then each paired scenario's. */
function renderTargets(out: Out, results: Results): void {
  const list = targets(results);
  if (list.length > 0) {
    out(
      "## Targets",
      "",
      "| target | floor | pinghub | pinghub / floor | pairs' range | goal | met |",
      "| --- | --- | --- | --- | --- | --- | --- |",
    );
    for (const t of list) {
      const ratio = t.ratio === undefined ? "" : fixed(t.ratio, 2, "×");
      const range = t.range === undefined ? "" : `${fixed(t.range[0], 2)}–${fixed(t.range[1], 2)}`;
      out(
        `| ${t.name} | ${figure(t.floor, t.unit)} | ${figure(t.pinghub, t.unit)} | ${ratio} | ${range} | ${t.goal} | ` +
          `${t.met ? "yes" : "**no**"} |`,
      );
    }
    out("");
  }
  pairedTargetsTable(
    out,
    "Cluster targets",
    "One cluster node, every message through Redis, against a single node: see [5. Cluster](#5-cluster-one-node-through-redis-against-a-single-node).",
    ["single node", "cluster node", "cluster / single"],
    clusterTargets(results),
  );
  pairedTargetsTable(
    out,
    "SSE targets",
    "SSE subscribers against websocket subscribers, on the same single node: see [6. SSE](#6-sse-server-sent-events-subscribers-against-websockets).",
    ["websocket", "SSE", "SSE / websocket"],
    sseTargets(results),
  );
  pairedTargetsTable(
    out,
    "History targets",
    `A node with \`--history ${results.history?.messages}\` against one without: see [7. History](#7-history-pinghub-with-and-without-history).`,
    ["no history", "history", "history / none"],
    historyTargets(results),
  );
  pairedTargetsTable(
    out,
    "Auth targets",
    "--jwt-key and --auth-url against pinghub without authorization: see [8. Authorization](#8-authorization-jwt-and-forward-auth-against-none).",
    ["no authorization", "with it", "with / without"],
    authTargets(results),
  );
}

function pairedTargetsTable(
  out: Out,
  title: string,
  intro: string,
  headers: [string, string, string],
  list: PairedTarget[],
): void {
  if (list.length === 0) return;
  out(
    `## ${title}`,
    "",
    intro,
    "",
    `| target | ${headers.join(" | ")} | pairs' range | goal | met |`,
    "| --- | --- | --- | --- | --- | --- | --- |",
  );
  const signed = (v: number) => (Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)}` : "–");
  for (const t of list) {
    const compared =
      t.added !== undefined ? `${signed(t.added)} ${t.unit}` : t.ratio === undefined ? "" : fixed(t.ratio, 2, "×");
    const range =
      t.range === undefined
        ? ""
        : t.added !== undefined
          ? `${signed(t.range[0])} to ${signed(t.range[1])} ${t.unit}`
          : `${fixed(t.range[0], 2)}–${fixed(t.range[1], 2)}`;
    const met = t.met === undefined ? "–" : t.met ? "yes" : "**no**";
    out(
      `| ${t.name} | ${figure(t.base, t.unit)} | ${figure(t.measured, t.unit)} | ${compared} | ${range} | ${t.goal} | ${met} |`,
    );
  }
  out("");
}

type Out = (...lines: string[]) => void;

function redoneSummary(results: Results): string {
  const parts: string[] = [];
  const add = (name: string, runs: Alternated<unknown> | undefined) => {
    if (runs) parts.push(`${name} ${runs.redone}`);
  };
  add("fan-out", results.fanout);
  add("idle", results.idle);
  add("POST", results.post);
  let waited = [results.fanout, results.idle, results.post].reduce((sum, r) => sum + (r?.waited ?? 0), 0);
  if (results.growth) {
    parts.push(`growth ${results.growth.reduce((sum, g) => sum + g.runs.redone, 0)}`);
    waited += results.growth.reduce((sum, g) => sum + g.runs.waited, 0);
  }
  const cluster = [results.cluster?.fanout, results.cluster?.post];
  if (cluster.some((r) => r !== undefined)) {
    parts.push(`cluster fan-out ${cluster[0]?.redone ?? 0}, cluster POST ${cluster[1]?.redone ?? 0}`);
    waited += cluster.reduce((sum, r) => sum + (r?.waited ?? 0), 0);
  }
  if (results.sse) {
    parts.push(`SSE ${results.sse.redone}`);
    waited += results.sse.waited;
  }
  const history = [results.history?.fanout, results.history?.post];
  if (history.some((r) => r !== undefined)) {
    parts.push(`history fan-out ${history[0]?.redone ?? 0}, history POST ${history[1]?.redone ?? 0}`);
    waited += history.reduce((sum, r) => sum + (r?.waited ?? 0), 0);
  }
  return `pairs redone: ${parts.join(", ")}; waited ${fixed(waited, 0)} s in all`;
}

function renderFanout(out: Out, runs: Alternated<FanoutRun>, plan: Plan): void {
  const f = plan.fanout;
  out(
    `## 1. Fan-out: ${f.subscribers} subscribers on one channel, ${f.messageSize}-byte messages`,
    "",
    `One of the subscribers also publishes, by websocket; every message goes to all ${f.subscribers}, the ` +
      `publisher included. First ${f.rates.join(" and then ")} messages/s for ${f.rateSeconds} s each (open ` +
      `loop); then "max": as fast as it goes for ${f.maxSeconds} s, ${f.window} messages in flight and the next ` +
      "one sent as soon as every subscriber has the oldest (closed loop). Latency is publish to receive, on one " +
      "clock. A phase's time runs from its first publish to its last delivery; a CPU share is CPU seconds per " +
      "second of it.",
    "",
  );
  const names = runs.floor[0]?.phases.map((p) => p.name) ?? [];
  names.forEach((name, i) => {
    const phase = (r: FanoutRun) => phaseAt(r, i);
    out(`### ${name}`, "");
    comparisonTable(out, runs, fanoutPhaseRows(i));
    const busy = KINDS.map((kind) => {
      const all = runs[kind].map(phase);
      return `${kind}: ${limitName(
        all.every((p) => share(p, "server") >= BUSY),
        all.every((p) => share(p, "load") >= BUSY),
      )}`;
    }).join("; ");
    // At a fixed rate the deliveries are what was offered; the cores say how much room was left.
    out(
      "",
      name === "max" ? `Limited by: ${busy}.` : `Deliveries/s is the offered rate. Cores at least 90 % busy: ${busy}.`,
      "",
    );
  });
  out(
    "Every run, in the order measured:",
    "",
    "| pair | server | phase | deliveries/s | CPU/delivery | p50 | p99 | server / load / other CPU | lost | out of order |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  eachRun(runs, (kind, i, run) => {
    for (const { name, result: p } of run.phases) {
      out(
        `| ${i + 1} | ${kind} | ${name} | ${num(p.deliveriesPerSecond)} | ${fixed(p.serverCpuMicrosPerDelivery, 3, "µs")} | ` +
          `${ms(p.latencyP50Ms)} | ${ms(p.latencyP99Ms)} | ${pct(share(p, "server"))} / ${pct(share(p, "load"))} / ` +
          `${pct(share(p, "other"))} | ${p.lost} | ${p.outOfOrder} |`,
      );
    }
  });
  out("");
}

function renderIdle(out: Out, runs: Alternated<IdleRun>): void {
  const n = runs.floor[0]?.connections ?? runs.pinghub[0]?.connections ?? 0;
  out(
    `## 2. Idle connections: ${n} subscribers, each on a channel of its own`,
    "",
    "Server RSS (VmRSS) before the first connection (after a warm-up: 64 connections opened and closed, so " +
      "that one-time costs are not counted per connection) and 1 s after the last; connect time is from the " +
      "first TCP connect to the last 101, 256 handshakes under way at once.",
    "",
  );
  comparisonTable(out, runs, [
    ["RSS per connection", (r) => r.bytesPerConnection / KIB, (v) => fixed(v, 2, "KiB")],
    ["connect time", (r) => r.connectMs, (v) => fixed(v, 0, "ms")],
    ["RSS before", (r) => r.baselineRssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["RSS after", (r) => r.rssBytes / KIB / KIB, (v) => fixed(v, 1, "MiB")],
    ["other processes' CPU share", (r) => r.otherShare, pct],
  ]);
  out("");
}

function renderPost(out: Out, runs: Alternated<PostRun>, plan: Plan): void {
  const tool = runs.floor[0]?.tool ?? runs.pinghub[0]?.tool;
  out(
    `## 3. POST publishing: ${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`,
    "",
    tool === "wrk"
      ? `\`wrk -t1 -c${plan.post.connections} -d${plan.post.seconds}s --latency -s bench/load/post.lua\`: 64-byte ` +
          "bodies to one channel with one websocket subscriber reading, after a 1 s warm-up."
      : `wrk not found: the Bun fallback, ${plan.post.connections} loops of fetch; 64-byte bodies to one channel ` +
          "with one websocket subscriber reading. Its figures are lower than wrk's would be.",
    "",
  );
  comparisonTable(out, runs, [
    ["requests/s", (r) => r.requestsPerSecond, num],
    ["latency p50", (r) => r.latencyP50Ms, ms],
    ["latency p99", (r) => r.latencyP99Ms, ms],
    ["server CPU per request", (r) => r.serverCpuMicrosPerRequest, (v) => fixed(v, 2, "µs")],
    ["server CPU share", (r) => r.cpu.server / r.cpu.seconds, pct],
    [`load generator CPU share (${tool})`, (r) => r.cpu.load / r.cpu.seconds, pct],
    ["other processes' CPU share", (r) => r.cpu.other / r.cpu.seconds, pct],
    ["errors", (r) => r.errors, int],
    ["messages delivered to the subscriber", (r) => r.delivered, int],
  ]);
  out(
    "",
    `Limited by: ${KINDS.map(
      (k) =>
        `${k}: ${limitName(
          runs[k].every((r) => r.cpu.server / r.cpu.seconds >= BUSY),
          runs[k].every((r) => r.cpu.load / r.cpu.seconds >= BUSY),
        )}`,
    ).join("; ")}.`,
    "",
  );
}

function renderGrowth(
  out: Out,
  points: { point: GrowthPoint; runs: Alternated<GrowthRun> }[],
  plan: Plan,
  plotFile: string | undefined,
): void {
  const g = plan.growth;
  out(
    "## 4. Growth",
    "",
    `Each point is a fresh server and ${g.seconds} s as fast as it goes (closed loop, the window shown), ` +
      `${g.pairs} run(s) per server. Subscribers: one channel, 64-byte messages. Channels: one subscriber on each, ` +
      `publishing to itself, 64-byte messages. Size: ${g.subscribersForSizes} subscribers on one channel. ` +
      "Memory is server RSS above its baseline (taken after a warm-up of 64 connections): per connection once " +
      "all are connected (shown from 1000 connections on: RSS moves in steps of pages and heap blocks), and in " +
      "all at the end of the run. The limit is the core, if any, that was at least 90 % busy in every run: with " +
      "neither full, the round trips of the closed loop set the pace.",
    "",
  );
  if (plotFile !== undefined) out(`![growth](${plotFile})`, "");
  out(
    "| axis | value | window | CPU/delivery floor | pinghub | ratio | deliveries/s floor | pinghub | KiB/conn floor | pinghub | MiB at end floor | pinghub | limit floor | pinghub |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  for (const { point, runs } of points) {
    const m = (kind: "floor" | "pinghub", f: (r: GrowthRun) => number) => medianOf(runs[kind], f);
    const cpu = (k: "floor" | "pinghub") => m(k, (r) => r.serverCpuMicrosPerDelivery) * 1000;
    // RSS grows in steps of whole pages and heap blocks: per connection, it means something from 1000 on.
    const connections = point.channels * point.subscribersPerChannel;
    const kib = (k: "floor" | "pinghub") =>
      connections < 1000 ? "–" : fixed(m(k, (r) => r.idleBytesPerConnection) / KIB, 1);
    const mib = (k: "floor" | "pinghub") => fixed(m(k, (r) => r.loadedRssBytes) / KIB / KIB, 1);
    const limit = (k: "floor" | "pinghub") =>
      limitName(
        runs[k].every((r) => r.serverCpuShare >= BUSY),
        runs[k].every((r) => r.loadCpuShare >= BUSY),
      );
    const ratio = pairedRatio(runs, (r) => r.serverCpuMicrosPerDelivery);
    out(
      `| ${point.axis} | ${point.axis === "size" ? bytes(point.value) : point.value} | ${point.window} | ` +
        `${fixed(cpu("floor"), 0, "ns")} | ${fixed(cpu("pinghub"), 0, "ns")} | ${fixed(ratio, 2)} | ` +
        `${num(m("floor", (r) => r.deliveriesPerSecond))} | ${num(m("pinghub", (r) => r.deliveriesPerSecond))} | ` +
        `${kib("floor")} | ${kib("pinghub")} | ${mib("floor")} | ${mib("pinghub")} | ${limit("floor")} | ${limit("pinghub")} |`,
    );
  }
  const bad = points.reduce(
    (sum, { runs }) =>
      sum + [...runs.floor, ...runs.pinghub].reduce((s, r) => s + r.lost + r.outOfOrder + r.disconnected, 0),
    0,
  );
  out("", `Lost, out of order or disconnected over all growth runs: ${bad}.`, "");
}

function renderCluster(out: Out, cluster: ClusterResults, plan: Plan): void {
  out("## 5. Cluster: one node through Redis against a single node", "");
  if (cluster.skipped !== undefined) {
    out(`Not run: ${cluster.skipped}.`, "");
    return;
  }
  out(
    "Each pair is a single node (pinghub as above) and then a cluster node: the same command with " +
      "`--redis redis://127.0.0.1:PORT`, and a fresh redis-server of its own for each run, started by the " +
      'benchmark (`redis-server --port PORT --bind 127.0.0.1 --save "" --appendonly no`: persistence off, ' +
      "loopback TCP). A cluster node PUBLISHes every message to Redis and delivers it to its own subscribers " +
      `when it comes back: one hop more, node to Redis to node. ${cluster.redis}. Redis's CPU time is read from ` +
      "its /proc/PID/stat as the server's is, and counted apart: it is in neither the server's figures nor " +
      `other processes'. ${plan.cluster.pairs} pairs for fan-out, ${plan.cluster.postPairs} for POST; ` +
      "figures are medians over each server's runs, a ratio is the median of the cluster / single ratios " +
      "within each pair.",
    "",
  );
  const headers: [string, string, string] = ["single node", "cluster node", "cluster / single"];
  const perCore = (cpu: CpuUse) => coreShares(cpu, cluster.redisPlace);
  const busyCores = <T>(runs: Alternated<T, ClusterKind>, cpu: (run: T) => CpuUse) =>
    (["pinghub", "cluster"] as const)
      .map((kind) => {
        const all = runs[kind].map((r) => perCore(cpu(r)));
        const name = kind === "pinghub" ? "single node" : "cluster node";
        return `${name}: ${limitName(
          all.every((c) => c.server >= BUSY),
          all.every((c) => c.load >= BUSY),
        )}`;
      })
      .join("; ");
  const where = cluster.redisPlace === "server" ? "the server's" : "the load generator's";

  const { fanout, post } = cluster;
  if (fanout) {
    const f = plan.fanout;
    out(
      `### Fan-out through Redis: ${f.subscribers} subscribers on one channel, ${f.messageSize}-byte messages`,
      "",
      `As in scenario 1: one subscriber publishes by websocket, ${f.rates.join(" and then ")} messages/s for ` +
        `${f.rateSeconds} s each, then "max" (${f.window} in flight) for ${f.maxSeconds} s. On the cluster node ` +
        "each message is one PUBLISH to Redis and one message back from it, whatever the number of subscribers.",
      "",
    );
    const names = fanout.pinghub[0]?.phases.map((p) => p.name) ?? [];
    names.forEach((name, i) => {
      const phase = (r: FanoutRun) => phaseAt(r, i);
      const per = (r: FanoutRun, seconds: number) => (seconds / phase(r).deliveries) * 1e6;
      out(`#### ${name}`, "");
      pairedTable(out, headers, fanout.pinghub, fanout.cluster, [
        ["deliveries/s", (r) => phase(r).deliveriesPerSecond, num],
        ["server CPU per delivery", (r) => phase(r).serverCpuMicrosPerDelivery, (v) => fixed(v, 3, "µs")],
        ["Redis CPU per delivery", (r) => per(r, phase(r).cpu.redis), (v) => (v === 0 ? "–" : fixed(v, 3, "µs"))],
        [
          "server + Redis CPU per delivery",
          (r) => per(r, phase(r).cpu.server + phase(r).cpu.redis),
          (v) => fixed(v, 3, "µs"),
        ],
        [
          "Redis CPU per message published",
          (r) => (phase(r).cpu.redis / phase(r).published) * 1e6,
          (v) => (v === 0 ? "–" : micros(v)),
        ],
        ["latency p50", (r) => phase(r).latencyP50Ms, ms],
        ["latency p99", (r) => phase(r).latencyP99Ms, ms],
        ["latency max", (r) => phase(r).latencyMaxMs, ms],
        ["server CPU share", (r) => share(phase(r), "server"), pct],
        ["Redis CPU share", (r) => share(phase(r), "redis"), (v) => (v === 0 ? "–" : pct(v))],
        ["load generator CPU share", (r) => share(phase(r), "load"), pct],
        ["other processes' CPU share", (r) => share(phase(r), "other"), pct],
        ["lost", (r) => phase(r).lost, int],
        ["out of order", (r) => phase(r).outOfOrder, int],
        ["subscribers disconnected", (r) => phase(r).disconnected, int],
      ]);
      const added = pairedDifferences(fanout.pinghub, fanout.cluster, (r) => phase(r).latencyP99Ms);
      const busy = busyCores(fanout, (r) => phase(r).cpu);
      out(
        "",
        `Latency p99 added by the cluster node (median of the paired differences): ${signedMs(median(added))} ` +
          `(pairs: ${added.map(signedMs).join(", ")}).`,
        "",
        name === "max"
          ? `Limited by (Redis counted on ${where} core): ${busy}.`
          : `Deliveries/s is the offered rate. Cores at least 90 % busy (Redis counted on ${where} core): ${busy}.`,
        "",
      );
    });
    out(
      "Every run, in the order measured:",
      "",
      "| pair | server | phase | deliveries/s | CPU/delivery | Redis CPU/delivery | p50 | p99 | server / Redis / load / other CPU | lost | out of order |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    eachPair(fanout, CLUSTER_KINDS, (kind, i, run) => {
      for (const { name, result: p } of run.phases) {
        const redis = kind === "cluster" ? fixed((p.cpu.redis / p.deliveries) * 1e6, 3, "µs") : "–";
        out(
          `| ${i + 1} | ${kind === "pinghub" ? "single" : kind} | ${name} | ${num(p.deliveriesPerSecond)} | ` +
            `${fixed(p.serverCpuMicrosPerDelivery, 3, "µs")} | ${redis} | ${ms(p.latencyP50Ms)} | ${ms(p.latencyP99Ms)} | ` +
            `${pct(share(p, "server"))} / ${pct(share(p, "redis"))} / ${pct(share(p, "load"))} / ${pct(share(p, "other"))} | ` +
            `${p.lost} | ${p.outOfOrder} |`,
        );
      }
    });
    out("");
  }

  if (post) {
    const tool = post.pinghub[0]?.tool ?? post.cluster[0]?.tool;
    out(
      `### POST through Redis: ${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`,
      "",
      `As in scenario 3, with ${tool === "wrk" ? "wrk" : "the Bun fallback (wrk not found)"}: 64-byte bodies to ` +
        "one channel with one websocket subscriber reading. On the cluster node a POST is answered once Redis " +
        "has taken its PUBLISH, and the subscriber gets the message when it comes back from Redis.",
      "",
    );
    const perRequest = (seconds: number, r: PostRun) => (seconds / r.requests) * 1e6;
    pairedTable(out, headers, post.pinghub, post.cluster, [
      ["requests/s", (r) => r.requestsPerSecond, num],
      ["latency p50", (r) => r.latencyP50Ms, ms],
      ["latency p99", (r) => r.latencyP99Ms, ms],
      ["server CPU per request", (r) => r.serverCpuMicrosPerRequest, micros],
      ["Redis CPU per request", (r) => perRequest(r.cpu.redis, r), (v) => (v === 0 ? "–" : micros(v))],
      ["server + Redis CPU per request", (r) => perRequest(r.cpu.server + r.cpu.redis, r), micros],
      ["server CPU share", (r) => r.cpu.server / r.cpu.seconds, pct],
      ["Redis CPU share", (r) => r.cpu.redis / r.cpu.seconds, (v) => (v === 0 ? "–" : pct(v))],
      [`load generator CPU share (${tool})`, (r) => r.cpu.load / r.cpu.seconds, pct],
      ["other processes' CPU share", (r) => r.cpu.other / r.cpu.seconds, pct],
      ["errors", (r) => r.errors, int],
      ["messages delivered to the subscriber", (r) => r.delivered, int],
    ]);
    out(
      "",
      `Limited by (Redis counted on ${where} core): ${busyCores(post, (r) => r.cpu)}.`,
      "",
      "Every run, in the order measured:",
      "",
      "| pair | server | requests/s | p50 | p99 | CPU/request | Redis CPU/request | server / Redis / load / other CPU | errors | delivered |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    eachPair(post, CLUSTER_KINDS, (kind, i, r) => {
      const c = r.cpu;
      const redis = kind === "cluster" ? micros(perRequest(c.redis, r)) : "–";
      out(
        `| ${i + 1} | ${kind === "pinghub" ? "single" : kind} | ${num(r.requestsPerSecond)} | ${ms(r.latencyP50Ms)} | ` +
          `${ms(r.latencyP99Ms)} | ${micros(r.serverCpuMicrosPerRequest)} | ${redis} | ` +
          `${pct(c.server / c.seconds)} / ${pct(c.redis / c.seconds)} / ${pct(c.load / c.seconds)} / ` +
          `${pct(c.other / c.seconds)} | ${r.errors} | ${r.delivered} |`,
      );
    });
    out("");
  }
}

function renderSse(out: Out, runs: Alternated<FanoutRun, Transport>, plan: Plan): void {
  const f = plan.fanout;
  const rates = runs.websocket[0]?.phases.map((p) => p.name.replace(" msg/s", "")) ?? [];
  out(
    "## 6. SSE: Server-Sent Events subscribers against websockets",
    "",
    "Each pair is two fresh pinghub processes, run as above. The first gets the fan-out of scenario 1: " +
      `${f.subscribers} websocket subscribers on one channel, one of them publishing. The second gets ` +
      `${f.subscribers} SSE subscribers on that channel (\`GET\` with \`Accept: text/event-stream\`; each message ` +
      "arrives as `data: …` and a blank line), read by Bun's `fetch` with a streaming body reader " +
      "(`bench/load/sse-client.ts`), and one websocket more that publishes the same messages the same way. That " +
      "publisher gets each message back too, as a websocket publisher does: one delivery more per message, not " +
      `counted, so the SSE side's CPU per delivery errs high by 1 in ${f.subscribers}. ${f.messageSize}-byte ` +
      `messages, ${rates.join(" and then ")} messages/s for ${f.rateSeconds} s each (open loop), after a ` +
      `${f.warmupSeconds} s warm-up; no closed loop, whose pace would be the SSE client's. Every SSE ` +
      "subscriber's messages are counted and their order checked, as the websockets' are. " +
      `${runs.websocket.length} pairs; figures are medians over each side's runs, a ratio is the median of the ` +
      "SSE / websocket ratios within each pair. The load generator's CPU share says whether the client kept " +
      "up: at 90 % and over, its own queueing is part of the latency.",
    "",
  );
  pairedFanout(out, "###", runs, TRANSPORTS, ["websocket", "SSE", "SSE / websocket"]);
}

function renderHistory(out: Out, history: HistoryResults, plan: Plan): void {
  const f = plan.fanout;
  out(
    "## 7. History: pinghub with and without history",
    "",
    "Each pair is a node without history (pinghub as above), then the same command with " +
      `\`--history ${history.messages}\`: every channel keeps its last ${history.messages} messages (for ` +
      "SSE subscribers that resume) and every message gets an id; websocket subscribers still get the bare " +
      "frames. Each run is a fresh process. Figures are medians over each server's runs, a ratio is the median " +
      "of the history / no history ratios within each pair.",
    "",
  );
  const labels: [string, string, string] = ["no history", "history", "history / none"];
  if (history.fanout) {
    out(
      `### Fan-out with history: ${f.subscribers} subscribers on one channel, ${f.messageSize}-byte messages`,
      "",
      `As in scenario 1: one subscriber publishes by websocket, ${f.rates.join(" and then ")} messages/s for ` +
        `${f.rateSeconds} s each, then "max" (${f.window} in flight) for ${f.maxSeconds} s; ` +
        `${history.fanout.pinghub.length} pairs. With history, each message is also kept, once, whatever the ` +
        "number of subscribers.",
      "",
    );
    pairedFanout(out, "####", history.fanout, HISTORY_KINDS, labels);
  }
  if (history.post) {
    const post = history.post;
    const tool = post.pinghub[0]?.tool ?? post.history[0]?.tool;
    out(
      `### POST with history: ${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`,
      "",
      `As in scenario 3, with ${tool === "wrk" ? "wrk" : "the Bun fallback (wrk not found)"}: 64-byte bodies to ` +
        `one channel with one websocket subscriber reading; ${post.pinghub.length} pairs. With history, each ` +
        "POST's message is kept and given an id before it is delivered.",
      "",
    );
    pairedTable(out, labels, post.pinghub, post.history, [
      ["requests/s", (r) => r.requestsPerSecond, num],
      ["latency p50", (r) => r.latencyP50Ms, ms],
      ["latency p99", (r) => r.latencyP99Ms, ms],
      ["server CPU per request", (r) => r.serverCpuMicrosPerRequest, micros],
      ["server CPU share", (r) => r.cpu.server / r.cpu.seconds, pct],
      [`load generator CPU share (${tool})`, (r) => r.cpu.load / r.cpu.seconds, pct],
      ["other processes' CPU share", (r) => r.cpu.other / r.cpu.seconds, pct],
      ["errors", (r) => r.errors, int],
      ["messages delivered to the subscriber", (r) => r.delivered, int],
    ]);
    out(
      "",
      `Limited by: ${busyCores(post, HISTORY_KINDS, labels, (r) => r.cpu)}.`,
      "",
      "Every run, in the order measured:",
      "",
      "| pair | server | requests/s | p50 | p99 | CPU/request | server / load / other CPU | errors | delivered |",
      "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    );
    eachPair(post, HISTORY_KINDS, (kind, i, r) => {
      const c = r.cpu;
      out(
        `| ${i + 1} | ${kind === "pinghub" ? "no history" : kind} | ${num(r.requestsPerSecond)} | ${ms(r.latencyP50Ms)} | ` +
          `${ms(r.latencyP99Ms)} | ${micros(r.serverCpuMicrosPerRequest)} | ` +
          `${pct(c.server / c.seconds)} / ${pct(c.load / c.seconds)} / ${pct(c.other / c.seconds)} | ` +
          `${r.errors} | ${r.delivered} |`,
      );
    });
    out("");
  }
}

function renderAuth(out: Out, auth: AuthResults, plan: Plan): void {
  out(
    "## 8. Authorization: JWT and forward auth against none",
    "",
    "Each pair is pinghub without authorization, then the same command with `--jwt-key` (an HMAC secret; " +
      "HS256 tokens in `?token=`) or with `--auth-url` (an application in the benchmark's process, on the load " +
      "generator's core, allowing everything with `Cache-Control: max-age=3600`). Each run is a fresh process.",
    "",
  );
  const labels: [string, string, string] = ["no authorization", "JWT", "JWT / none"];
  const connectRows: Array<[string, (r: ConnectRun) => number, (v: number) => string]> = [
    ["server CPU per connect", (r) => r.serverCpuMicrosPerConnect, micros],
    ["connect time, all of them", (r) => r.connectMs, ms],
    ["other processes' CPU share", (r) => r.otherShare, pct],
  ];
  if (auth.connect) {
    out(
      `### ${plan.idle.connections} websocket connects, each on its own channel with a token of its own`,
      "",
      "The tokens are signed before the server starts; the server checks each one's signature once (no token " +
        "repeats). Server CPU from the first connect to the last handshake answered.",
      "",
    );
    pairedTable(out, labels, auth.connect.pinghub, auth.connect.jwt, connectRows);
    out("");
  }
  if (auth.connectShared) {
    out(
      `### ${plan.idle.connections} websocket connects, each on its own channel, all with one token`,
      "",
      "The same clients coming back: the token's signature is checked at the first connect, then remembered.",
      "",
    );
    pairedTable(out, labels, auth.connectShared.pinghub, auth.connectShared.jwt, connectRows);
    out("");
  }
  const postRows: Array<[string, (r: PostRun) => number, (v: number) => string]> = [
    ["requests/s", (r) => r.requestsPerSecond, num],
    ["latency p99", (r) => r.latencyP99Ms, ms],
    ["server CPU per request", (r) => r.serverCpuMicrosPerRequest, micros],
    ["other processes' CPU share", (r) => r.cpu.other / r.cpu.seconds, pct],
    ["errors", (r) => r.errors, int],
  ];
  if (auth.post) {
    out(
      `### POST with a JWT: ${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`,
      "",
      "One token for every request, in the query: checked once, then remembered (jwt-access.ts).",
      "",
    );
    pairedTable(out, labels, auth.post.pinghub, auth.post.jwt, postRows);
    out("");
  }
  if (auth.forwardPost) {
    out(
      `### POST with forward auth, answers cached: ${plan.post.connections} keep-alive connections, ${plan.post.seconds} s`,
      "",
    );
    const forwardLabels: [string, string, string] = ["no authorization", "forward auth", "forward / none"];
    pairedTable(out, forwardLabels, auth.forwardPost.pinghub, auth.forwardPost.forward, postRows);
    out("");
  }
  if (auth.fanout) {
    out(
      `### Fan-out with subscribers holding tokens: ${plan.fanout.subscribers} subscribers on one channel`,
      "",
      "Authorization is decided at the upgrade; a message costs the same with it as without.",
      "",
    );
    pairedFanout(out, "####", auth.fanout, JWT_KINDS, labels);
  }
}

/**
 * One table per phase of a paired fan-out (SSE against websocket, history against none): both sides' medians
 * and their paired ratios, the p99 added, which cores were full; then every run.
 */
function pairedFanout<K extends string>(
  out: Out,
  /** The Markdown heading of each phase: "###" under a scenario, "####" under one of its parts. */
  level: string,
  runs: Alternated<FanoutRun, K>,
  kinds: readonly [K, K],
  labels: [string, string, string],
): void {
  const [base, measured] = kinds;
  const baseRuns = runs[base] as FanoutRun[];
  const measuredRuns = runs[measured] as FanoutRun[];
  const names = baseRuns[0]?.phases.map((p) => p.name) ?? [];
  names.forEach((name, i) => {
    const phase = (r: FanoutRun) => phaseAt(r, i);
    out(`${level} ${name}`, "");
    pairedTable(out, labels, baseRuns, measuredRuns, fanoutPhaseRows(i));
    const added = pairedDifferences(baseRuns, measuredRuns, (r) => phase(r).latencyP99Ms);
    const busy = busyCores(runs, kinds, labels, (r) => phase(r).cpu);
    out(
      "",
      `Latency p99 added by ${labels[1]} (median of the paired differences): ${signedMs(median(added))} ` +
        `(pairs: ${added.map(signedMs).join(", ")}).`,
      "",
      name === "max" ? `Limited by: ${busy}.` : `Deliveries/s is the offered rate. Cores at least 90 % busy: ${busy}.`,
      "",
    );
  });
  out(
    "Every run, in the order measured:",
    "",
    "| pair | side | phase | deliveries/s | CPU/delivery | p50 | p99 | server / load / other CPU | lost | out of order | disconnected |",
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
  );
  eachPair(runs, kinds, (kind, i, run) => {
    const label = kind === base ? labels[0] : labels[1];
    for (const { name, result: p } of run.phases) {
      out(
        `| ${i + 1} | ${label} | ${name} | ${num(p.deliveriesPerSecond)} | ${fixed(p.serverCpuMicrosPerDelivery, 3, "µs")} | ` +
          `${ms(p.latencyP50Ms)} | ${ms(p.latencyP99Ms)} | ${pct(share(p, "server"))} / ${pct(share(p, "load"))} / ` +
          `${pct(share(p, "other"))} | ${p.lost} | ${p.outOfOrder} | ${p.disconnected} |`,
      );
    }
  });
  out("");
}

/** Which cores were at least 90 % busy in every run of each side, in words. */
function busyCores<T, K extends string>(
  runs: Alternated<T, K>,
  kinds: readonly [K, K],
  labels: [string, string, string],
  cpu: (run: T) => CpuUse,
): string {
  return kinds
    .map((kind, k) => {
      const all = (runs[kind] as T[]).map(cpu);
      return `${labels[k]}: ${limitName(
        all.every((c) => c.server / c.seconds >= BUSY),
        all.every((c) => c.load / c.seconds >= BUSY),
      )}`;
    })
    .join("; ");
}

/** The two cores' shares over a run, with Redis's time counted on the core it shares. */
function coreShares(cpu: CpuUse, place: RedisPlace): { server: number; load: number } {
  const redis = cpu.redis / cpu.seconds;
  return {
    server: cpu.server / cpu.seconds + (place === "server" ? redis : 0),
    load: cpu.load / cpu.seconds + (place === "load" ? redis : 0),
  };
}

function eachPair<T, K extends string>(
  runs: Alternated<T, K>,
  kinds: readonly [K, K],
  f: (kind: K, i: number, run: T) => void,
): void {
  const n = Math.max(...kinds.map((kind) => (runs[kind] as T[]).length));
  for (let i = 0; i < n; i++) {
    for (const kind of kinds) {
      const run = (runs[kind] as T[])[i];
      if (run !== undefined) f(kind, i, run);
    }
  }
}

type Row<T> = [string, (run: T) => number, (value: number) => string];

/** The rows of a fan-out phase's table, whichever servers it compares. */
function fanoutPhaseRows(i: number): Row<FanoutRun>[] {
  const phase = (r: FanoutRun) => phaseAt(r, i);
  return [
    ["deliveries/s", (r) => phase(r).deliveriesPerSecond, num],
    ["server CPU per delivery", (r) => phase(r).serverCpuMicrosPerDelivery, (v) => fixed(v, 3, "µs")],
    ["latency p50", (r) => phase(r).latencyP50Ms, ms],
    ["latency p99", (r) => phase(r).latencyP99Ms, ms],
    ["latency max", (r) => phase(r).latencyMaxMs, ms],
    ["server CPU share", (r) => share(phase(r), "server"), pct],
    ["load generator CPU share", (r) => share(phase(r), "load"), pct],
    ["other processes' CPU share", (r) => share(phase(r), "other"), pct],
    ["lost", (r) => phase(r).lost, int],
    ["out of order", (r) => phase(r).outOfOrder, int],
    ["subscribers disconnected", (r) => phase(r).disconnected, int],
  ];
}

/** A table of medians, one row per figure: floor, pinghub, and the median of the paired ratios. */
function comparisonTable<T>(out: Out, runs: PerServer<T[]>, rows: Row<T>[]): void {
  pairedTable(out, ["floor", "pinghub", "pinghub / floor"], runs.floor, runs.pinghub, rows);
}

/** The same for any two servers: the one compared against, the one measured, and the paired ratios' median. */
function pairedTable<T>(
  out: Out,
  headers: [string, string, string],
  base: readonly T[],
  measured: readonly T[],
  rows: Row<T>[],
): void {
  out(
    `| median of ${Math.max(base.length, measured.length)} runs | ${headers.join(" | ")} |`,
    "| --- | --- | --- | --- |",
  );
  for (const [name, figure, format] of rows) {
    const ratio = median(pairedRatios(base, measured, figure));
    out(
      `| ${name} | ${format(medianOf(base, figure))} | ${format(medianOf(measured, figure))} | ` +
        `${Number.isFinite(ratio) ? ratio.toFixed(2) : ""} |`,
    );
  }
}

function eachRun<T>(runs: PerServer<T[]>, f: (kind: string, i: number, run: T) => void): void {
  const n = Math.max(runs.floor.length, runs.pinghub.length);
  for (let i = 0; i < n; i++) {
    for (const kind of KINDS) {
      const run = runs[kind][i];
      if (run !== undefined) f(kind, i, run);
    }
  }
}

function share(p: PhaseResult, who: "server" | "load" | "redis" | "other"): number {
  return p.cpu[who] / p.cpu.seconds;
}

/** Which core was full, from the CPU shares: the limit on a closed-loop figure. */
function limitName(server: boolean, load: boolean): string {
  if (server && load) return "both cores";
  if (server) return "server core";
  if (load) return "load generator core";
  return "neither core full";
}

/** A target's figure with its unit; a count (no unit) as a whole number. */
function figure(v: number, unit: string): string {
  return unit === "" ? int(v) : `${num(v)} ${unit}`;
}

/**
 * A number with `digits` decimals and its unit, or "–" for one that is not a number: a smoke run's figures
 * can be 0 / 0 or x / 0 (no CPU tick in a phase that short), and nothing reads "NaN" or "Infinity".
 */
function fixed(v: number, digits: number, unit = ""): string {
  if (!Number.isFinite(v)) return "–";
  return unit === "" ? v.toFixed(digits) : `${v.toFixed(digits)} ${unit}`;
}

function num(v: number): string {
  if (!Number.isFinite(v)) return "–";
  if (Math.abs(v) >= 1e6) return `${(v / 1e6).toFixed(2)} M`;
  if (Math.abs(v) >= 1e4) return `${(v / 1e3).toFixed(1)} k`;
  return v.toFixed(v < 10 ? 2 : 0);
}

function int(v: number): string {
  return Number.isFinite(v) ? String(Math.round(v)) : "–";
}

function ms(v: number): string {
  return Number.isFinite(v) ? `${v.toFixed(v < 10 ? 2 : 1)} ms` : "–";
}

function micros(v: number): string {
  return fixed(v, 2, "µs");
}

function signedMs(v: number): string {
  return Number.isFinite(v) ? `${v >= 0 ? "+" : "−"}${Math.abs(v).toFixed(2)} ms` : "–";
}

function pct(v: number): string {
  return Number.isFinite(v) ? `${Math.round(v * 100)} %` : "–";
}

function bytes(n: number): string {
  return n >= KIB ? `${n / KIB} KiB` : `${n} B`;
}
