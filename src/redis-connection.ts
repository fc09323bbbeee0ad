// Cluster mode's two Redis connections and their health: one publishes (pipelined, no offline queue, so a
// publish while Redis is away fails at once instead of waiting), one holds the subscriptions. Each is pinged so
// that a Redis that hangs or a silent network cut is noticed within seconds; ioredis reconnects, and this file
// says, once each time, when the node can no longer carry messages and when it can again.
//
// "Up" needs more than two open connections: the subscriber connection must also hear every channel wanted
// (redis-subscriptions.ts decides that); the broker calls `checkUp` when it does.

import Redis, { type RedisOptions } from "ioredis";
import { sentinelOptions } from "./redis-sentinel.ts";
import { type TlsFiles, tlsOptions } from "./redis-tls.ts";
import type { RedisTarget } from "./redis-url.ts";

export type { TlsFiles };

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
/** TCP keepalive: notices a peer gone without a word (a network cut) within seconds rather than hours. */
const KEEPALIVE_MS = 5000;

export interface HealthReports {
  /** Told once when the broker can no longer carry messages, with why. */
  onDown(reason: string): void;
  /** Told once when it can again, with the number of channels subscribed; `first` on the first connection. */
  onUp(channels: number, first: boolean): void;
}

/** What the broker does as the connections come and go, told before health reports on them. */
export interface ConnectionHooks {
  /** A subscriber connection is ready: subscribe what is wanted on it. */
  connected(): void;
  /**
   * The subscriber connection is gone, and every subscription with it. `heardAt`: when it last showed Redis there
   * (made ready, or a PING answered), at most a ping interval before the loss began; a silent cut is only declared
   * a loss seconds later, and an outage is counted from when Redis was last heard (redis-catch-up.ts).
   */
  lost(heardAt: number): void;
  /** A publisher connection is ready: what waited for it (catching up) may go on. */
  publisherReady(): void;
}

/** What health needs to know of the subscriptions: whether all are in place, and how many are wanted. */
export interface SubscriptionsView {
  ready(): boolean;
  size(): number;
}

export class RedisConnections {
  readonly publisher: Redis;
  readonly subscriber: Redis;
  /** Settles once the node can first carry messages. */
  readonly ready: Promise<void>;
  /** Times the node came back after losing Redis. */
  reconnects = 0;
  private becameReady: () => void = () => {};
  private publisherReady = false;
  private wasUp = false;
  /** Up was said, and no down since: `checkUp` may be called again without saying it twice. */
  private saidUp = false;
  private downReported = false;
  private lastError: string | undefined;
  private closing = false;
  private readonly heartbeat: ReturnType<typeof setInterval>;
  /** Connections with a PING awaiting its answer. */
  private readonly pinging = new Set<Redis>();
  /**
   * Connections known to reach Redis since either was last lost: made ready since (a fresh handshake), or
   * answering a PING sent since. When one connection is lost, the other is in doubt: the same Redis may be gone
   * from under it, and an idle socket whose peer died is not always said closed at once (a killed Redis's FIN
   * was seen not to reach the publisher for over 100 ms under load, while the subscriber's came within 3 ms).
   * Saying "up" on such a socket counted one outage twice: up, then the first write (the rights check's) met
   * Redis's reset, down, up again. Up therefore waits for both connections to be proven.
   */
  private readonly proven = new Set<Redis>();
  /** Counts connection losses, so that a PING answered is proof only if it was sent after the last one. */
  private losses = 0;
  /** When the subscriber connection last showed Redis there: made ready, or a PING answered. */
  private subscriberHeardAt = 0;

  constructor(
    private readonly target: RedisTarget,
    tls: TlsFiles | undefined,
    private readonly subscriptions: SubscriptionsView,
    private readonly reports: HealthReports,
    hooks: ConnectionHooks,
  ) {
    this.ready = new Promise((resolve) => {
      this.becameReady = resolve;
    });
    // Every publish made while one turn of the event loop runs goes out in one write, and wakes Redis once: a
    // write per command cost more CPU, the node's and Redis's, than the command itself (see BENCHMARKS.md).
    this.publisher = new Redis({ ...connectionOptions(target, tls, "pinghub-publish"), enableAutoPipelining: true });
    // ioredis's own re-subscribing is off because it does not say when it is done: the broker does it.
    this.subscriber = new Redis({ ...connectionOptions(target, tls, "pinghub-subscribe"), autoResubscribe: false });

    for (const connection of [this.publisher, this.subscriber]) {
      // ioredis prints unhandled errors itself; the last one is kept as the reason given.
      connection.on("error", (error: Error) => {
        this.lastError = this.redact(error.message).replace(/\.$/, "");
        if (!this.wasUp && !this.downReported) this.reportDown();
      });
    }
    for (const connection of [this.publisher, this.subscriber]) {
      // Registered before the hooks below, which may call checkUp.
      connection.on("ready", () => this.proven.add(connection));
      connection.on("close", () => this.lose());
    }
    this.publisher.on("ready", () => {
      this.publisherReady = true;
      hooks.publisherReady();
      this.checkUp();
    });
    this.publisher.on("close", () => {
      this.publisherReady = false;
      this.reportDown();
    });
    this.subscriber.on("ready", () => {
      this.subscriberHeardAt = Date.now();
      hooks.connected();
    });
    this.subscriber.on("close", () => {
      hooks.lost(this.subscriberHeardAt || Date.now());
      this.reportDown();
    });
    this.heartbeat = setInterval(() => this.ping(), PING_INTERVAL_MS);
  }

  /** Both connections ready, proven since the last loss, and every wanted channel subscribed. */
  get up(): boolean {
    return this.publisherReady && this.subscriber.status === "ready" && this.subscriptions.ready() && this.bothProven;
  }

  private get bothProven(): boolean {
    return this.proven.has(this.publisher) && this.proven.has(this.subscriber);
  }

  /** Why the node cannot carry messages now, in one line; undefined when it can. */
  get problem(): string | undefined {
    if (this.up) return undefined;
    const display = this.target.display;
    if (this.closing) return "shutting down";
    if (!this.wasUp && this.lastError === undefined) return `connecting to redis at ${display}`;
    if (this.publisher.status === "ready" && this.subscriber.status === "ready") {
      return `redis at ${display}: re-subscribing ${this.subscriptions.size()} channels`;
    }
    return `redis at ${display} unreachable${this.lastError === undefined ? "" : `: ${this.lastError}`}`;
  }

  /** Says the node is up (once) if it now is: called when the publisher or the subscriptions become ready. */
  checkUp(): void {
    if (this.saidUp) return;
    if (!this.bothProven) this.prove();
    if (!this.up) return;
    this.saidUp = true;
    const first = !this.wasUp;
    if (!first) this.reconnects++;
    this.wasUp = true;
    this.downReported = false;
    this.lastError = undefined;
    this.reports.onUp(this.subscriptions.size(), first);
    this.becameReady();
  }

  /** Redis's own messages never hold the password, but an error from a library might: never show it. */
  redact(text: string): string {
    const target = this.target;
    return "password" in target && target.password !== undefined ? text.replaceAll(target.password, "***") : text;
  }

  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.heartbeat);
    await Promise.all([quit(this.publisher), quit(this.subscriber)]);
  }

  /**
   * Pings each ready connection that has no PING awaiting its answer. The answer itself is not needed: a
   * connection with a command unanswered for PING_TIMEOUT_MS is destroyed by ioredis (socketTimeout), which
   * then reconnects.
   */
  private ping(): void {
    for (const connection of [this.publisher, this.subscriber]) this.pingOnce(connection);
  }

  /** A connection closed: the other one is in doubt until it answers again (see `proven`). */
  private lose(): void {
    this.losses++;
    this.proven.clear();
  }

  /**
   * PINGs each ready connection not proven yet; its answer proves it and checks up again. A dead socket fails
   * the PING at once (Redis's reset) or after PING_TIMEOUT_MS (socketTimeout), and ioredis reconnects it.
   */
  private prove(): void {
    for (const connection of [this.publisher, this.subscriber]) {
      if (!this.proven.has(connection)) this.pingOnce(connection);
    }
  }

  /** PINGs a ready connection unless a PING awaits its answer there; any answer proves it (see `prove`). */
  private pingOnce(connection: Redis): void {
    if (connection.status !== "ready" || this.pinging.has(connection)) return;
    this.pinging.add(connection);
    const sentAfter = this.losses;
    connection.ping().then(
      () => {
        this.pinging.delete(connection);
        if (connection === this.subscriber) this.subscriberHeardAt = Date.now();
        if (this.proven.has(connection)) return;
        // Sent before a loss, its answer proves nothing: ask again if up still waits on it.
        if (this.losses !== sentAfter) {
          if (!this.saidUp) this.pingOnce(connection);
          return;
        }
        this.proven.add(connection);
        this.checkUp();
      },
      () => this.pinging.delete(connection),
    );
  }

  private reportDown(): void {
    this.saidUp = false;
    if (this.downReported || this.closing) return;
    this.downReported = true;
    this.reports.onDown(this.problem ?? "redis connection lost");
  }
}

function connectionOptions(target: RedisTarget, tls: TlsFiles | undefined, name: string): RedisOptions {
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
    // At once after a connection drops (most drops are one connection, and Redis is there), then 100 ms, 200 ms,
    // … up to MAX_RETRY_DELAY_MS: nodes cut off together come back close together, and the window in which
    // messages can miss a node (without --history) is as short as reconnecting allows.
    retryStrategy: (times: number) =>
      times === 1 ? 0 : Math.min(100 * 2 ** Math.min(times - 2, 5), MAX_RETRY_DELAY_MS),
    keepAlive: KEEPALIVE_MS,
  };
  if (target.kind === "unix") return { ...common, path: target.path };
  if (target.kind === "sentinel") return { ...common, ...sentinelOptions(target) };
  // main.ts gives a Redis Cluster its own broker (redis-cluster-broker.ts); this one never sees it.
  if (target.kind === "cluster") throw new Error("a Redis Cluster takes the Redis Cluster broker");
  return {
    ...common,
    host: target.host,
    port: target.port,
    username: target.username,
    password: target.password,
    db: target.db,
    tls: target.tls ? tlsOptions(target.host, tls) : undefined,
  };
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
