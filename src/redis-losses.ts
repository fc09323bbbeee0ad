// What a Redis broker says of messages that reach none of this node's subscribers, on one Redis as on a Redis
// Cluster: payloads dropped for not being pinghub's (redis-wire.ts), and channels whose history no longer held what
// the node missed while it did not hear them (redis-catch-up.ts). Each is counted for the metrics and said in the
// log at most once a minute per channel and reason.

import type { Gap } from "./broker.ts";
import type { GapReason } from "./history.ts";
import { oncePerMinute } from "./once-a-minute.ts";
import type { Dropped } from "./redis-wire.ts";

export class RedisLosses {
  /** Payloads from Redis dropped for not being pinghub's (redis-wire.ts). */
  badMessages = 0;
  /** Channels that found a gap catching up (see redis-catch-up.ts). */
  lost = 0;
  private readonly warnOnce: (key: string, line: string) => void;
  private toldOtherHistory = false;

  constructor(
    /** True when this node runs with --history. */
    private readonly history: boolean,
    private readonly warn: (line: string) => void,
    /** The hub's: tells SSE subscribers of a gap, and returns the websockets that could not be told. */
    private readonly gap: Gap,
  ) {
    this.warnOnce = oncePerMinute(warn);
  }

  /** A payload that is not pinghub's: counted, logged once a minute per channel and reason, delivered to no one. */
  dropped(channel: string, { reason, otherHistory }: Dropped): void {
    this.badMessages++;
    if (otherHistory && !this.toldOtherHistory) {
      this.toldOtherHistory = true;
      this.warn(
        `cluster: this node runs ${this.history ? "with" : "without"} --history, but another node publishes ` +
          `${this.history ? "without" : "with"} it: give every node the same --history; its messages are dropped here`,
      );
    }
    this.warnOnce(
      `${channel}\n${reason}`,
      `cluster: dropped a payload from redis on ${shown(channel)}: ${reason} (said once a minute per channel and reason)`,
    );
  }

  /** A channel's subscribers here missed messages its history no longer held: SSE is told, websockets counted. */
  missed(channel: string, reason: GapReason, position: string | undefined): void {
    this.lost++;
    const websockets = this.gap(channel, reason, position);
    this.warnOnce(
      `gap\n${channel}`,
      `cluster: subscribers of ${shown(channel)} missed messages published while this node was away from redis: its ` +
        `history no longer held them (${reason}); ${websockets} websockets could not be told (said once a minute per channel)`,
    );
  }
}

/** A channel's name as a log line shows it: quoted, and cut after 200 characters. */
function shown(channel: string): string {
  return JSON.stringify(channel.length > 200 ? `${channel.slice(0, 200)}…` : channel);
}
