// Cluster mode on a Redis Cluster (`--redis redis+cluster://…`): sharded pub/sub, so that no single Redis
// carries every message. A channel `/x` is the shard channel `pinghub:{/x}`: the braces are Redis Cluster's hash
// tag, so that the channel's stream (with --history) and its publishes live in one slot, on one shard. A node
// publishes with SPUBLISH to the master that owns the slot, and hears a channel with SSUBSCRIBE on that master.
//
// Built from the single Redis broker's parts: per-turn publish batches (redis-publisher.ts), the strict reading of
// what Redis brings (redis-wire.ts), with --history the catching up after a channel was not heard
// (redis-catch-up.ts), the Redis user's rights (redis-rights.ts), TLS (redis-tls.ts), the counted losses and the
// refusals (redis-losses.ts, redis-refusal.ts). What this file adds is what only a Redis Cluster has: slots and
// their owners. A channel is heard once its SSUBSCRIBE was confirmed by the master that owns its slot now; a master
// lost, or a slot moved, makes its channels unheard until they are subscribed where they went (and, with history,
// caught up from their streams). A publish to a channel not heard is refused (503, 1013), never accepted and lost
// on this node; the other channels carry on meanwhile. A publish that Redis redirects (MOVED) waits until the node
// hears its channel on the new owner (redis-cluster-redirect.ts).
//
// Two ioredis Cluster clients. One publishes, pipelined, with no offline queue (a publish is answered at once) and
// following no redirection itself. The other holds a connection per master for SSUBSCRIBE (ioredis's sharded
// subscribers) and asks everything else (history reads, the rights, the settings key), following redirections.

import calculateSlot from "cluster-key-slot";
import { Cluster, type ClusterOptions, type RedisOptions, ReplyError } from "ioredis";
import { type Broker, BrokerUnavailable, type ClusterStatus, type Deliver, type Gap } from "./broker.ts";
import { ChannelWaiters } from "./channel-waiters.ts";
import { NO_HISTORY, NOTHING_KEPT, type Resume } from "./history.ts";
import { oncePerMinute } from "./once-a-minute.ts";
import { CatchUp } from "./redis-catch-up.ts";
import {
  CLOSED_RETRY_MS,
  CLOSED_TRIES,
  MAX_TRIES,
  MIGRATING_RETRY_MS,
  RedirectGates,
  redirection,
  unwrapClusterError,
} from "./redis-cluster-redirect.ts";
import type { HealthReports } from "./redis-connection.ts";
import type { ClusterTarget } from "./redis-ha-url.ts";
import { type RedisHistory, redisHistory } from "./redis-history.ts";
import { RedisLosses } from "./redis-losses.ts";
import { RedisPublisher } from "./redis-publisher.ts";
import { redisRefusal } from "./redis-refusal.ts";
import { checkRights, type PubSubQuestions, RedisRights, redisReason } from "./redis-rights.ts";
import { HistorySettings, historySettings } from "./redis-settings.ts";
import { clusterTlsOptions, type TlsFiles } from "./redis-tls.ts";
import { readMessages, readPairs } from "./redis-wire.ts";

export interface RedisClusterBrokerOptions extends HealthReports {
  target: ClusterTarget;
  /** Certificates for rediss+cluster:// (--redis-ca, --redis-cert, --redis-key), read at start-up. */
  tls?: TlsFiles;
  prefix: string;
  history: { size: number; ttlMs: number } | undefined;
  /** --max-message-size: a message from Redis over it is dropped, as on one Redis (redis-wire.ts). */
  maxMessageBytes: number;
  /** Writes a warning to the log: Redis's refusals, foreign payloads, missing rights (each kept rare). */
  warn(line: string): void;
}

/** Longest wait between two tries to reach the cluster. */
const MAX_RETRY_DELAY_MS = 2000;
/** A node that does not answer a connection within this is given up for the next try. */
const CONNECT_TIMEOUT_MS = 2000;
/** TCP keepalive: a node gone without a word (a network cut) is noticed within seconds rather than hours. */
const KEEPALIVE_MS = 5000;
/** A refused or lost SSUBSCRIBE, or a catch-up that could not read, is tried again after this. */
const RESUBSCRIBE_RETRY_MS = 250;
/** How long a clean disconnect may take at shutdown. */
const QUIT_TIMEOUT_MS = 1000;

export class RedisClusterBroker implements Broker, ClusterStatus {
  readonly cluster: ClusterStatus = this;
  readonly ready: Promise<void>;
  readonly history: boolean;
  readonly localHistory = undefined;
  reconnects = 0;
  private readonly losses: RedisLosses;
  private readonly warnOnce: (key: string, line: string) => void;
  private readonly publishing: Cluster;
  private readonly subscriber: Cluster;
  private readonly publisher: RedisPublisher;
  /** With history: the scripts on the publishing client (publish) and on the other one (reads). */
  private readonly stored: RedisHistory | undefined;
  private readonly reads: RedisHistory | undefined;
  private readonly rights: RedisRights;
  /** With history: compares this node's --history with the cluster's at each connection (redis-settings.ts). */
  private readonly settings: HistorySettings | undefined;
  /** With history: what brings a channel up to date after the node did not hear it for a while. */
  private readonly catchUp: CatchUp | undefined;
  private readonly gates: RedirectGates;
  private readonly refusal: (error: Error) => Error;
  /** Channels this node has local subscribers of, or is about to: what it must hear. */
  private readonly wanted = new Set<string>();
  /** Wanted channels not heard now: never confirmed, or confirmed on a master that no longer owns their slot. */
  private readonly unheard = new Set<string>();
  /** For each channel heard, the master ("host:port") that confirmed its SSUBSCRIBE. */
  private readonly heardOn = new Map<string, string>();
  /** The number of each channel's latest SSUBSCRIBE: only its reply counts. */
  private readonly pending = new Map<string, number>();
  private readonly waiters = new ChannelWaiters();
  private readonly slots = new Map<string, number>();
  private sequence = 0;
  private retryTimer: ReturnType<typeof setTimeout> | undefined;
  private becameReady: () => void = () => {};
  private wasUp = false;
  private downReported = false;
  private lastError: string | undefined;
  private closing = false;

  constructor(
    private readonly options: RedisClusterBrokerOptions,
    deliver: Deliver,
    gap: Gap,
  ) {
    const firstUp = Promise.withResolvers<void>();
    this.becameReady = firstUp.resolve;
    this.warnOnce = oncePerMinute(options.warn);
    this.losses = new RedisLosses(options.history !== undefined, options.warn, gap);
    this.refusal = redisRefusal({
      label: "redis cluster",
      redact: (text) => this.redact(text),
      warnOnce: this.warnOnce,
      problem: () => this.problem,
    });
    const target = options.target;
    const nodeOptions: RedisOptions = {
      username: target.username,
      password: target.password,
      connectTimeout: CONNECT_TIMEOUT_MS,
      keepAlive: KEEPALIVE_MS,
      // A command in flight when a connection drops fails, and is not sent again later.
      maxRetriesPerRequest: 0,
      autoResendUnfulfilledCommands: false,
      tls: target.tls ? clusterTlsOptions(options.tls) : undefined,
    };
    const clusterOptions = (connectionName: string): ClusterOptions => ({
      // CLIENT LIST on each master names the node's connections as on one Redis.
      redisOptions: { ...nodeOptions, connectionName },
      enableOfflineQueue: false,
      clusterRetryStrategy: (times: number) => Math.min(100 * 2 ** Math.min(times - 1, 5), MAX_RETRY_DELAY_MS),
      slotsRefreshTimeout: CONNECT_TIMEOUT_MS,
    });
    this.publishing = new Cluster(target.nodes, {
      ...clusterOptions("pinghub-publish"),
      // A redirection comes back to the broker instead of being followed (redis-cluster-redirect.ts). ioredis then
      // rejects at the first error of any kind, so a closed connection or CLUSTERDOWN is refused at once too.
      maxRedirections: 0,
      // No auto-pipelining here, unlike on one Redis: ioredis 6.0.0's Cluster pipeline, given a MOVED it may not
      // follow, calls back with a reply missing (a TypeError thrown from a timer, which ends the process). The
      // publisher already sends one command per channel per turn of the event loop (redis-publisher.ts).
      enableAutoPipelining: false,
    });
    this.subscriber = new Cluster(target.nodes, { ...clusterOptions("pinghub-subscribe"), shardedSubscribers: true });

    const history = options.history;
    this.history = history !== undefined;
    this.stored =
      history === undefined ? undefined : redisHistory(this.publishing, history.size, history.ttlMs, "SPUBLISH");
    const reads =
      history === undefined ? undefined : redisHistory(this.subscriber, history.size, history.ttlMs, "SPUBLISH");
    this.reads = reads;
    this.publisher = new RedisPublisher({
      publish: (name, payload) => this.publishing.spublish(name, payload) as Promise<number>,
      name: (channel) => this.name(channel),
      stored: this.stored,
      refusal: (error) => this.refusal(unwrapClusterError(error)),
      retry: (channel, error, tries) => this.redirected(channel, unwrapClusterError(error), tries),
    });
    // A channel this node has no subscribers of waits only for the publishing client to know the new owner.
    this.gates = new RedirectGates(
      (channel, node) =>
        (!this.wanted.has(channel) || this.heardOn.get(channel) === node) &&
        this.publishing.slots[this.slotOf(channel)]?.[0] === node,
      (channel) => new BrokerUnavailable(`redis cluster: ${JSON.stringify(channel)} is moving to another shard`),
    );
    const subscriber = this.subscriber;
    const questions: PubSubQuestions = {
      publishing: "SPUBLISH",
      publish: (name) => subscriber.spublish(name, "[]"),
      subscribing: "SSUBSCRIBE",
      subscribe: (name) => subscriber.ssubscribe(name).then(() => subscriber.sunsubscribe(name)),
    };
    this.rights = new RedisRights(
      () => checkRights(questions, options.prefix, reads),
      target.display,
      options.prefix,
      options.warn,
    );
    // The settings key is one plain key (no hash tag needed: no command names another key with it).
    const settings =
      history === undefined
        ? undefined
        : new HistorySettings(
            (key, value) => subscriber.set(key, value, "GET"),
            options.prefix,
            historySettings(history),
            options.warn,
            (text) => this.redact(text),
          );
    this.settings = settings;
    // Start-up waits for the first answer about rights too, so that a node lacking them never serves a moment,
    // and for the settings compared, so that a node of another --history says so before it serves.
    this.ready = firstUp.promise.then(() => Promise.all([this.rights.known, settings?.check()])).then(() => {});
    this.catchUp =
      history === undefined || reads === undefined
        ? undefined
        : new CatchUp({
            deliver,
            gap: (channel, reason, position) => this.losses.missed(channel, reason, position),
            position: (channel) => reads.position(this.name(channel)),
            // Redis refusing the script (out of memory, no permission) must not keep the channel down: a gap.
            read: (channel, lastId) =>
              reads.catchUp(this.name(channel), lastId).catch((error: Error) => {
                if (!(error instanceof ReplyError)) throw error;
                const reason = this.redact(redisReason(error.message));
                this.warnOnce(`catch-up ${reason}`, `cluster: redis refused to give what a node missed: ${reason}`);
                return undefined;
              }),
            ttlMs: history.ttlMs,
          });

    // `pinghub:{/x}` → `/x`: the prefix and the braces around the channel's name.
    const start = options.prefix.length + 1;
    const maxBytes = options.maxMessageBytes;
    const catchUp = this.catchUp;
    // As on one Redis: one Redis message in, checked whole (redis-wire.ts), then delivered.
    if (catchUp === undefined) {
      this.subscriber.on("smessage", (shardChannel: string, payload: string) => {
        const channel = shardChannel.slice(start, -1);
        const messages = readMessages(payload, maxBytes);
        if (!Array.isArray(messages)) return this.losses.dropped(channel, messages);
        for (const message of messages) deliver(channel, message, undefined);
      });
    } else {
      this.subscriber.on("smessage", (shardChannel: string, payload: string) => {
        const channel = shardChannel.slice(start, -1);
        const pairs = readPairs(payload, maxBytes);
        if (!Array.isArray(pairs)) return this.losses.dropped(channel, pairs);
        catchUp.receive(channel, pairs);
      });
    }

    for (const client of [this.publishing, this.subscriber]) {
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
      const lost = [...this.heardOn].filter(([, node]) => node === nodeKey).map(([channel]) => channel);
      this.notHeard(lost);
      if (lost.length > 0)
        this.reportDown(`redis cluster: lost the master ${nodeKey}; ${lost.length} channels not heard`);
      // ioredis refreshes its slot map after a lost node; asking now makes the new owner known sooner.
      this.subscriber.refreshSlotsCache();
    });
  }

  // --- state ---

  private get connected(): boolean {
    return this.publishing.status === "ready" && this.subscriber.status === "ready";
  }

  /** Connected, every wanted channel heard (and caught up, with history), and the user's rights all there. */
  get up(): boolean {
    return (
      this.connected && this.unheard.size === 0 && this.catchUp?.pending !== true && this.rights.problem === undefined
    );
  }

  get subscriptions(): number {
    return this.heardOn.size;
  }

  get badMessages(): number {
    return this.losses.badMessages;
  }

  get lost(): number {
    return this.losses.lost;
  }

  /** Names under the prefix the Redis user may not use, for /healthz; the node serves all the same. */
  get warning(): string | undefined {
    return this.rights.warning;
  }

  /**
   * Why no message can be taken now; undefined once connected, even while some channels are not heard again
   * yet (their publishes are refused one by one, and the other channels carry on).
   */
  get problem(): string | undefined {
    if (this.connected) return this.rights.problem;
    if (this.closing) return "shutting down";
    const display = this.options.target.display;
    if (!this.wasUp && this.lastError === undefined) return `connecting to redis cluster at ${display}`;
    return `redis cluster at ${display} unreachable${this.lastError === undefined ? "" : `: ${this.lastError}`}`;
  }

  // --- the broker ---

  publish(channel: string, message: string): Promise<number> {
    const problem = this.problem;
    if (problem !== undefined) return Promise.reject(new BrokerUnavailable(problem));
    if (this.unheard.has(channel) || this.catchUp?.holding(channel) === true) {
      return Promise.reject(new BrokerUnavailable(`redis cluster: re-subscribing ${JSON.stringify(channel)}`));
    }
    return this.publisher.publish(channel, message);
  }

  since(channel: string, lastId: string): Promise<Resume> {
    if (this.reads === undefined) return Promise.resolve(NO_HISTORY);
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.reads.since(this.name(channel), lastId).catch(this.unavailable);
  }

  latest(channel: string, count: number): Promise<Resume> {
    if (this.reads === undefined) return Promise.resolve(NOTHING_KEPT);
    if (!this.connected) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.reads.latest(this.name(channel), count).catch(this.unavailable);
  }

  /** Turns a failed history read into the refusal the doors answer with. */
  private readonly unavailable = (error: Error): never => {
    throw this.refusal(error);
  };

  subscribe(channel: string): Promise<void> | undefined {
    const problem = this.problem;
    if (problem !== undefined) return Promise.reject(new BrokerUnavailable(problem));
    this.wanted.add(channel);
    if (!this.unheard.has(channel) && this.heardOn.has(channel) && !this.pending.has(channel)) return undefined;
    if (!this.pending.has(channel)) this.send(channel);
    const heard = this.waiters.wait(channel);
    const catchUp = this.catchUp;
    // With history, a channel newly heard is followed from where its stream stands, should the node stop hearing it.
    return catchUp === undefined ? heard : heard.then(() => catchUp.follow(channel));
  }

  unsubscribe(channel: string): void {
    if (!this.wanted.delete(channel)) return;
    this.unheard.delete(channel);
    this.heardOn.delete(channel);
    this.pending.delete(channel);
    this.slots.delete(channel);
    this.catchUp?.forget(channel);
    this.waiters.settle(channel, new Error(`gave up subscribing to ${JSON.stringify(channel)}`));
    this.subscriber.sunsubscribe(this.name(channel)).catch(() => {});
    this.checkUp();
  }

  async close(): Promise<void> {
    this.closing = true;
    clearTimeout(this.retryTimer);
    this.rights.close();
    this.gates.close(new BrokerUnavailable("shutting down"));
    await Promise.all([quit(this.publishing), quit(this.subscriber)]);
  }

  // --- redirected publishes ---

  /**
   * A batch Redis did not take: when the cluster redirected it, a promise to send it again (once the node hears
   * the channel on the slot's new owner, or a moment later while the slot migrates); else undefined, refused.
   */
  private redirected(channel: string, error: Error, tries: number): Promise<void> | undefined {
    const asked = redirection(error);
    if (asked === undefined || tries > MAX_TRIES || this.closing) return undefined;
    if (asked.kind === "migrating") return Bun.sleep(MIGRATING_RETRY_MS);
    if (asked.kind === "closed") {
      return this.publishing.status === "ready" && tries <= CLOSED_TRIES ? Bun.sleep(CLOSED_RETRY_MS) : undefined;
    }
    // The slot has a new owner: the channel is not heard until it is subscribed there (the old owner drops it).
    // A node often learns of a move here, from a publish, before its slot map says so: it reports the move as
    // recheck would, so that every node says it, and then that the channel is back.
    const heard = this.heardOn.get(channel);
    if (this.wanted.has(channel) && heard !== asked.node) {
      if (heard === undefined) this.notHeard([channel]);
      else this.movedAway([channel]);
    }
    // The publishing client follows no redirection, so it learns the new owner only from its slot map.
    if (this.publishing.slots[this.slotOf(channel)]?.[0] !== asked.node) this.publishing.refreshSlotsCache();
    this.subscriber.refreshSlotsCache();
    this.retrySoon();
    return this.gates.wait(channel, asked.node);
  }

  // --- hearing channels ---

  /** The channel's name in Redis: the prefix, then the channel in braces, its hash tag. */
  private name(channel: string): string {
    return `${this.options.prefix}{${channel}}`;
  }

  private slotOf(channel: string): number {
    let slot = this.slots.get(channel);
    if (slot === undefined) {
      slot = calculateSlot(this.name(channel));
      if (this.wanted.has(channel)) this.slots.set(channel, slot);
    }
    return slot;
  }

  /** The master ("host:port") that owns the channel's slot, as the subscriber's slot map says now. */
  private ownerOf(channel: string): string | undefined {
    return this.subscriber.slots[this.slotOf(channel)]?.[0];
  }

  /** These channels are no longer heard where they were; with history, each holds what comes until caught up. */
  private notHeard(channels: string[]): void {
    if (channels.length === 0) return;
    for (const channel of channels) {
      this.heardOn.delete(channel);
      this.unheard.add(channel);
    }
    this.catchUp?.lost(Date.now(), channels);
  }

  /** These channels, heard, are now owned by another master: not heard until subscribed there, and said so. */
  private movedAway(channels: string[]): void {
    if (channels.length === 0) return;
    this.notHeard(channels);
    const names = channels.length === 1 ? JSON.stringify(channels[0]) : `${channels.length} channels`;
    this.reportDown(`redis cluster: ${names} moved to another shard; re-subscribing`);
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
        this.waiters.settle(channel, undefined);
        this.gates.check();
        this.resume([channel]);
      },
      (error: Error) => {
        if (this.pending.get(channel) !== number) return;
        this.pending.delete(channel);
        const refusal = new BrokerUnavailable(this.problem ?? `redis cluster: ${this.redact(error.message)}`);
        this.waiters.settle(channel, refusal);
        this.retrySoon();
      },
    );
  }

  /** With history: catches up these channels, heard again, from their streams; then says whether the node is up. */
  private resume(channels: string[]): void {
    const catchUp = this.catchUp;
    if (catchUp === undefined || !channels.some((channel) => catchUp.holding(channel))) {
      this.checkUp();
      return;
    }
    void catchUp.resume(Date.now(), channels).then((done) => {
      if (!done) this.retrySoon();
      this.checkUp();
    });
  }

  /** Sends SSUBSCRIBE again for every wanted channel not heard on the master that owns its slot now. */
  private readonly recheck = () => {
    this.gates.check();
    if (!this.connected || this.closing) {
      this.checkUp();
      return;
    }
    const moved: string[] = [];
    for (const channel of this.wanted) {
      if (this.pending.has(channel)) continue;
      const heard = this.heardOn.get(channel);
      if (heard !== undefined && heard === this.ownerOf(channel)) continue;
      if (heard !== undefined) moved.push(channel);
      this.send(channel);
    }
    this.movedAway(moved);
    // Channels heard again whose catch-up could not read their stream then (Redis away a moment): again.
    const catchUp = this.catchUp;
    if (catchUp?.pending === true) this.resume([...this.heardOn.keys()].filter((c) => catchUp.holding(c)));
    else this.checkUp();
  };

  private retrySoon(): void {
    if (this.retryTimer !== undefined || this.closing) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.recheck();
      // A redirected batch waits for both clients' slot maps to name the new owner: ask until they do.
      if (this.unheard.size > 0 || this.gates.size > 0) this.subscriber.refreshSlotsCache();
      if (this.gates.size > 0) {
        this.publishing.refreshSlotsCache();
        this.retrySoon();
      }
    }, RESUBSCRIBE_RETRY_MS);
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
    void this.rights.check();
    if (!first) void this.settings?.check();
    this.becameReady();
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
export function redisClusterBroker(
  options: RedisClusterBrokerOptions,
): (deliver: Deliver, gap: Gap) => RedisClusterBroker {
  return (deliver, gap) => new RedisClusterBroker(options, deliver, gap);
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
