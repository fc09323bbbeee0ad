// Cluster mode's publishing: the messages of one channel published during one turn of the event loop travel as
// one Redis message, a JSON array of them (of [id, message] pairs with history, written by the script that also
// stores them: redis-history.ts). A PUBLISH, and Redis's and each node's work for it, then costs the same for one
// message or fifty: the cost that limits a node publishing through Redis.
//
// The same on one Redis (PUBLISH) and on a Redis Cluster (SPUBLISH to the master that owns the channel's slot): the
// broker gives the command, the channel's Redis name, and, on a Redis Cluster, what to do with a redirection.

import type { RedisHistory } from "./redis-history.ts";
import { encodeBatch } from "./redis-wire.ts";

/** Publishes one payload on a Redis channel: ioredis's `publish` on one Redis, `spublish` on a Redis Cluster. */
export type PublishCommand = (name: string, payload: string) => Promise<number>;

export interface PublisherParts {
  publish: PublishCommand;
  /** The channel's Redis name (and, with history, its stream's key). */
  name(channel: string): string;
  /** Stores each batch in the channel's stream as it publishes it; undefined without history. */
  stored: RedisHistory | undefined;
  /** Turns ioredis's error for a batch Redis did not take into the one its messages are refused with. */
  refusal(error: Error): Error;
  /**
   * Asked when Redis did not take a batch: a promise to send it again once it settles (a Redis Cluster's slot moved,
   * and the node must hear the channel where it went first), or undefined to refuse it. One Redis has none.
   */
  retry?(channel: string, error: Error, tries: number): Promise<void> | undefined;
}

interface Batch {
  messages: string[];
  /** Settles with the batch's PUBLISH: the number of nodes that had subscribers, or Redis's refusal. */
  sent: Promise<number>;
  resolve(nodes: number): void;
  reject(error: Error): void;
}

function newBatch(): Batch {
  const { promise, resolve, reject } = Promise.withResolvers<number>();
  // Each caller handles the refusal it is given; this one only keeps an unheard rejection from being reported.
  promise.catch(() => {});
  return { messages: [], sent: promise, resolve, reject };
}

export class RedisPublisher {
  /** Messages published during this turn of the event loop, by channel, in the order they came. */
  private readonly batches = new Map<string, Batch>();
  /**
   * Channels with batches to be sent again (`retry`), with a promise that settles once all have been: a later batch
   * of the channel waits for it, so that a channel's messages reach Redis in the order they were published.
   */
  private readonly retrying = new Map<string, Promise<void>>();

  constructor(private readonly parts: PublisherParts) {}

  /**
   * Resolves once Redis has taken the message, with the number of nodes that had subscribers; rejects with
   * `refusal` of ioredis's error if Redis refuses it or goes away meanwhile.
   */
  publish(channel: string, message: string): Promise<number> {
    let batch = this.batches.get(channel);
    if (batch === undefined) {
      batch = newBatch();
      this.batches.set(channel, batch);
      if (this.batches.size === 1) setImmediate(this.sendBatches);
    }
    batch.messages.push(message);
    return batch.sent;
  }

  /** Sends each channel's batch as one PUBLISH (one script call with history), answering all its messages. */
  private readonly sendBatches = () => {
    for (const [channel, batch] of this.batches) {
      const before = this.retrying.get(channel);
      if (before === undefined) this.send(channel, batch, 0);
      else
        this.holdBehind(
          channel,
          before.then(() => this.send(channel, batch, 0)),
        );
    }
    this.batches.clear();
  };

  /** Sends a batch; settles once it is answered (taken, or refused), after any sending again it took. */
  private send(channel: string, batch: Batch, tries: number): Promise<void> {
    const { publish, name, stored } = this.parts;
    const key = name(channel);
    const published =
      stored === undefined ? publish(key, encodeBatch(batch.messages)) : stored.publish(key, batch.messages);
    return published.then(batch.resolve, (error: Error) => {
      const again = this.parts.retry?.(channel, error, tries + 1);
      if (again === undefined) {
        batch.reject(this.parts.refusal(error));
        return;
      }
      const resent = again.then(() => this.send(channel, batch, tries + 1), batch.reject);
      this.holdBehind(channel, resent);
      return resent;
    });
  }

  /** The channel's later batches wait for `settled` too (and for whatever they already waited for). */
  private holdBehind(channel: string, settled: Promise<void>): void {
    const before = this.retrying.get(channel);
    const all = before === undefined ? settled : Promise.all([before, settled]).then(() => {});
    this.retrying.set(channel, all);
    void all.then(() => {
      if (this.retrying.get(channel) === all) this.retrying.delete(channel);
    });
  }
}
