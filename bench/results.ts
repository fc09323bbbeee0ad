// The shape of a run's results.json: what every scenario measured, run by run, with the plan and the machine.
// The report and the targets read it; `bun run bench --rerender DIR` reads it back from a file.

import type { Alternated } from "./compare.ts";
import type { Transport } from "./load/fanout.ts";
import type { Machine } from "./measure.ts";
import type { RedisPlace } from "./pinning.ts";
import type { Plan } from "./plan.ts";
import type { ConnectRun } from "./scenarios/connect.ts";
import type { FanoutRun } from "./scenarios/fanout.ts";
import type { GrowthPoint, GrowthRun } from "./scenarios/growth.ts";
import type { HerdRun } from "./scenarios/herd.ts";
import type { IdleRun } from "./scenarios/idle.ts";
import type { PostRun } from "./scenarios/post.ts";
import type {
  ClusterKind,
  ForwardKind,
  HistoryKind,
  JwtKind,
  RclusterKind,
  SentinelKind,
  WorkersKind,
} from "./servers.ts";

/** A comparison's runs with the peer's (Nchan's) runs of the same rounds, when Nchan is installed. */
export type WithPeer<T, K extends string, P extends string = "nchan"> = Alternated<T, K> & Partial<Record<P, T[]>>;

export interface Results {
  plan: Plan;
  machine: Machine;
  pinning: string;
  command: string;
  seconds: number;
  /** The peer: its version, or why it did not run. */
  peers?: { nchan: { version: string; missing?: undefined } | { version?: undefined; missing: string } };
  fanout?: WithPeer<FanoutRun, "floor" | "pinghub">;
  idle?: Alternated<IdleRun>;
  post?: WithPeer<PostRun, "floor" | "pinghub">;
  growth?: { point: GrowthPoint; runs: Alternated<GrowthRun> }[];
  cluster?: ClusterResults;
  /** Websocket subscribers against SSE subscribers, on the same single node, in pairs. */
  /** ...and Nchan's EventSource subscribers, `nchan`, in the same rounds. */
  sse?: WithPeer<FanoutRun, Transport>;
  history?: HistoryResults;
  /** The stalled herd: pinghub, and Nchan in the same rounds. */
  herd?: WithPeer<HerdRun, "pinghub">;
  workers?: WorkersResults;
  /** A cluster node on one Redis against one on Redis Sentinel. */
  sentinel?: BrokerResults<SentinelKind>;
  /** A cluster node on one Redis against one on a Redis Cluster (sharded pub/sub). */
  rcluster?: BrokerResults<RclusterKind>;
  auth?: AuthResults;
}

/**
 * The auth scenario: pinghub without authorization (`pinghub`) against --jwt-key (`jwt`) for connects, fan-out
 * and POST, and against --auth-url with a cached answer (`forward`) for POST, in pairs.
 */
export interface AuthResults {
  /** Each connect with a token of its own: a signature checked per connect. */
  connect?: Alternated<ConnectRun, JwtKind>;
  /** Every connect with the same token: checked once, then remembered. */
  connectShared?: Alternated<ConnectRun, JwtKind>;
  fanout?: Alternated<FanoutRun, JwtKind>;
  post?: Alternated<PostRun, JwtKind>;
  forwardPost?: Alternated<PostRun, ForwardKind>;
}

/** The cluster scenario: a single node (`pinghub`) against a cluster node (`cluster`), in pairs. */
export interface ClusterResults {
  /** Where redis-server ran, in words. */
  redis: string;
  redisPlace: RedisPlace;
  /** Why the scenario did not run (no redis-server here), when it did not. */
  skipped?: string;
  fanout?: WithPeer<FanoutRun, ClusterKind, "nchan-redis">;
  post?: WithPeer<PostRun, ClusterKind, "nchan-redis">;
}

/** The history scenario: a node without history (`pinghub`) against one with `--history` (`history`), in pairs. */
export interface HistoryResults {
  /** Messages the history node kept per channel (its --history). */
  messages: number;
  fanout?: Alternated<FanoutRun, HistoryKind>;
  post?: Alternated<PostRun, HistoryKind>;
}

/** The workers scenario: one process (`pinghub`) against `--workers N` through Redis (`workers`), in pairs. */
export interface WorkersResults {
  /** Workers of the measured side. */
  workers: number;
  /** Where redis-server ran, in words. */
  redis: string;
  redisPlace: RedisPlace;
  skipped?: string;
  fanout?: Alternated<FanoutRun, WorkersKind>;
  post?: Alternated<PostRun, WorkersKind>;
}

/** A comparison of the brokers a cluster node can use: one Redis (`cluster`) against another kind, in pairs. */
export interface BrokerResults<K extends string> {
  /** Where the Redis processes ran, in words. */
  redis: string;
  redisPlace: RedisPlace;
  skipped?: string;
  fanout?: Alternated<FanoutRun, K>;
  post?: Alternated<PostRun, K>;
}
