// The targets: what each comparison asks of its measured side, and whether a run meets it. One table holds
// the comparisons (the floor against pinghub, issue 6; a cluster node against a single node, issue 10; SSE
// subscribers against websockets and a node with history against one without, issue 11; Nchan, the peer,
// against pinghub alone, with SSE subscribers, and through Redis, issue 20; --workers against one process, and
// a cluster node through Redis Sentinel or a Redis Cluster against one through one Redis, issue 19), and one
// function reads a row of it. The report prints them; `bun run bench` prints a verdict line for each.

import { medianOf, pairedDifferences, pairedRatios } from "./compare.ts";
import { KIB } from "./format.ts";
import type { PhaseResult } from "./load/fanout.ts";
import type { Plan } from "./plan.ts";
import type { Results } from "./results.ts";
import type { ConnectRun } from "./scenarios/connect.ts";
import type { FanoutRun } from "./scenarios/fanout.ts";
import type { PostRun } from "./scenarios/post.ts";
import { median } from "./stats.ts";

/** A target: the measured side's figure against the base side's (the floor, a single node, websockets...). */
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

/** Each side's runs, pair by pair: the side compared against, then the side measured. */
export type Sides<T> = [base: readonly T[], measured: readonly T[]];

/** What a comparison asks of the measured side: the targets of issues 6 (floor), 10 (cluster), 11, 17, 19 and 20. */
interface Goals {
  /**
   * Ceiling on measured / base server CPU per delivery, in every phase or in the fixed-rate ones only; "none":
   * reported without a goal.
   */
  cpuPerDelivery: { most: number | "none"; phases: "all" | "rates" };
  /** Floor on measured / base deliveries/s in the closed loop ("max"); "none": reported without a goal. */
  maxDeliveries?: number | "none";
  /** Latency p99 added: in the first fixed-rate phase, at most `mostMs`; or in every one, reported only. */
  p99Added?: { phases: "first"; mostMs: number } | { phases: "rates" };
  /** Whether a subscriber disconnected counts as a fault beside a message lost or out of order. */
  disconnected: boolean;
  /** Floor on measured / base POST requests/s; "none": reported without a goal; absent: no POST target. */
  post?: number | "none";
}

/** One comparison: its sides' names, its goals, and where its runs are in the results. */
export interface Comparison {
  /** The base side, the measured side, and their ratio, as table headers. */
  labels: [string, string, string];
  /** The base side in a goal: "≤ 1.1 × single node". */
  than: string;
  goals: Goals;
  /** The report's section and the title of its targets table. */
  heading: string;
  targetsTitle: string;
  /** The headings of its fan-out and POST parts, when it has both ("through Redis", "with history"). */
  part?: string;
  fanout(results: Results): Sides<FanoutRun> | undefined;
  post(results: Results): Sides<PostRun> | undefined;
  /** A comparison with the peer: the report says "not installed" in its place when Nchan did not run. */
  peer?: true;
}

export const FLOOR: Comparison = {
  labels: ["floor", "pinghub", "pinghub / floor"],
  than: "floor",
  goals: { cpuPerDelivery: { most: 1.1, phases: "all" }, maxDeliveries: 0.95, disconnected: false, post: 0.9 },
  heading: "",
  targetsTitle: "Targets",
  fanout: (r) => r.fanout && [r.fanout.floor, r.fanout.pinghub],
  post: (r) => r.post && [r.post.floor, r.post.pinghub],
};

/** The scenarios that compare pinghub with itself or with its peer, in the order of the report. */
export const PAIRED_SCENARIOS = {
  cluster: {
    labels: ["single node", "cluster node", "cluster / single"],
    than: "single node",
    goals: {
      cpuPerDelivery: { most: 1.1, phases: "rates" },
      p99Added: { phases: "first", mostMs: 2 },
      disconnected: true,
      post: 0.7,
    },
    heading: "5. Cluster: one node through Redis against a single node",
    targetsTitle: "Cluster targets",
    part: "through Redis",
    fanout: (r) => r.cluster?.fanout && [r.cluster.fanout.pinghub, r.cluster.fanout.cluster],
    post: (r) => r.cluster?.post && [r.cluster.post.pinghub, r.cluster.post.cluster],
  },
  sse: {
    labels: ["websocket", "SSE", "SSE / websocket"],
    than: "websocket",
    goals: { cpuPerDelivery: { most: 2, phases: "rates" }, p99Added: { phases: "rates" }, disconnected: true },
    heading: "6. SSE: Server-Sent Events subscribers against websockets",
    targetsTitle: "SSE targets",
    fanout: (r) => r.sse && [r.sse.websocket, r.sse.sse],
    post: () => undefined,
  },
  history: {
    labels: ["no history", "history", "history / none"],
    than: "no history",
    goals: { cpuPerDelivery: { most: 1.1, phases: "rates" }, disconnected: true, post: "none" },
    heading: "7. History: pinghub with and without history",
    targetsTitle: "History targets",
    part: "with history",
    fanout: (r) => r.history?.fanout && [r.history.fanout.pinghub, r.history.fanout.history],
    post: (r) => r.history?.post && [r.history.post.pinghub, r.history.post.history],
  },
  // Issue 20: pinghub beside Nchan in the same rounds. POST at least at Bun's own floor against Nchan (0.84 ×
  // measured here: 0.75 leaves room for pinghub's checks); fan-out reported without a goal (pinghub leads).
  nchan: {
    labels: ["Nchan", "pinghub", "pinghub / Nchan"],
    than: "Nchan",
    goals: {
      cpuPerDelivery: { most: "none", phases: "all" },
      p99Added: { phases: "rates" },
      disconnected: true,
      post: 0.75,
    },
    heading: "8. Nchan: pinghub beside its peer on a single node",
    targetsTitle: "Nchan targets",
    part: "beside Nchan",
    fanout: (r) => r.fanout?.nchan && [r.fanout.nchan, r.fanout.pinghub],
    post: (r) => r.post?.nchan && [r.post.nchan, r.post.pinghub],
    peer: true,
  },
  // SSE: server CPU per delivery at most Nchan's with its EventSource subscribers.
  nchanSse: {
    labels: ["Nchan EventSource", "pinghub SSE", "pinghub / Nchan"],
    than: "Nchan",
    goals: { cpuPerDelivery: { most: 1, phases: "rates" }, p99Added: { phases: "rates" }, disconnected: true },
    heading: "9. Nchan: SSE subscribers beside Nchan's EventSource",
    targetsTitle: "Nchan SSE targets",
    fanout: (r) => r.sse?.nchan && [r.sse.nchan, r.sse.sse],
    post: () => undefined,
    peer: true,
  },
  // Through Redis: a cluster node's POST at least Nchan's on Redis, the same Redis placement.
  nchanRedis: {
    labels: ["Nchan on Redis", "cluster node", "cluster / Nchan"],
    than: "Nchan on Redis",
    goals: {
      cpuPerDelivery: { most: "none", phases: "rates" },
      p99Added: { phases: "rates" },
      disconnected: true,
      post: 1,
    },
    heading: "10. Nchan: a cluster node beside Nchan on Redis",
    targetsTitle: "Nchan on Redis targets",
    part: "beside Nchan on Redis",
    fanout: (r) => r.cluster?.fanout?.["nchan-redis"] && [r.cluster.fanout["nchan-redis"], r.cluster.fanout.cluster],
    post: (r) => r.cluster?.post?.["nchan-redis"] && [r.cluster.post["nchan-redis"], r.cluster.post.cluster],
    peer: true,
  },
  // Issue 19: --workers, Redis Sentinel and a Redis Cluster, each against what it replaces, in pairs.
  workers: {
    labels: ["one process", "--workers 2", "workers / one"],
    than: "one process",
    // No goal: on two cores the load generator needs one of them (issue 19); the big machine's script measures.
    goals: {
      cpuPerDelivery: { most: "none", phases: "all" },
      maxDeliveries: "none",
      p99Added: { phases: "rates" },
      disconnected: true,
      post: "none",
    },
    heading: "12. Workers: --workers 2 through Redis against one process",
    targetsTitle: "Workers figures",
    part: "with --workers 2",
    fanout: (r) => r.workers?.fanout && [r.workers.fanout.pinghub, r.workers.fanout.workers],
    post: (r) => r.workers?.post && [r.workers.post.pinghub, r.workers.post.workers],
  },
  sentinel: {
    labels: ["one Redis", "Sentinel", "Sentinel / one"],
    than: "one Redis",
    // Issue 19: POST and fan-out through Sentinel at least 0.9 × through one Redis.
    goals: { cpuPerDelivery: { most: 1.1, phases: "rates" }, maxDeliveries: 0.9, disconnected: true, post: 0.9 },
    heading: "13. Redis Sentinel: a cluster node through Sentinel against one through one Redis",
    targetsTitle: "Sentinel targets",
    part: "through Sentinel",
    fanout: (r) => r.sentinel?.fanout && [r.sentinel.fanout.cluster, r.sentinel.fanout.sentinel],
    post: (r) => r.sentinel?.post && [r.sentinel.post.cluster, r.sentinel.post.sentinel],
  },
  rcluster: {
    labels: ["one Redis", "Redis Cluster", "Cluster / one"],
    than: "one Redis",
    // Issue 19: POST and fan-out through a Redis Cluster at least 0.9 × through one Redis.
    goals: { cpuPerDelivery: { most: 1.1, phases: "rates" }, maxDeliveries: 0.9, disconnected: true, post: 0.9 },
    heading: "14. Redis Cluster: a cluster node through a Redis Cluster against one through one Redis",
    targetsTitle: "Redis Cluster targets",
    part: "through a Redis Cluster",
    fanout: (r) => r.rcluster?.fanout && [r.rcluster.fanout.cluster, r.rcluster.fanout.rcluster],
    post: (r) => r.rcluster?.post && [r.rcluster.post.cluster, r.rcluster.post.rcluster],
  },
  // Issue 17: authorization, decided at the upgrade, against none.
  auth: {
    labels: ["no authorization", "JWT", "JWT / none"],
    than: "no authorization",
    // Authorization is decided at the upgrade: a message costs the same with it as without.
    goals: { cpuPerDelivery: { most: 1.1, phases: "rates" }, disconnected: true, post: 0.8 },
    heading: "15. Authorization: JWT and forward auth against none",
    targetsTitle: "Auth targets",
    part: "with JWT",
    fanout: (r) => r.auth?.fanout && [r.auth.fanout.pinghub, r.auth.fanout.jwt],
    post: (r) => r.auth?.post && [r.auth.post.pinghub, r.auth.post.jwt],
  },
} satisfies Record<string, Comparison>;

/** The auth scenario's POST with --auth-url, its answers cached, against none: a part of that scenario's own. */
export const FORWARD_AUTH: Comparison = {
  labels: ["no authorization", "forward auth", "forward / none"],
  than: "no authorization",
  goals: { cpuPerDelivery: { most: 1.1, phases: "rates" }, disconnected: true, post: 0.8 },
  heading: PAIRED_SCENARIOS.auth.heading,
  targetsTitle: PAIRED_SCENARIOS.auth.targetsTitle,
  part: "with forward auth, answers cached",
  fanout: () => undefined,
  post: (r) => r.auth?.forwardPost && [r.auth.forwardPost.pinghub, r.auth.forwardPost.forward],
};
export type PairedScenario = keyof typeof PAIRED_SCENARIOS;

/** Whether the figures of a run can be judged: a smoke run's cannot (tiny sizes, one pair, no waiting). */
export function judged(results: Results): boolean {
  return results.plan.name !== "smoke";
}

/** What a smoke run says, once, in place of every verdict. */
export const SMOKE_NOTE =
  "This is a smoke run: it checks only that every scenario runs. Its figures (tiny sizes, one pair, no waiting " +
  "for a quiet machine) mean nothing, and no target is judged.";

/** The targets against the floor (issue 6): fan-out, then the idle subscribers' memory, then POST. */
export function targets(results: Results): PairedTarget[] {
  const list = fanoutTargets(FLOOR, FLOOR.fanout(results));
  const { idle } = results;
  if (idle) {
    const pinghub = medianOf(idle.pinghub, (r) => r.bytesPerConnection) / KIB;
    list.push({
      name: `server RSS per idle subscriber (${results.plan.idle.connections} on as many channels)`,
      unit: "KiB",
      base: medianOf(idle.floor, (r) => r.bytesPerConnection) / KIB,
      measured: pinghub,
      ratio: undefined,
      goal: "≤ 4 KiB",
      met: pinghub <= 4,
    });
  }
  return [...list, ...postTargets(FLOOR, FLOOR.post(results), results.plan)];
}

/** The targets of a paired scenario, from its row of PAIRED_SCENARIOS. */
export function pairedTargets(results: Results, scenario: PairedScenario): PairedTarget[] {
  const comparison: Comparison = PAIRED_SCENARIOS[scenario];
  return [
    ...(scenario === "auth" ? connectTargets(results) : []),
    ...fanoutTargets(comparison, comparison.fanout(results)),
    ...postTargets(comparison, comparison.post(results), results.plan, scenario === "auth" ? ", JWT" : ""),
    ...(scenario === "auth"
      ? postTargets(FORWARD_AUTH, FORWARD_AUTH.post(results), results.plan, ", forward auth")
      : []),
  ];
}

/**
 * The auth scenario's connects: server CPU per connect with a token each, at most 1.3 × none (issue 17); with one
 * token for all, reported.
 */
function connectTargets(results: Results): PairedTarget[] {
  const { auth, plan } = results;
  const cpu = (r: ConnectRun) => r.serverCpuMicrosPerConnect;
  const than = PAIRED_SCENARIOS.auth.than;
  const n = plan.idle.connections;
  const list: PairedTarget[] = [];
  if (auth?.connect) {
    const sides: Sides<ConnectRun> = [auth.connect.pinghub, auth.connect.jwt];
    list.push(
      ratioTarget(
        `${n} websocket connects, a token each: server CPU per connect`,
        "µs",
        sides,
        cpu,
        { most: 1.3 },
        than,
      ),
    );
  }
  if (auth?.connectShared) {
    const sides: Sides<ConnectRun> = [auth.connectShared.pinghub, auth.connectShared.jwt];
    list.push(
      ratioTarget(
        `${n} websocket connects, one token for all: server CPU per connect`,
        "µs",
        sides,
        cpu,
        undefined,
        than,
      ),
    );
  }
  return list;
}

function fanoutTargets({ goals, than }: Comparison, sides: Sides<FanoutRun> | undefined): PairedTarget[] {
  if (sides === undefined) return [];
  const [base, measured] = sides;
  const list: PairedTarget[] = [];
  const all = (base[0]?.phases ?? []).map((p, i) => ({ name: p.name, i }));
  // The closed loop ("max") has no latency target: its latency is the window queued at the client.
  const rates = all.filter((p) => p.name !== "max");
  for (const { name, i } of goals.cpuPerDelivery.phases === "all" ? all : rates) {
    const cpu = (r: FanoutRun) => phaseAt(r, i).serverCpuMicrosPerDelivery;
    list.push(
      ratioTarget(
        `fan-out ${name}: server CPU per delivery`,
        "µs",
        sides,
        cpu,
        atMost(goals.cpuPerDelivery.most),
        than,
      ),
    );
  }
  const last = all.at(-1);
  if (goals.maxDeliveries !== undefined && last !== undefined) {
    const rate = (r: FanoutRun) => phaseAt(r, last.i).deliveriesPerSecond;
    list.push(ratioTarget("fan-out max: deliveries/s", "/s", sides, rate, atLeast(goals.maxDeliveries), than));
  }
  const p99 = goals.p99Added;
  for (const { name, i } of p99 === undefined ? [] : p99.phases === "first" ? rates.slice(0, 1) : rates) {
    const latency = (r: FanoutRun) => phaseAt(r, i).latencyP99Ms;
    const added = pairedDifferences(base, measured, latency);
    const most = p99?.phases === "first" ? p99.mostMs : undefined;
    list.push({
      name: `fan-out ${name}: latency p99 added`,
      unit: "ms",
      base: medianOf(base, latency),
      measured: medianOf(measured, latency),
      ratio: undefined,
      added: median(added),
      range: [Math.min(...added), Math.max(...added)],
      goal: most === undefined ? "none" : `≤ ${most} ms added`,
      met: most === undefined ? undefined : median(added) <= most,
    });
  }
  const faults = (runs: readonly FanoutRun[]) =>
    runs.reduce(
      (sum, r) =>
        sum +
        r.phases.reduce(
          (s, p) => s + p.result.lost + p.result.outOfOrder + (goals.disconnected ? p.result.disconnected : 0),
          0,
        ),
      0,
    );
  list.push({
    name: goals.disconnected
      ? "fan-out: messages lost, out of order or disconnected, all runs and phases"
      : "fan-out: messages lost or out of order, all runs and phases",
    unit: "",
    base: faults(base),
    measured: faults(measured),
    ratio: undefined,
    goal: "0",
    met: faults(measured) === 0,
  });
  return list;
}

function postTargets(
  { goals, than, peer }: Comparison,
  sides: Sides<PostRun> | undefined,
  plan: Plan,
  /** Which POST, where a comparison has two. */
  which = "",
): PairedTarget[] {
  if (sides === undefined || goals.post === undefined) return [];
  const name = `POST${which}, ${plan.post.connections} keep-alive connections: requests/s`;
  const list = [ratioTarget(name, "/s", sides, (r) => r.requestsPerSecond, atLeast(goals.post), than)];
  // Beside Nchan, what each side delivered of what it accepted: Nchan answers 202 to POSTs its subscriber
  // never receives (BENCHMARKS.md, "Peers: Nchan"), so requests/s alone would flatter it.
  if (peer) {
    const share = (r: PostRun) => r.delivered / r.requests;
    list.push(ratioTarget("POST: messages delivered per request answered", "/request", sides, share, undefined, than));
    // What a subscriber got per second: the throughput of messages, where requests/s is that of answers.
    const rate = (r: PostRun) => r.delivered / r.seconds;
    list.push(ratioTarget("POST: messages delivered to the subscriber/s", "/s", sides, rate, undefined, than));
  }
  return list;
}

/**
 * The paired ratio of one figure as a target: `bound` is a ceiling (`most`: CPU) or a floor (`least`:
 * throughput) on measured / base, or undefined for a ratio reported without a goal. `than` names the base.
 */
function ratioTarget<T>(
  name: string,
  unit: string,
  [base, measured]: Sides<T>,
  figure: (r: T) => number,
  bound: { most: number } | { least: number } | undefined,
  than: string,
): PairedTarget {
  const ratios = pairedRatios(base, measured, figure);
  const ratio = median(ratios);
  const goal =
    bound === undefined ? "none" : "most" in bound ? `≤ ${bound.most} × ${than}` : `≥ ${bound.least} × ${than}`;
  return {
    name,
    unit,
    base: medianOf(base, figure),
    measured: medianOf(measured, figure),
    ratio,
    range: [Math.min(...ratios), Math.max(...ratios)],
    goal,
    met: bound === undefined ? undefined : "most" in bound ? ratio <= bound.most : ratio >= bound.least,
  };
}

/** A goal's figure as ratioTarget's bound: "none", a figure reported without a goal, is no bound. */
function atMost(most: number | "none"): { most: number } | undefined {
  return most === "none" ? undefined : { most };
}

function atLeast(least: number | "none"): { least: number } | undefined {
  return least === "none" ? undefined : { least };
}

export function phaseAt(run: FanoutRun, i: number): PhaseResult {
  return (run.phases[i] as FanoutRun["phases"][number]).result;
}
