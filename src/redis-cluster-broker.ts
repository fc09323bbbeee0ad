// Cluster mode on a Redis Cluster (`--redis redis+cluster://…`): sharded pub/sub, so that no single Redis
// carries every message. A channel `/x` is the shard channel `pinghub:{/x}`: the braces are Redis Cluster's hash
// tag, so that the channel's stream (with --history) and its publishes live in one slot, on one shard. A node
// publishes with SPUBLISH to the master that owns the slot, and hears a channel with SSUBSCRIBE on that master.
//
// Two ioredis Cluster clients: one publishes (pipelined, no offline queue: a publish is answered at once), one
// subscribes, holding a connection per master (ioredis's sharded subscribers). ioredis follows the cluster's
// changes itself, a master failed over or a slot moved, and subscribes again where a slot went. What this file
// adds is knowing, per channel, whether the node hears it now: a channel is heard once its SSUBSCRIBE was
// confirmed by the master that owns its slot now. A publish to a channel this node has subscribers of, but does
// not hear, is refused (503, 1013), never accepted and lost on this node; the other channels carry on meanwhile.

import calculateSlot from "cluster-key-slot";
import { Cluster, type ClusterOptions, type RedisOptions } from "ioredis";
import { type Broker, BrokerUnavailable, type ClusterStatus, type Deliver } from "./broker.ts";
import { NO_HISTORY, NOTHING_KEPT, type Resume } from "./history.ts";
import { oncePerMinute } from "./once-a-minute.ts";
import type { ClusterTarget } from "./redis-ha-url.ts";
import { type RedisHistory, redisHistory } from "./redis-history.ts";
import { HistorySettings, historySettings } from "./redis-settings.ts";
import { type Dropped, encodeBatch, readMessages, readPairs } from "./redis-wire.ts";

export interface RedisClusterBrokerOptions {
  target: ClusterTarget;
  prefix: string;
  history: { size: number; ttlMs: number } | undefined;
  /** --max-message-size: a message from Redis over it is dropped, as on one Redis (redis-wire.ts). */
  maxMessageBytes: number;
  /** Writes a warning to the log (a foreign payload, kept to once a minute per channel and reason). */
  warn(line: string): void;
  onDown(reason: string): void;
  onUp(channels: number, first: boolean): void;
}

/** Longest wait between two tries to reach the cluster. */
const MAX_RETRY_DELAY_MS = 2000;
/** A node that does not answer a connection within this is given up for the next try. */
const CONNECT_TIMEOUT_MS = 2000;
/** TCP keepalive: a node gone without a word (a network cut) is noticed within seconds rather than hours. */
const KEEPALIVE_MS = 5000;
/** A refused or lost SSUBSCRIBE is sent again after this, for as long as the channel is wanted. */
const RESUBSCRIBE_RETRY_MS = 250;
/** How long a clean disconnect may take at shutdown. */
const QUIT_TIMEOUT_MS = 1000;

interface Waiter {
  resolve(): void;
  reject(error: Error): void;
}

interface Batch {
  messages: string[];
  sent: Promise<number>;
  resolve(nodes: number): void;
  reject(error: Error): void;
}

export class RedisClusterBroker implements Broker, ClusterStatus {
  readonly cluster: ClusterStatus = this;
  readonly ready: Promise<void>;
  readonly history: boolean;
  readonly localHistory = undefined;
  reconnects = 0;
  /** Payloads dropped for not being pinghub's shape (redis-wire.ts). */
  badMessages = 0;
  /** No rights check here yet, and no catch-up after an outage: nothing to warn of, nothing counted lost. */
  readonly warning = undefined;
  readonly lost = 0;
  private readonly warnOnce: (key: string, line: string) => void;
  private becameReady: () => void = () => {};
  private readonly publisher: Cluster;
  private readonly subscriber: Cluster;
  private readonly stored: RedisHistory | undefined;
  /** With history: compares this node's --history with the cluster's at each connection (redis-settings.ts). */
  private readonly settings: HistorySettings | undefined;
  /** Channels this node has local subscribers of, or is about to: what it must hear. */
  private readonly wanted = new Set<string>();
  /** Wanted channels not heard now: never confirmed, or confirmed on a master that no longer owns their slot. */
  private readonly unheard = new Set<string>();
  /** For each channel heard, the master ("host:port") that confirmed its SSUBSCRIBE. */
  private readonly heardOn = new Map<string, string>();
  /** The number of each channel's latest SSUBSCRIBE: only its reply counts. */
  private readonly pending = new Map<string, number>();
  private readonly waiters = new Map<string, Waiter[]>();
  private readonly slots = new Map<string, number>();
  private readonly batches = new Map<string, Batch>();
  private sequence = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private wasUp = false;
  private downReported = false;
  private lastError: string | undefined;
  private closing = false;

  constructor(
    private readonly options: RedisClusterBrokerOptions,
    deliver: Deliver,
  ) {
    this.ready = new Promise((resolve) => {
      this.becameReady = resolve;
    });
    this.warnOnce = oncePerMinute(options.warn);
    const target = options.target;
    const nodeOptions: RedisOptions = {
      username: target.username,
      password: target.password,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepAlive: KEEPALIVE_MS,
      // A command in flight when a connection drops fails, and is not sent again later.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
    };
    const clusterOptions = (connectionName: string): ClusterOptions => ({
      // CLIENT LIST on each master names the node's connections as on one Redis.
      redisOptions: { ...nodeOptions, connectionName },
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), MAX_RETRY_DELAY_MS),
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
    });
    this.publisher = new Cluster(target.nodes, {
      ...clusterOptions("pinghub-publish"),
      // Every publish of one turn of the event loop goes out in one write per master (see redis-broker.ts).
      enableAutoPipelining: true,
    });
    this.subscriber = new Cluster(target.nodes, { ...clusterOptions("pinghub-subscribe"), shardedSubscribers: true });

    const history = options.history;
    this.history = history !== undefined;
    this.stored =
      history === undefined ? undefined : redisHistory(this.publisher, history.size, history.ttlMs, "SPUBLISH");
    // The settings key is one plain key (no hash tag needed: no command names another key with it).
    const publisher = this.publisher;
    this.settings =
      history === undefined
        ? undefined
        : new HistorySettings(
            (key, value) => publisher.set(key, value, "GET"),
            options.prefix,
            historySettings(history),
            options.warn,
            (text) => this.redact(text),
          );
    // `pinghub:{/x}` → `/x`: the prefix and the braces around the channel's name.
    const start = options.prefix.length + 1;
    const maxBytes = options.maxMessageBytes;
    // As on one Redis: one Redis message in, checked whole (redis-wire.ts), then delivered.
    if (history === undefined) {
      this.subscriber.on("smessage", (shardChannel: string, payload: string) => {
        const channel = shardChannel.slice(start, -1);
        const messages = readMessages(payload, maxBytes);
        if (!Array.isArray(messages)) return this.dropped(channel, messages);
        for (const message of messages) deliver(channel, message, undefined);
      });
    } else {
      this.subscriber.on("smessage", (shardChannel: string, payload: string) => {
        const channel = shardChannel.slice(start, -1);
        const pairs = readPairs(payload, maxBytes);
        if (!Array.isArray(pairs)) return this.dropped(channel, pairs);
        for (const [id, message] of pairs) deliver(channel, message, id);
      });
    }

    for (const client of [this.publisher, this.subscriber]) {
      client.on("error", (error: Error) => {
        this.lastError = this.redact(error.message).replace(/\.$/, "");
        if (!this.wasUp) this.reportDown();
      });
      client.on("ready", this.recheck);
      client.on("close", () => this.reportDown());
      // The slot map changed, or may have: a failover, a slot moved, a node added.
      client.on("refresh", this.recheck);
    }
    this.subscriber.on("subscribersReady", this.recheck);
    // A master's subscriber connection ended: its channels are not heard until its slots have a new owner.
    this.subscriber.on("-node", (_redis: unknown, nodeKey: string) => {
      let lost = 0;
      for (const [channel, node] of this.heardOn) {
        if (node !== nodeKey) continue;
        this.heardOn.delete(channel);
        this.unheard.add(channel);
        lost++;
      }
      if (lost > 0) this.reportDown(`redis cluster: lost the master ${nodeKey}; ${lost} channels not heard`);
      // ioredis refreshes its slot map after a lost node; asking now makes the new owner known sooner.
      this.subscriber.refreshSlotsCache();
    });
  }

  // --- state ---

  private get connected(): boolean {
    return this.publisher.status === "ready" && this.subscriber.status === "ready";
  }

  get up(): boolean {
    return this.connected && this.unheard.size === 0;
  }

  get subscriptions(): number {
    return this.heardOn.size;
  }

  /**
   * Why no message can be taken now; undefined once connected, even while some channels are not heard again
   * yet (their publishes are refused one by one, and the other channels carry on).
   */
  get problem(): string | undefined {
    if (this.connected) return undefined;
    if (this.closing) return "shutting down";
    const display = this.options.target.display;
    if (!this.wasUp && this.lastError === undefined) return `connecting to redis cluster at ${display}`;
    return `redis cluster at ${display} unreachable${this.lastError === undefined ? "" : `: ${this.lastError}`}`;
  }

  // --- the broker ---

  publish(channel: string, message: string): Promise<number> {
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    if (this.unheard.has(channel)) {
      return Promise.reject(new BrokerUnavailable(`redis cluster: re-subscribing ${JSON.stringify(channel)}`));
    }
    let batch = this.batches.get(channel);
    if (batch === undefined) {
      const { promise, resolve, reject } = Promise.withResolvers<number>();
      promise.catch(() => {});
      batch = { messages: [], sent: promise, resolve, reject };
      this.batches.set(channel, batch);
      if (this.batches.size === 1) setImmediate(this.sendBatches);
    }
    batch.messages.push(message);
    return batch.sent;
  }

  since(channel: string, lastId: string): Promise<Resume> {
    if (this.stored === undefined) return Promise.resolve(NO_HISTORY);
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.stored.since(this.name(channel), lastId).catch(this.unavailable);
  }

  latest(channel: string, count: number): Promise<Resume> {
    if (this.stored === undefined) return Promise.resolve(NOTHING_KEPT);
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.stored.latest(this.name(channel), count).catch(this.unavailable);
  }

  /** Turns a failed history read into the refusal the doors answer with. */
  private readonly unavailable = (error: Error): never => {
    throw new BrokerUnavailable(this.problem ?? `redis cluster: ${this.redact(error.message)}`);
  };

  subscribe(channel: string): Promise<void> | undefined {
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    this.wanted.add(channel);
    if (!this.unheard.has(channel) && this.heardOn.has(channel) && !this.pending.has(channel)) return undefined;
    if (!this.pending.has(channel)) this.send(channel);
    return new Promise<void>((resolve, reject) => {
      const list = this.waiters.get(channel);
      if (list === undefined) this.waiters.set(channel, [{ resolve, reject }]);
      else list.push({ resolve, reject });
    });
  }

  unsubscribe(channel: string): void {
    if (!this.wanted.delete(channel)) return;
    this.unheard.delete(channel);
    this.heardOn.delete(channel);
    this.pending.delete(channel);
    this.slots.delete(channel);
    this.subscriber.sunsubscribe(this.name(channel)).catch(() => {});
    this.checkUp();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  // --- publishing ---

  /** Each channel's batch of this turn as one SPUBLISH (one script call with history). */
  private readonly sendBatches = () => {
    for (const [channel, batch] of this.batches) {
      const name = this.name(channel);
      const published =
        this.stored === undefined
          ? (this.publisher.spublish(name, encodeBatch(batch.messages)) as Promise<number>)
          : this.stored.publish(name, batch.messages);
      published.then(batch.resolve, batch.reject);
    }
    this.batches.clear();
  };

  // --- hearing channels ---

  /** The channel's name in Redis: the prefix, then the channel in braces, its hash tag. */
  private name(channel: string): string {
    return `${this.options.prefix}{${channel}}`;
  }

  /** The master ("host:port") that owns the channel's slot, as the subscriber's slot map says now. */
  private ownerOf(channel: string): string | undefined {
    let slot = this.slots.get(channel);
    if (slot === undefined) {
      slot = calculateSlot(this.name(channel));
      this.slots.set(channel, slot);
    }
    return this.subscriber.slots[slot]?.[0];
  }

  /** Sends SSUBSCRIBE for a wanted channel; its reply decides whether the node hears it. */
  private send(channel: string): void {
    const number = ++this.sequence;
    this.pending.set(channel, number);
    this.unheard.add(channel);
    const owner = this.ownerOf(channel);
    this.subscriber.ssubscribe(this.name(channel)).then(
      () => {
        if (this.pending.get(channel) !== number) return;
        this.pending.delete(channel);
        // The slot moved while the command was on its way: ask its new owner.
        if (owner === undefined || this.ownerOf(channel) !== owner) {
          this.send(channel);
          return;
        }
        this.heardOn.set(channel, owner);
        this.unheard.delete(channel);
        this.settle(channel, undefined);
        this.checkUp();
      },
      (error: Error) => {
        if (this.pending.get(channel) !== number) return;
        this.pending.delete(channel);
        this.settle(channel, new BrokerUnavailable(this.problem ?? `redis cluster: ${this.redact(error.message)}`));
        this.retrySoon();
      },
    );
  }

  /** Sends SSUBSCRIBE again for every wanted channel not heard on the master that owns its slot now. */
  private readonly recheck = () => {
    if (!this.connected || this.closing) {
      this.checkUp();
      return;
    }
    for (const channel of this.wanted) {
      if (this.pending.has(channel)) continue;
      const heard = this.heardOn.get(channel);
      if (heard !== undefined && heard === this.ownerOf(channel)) continue;
      if (heard !== undefined) {
        this.heardOn.delete(channel);
        this.reportDown(`redis cluster: ${JSON.stringify(channel)} moved to another shard; re-subscribing`);
      }
      this.send(channel);
    }
    this.checkUp();
  };

  private retrySoon(): void {
    if (this.retryTimer !== undefined || this.closing) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.recheck();
      if (this.unheard.size > 0) this.subscriber.refreshSlotsCache();
    }, RESUBSCRIBE_RETRY_MS);
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

  private dropped(channel: string, { reason }: Dropped): void {
    this.badMessages++;
    const name = JSON.stringify(channel.length > 200 ? `${channel.slice(0, 200)}…` : channel);
    this.warnOnce(
      `${channel}\n${reason}`,
      `cluster: dropped a payload from redis on ${name}: ${reason} (said once a minute per channel and reason)`,
    );
  }

  // --- up and down ---

  private checkUp(): void {
    if (!this.up) return;
    if (this.wasUp && !this.downReported) return;
    const first = !this.wasUp;
    if (!first) this.reconnects++;
    this.wasUp = true;
    this.downReported = false;
    this.lastError = undefined;
    this.options.onUp(this.wanted.size, first);
    // Start-up waits for the settings compared, so that a node of another --history says so before it serves.
    const compared = this.settings?.check();
    if (first && compared !== undefined) void compared.then(() => this.becameReady());
    else this.becameReady();
  }

  private reportDown(reason?: string): void {
    if (this.downReported || this.closing) return;
    this.downReported = true;
    this.options.onDown(reason ?? this.problem ?? "redis cluster connection lost");
  }

  private redact(text: string): string {
    const password = this.options.target.password;
    return password === undefined ? text : text.replaceAll(password, "***");
  }
}

/** The broker for --redis redis+cluster://…, to give to the hub. */
export function redisClusterBroker(options: RedisClusterBrokerOptions): (deliver: Deliver) => RedisClusterBroker {
  return (deliver) => new RedisClusterBroker(options, deliver);
}

async function quit(client: Cluster): Promise<void> {
  const timer = setTimeout(() => client.disconnect(), QUIT_TIMEOUT_MS);
  try {
    await client.quit();
  } catch {
    client.disconnect();
  } finally {
    clearTimeout(timer);
  }
}
