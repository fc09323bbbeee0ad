// Cluster mode's publishing: the messages of one channel published during one turn of the event loop travel as
// one Redis message, a JSON array of them (of [id, message] pairs with history, written by the script that also
// stores them: redis-history.ts). A PUBLISH, and Redis's and each node's work for it, then costs the same for one
// message or fifty: the cost that limits a node publishing through Redis.

import type Redis from "ioredis";
import type { RedisHistory } from "./redis-history.ts";
import { encodeBatch } from "./redis-wire.ts";

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

  constructor(
    private readonly connection: Redis,
    /** Put before each channel name to make its Redis channel (and, with history, its stream's key). */
    private readonly prefix: string,
    /** Stores each batch in the channel's stream as it publishes it; undefined without history. */
    private readonly stored: RedisHistory | undefined,
    /** Turns ioredis's error for a batch Redis did not take into the one its messages are refused with. */
    private readonly refusal: (error: Error) => Error,
  ) {}

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
      const key = this.prefix + channel;
      const published =
        this.stored === undefined
          ? this.connection.publish(key, encodeBatch(batch.messages))
          : this.stored.publish(key, batch.messages);
      published.then(batch.resolve, (error: Error) => batch.reject(this.refusal(error)));
    }
    this.batches.clear();
  };
}
