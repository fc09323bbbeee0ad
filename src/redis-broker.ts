// Cluster mode's broker: Redis pub/sub carries every message between nodes. A message published on any node is
// PUBLISHed to `prefix + channel`, and each node delivers it to its own subscribers when it comes back on its
// subscriber connection, its own messages included: Redis fixes one order per channel for every node.
//
// This file composes parts that each read alone: the connections and their health (redis-connection.ts),
// per-turn publish batches (redis-publisher.ts), which channels the node is subscribed to (redis-subscriptions.ts,
// a state machine fed with events), the strict reading of what Redis brings (redis-wire.ts), with --history the
// catching up after an outage (redis-catch-up.ts), and the Redis user's rights (redis-rights.ts). The node is
// subscribed to a channel's Redis channel only while it has local subscribers (the hub says when); after Redis
// comes back, every wanted channel is subscribed again (and caught up) before the broker says it is up.

import { ReplyError } from "ioredis";
import { type Broker, BrokerUnavailable, type ClusterStatus, type Deliver, type Gap } from "./broker.ts";
import { NO_HISTORY, NOTHING_KEPT, type Resume } from "./history.ts";
import { oncePerMinute } from "./once-a-minute.ts";
import { CatchUp } from "./redis-catch-up.ts";
import { type HealthReports, RedisConnections, type TlsFiles } from "./redis-connection.ts";
import { type RedisHistory, redisHistory } from "./redis-history.ts";
import { RedisLosses } from "./redis-losses.ts";
import { RedisPublisher } from "./redis-publisher.ts";
import { redisRefusal } from "./redis-refusal.ts";
import { checkRights, RedisRights, redisQuestions, redisReason } from "./redis-rights.ts";
import { HistorySettings, historySettings } from "./redis-settings.ts";
import { type SubscribeCommand, Subscriptions } from "./redis-subscriptions.ts";
import type { RedisTarget } from "./redis-url.ts";
import { readMessages, readPairs } from "./redis-wire.ts";

export interface RedisBrokerOptions extends HealthReports {
  target: RedisTarget;
  /** Certificates for rediss:// (--redis-ca, --redis-cert, --redis-key), read at start-up. */
  tls?: TlsFiles;
  /** Put before each channel name to make its Redis channel. */
  prefix: string;
  /** History in Redis streams (redis-history.ts), or undefined for none. Every node must be given the same. */
  history: { size: number; ttlMs: number } | undefined;
  /** --max-message-size: a message from Redis over it is dropped, as a POST over it is refused. */
  maxMessageBytes: number;
  /** Writes a warning to the log: Redis's refusals, foreign payloads, missing rights (each kept rare here). */
  warn(line: string): void;
}

export class RedisBroker implements Broker, ClusterStatus {
  readonly cluster: ClusterStatus = this;
  readonly ready: Promise<void>;
  readonly history: boolean;
  readonly localHistory = undefined;
  private readonly connections: RedisConnections;
  private readonly channels: Subscriptions;
  private readonly publisher: RedisPublisher;
  private readonly stored: RedisHistory | undefined;
  private readonly prefix: string;
  /** Dropped payloads and gaps found catching up, counted and said (redis-losses.ts). */
  private readonly losses: RedisLosses;
  /** The Redis user's rights: the node refuses while it lacks a command it needs. */
  private readonly rights: RedisRights;
  private readonly warnOnce: (key: string, line: string) => void;
  /** With history: compares this node's --history with the cluster's at each connection (redis-settings.ts). */
  private readonly settings: HistorySettings | undefined;
  /** With history: what brings a node's channels up to date after it lost its subscriber connection. */
  private readonly catchUp: CatchUp | undefined;

  constructor(options: RedisBrokerOptions, deliver: Deliver, gap: Gap) {
    this.prefix = options.prefix;
    this.warnOnce = oncePerMinute(options.warn);
    this.losses = new RedisLosses(options.history !== undefined, options.warn, gap);
    this.refusal = redisRefusal({
      label: "redis",
      redact: (text) => this.connections.redact(text),
      warnOnce: this.warnOnce,
      problem: () => this.problem,
    });
    // Every change made while one turn of the event loop runs goes out in one command.
    this.channels = new Subscriptions({
      flushSoon: () => setImmediate(this.flush),
      ready: () => this.resume(),
    });
    // Up takes every wanted channel subscribed again, and with history every one caught up.
    const subscribed = {
      ready: () => this.channels.ready && this.catchUp?.pending !== true,
      size: () => this.channels.size,
    };
    const reports: HealthReports = {
      onDown: options.onDown,
      onUp: (channels, first) => {
        options.onUp(channels, first);
        void this.rights.check();
        if (!first) void this.settings?.check();
      },
    };
    this.connections = new RedisConnections(options.target, options.tls, subscribed, reports, {
      connected: () => {
        for (const command of this.channels.connect()) this.sendSubscribe(command);
      },
      lost: (heardAt) => {
        this.channels.disconnect(new BrokerUnavailable(this.problem ?? "redis connection lost"));
        this.catchUp?.lost(heardAt);
      },
      // Catching up reads the streams on the publisher connection: it may have waited for it.
      publisherReady: () => {
        if (this.channels.ready) this.resume();
      },
    });
    const history = options.history;
    this.history = history !== undefined;
    this.stored =
      history === undefined ? undefined : redisHistory(this.connections.publisher, history.size, history.ttlMs);
    const { publisher, subscriber } = this.connections;
    this.rights = new RedisRights(
      () => checkRights(redisQuestions(publisher, subscriber), this.prefix, this.stored),
      options.target.display,
      this.prefix,
      options.warn,
    );
    const settings =
      history === undefined
        ? undefined
        : new HistorySettings(
            (key, value) => publisher.set(key, value, "GET"),
            this.prefix,
            historySettings(history),
            options.warn,
            (text) => this.connections.redact(text),
          );
    this.settings = settings;
    // Start-up waits for the first answer about rights too, so that a node lacking them never serves a moment,
    // and for the settings compared, so that a node of another --history says so before it serves.
    this.ready = this.connections.ready.then(() => Promise.all([this.rights.known, settings?.check()])).then(() => {});
    this.publisher = new RedisPublisher({
      publish: (name, payload) => publisher.publish(name, payload),
      name: (channel) => this.prefix + channel,
      stored: this.stored,
      refusal: this.refusal,
    });
    const stored = this.stored;
    this.catchUp =
      history === undefined || stored === undefined
        ? undefined
        : new CatchUp({
            deliver,
            gap: (channel, reason, position) => this.losses.missed(channel, reason, position),
            position: (channel) => stored.position(this.prefix + channel),
            // Redis refusing the script (out of memory, no permission) must not keep the node down: a gap.
            read: (channel, lastId) =>
              stored.catchUp(this.prefix + channel, lastId).catch((error: Error) => {
                if (!(error instanceof ReplyError)) throw error;
                const reason = this.connections.redact(redisReason(error.message));
                this.warnOnce(`catch-up ${reason}`, `cluster: redis refused to give what a node missed: ${reason}`);
                return undefined;
              }),
            ttlMs: history.ttlMs,
          });

    const prefixLength = this.prefix.length;
    const maxBytes = options.maxMessageBytes;
    const catchUp = this.catchUp;
    // The one piece of JavaScript per message on a node: one Redis message in, checked whole, then delivered.
    if (catchUp === undefined) {
      subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        const messages = readMessages(payload, maxBytes);
        if (!Array.isArray(messages)) return this.losses.dropped(channel, messages);
        for (const message of messages) deliver(channel, message, undefined);
      });
    } else {
      subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        const pairs = readPairs(payload, maxBytes);
        if (!Array.isArray(pairs)) return this.losses.dropped(channel, pairs);
        catchUp.receive(channel, pairs);
      });
    }
  }

  get badMessages(): number {
    return this.losses.badMessages;
  }

  get lost(): number {
    return this.losses.lost;
  }

  get up(): boolean {
    return this.connections.up && this.rights.problem === undefined;
  }

  get reconnects(): number {
    return this.connections.reconnects;
  }

  /** The wanted channels: those with local subscribers, and those whose last one left a moment ago. */
  get subscriptions(): number {
    return this.channels.size;
  }

  /** Names under the prefix the Redis user may not use, for /healthz; the node serves all the same. */
  get warning(): string | undefined {
    return this.rights.warning;
  }

  get problem(): string | undefined {
    return this.connections.problem ?? this.rights.problem;
  }

  publish(channel: string, message: string): Promise<number> {
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    // Rejects with ioredis's own error if Redis goes away meanwhile; the doors answer with `problem` (hub.ts).
    return this.publisher.publish(channel, message);
  }

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
    const subscribed = this.channels.want(channel);
    const catchUp = this.catchUp;
    // With history, a channel newly heard is followed from where its stream stands, should the node lose Redis.
    if (subscribed === undefined || catchUp === undefined) return subscribed;
    return subscribed.then(() => catchUp.follow(channel));
  }

  unsubscribe(channel: string): void {
    this.channels.unwant(channel);
    this.catchUp?.forget(channel);
  }

  close(): Promise<void> {
    this.rights.close();
    return this.connections.close();
  }

  /** Every wanted channel is subscribed again: with history, catch up, then say the node is up. */
  private resume(): void {
    const catchUp = this.catchUp;
    if (catchUp === undefined || !catchUp.pending) {
      this.connections.checkUp();
      return;
    }
    void catchUp.resume(Date.now()).then(() => this.connections.checkUp());
  }

  /** Sends what the subscriptions changed since the last flush: every UNSUBSCRIBE, then every SUBSCRIBE. */
  private readonly flush = () => {
    const { unsubscribe, subscribe } = this.channels.flush();
    const subscriber = this.connections.subscriber;
    for (const channels of unsubscribe) {
      // A failure here means the connection is gone, and with it every subscription: nothing to undo.
      subscriber.unsubscribe(...channels.map((c) => this.prefix + c)).catch(() => {});
    }
    for (const command of subscribe) this.sendSubscribe(command);
  };

  /**
   * Sends one SUBSCRIBE and reports its reply. Redis's refusal (an error reply) is the subscriptions' to settle;
   * any other failure is the connection's loss, which `lost` has already settled.
   */
  private sendSubscribe(command: SubscribeCommand): void {
    this.connections.subscriber.subscribe(...command.channels.map((c) => this.prefix + c)).then(
      () => this.channels.subscribed(command.batch),
      (error: Error) => {
        if (!(error instanceof ReplyError)) return;
        const reason = this.connections.redact(error.message);
        const refusal = new BrokerUnavailable(`redis refused to subscribe: ${reason}`);
        for (const retry of this.channels.refused(command.batch, refusal)) this.sendSubscribe(retry);
        // A channel refused for good is not followed either (a re-subscribe refused after an ACL change).
        for (const channel of command.channels) if (!this.channels.wants(channel)) this.catchUp?.forget(channel);
      },
    );
  }

  /** Turns a failed publish or read into the refusal the doors answer with (redis-refusal.ts). */
  private readonly refusal: (error: Error) => Error;

  private readonly unavailable = (error: Error): never => {
    throw this.refusal(error);
  };
}

/** The broker for --redis, to give to the hub. */
export function redisBroker(options: RedisBrokerOptions): (deliver: Deliver, gap: Gap) => RedisBroker {
  return (deliver, gap) => new RedisBroker(options, deliver, gap);
}
