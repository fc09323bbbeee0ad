// Redis Sentinel for cluster mode (`--redis redis+sentinel://…`): how a connection finds the master. ioredis
// asks the sentinels which Redis is the master now, connects to it, checks that it is one (its ready check
// reads the role), and asks again on every reconnect: after a failover the node follows the new master by
// itself, and the broker re-subscribes as after any reconnect. Until then publishes are refused, never queued.

import type { RedisOptions } from "ioredis";
import type { SentinelTarget } from "./redis-ha-url.ts";

/** Longest wait between two rounds of asking every sentinel, when none answers. */
const MAX_SENTINEL_RETRY_DELAY_MS = 2000;
/** A sentinel that does not answer a question within this is skipped for the next one. */
const SENTINEL_COMMAND_TIMEOUT_MS = 1000;

/** The ioredis options that reach the master through the sentinels, beside the broker's own. */
export function sentinelOptions(target: SentinelTarget): RedisOptions {
  return {
    sentinels: target.sentinels,
    name: target.name,
    role: "master",
    username: target.username,
    password: target.password,
    db: target.db,
    // ioredis gives up when no sentinel answers unless told when to try again: keep trying, as with one Redis.
    sentinelRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), MAX_SENTINEL_RETRY_DELAY_MS),
    sentinelCommandTimeout: SENTINEL_COMMAND_TIMEOUT_MS,
    // Listens for the sentinels' +switch-master and drops the connection at once: without it a node whose
    // connections to an old master survive a failover (a manual one, or a network split that heals) would
    // go on publishing into what is now a replica, whose subscribers are only the nodes that also stayed.
    failoverDetector: true,
  };
}
