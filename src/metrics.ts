// Metrics for Prometheus, served by a second Bun.serve on --mport (127.0.0.1:8082 unless told), apart from the
// channels so that a scrape never competes with clients and the port is never exposed by a proxy that forwards
// everything.
//
// The hub keeps its totals as plain numbers; they are read into prom-client only when scraped, so counting
// costs nothing per message. No label ever carries a channel name: ten thousand channels add no series.

import { prometheus } from "@hono/prometheus";
import type { MiddlewareHandler } from "hono";
import { type Aggregator, Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import pkg from "../package.json" with { type: "json" };
import { AUTH_RESULTS, type ForwardAuthHooks } from "./forward-auth.ts";
import { CLOSE_CLASSES, type Hub } from "./hub.ts";
import { REFUSAL_REASONS, type RefusalReason } from "./refusal.ts";
import { formatListen, type TcpListen } from "./setting-values.ts";

export interface Metrics {
  registry: Registry;
  /** Counts HTTP requests handled by the Hono app, by method, status and route pattern. */
  httpMiddleware: MiddlewareHandler;
  refused(reason: RefusalReason): void;
  /** The --auth-url calls and cache hits, counted where createMetrics was told of forward auth. */
  forwardAuth: ForwardAuthHooks;
  /** Stops the metrics server, if there is one. */
  stop(): Promise<void>;
  /** `http://HOST:PORT` with the port bound (--mport 0 picks one), or undefined when --mport is off. */
  url: string | undefined;
}

export interface Health {
  /** False once shutdown has begun: /healthz answers 503 so load balancers stop sending clients. */
  serving: boolean;
}

/** With `address` undefined (--mport off) nothing is served; the registry is still built. */
export function createMetrics(
  hub: Hub,
  health: Health,
  address: TcpListen | undefined,
  /** With --auth-url: its calls' series exist. */
  forwardAuth = false,
): Metrics {
  // Registered in the order a scrape lists them: pinghub's own series first, then HTTP and the runtime's.
  const registry = new Registry();
  new Gauge({
    name: "pinghub_build_info",
    help: "Always 1; the version is in its label.",
    labelNames: ["version"],
    registers: [registry],
    // Under --workers the parent adds up the workers' series (worker-metrics.ts): this one is not a sum.
    aggregator: "first",
  }).set({ version: pkg.version }, 1);
  gauge(registry, "pinghub_websockets", "Connected websockets.", () => hub.websockets);
  gauge(registry, "pinghub_sse_subscribers", "Connected Server-Sent Events subscribers.", () => hub.eventStreams);
  gauge(registry, "pinghub_channels", "Channels with at least one subscriber.", () => hub.channelCount);
  const history = hub.broker.localHistory;
  if (history !== undefined) {
    gauge(registry, "pinghub_history_bytes", "Memory the kept messages are reckoned to use.", () => history.bytes);
    gauge(registry, "pinghub_history_channels", "Channels with kept messages.", () => history.channelCount);
  }
  const totals = hub.counters;
  total(registry, "pinghub_post_messages_total", "Messages published by POST.", () => totals.postMessages);
  total(
    registry,
    "pinghub_websocket_messages_total",
    "Messages published by websocket clients.",
    () => totals.websocketMessages,
  );
  total(
    registry,
    "pinghub_dropped_messages_total",
    "Messages published to a channel with no subscribers.",
    () => totals.droppedMessages,
  );
  total(
    registry,
    "pinghub_sent_messages_total",
    "Deliveries: one per subscriber a message went to.",
    () => totals.sentMessages,
  );
  total(
    registry,
    "pinghub_slow_subscribers_total",
    "Subscribers disconnected for their backlog: past --max-backlog, or stuck longest past --max-backlog-total.",
    () => totals.slowSubscribers,
  );
  total(
    registry,
    "pinghub_slow_subscribers_over_budget_total",
    "Of those, the subscribers cut off, stuck longest first, because all backlogs together passed --max-backlog-total.",
    () => hub.backlog.cutOffOverTotal,
  );
  gauge(
    registry,
    "pinghub_backlog_bytes",
    "Bytes held in the process for subscribers that fall behind, as last known (at most this), against --max-backlog-total.",
    () => hub.backlog.total,
  );
  const cluster = hub.broker.cluster;
  if (cluster !== undefined) {
    // Under --workers, 1 only when every worker has Redis.
    gauge(
      registry,
      "pinghub_redis_up",
      "1 while Redis carries this node's messages, 0 while it cannot.",
      () => (cluster.up ? 1 : 0),
      "min",
    );
    total(
      registry,
      "pinghub_redis_reconnects_total",
      "Times this node came back after losing Redis.",
      () => cluster.reconnects,
    );
    gauge(
      registry,
      "pinghub_redis_subscriptions",
      "Channels this node wants from Redis: those it has subscribers of, and those whose last one just left.",
      () => cluster.subscriptions,
    );
    total(
      registry,
      "pinghub_redis_bad_messages_total",
      "Payloads on pinghub's Redis channels that were not pinghub's, or held a message over --max-message-size: dropped whole.",
      () => cluster.badMessages,
    );
    total(
      registry,
      "pinghub_redis_lost_total",
      "With --history: channels that, catching up after an outage, found their history no longer held what they missed.",
      () => cluster.lost,
    );
  }
  total(registry, "pinghub_websockets_opened_total", "Websockets opened.", () => hub.counters.websocketsOpened);
  new Counter({
    name: "pinghub_websockets_closed_total",
    help:
      "Websockets closed, by the class of their close code: normal (1000), going_away (1001), " +
      "no_close_frame (1005, 1006), refused (1003, 1007, 1008, 1009, 1013), other.",
    labelNames: ["code_class"],
    registers: [registry],
    collect() {
      this.reset();
      for (const codeClass of CLOSE_CLASSES)
        this.inc({ code_class: codeClass }, hub.counters.websocketsClosed[codeClass]);
    },
  });
  const refusals = new Counter({
    name: "pinghub_refused_total",
    help: "Requests and websockets refused, by reason.",
    labelNames: ["reason"],
    registers: [registry],
  });
  // Every reason is present from the start, at zero, so rate() works from the first scrape.
  for (const reason of REFUSAL_REASONS) refusals.inc({ reason }, 0);

  const authHooks = forwardAuth ? forwardAuthMetrics(registry) : {};

  collectDefaultMetrics({ register: registry });
  // prom-client names these gauges *_total, which Prometheus reserves for counters (promtool says so); the
  // same figures remain, by type, in nodejs_active_handles, nodejs_active_requests and nodejs_active_resources.
  for (const name of ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"]) {
    registry.removeSingleMetric(name);
  }
  const { registerMetrics } = prometheus({ registry });

  const server =
    address === undefined
      ? undefined
      : Bun.serve({
          hostname: address.hostname,
          port: address.port,
          async fetch(req) {
            const path = new URL(req.url).pathname;
            if (path === "/metrics") {
              return new Response(await registry.metrics(), { headers: { "Content-Type": registry.contentType } });
            }
            if (path === "/healthz") {
              if (!health.serving) return new Response("shutting down\n", { status: 503 });
              // Cluster mode: a node that cannot reach Redis, or has not re-subscribed yet, can promise nothing.
              const problem = hub.unavailable;
              if (problem !== undefined) return new Response(`${problem}\n`, { status: 503 });
              // Serving, with something an operator should read (cluster mode: the Redis user's narrow rights).
              const warning = cluster?.warning;
              return new Response(warning === undefined ? "ok\n" : `ok; warning: ${warning}\n`);
            }
            return new Response("not found: try /metrics or /healthz\n", { status: 404 });
          },
        });

  return {
    registry,
    httpMiddleware: registerMetrics,
    refused: (reason) => refusals.inc({ reason }),
    forwardAuth: authHooks,
    url:
      address === undefined || server === undefined
        ? undefined
        : `http://${formatListen({ ...address, port: server.port ?? address.port })}`,
    async stop() {
      await server?.stop(true);
    },
  };
}

/** Calls to --auth-url, by how they ended, how long they took, and the checks its cache answered instead. */
function forwardAuthMetrics(registry: Registry): ForwardAuthHooks {
  const requests = new Counter({
    name: "pinghub_auth_requests_total",
    help: "Calls to the --auth-url application, by result.",
    labelNames: ["result"],
    registers: [registry],
  });
  for (const result of AUTH_RESULTS) requests.inc({ result }, 0);
  const duration = new Histogram({
    name: "pinghub_auth_request_duration_seconds",
    help: "Time the --auth-url application took to answer (or to time out).",
    // From a local answer (1 ms) to past the default --auth-timeout.
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });
  const hits = new Counter({
    name: "pinghub_auth_cache_hits_total",
    help: "Checks answered from the --auth-url answers kept for their max-age, without a call.",
    registers: [registry],
  });
  return {
    answered(result, seconds) {
      requests.inc({ result });
      duration.observe(seconds);
    },
    cacheHit: () => hits.inc(),
  };
}

function gauge(
  registry: Registry,
  name: string,
  help: string,
  read: () => number,
  aggregator: Aggregator = "sum",
): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    aggregator,
    collect() {
      this.set(read());
    },
  });
}

function total(registry: Registry, name: string, help: string, read: () => number): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      // The hub's count only grows, so resetting and adding it back keeps the counter monotonic.
      this.reset();
      this.inc(read());
    },
  });
}
