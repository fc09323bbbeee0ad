// Cluster mode's broker: Redis pub/sub carries every message between nodes. A message published on any node is
// PUBLISHed to `prefix + channel`, and each node delivers it to its own subscribers when it comes back on its
// subscriber connection, its own messages included: Redis fixes one order per channel for every node.
//
// Two connections per node: one publishes (pipelined, no offline queue, so a publish while Redis is away fails
// at once instead of waiting), one holds the subscriptions. The node is subscribed to a channel's Redis channel
// only while it has local subscribers (the hub says when). After Redis comes back, every such channel is
// subscribed again before the broker says it is up; ioredis's own re-subscribing is off because it does not
// say when it is done.

import Redis, { type RedisOptions } from "ioredis";
import { type Broker, BrokerUnavailable, type ClusterStatus, type Deliver } from "./broker.ts";
import { NO_HISTORY, NOTHING_KEPT, type Resume } from "./history.ts";
import { type RedisHistory, redisHistory } from "./redis-history.ts";
import type { RedisTarget } from "./redis-url.ts";

export interface RedisBrokerOptions {
  target: RedisTarget;
  /** Put before each channel name to make its Redis channel. */
  prefix: string;
  /** History in Redis streams (redis-history.ts), or undefined for none. Every node must be given the same. */
  history: { size: number; ttlMs: number } | undefined;
  /** Told once when the broker can no longer carry messages, with why. */
  onDown(reason: string): void;
  /** Told once when it can again, with the number of channels subscribed; `first` on the first connection. */
  onUp(channels: number, first: boolean): void;
}

/** Channels per SUBSCRIBE or UNSUBSCRIBE command: one command for thousands, yet no single huge reply. */
const CHANNELS_PER_COMMAND = 1000;
/** Longest wait between two tries to reach Redis: a Redis that is back is used within this. */
const MAX_RETRY_DELAY_MS = 2000;
/** A connection to a Redis that does not answer (a network cut, not a refusal) is given up after this. */
const CONNECT_TIMEOUT_MS = 2000;
/**
 * Each connection is pinged this often, and dropped (then reconnected) if a command goes unanswered for
 * PING_TIMEOUT_MS: a Redis that hangs or a network cut that sends no reset is noticed within seconds.
 */
const PING_INTERVAL_MS = 1000;
const PING_TIMEOUT_MS = 2000;
/** How long QUIT may take at shutdown before the connection is simply closed. */
const QUIT_TIMEOUT_MS = 1000;

/**
 * The messages of one channel published during one turn of the event loop, carried by Redis as one message: a
 * JSON array of them (of [id, message] pairs with history). A PUBLISH, and Redis's and each node's work for it,
 * then costs the same for one message or fifty: the cost that limits a node publishing through Redis.
 */
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

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

export class RedisBroker implements Broker, ClusterStatus {
  readonly cluster: ClusterStatus = this;
  readonly ready: Promise<void>;
  readonly history: boolean;
  readonly localHistory = undefined;
  private readonly stored: RedisHistory | undefined;
  reconnects = 0;
  private becameReady: () => void = () => {};

  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly prefix: string;
  /** Channels this node has local subscribers for, or is about to: what Redis should have us subscribed to. */
  private readonly wanted = new Set<string>();
  /** Channels whose last command sent on the current subscriber connection was SUBSCRIBE. */
  private readonly sent = new Set<string>();
  /** Channels Redis has confirmed, on the current subscriber connection. */
  private readonly confirmed = new Set<string>();
  /** For each channel, the SUBSCRIBE batch that last named it: only that batch's reply confirms it. */
  private readonly lastBatch = new Map<string, number>();
  private readonly waiters = new Map<string, Waiter[]>();
  /** Messages published during this turn of the event loop, by channel, in the order they came. */
  private readonly batches = new Map<string, Batch>();
  /** Channels whose wanted state changed since the last flush. */
  private readonly changed = new Set<string>();
  private flushScheduled = false;
  private batch = 0;

  private publisherReady = false;
  /** The subscriber connection is ready and every wanted channel was subscribed again on it. */
  private subscriberReady = false;
  /** Counts subscriber connections, so the end of a re-subscribe on a connection since lost is ignored. */
  private subscriberEpoch = 0;
  private wasUp = false;
  private downReported = false;
  private lastError: string | undefined;
  private closing = false;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  /** Connections with a PING awaiting its answer. */
  private readonly pinging = new Set<Redis>();

  constructor(
    private readonly options: RedisBrokerOptions,
    deliver: Deliver,
  ) {
    this.prefix = options.prefix;
    this.ready = new Promise((resolve) => {
      this.becameReady = resolve;
    });
    const prefixLength = this.prefix.length;
    // Every publish made while one turn of the event loop runs goes out in one write, and wakes Redis once: a
    // write per command cost more CPU, the node's and Redis's, than the command itself (see BENCHMARKS.md).
    this.publisher = new Redis({ ...connectionOptions(options.target, "pinghub-publish"), enableAutoPipelining: true });
    this.subscriber = new Redis({ ...connectionOptions(options.target, "pinghub-subscribe"), autoResubscribe: false });

    const history = options.history;
    this.history = history !== undefined;
    this.stored = history === undefined ? undefined : redisHistory(this.publisher, history.size, history.ttlMs);
    // The one piece of JavaScript per message on a node: one Redis message in, one delivery out.
    if (history === undefined) {
      this.subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        for (const message of JSON.parse(payload) as string[]) deliver(channel, message, undefined);
      });
    } else {
      this.subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        for (const [id, message] of JSON.parse(payload) as Array<[string, string]>) deliver(channel, message, id);
      });
    }

    for (const connection of [this.publisher, this.subscriber]) {
      // ioredis prints unhandled errors itself; the broker keeps the last one as the reason it gives.
      connection.on("error", (error: Error) => {
        this.lastError = this.redact(error.message).replace(/\.$/, "");
        if (!this.wasUp && !this.downReported) this.reportDown();
      });
    }
    this.publisher.on("ready", () => {
      this.publisherReady = true;
      this.reportIfUp();
    });
    this.publisher.on("close", () => {
      this.publisherReady = false;
      this.reportDown();
    });
    this.subscriber.on("ready", () => void this.subscribeAgain());
    this.heartbeat = setInterval(() => this.ping(), PING_INTERVAL_MS);
    this.subscriber.on("close", () => {
      this.subscriberEpoch++;
      this.subscriberReady = false;
      this.sent.clear();
      this.confirmed.clear();
      this.lastBatch.clear();
      this.rejectWaiters(new BrokerUnavailable(this.problem ?? "redis connection lost"));
      this.reportDown();
    });
  }

  get up(): boolean {
    return this.publisherReady && this.subscriberReady;
  }

  get subscriptions(): number {
    return this.confirmed.size;
  }

  get problem(): string | undefined {
    if (this.up) return undefined;
    const target = this.options.target.display;
    if (this.closing) return "shutting down";
    if (!this.wasUp && this.lastError === undefined) return `connecting to redis at ${target}`;
    if (this.publisher.status === "ready" && this.subscriber.status === "ready") {
      return `redis at ${target}: re-subscribing ${this.wanted.size} channels`;
    }
    return `redis at ${target} unreachable${this.lastError === undefined ? "" : `: ${this.lastError}`}`;
  }

  publish(channel: string, message: string): Promise<number> {
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    let batch = this.batches.get(channel);
    if (batch === undefined) {
      batch = newBatch();
      this.batches.set(channel, batch);
      if (this.batches.size === 1) setImmediate(this.sendBatches);
    }
    batch.messages.push(message);
    return batch.sent;
  }

  /**
   * Sends each channel's batch as one PUBLISH (one script call with history): every message of a batch is
   * answered as the batch is, once Redis has taken it, with the number of nodes it reached.
   */
  private readonly sendBatches = () => {
    for (const [channel, batch] of this.batches) {
      const key = this.prefix + channel;
      // Rejects with ioredis's own error if Redis goes away meanwhile; the doors answer with `problem` (hub.ts).
      const published =
        this.stored === undefined
          ? this.publisher.publish(key, JSON.stringify(batch.messages))
          : this.stored.publish(key, batch.messages);
      published.then(batch.resolve, batch.reject);
    }
    this.batches.clear();
  };

  since(channel: string, lastId: string): Promise<Resume> {
    if (this.stored === undefined) return Promise.resolve(NO_HISTORY);
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.stored.since(this.prefix + channel, lastId).catch(this.unavailable);
  }

  latest(channel: string, count: number): Promise<Resume> {
    if (this.stored === undefined) return Promise.resolve(NOTHING_KEPT);
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.stored.latest(this.prefix + channel, count).catch(this.unavailable);
  }

  subscribe(channel: string): Promise<void> | undefined {
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    this.wanted.add(channel);
    if (this.confirmed.has(channel) && this.sent.has(channel)) return undefined;
    this.change(channel);
    return new Promise<void>((resolve, reject) => {
      const list = this.waiters.get(channel);
      if (list === undefined) this.waiters.set(channel, [{ resolve, reject }]);
      else list.push({ resolve, reject });
    });
  }

  unsubscribe(channel: string): void {
    if (!this.wanted.delete(channel)) return;
    this.change(channel);
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeat);
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  // --- subscriptions ---

  private change(channel: string): void {
    this.changed.add(channel);
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Every change made while this turn of the event loop runs goes out in one command.
    setImmediate(() => this.flush());
  }

  /** Sends what changed since the last flush: UNSUBSCRIBE first, then SUBSCRIBE, in batches. */
  private flush(): void {
    this.flushScheduled = false;
    const subscribe: string[] = [];
    const unsubscribe: string[] = [];
    for (const channel of this.changed) {
      const want = this.wanted.has(channel);
      if (want && !this.sent.has(channel)) subscribe.push(channel);
      else if (!want && this.sent.has(channel)) unsubscribe.push(channel);
    }
    this.changed.clear();
    // While the subscriber connection is away nothing is sent: subscribeAgain sends what is wanted then.
    if (this.subscriber.status !== "ready") return;
    for (const channel of unsubscribe) {
      this.sent.delete(channel);
      this.confirmed.delete(channel);
      this.lastBatch.delete(channel);
    }
    for (const chunk of chunks(unsubscribe)) {
      // A failure here means the connection is gone, and with it every subscription: nothing to undo.
      this.subscriber.unsubscribe(...chunk.map((c) => this.prefix + c)).catch(() => {});
    }
    for (const chunk of chunks(subscribe)) void this.sendSubscribe(chunk);
  }

  /** Sends one SUBSCRIBE for these channels and settles their waiters with its reply. */
  private async sendSubscribe(channels: string[]): Promise<boolean> {
    const batch = ++this.batch;
    for (const channel of channels) {
      this.sent.add(channel);
      this.lastBatch.set(channel, batch);
    }
    try {
      await this.subscriber.subscribe(...channels.map((c) => this.prefix + c));
    } catch (error) {
      for (const channel of channels) this.settle(channel, new BrokerUnavailable(this.problem ?? String(error)));
      return false;
    }
    for (const channel of channels) {
      // A later UNSUBSCRIBE or SUBSCRIBE of the channel, sent after this one, decides instead.
      if (this.lastBatch.get(channel) !== batch || !this.sent.has(channel)) continue;
      this.confirmed.add(channel);
      this.settle(channel, undefined);
    }
    return true;
  }

  /** On a new subscriber connection: subscribe every wanted channel again, then say the broker is up. */
  private async subscribeAgain(): Promise<void> {
    const epoch = this.subscriberEpoch;
    const channels = [...this.wanted];
    const results = await Promise.all(chunks(channels).map((chunk) => this.sendSubscribe(chunk)));
    if (epoch !== this.subscriberEpoch || results.includes(false)) return;
    this.subscriberReady = true;
    this.reportIfUp();
  }

  private settle(channel: string, error: Error | undefined): void {
    const list = this.waiters.get(channel);
    if (list === undefined) return;
    this.waiters.delete(channel);
    for (const waiter of list) {
      if (error === undefined) waiter.resolve();
      else waiter.reject(error);
    }
  }

  private rejectWaiters(error: Error): void {
    for (const channel of [...this.waiters.keys()]) this.settle(channel, error);
  }

  // --- up and down ---

  /**
   * Pings each ready connection that has no PING awaiting its answer. The answer itself is not needed: a
   * connection with a command unanswered for PING_TIMEOUT_MS is destroyed by ioredis (socketTimeout), which
   * then reconnects.
   */
  private ping(): void {
    for (const connection of [this.publisher, this.subscriber]) {
      if (connection.status !== "ready" || this.pinging.has(connection)) continue;
      this.pinging.add(connection);
      const done = () => this.pinging.delete(connection);
      connection.ping().then(done, done);
    }
  }

  private reportIfUp(): void {
    if (!this.up) return;
    const first = !this.wasUp;
    if (!first) this.reconnects++;
    this.wasUp = true;
    this.downReported = false;
    this.lastError = undefined;
    this.options.onUp(this.wanted.size, first);
    this.becameReady();
  }

  private reportDown(): void {
    if (this.downReported || this.closing) return;
    this.downReported = true;
    this.options.onDown(this.problem ?? "redis connection lost");
  }

  /** Turns a failed publish into the refusal the doors answer with. */
  private readonly unavailable = (error: Error): never => {
    throw new BrokerUnavailable(this.problem ?? `redis: ${this.redact(error.message)}`);
  };

  /** Redis's own messages never hold the password, but an error from a library might: never show it. */
  private redact(text: string): string {
    const target = this.options.target;
    return target.kind === "tcp" && target.password !== undefined ? text.replaceAll(target.password, "***") : text;
  }
}

/** The broker for --redis, to give to the hub. */
export function redisBroker(options: RedisBrokerOptions): (deliver: Deliver) => RedisBroker {
  return (deliver) => new RedisBroker(options, deliver);
}

function connectionOptions(target: RedisTarget, name: string): RedisOptions {
  const common: RedisOptions = {
    connectionName: name,
    // A command while disconnected fails at once; one in flight when the connection drops fails too, and is
    // not sent again later: a publish is answered now, refused or accepted, never held for an unknown time.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    connectTimeout: CONNECT_TIMEOUT_MS,
    // A connection with a command (a publish, or the heartbeat's PING) unanswered this long is dropped: a
    // Redis that hangs, or a network cut that sends no reset, is noticed within seconds, not hours.
    socketTimeout: PING_TIMEOUT_MS,
    retryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), MAX_RETRY_DELAY_MS),
    // Notices a peer gone without a word (a network cut) within seconds rather than hours.
    keepAlive: 5000,
  };
  if (target.kind === "unix") return { ...common, path: target.path };
  return {
    ...common,
    host: target.host,
    port: target.port,
    username: target.username,
    password: target.password,
    db: target.db,
    tls: target.tls ? { servername: target.host } : undefined,
  };
}

function chunks(channels: string[]): string[][] {
  const result: string[][] = [];
  for (let i = 0; i < channels.length; i += CHANNELS_PER_COMMAND) {
    result.push(channels.slice(i, i + CHANNELS_PER_COMMAND));
  }
  return result;
}

async function quit(connection: Redis): Promise<void> {
  if (connection.status !== "ready") {
    connection.disconnect();
    return;
  }
  const timer = setTimeout(() => connection.disconnect(), QUIT_TIMEOUT_MS);
  try {
    await connection.quit();
  } catch {
    connection.disconnect();
  } finally {
    clearTimeout(timer);
  }
}
