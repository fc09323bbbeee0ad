// Cluster mode's broker: Redis pub/sub carries every message between nodes. A message published on any node is
// PUBLISHed to `prefix + channel`, and each node delivers it to its own subscribers when it comes back on its
// subscriber connection, its own messages included: Redis fixes one order per channel for every node.
//
// This file composes three parts, each readable alone: the connections and their health (redis-connection.ts),
// per-turn publish batches (redis-publisher.ts), and which channels the node is subscribed to
// (redis-subscriptions.ts, a state machine fed with events). The node is subscribed to a channel's Redis channel
// only while it has local subscribers (the hub says when); after Redis comes back, every wanted channel is
// subscribed again before the broker says it is up.

import { ReplyError } from "ioredis";
import { type Broker, BrokerUnavailable, type ClusterStatus, type Deliver } from "./broker.ts";
import type { Resume } from "./history.ts";
import { type HealthReports, RedisConnections } from "./redis-connection.ts";
import { type RedisHistory, redisHistory } from "./redis-history.ts";
import { RedisPublisher } from "./redis-publisher.ts";
import { type SubscribeCommand, Subscriptions } from "./redis-subscriptions.ts";
import type { RedisTarget } from "./redis-url.ts";

export interface RedisBrokerOptions extends HealthReports {
  target: RedisTarget;
  /** Put before each channel name to make its Redis channel. */
  prefix: string;
  /** History in Redis streams (redis-history.ts), or undefined for none. Every node must be given the same. */
  history: { size: number; ttlMs: number } | undefined;
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

  constructor(options: RedisBrokerOptions, deliver: Deliver) {
    this.prefix = options.prefix;
    // Every change made while one turn of the event loop runs goes out in one command.
    this.channels = new Subscriptions({
      flushSoon: () => setImmediate(this.flush),
      ready: () => this.connections.checkUp(),
    });
    this.connections = new RedisConnections(options.target, this.channels, options, {
      connected: () => {
        for (const command of this.channels.connect()) this.sendSubscribe(command);
      },
      lost: () => this.channels.disconnect(new BrokerUnavailable(this.problem ?? "redis connection lost")),
    });
    this.ready = this.connections.ready;
    const history = options.history;
    this.history = history !== undefined;
    this.stored =
      history === undefined ? undefined : redisHistory(this.connections.publisher, history.size, history.ttlMs);
    this.publisher = new RedisPublisher(this.connections.publisher, this.prefix, this.stored);

    const prefixLength = this.prefix.length;
    // The one piece of JavaScript per message on a node: one Redis message in, one delivery out.
    const subscriber = this.connections.subscriber;
    if (history === undefined) {
      subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        for (const message of JSON.parse(payload) as string[]) deliver(channel, message, undefined);
      });
    } else {
      subscriber.on("message", (redisChannel: string, payload: string) => {
        const channel = redisChannel.slice(prefixLength);
        for (const [id, message] of JSON.parse(payload) as Array<[string, string]>) deliver(channel, message, id);
      });
    }
  }

  get up(): boolean {
    return this.connections.up;
  }

  get reconnects(): number {
    return this.connections.reconnects;
  }

  /** The wanted channels: those with local subscribers, and those whose last one left a moment ago. */
  get subscriptions(): number {
    return this.channels.size;
  }

  get problem(): string | undefined {
    return this.connections.problem;
  }

  publish(channel: string, message: string): Promise<number> {
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    // Rejects with ioredis's own error if Redis goes away meanwhile; the doors answer with `problem` (hub.ts).
    return this.publisher.publish(channel, message);
  }

  since(channel: string, lastId: string): Promise<Resume> {
    if (this.stored === undefined) return Promise.resolve({ kind: "gap", reason: "unknown id" });
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.stored.since(this.prefix + channel, lastId).catch(this.unavailable);
  }

  subscribe(channel: string): Promise<void> | undefined {
    if (!this.up) return Promise.reject(new BrokerUnavailable(this.problem));
    return this.channels.want(channel);
  }

  unsubscribe(channel: string): void {
    this.channels.unwant(channel);
  }

  close(): Promise<void> {
    return this.connections.close();
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
        this.channels.refused(command.batch, new BrokerUnavailable(`redis refused to subscribe: ${reason}`));
      },
    );
  }

  /** Turns a failed publish into the refusal the doors answer with. */
  private readonly unavailable = (error: Error): never => {
    throw new BrokerUnavailable(this.problem ?? `redis: ${this.connections.redact(error.message)}`);
  };
}

/** The broker for --redis, to give to the hub. */
export function redisBroker(options: RedisBrokerOptions): (deliver: Deliver) => RedisBroker {
  return (deliver) => new RedisBroker(options, deliver);
}
