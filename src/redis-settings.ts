// What a node with --history tells the other nodes of its cluster about its settings, so that a node started with
// another --history or --history-ttl than the cluster's says so in one warning line (issue 16). History on vs off
// shows on the wire (redis-wire.ts); two sizes do not, so each node with --history, each time it connects, swaps
// its settings into one small key under the prefix, `prefix + "!settings"` (no channel's name starts with "!"),
// with `SET key value GET`: one command per connection, none per message.
//
// The key follows the newest start (SET, not SET NX) and never expires. A key written once and kept (NX) would make
// every node of a cluster restarted whole with a new size warn forever; one that expires would say nothing of a
// cluster that runs longer than its expiry. The cost: after a whole-cluster restart with new settings, the first
// node to connect reads the previous run's and warns once, which the line says. A node without --history writes
// nothing (it needs no key rights at all); it is told apart on the wire. Redis refusing the SET (an ACL without
// `+set`, a Redis older than 6.2) is said once and changes nothing else: this is a warning, not a right the node
// needs (redis-rights.ts asks only for those).

import { ReplyError } from "ioredis";
import { redisReason } from "./redis-rights.ts";

/** What the key holds: the flags as an operator writes them, so that the warning can name them as they are. */
export function historySettings(history: { size: number; ttlMs: number }): string {
  return `--history ${history.size} --history-ttl ${Math.round(history.ttlMs / 1000)}`;
}

/** `SET key value GET` on a single Redis or on Redis Cluster (one key: its slot's master answers). */
type Swap = (key: string, value: string) => Promise<string | null>;

export class HistorySettings {
  private told = false;
  private readonly key: string;

  constructor(
    private readonly swap: Swap,
    prefix: string,
    private readonly mine: string,
    private readonly warn: (line: string) => void,
    private readonly redact: (text: string) => string,
  ) {
    this.key = `${prefix}!settings`;
  }

  /** At each connection: swaps this node's settings in and says, once per process, when they differ. */
  async check(): Promise<void> {
    const theirs = await this.swap(this.key, this.mine).catch((error: Error) => {
      if (!(error instanceof ReplyError)) return null; // the connection's loss, said elsewhere; asked again at the next
      this.tell(
        "cluster: could not compare this node's --history with the other nodes': redis refused " +
          `SET ${JSON.stringify(this.key)}: ${this.redact(redisReason(error.message))}`,
      );
      return null;
    });
    if (theirs === null || theirs === this.mine) return;
    this.tell(
      `cluster: this node runs with ${this.mine} but the node that connected before it kept ${theirs}: every node ` +
        "must be given the same (after the whole cluster restarted with new values, its first node says this once)",
    );
  }

  private tell(line: string): void {
    if (this.told) return;
    this.told = true;
    this.warn(line);
  }
}
