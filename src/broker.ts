// The broker carries each message from the hub that accepted it to the hubs that deliver it. It sits below the
// hub and knows neither websockets nor HTTP: the hub asks it to publish, and it calls the hub's deliver when a
// message is to reach this node's subscribers. Chosen once at start-up: the local broker (one process, the
// default) or the Redis broker (cluster mode, redis-broker.ts). Nothing above the hub knows which.
//
// History, when on, belongs to the broker too (history.ts in process, a Redis stream in cluster mode): it gives
// each message its id as it carries it, so that ids mean the same on every node.

import {
  type GapReason,
  type HistorySettings,
  LocalHistory,
  NO_HISTORY,
  NOTHING_KEPT,
  type Resume,
} from "./history.ts";

/** Hands a message, with its id when history is on, to this node's subscribers of a channel; returns how many. */
export type Deliver = (channel: string, message: string, id: string | undefined) => number;

/**
 * Tells this node's subscribers of a channel that they missed messages that can no longer be given (cluster mode
 * with history, after an outage the channel's stream did not cover): SSE streams get a `gap` event, then
 * `position` when given (where the channel rejoined, when no message follows to carry an id). Returns the number
 * of websockets, whose protocol has no such event: the broker counts and logs their loss.
 */
export type Gap = (channel: string, reason: GapReason, position: string | undefined) => number;

/** Cluster mode's figures, for the metrics; the local broker has none. */
export interface ClusterStatus {
  /** Redis reachable and every channel with local subscribers subscribed there. */
  readonly up: boolean;
  /** Times the broker came back after losing Redis. */
  readonly reconnects: number;
  /** Channels this node wants from Redis: the set re-subscribing after a reconnect sends. */
  readonly subscriptions: number;
  /** Payloads on pinghub's Redis channels dropped for not being pinghub's shape (redis-wire.ts). */
  readonly badMessages: number;
  /** A standing problem that does not stop the node (the Redis user kept from some names), for /healthz. */
  readonly warning: string | undefined;
  /** Channels that, catching up after an outage, found their history no longer held what they missed. */
  readonly lost: number;
}

/** What the hub needs from a broker. */
export interface Broker {
  /** Set in cluster mode, where publish answers with a count of nodes, not of subscribers. */
  readonly cluster: ClusterStatus | undefined;
  /**
   * Why the broker cannot take a message or a new subscriber now, in one line; undefined when it can. Always
   * undefined for the local broker.
   */
  readonly problem: string | undefined;
  /**
   * Carries a message to every subscriber of the channel. The local broker delivers it at once and returns the
   * number of subscribers; the Redis broker resolves with the number of nodes that had subscribers once Redis
   * has taken it, and rejects if Redis cannot take it (the refusal then says `problem`).
   */
  publish(channel: string, message: string): number | Promise<number>;
  /**
   * Makes this node hear a channel's messages, before its first local subscriber joins: undefined when it
   * already does (always, for the local broker), or a promise that settles once it does.
   */
  subscribe(channel: string): Promise<void> | undefined;
  /** This node has no subscriber of the channel any more. */
  unsubscribe(channel: string): void;
  /** True when history is on: every message has an id, and `since` can resume. */
  readonly history: boolean;
  /**
   * What a subscriber that last saw message `lastId` of a channel is to be given: the messages after it still
   * kept, or a gap. Asked after the subscriber has joined, so that nothing published meanwhile is missed (the
   * caller drops what it is then given twice, by id).
   */
  since(channel: string, lastId: string): Resume | Promise<Resume>;
  /**
   * What a new subscriber is given: the newest `count` messages kept (0: none), and the channel's position, from
   * which it can resume later. Asked after the subscriber has joined, as `since` is. Without history: nothing.
   */
  latest(channel: string, count: number): Resume | Promise<Resume>;
  /** The history's own figures for the metrics, in process; undefined when it lives elsewhere or is off. */
  readonly localHistory: LocalHistory | undefined;
  /** Settles once the broker can first carry messages: at once for the local broker. */
  readonly ready: Promise<void>;
  /** Closes the broker's connections cleanly, at shutdown. */
  close(): Promise<void>;
}

/** Makes the broker for a hub, given the hub's deliver and gap. */
export type BrokerFactory = (deliver: Deliver, gap: Gap) => Broker;

/** A message or a subscriber refused because the broker cannot carry it now: 503 for HTTP, 1013 for websockets. */
export class BrokerUnavailable extends Error {}

/** The single node's broker: a message goes straight to the hub's deliver, in the same tick. */
export function localBroker(history?: HistorySettings): BrokerFactory {
  return (deliver) => {
    const kept = history === undefined || history.size === 0 ? undefined : new LocalHistory(history);
    return {
      cluster: undefined,
      problem: undefined,
      history: kept !== undefined,
      localHistory: kept,
      // Without history this is the hub's deliver itself: nothing added on the single node's hot path.
      publish:
        kept === undefined
          ? (channel, message) => deliver(channel, message, undefined)
          : (channel, message) => deliver(channel, message, kept.add(channel, message)),
      since: (channel, lastId) => kept?.since(channel, lastId) ?? NO_HISTORY,
      latest: (channel, count) => kept?.latest(channel, count) ?? NOTHING_KEPT,
      subscribe: () => undefined,
      unsubscribe: () => {},
      ready: Promise.resolve(),
      close: async () => kept?.close(),
    };
  };
}
