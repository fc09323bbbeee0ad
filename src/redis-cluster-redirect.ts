// A publish redirected by a Redis Cluster, taken in hand rather than left to ioredis. When a slot moves, the old
// owner answers a publish with MOVED; ioredis would send it on to the new owner at once, before this node hears the
// channel there (its SSUBSCRIBE is still on the old owner, which is about to drop it), so that the node's own
// subscribers would miss a message it accepted. The publishing client is made to hand redirections back
// (`maxRedirections: 0`); the broker then waits, per channel, until it hears the channel on the new owner and its
// publishing client routes the slot there too, and only then sends the batch again. While a slot is migrating (ASK,
// TRYAGAIN: the channel's stream is between two masters) the batch is sent again a moment later, until the move is
// done; a batch that cannot go within REDIRECT_TIMEOUT_MS is refused (503), never published where no one hears it.

import { ReplyError } from "ioredis";

/** How long a redirected batch may wait for the node to hear its channel on the new owner before it is refused. */
export const REDIRECT_TIMEOUT_MS = 5000;
/** While a slot migrates (ASK, TRYAGAIN), a batch is sent again after this. */
export const MIGRATING_RETRY_MS = 50;
/** Tries of one batch at most: REDIRECT_TIMEOUT_MS of migration, then a MOVED or two. */
export const MAX_TRIES = Math.ceil(REDIRECT_TIMEOUT_MS / MIGRATING_RETRY_MS) + 2;

/**
 * A batch that met a closed connection while the cluster client says it is ready is sent again after this, at
 * most CLOSED_TRIES times: ioredis closes and replaces a master's connection as its slot map changes (seen at
 * start-up, a burst of publishes meeting "Connection is closed." on a connection just replaced), and, following
 * redirections, it would itself have sent the command again after its retryDelayOnFailover (100 ms).
 */
export const CLOSED_RETRY_MS = 100;
export const CLOSED_TRIES = 3;

export type Redirection = { kind: "moved"; node: string } | { kind: "migrating" } | { kind: "closed" };

/**
 * ioredis, told to follow no redirection, rejects every failed command with one plain Error, "Too many Cluster
 * redirections. Last error: " and the error itself: this gives that error back (a ReplyError stays one, so that
 * Redis's refusals read as on one Redis).
 */
export function unwrapClusterError(error: Error): Error {
  const match = /^Too many Cluster redirections\. Last error: (?:(ReplyError): )?([\s\S]*)$/.exec(error.message);
  if (match === null) return error;
  const message = match[2] ?? "";
  // ioredis's own errors (a closed connection) come as "Error: …".
  return match[1] === undefined ? new Error(message.replace(/^Error: /, "")) : new ReplyError(message);
}

/** What a Redis Cluster's redirection asks; undefined for any other error. */
export function redirection(error: Error): Redirection | undefined {
  if (error.message === "Connection is closed.") return { kind: "closed" };
  if (!(error instanceof ReplyError)) return undefined;
  const [word, , node] = error.message.split(" ");
  if (word === "MOVED" && node !== undefined) return { kind: "moved", node };
  if (word === "ASK" || word === "TRYAGAIN") return { kind: "migrating" };
  return undefined;
}

interface Waiter {
  node: string;
  resolve(): void;
  reject(error: Error): void;
  timer: ReturnType<typeof setTimeout>;
}

/** Batches redirected to a slot's new owner, each waiting until the node hears its channel there. */
export class RedirectGates {
  private readonly waiting = new Map<string, Waiter[]>();

  constructor(
    /** True once the node hears `channel` on `node` and its publishing client routes the channel's slot there. */
    private readonly open: (channel: string, node: string) => boolean,
    /** Why a batch waited in vain. */
    private readonly refusal: (channel: string) => Error,
  ) {}

  /** Batches waiting now. */
  get size(): number {
    return this.waiting.size;
  }

  /** Settles once `channel` may be published to on `node`; rejects after REDIRECT_TIMEOUT_MS. */
  wait(channel: string, node: string): Promise<void> {
    if (this.open(channel, node)) return Promise.resolve();
    const { promise, resolve, reject } = Promise.withResolvers<void>();
    const waiter: Waiter = {
      node,
      resolve,
      reject,
      timer: setTimeout(() => {
        this.remove(channel, waiter);
        reject(this.refusal(channel));
      }, REDIRECT_TIMEOUT_MS),
    };
    const list = this.waiting.get(channel);
    if (list === undefined) this.waiting.set(channel, [waiter]);
    else list.push(waiter);
    return promise;
  }

  /** Something changed (a channel heard, a slot map refreshed): lets through every batch that may go now. */
  check(): void {
    for (const [channel, list] of this.waiting) {
      for (const waiter of [...list]) {
        if (!this.open(channel, waiter.node)) continue;
        this.remove(channel, waiter);
        waiter.resolve();
      }
    }
  }

  /** Refuses every batch waiting (shutdown). */
  close(error: Error): void {
    for (const [channel, list] of this.waiting) {
      for (const waiter of [...list]) {
        this.remove(channel, waiter);
        waiter.reject(error);
      }
    }
  }

  private remove(channel: string, waiter: Waiter): void {
    clearTimeout(waiter.timer);
    const list = this.waiting.get(channel);
    if (list === undefined) return;
    const rest = list.filter((w) => w !== waiter);
    if (rest.length === 0) this.waiting.delete(channel);
    else this.waiting.set(channel, rest);
  }
}
