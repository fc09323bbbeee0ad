// How big each scenario is: the full benchmark, and the smoke run that CI uses to check that every scenario
// still runs. Every load is bounded in connections and in time.

import type { Patience } from "./compare.ts";

export interface Plan {
  name: "full" | "smoke";
  /** Floor/pinghub pairs for fan-out and idle; medians are taken over them. */
  pairs: number;
  /** Pairs for POST, whose figures vary most from run to run. */
  postPairs: number;
  /** What to do about other work on the machine: see compare.ts. */
  patience: Patience;
  fanout: {
    subscribers: number;
    messageSize: number;
    /** The fixed-rate phases, in messages per second, and how long each lasts. */
    rates: number[];
    rateSeconds: number;
    /** The as-fast-as-it-goes phase: messages each channel keeps in flight, and for how long. */
    window: number;
    maxSeconds: number;
    /** A short run before measuring, so that both servers (and the load generator) are past their JIT warm-up. */
    warmupSeconds: number;
  };
  idle: { connections: number; settleSeconds: number };
  post: { connections: number; seconds: number; warmupSeconds: number };
  /**
   * The cluster scenario: fan-out and POST as sized above, a single node against a cluster node through Redis,
   * in this many pairs each.
   */
  cluster: { pairs: number; postPairs: number };
  /**
   * The SSE scenario: the fan-out as sized above at these fixed rates only (no closed loop), websocket
   * subscribers against SSE subscribers on the same pinghub, in this many pairs. The first rate is the one
   * with a target; the SSE load generator has room to spare at the second (bench/load/sse-client.ts).
   */
  sse: { pairs: number; rates: number[] };
  /** The history scenario: fan-out and POST as sized above, a node without history against one with, in pairs. */
  history: { pairs: number; postPairs: number };
  /**
   * The stalled herd (issue 20): `stalled` subscribers that never read beside `readers` that do, one channel,
   * `messageSize`-byte messages POSTed at `rate` a second for `seconds`; pinghub and Nchan in turns.
   */
  herd: { pairs: number; stalled: number; readers: number; messageSize: number; rate: number; seconds: number };
  /**
   * The workers scenario: fan-out and POST as sized above, one process against `--workers 2` through Redis, in
   * pairs. Reported without a target: on two cores the load generator needs one of them.
   */
  workers: { pairs: number; postPairs: number };
  /**
   * The highly available brokers: fan-out and POST as sized above, a cluster node on one Redis against one on
   * Redis Sentinel, and against one on a Redis Cluster, in pairs.
   */
  sentinel: { pairs: number; postPairs: number };
  rcluster: { pairs: number; postPairs: number };
  /**
   * The auth scenario: pinghub without authorization against --jwt-key (idle.connections connects, each with a
   * token of its own; the fan-out and POST as sized above) and against --auth-url (POST, answers cached), in pairs.
   */
  auth: {
    pairs: number;
    /**
     * Pairs of connect runs: each is a few seconds, and a single pair's ratio moves by 0.2 either way (garbage
     * collection and compiling land in a 0.2 s window or not), so they take more pairs than the fan-out for a
     * steady median.
     */
    connectPairs: number;
    postPairs: number;
  };
  growth: {
    /** Floor/pinghub pairs per point: fewer than the headline scenarios, as there are many points. */
    pairs: number;
    seconds: number;
    subscribersPerChannel: number[];
    channels: number[];
    messageSizes: number[];
    /** Subscribers on the one channel while the message size varies. */
    subscribersForSizes: number;
  };
}

export const FULL: Plan = {
  name: "full",
  pairs: 5,
  postPairs: 9,
  patience: { attempts: 3, quietSeconds: 30 },
  fanout: {
    subscribers: 1000,
    messageSize: 64,
    rates: [300, 1000],
    rateSeconds: 4,
    window: 256,
    maxSeconds: 4,
    warmupSeconds: 1,
  },
  idle: { connections: 10_000, settleSeconds: 1 },
  post: { connections: 50, seconds: 5, warmupSeconds: 1 },
  cluster: { pairs: 5, postPairs: 9 },
  sse: { pairs: 5, rates: [300, 100] },
  history: { pairs: 5, postPairs: 9 },
  herd: { pairs: 3, stalled: 1000, readers: 10, messageSize: 60 * 1024, rate: 50, seconds: 10 },
  workers: { pairs: 3, postPairs: 5 },
  sentinel: { pairs: 3, postPairs: 5 },
  rcluster: { pairs: 3, postPairs: 5 },
  auth: { pairs: 5, connectPairs: 9, postPairs: 9 },
  growth: {
    pairs: 3,
    seconds: 1.5,
    subscribersPerChannel: [1, 10, 100, 1000, 10_000],
    channels: [1, 10, 100, 1000, 10_000],
    messageSizes: [64, 1024, 16_384, 65_536],
    subscribersForSizes: 100,
  },
};

export const SMOKE: Plan = {
  name: "smoke",
  pairs: 1,
  postPairs: 1,
  // The smoke run's figures mean nothing: no waiting, no second attempts.
  patience: { attempts: 1, quietSeconds: 0 },
  fanout: {
    subscribers: 20,
    messageSize: 64,
    rates: [50, 200],
    rateSeconds: 0.5,
    window: 8,
    maxSeconds: 0.5,
    warmupSeconds: 0.1,
  },
  idle: { connections: 200, settleSeconds: 0.1 },
  post: { connections: 10, seconds: 1, warmupSeconds: 0 },
  cluster: { pairs: 1, postPairs: 1 },
  sse: { pairs: 1, rates: [200, 50] },
  history: { pairs: 1, postPairs: 1 },
  herd: { pairs: 1, stalled: 20, readers: 2, messageSize: 60 * 1024, rate: 20, seconds: 0.5 },
  workers: { pairs: 1, postPairs: 1 },
  sentinel: { pairs: 1, postPairs: 1 },
  rcluster: { pairs: 1, postPairs: 1 },
  auth: { pairs: 1, connectPairs: 1, postPairs: 1 },
  growth: {
    pairs: 1,
    seconds: 0.2,
    subscribersPerChannel: [1, 10],
    channels: [1, 10],
    messageSizes: [64, 65_536],
    subscribersForSizes: 10,
  },
};

/**
 * Messages each channel keeps in flight in a closed-loop run: enough for the server to send in batches, not
 * so many that a subscriber's backlog nears pinghub's 1 MiB limit (at most 256 KiB each), and fewer per
 * channel when there are many channels, since they all publish at once.
 */
export function windowFor(channels: number, messageSize: number, maxWindow: number): number {
  return Math.max(1, Math.min(maxWindow, Math.floor(1024 / channels), Math.floor((256 * 1024) / messageSize)));
}
