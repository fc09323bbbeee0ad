// --workers N: the machine's one metrics endpoint, served by the supervising parent. A scrape asks every worker
// for its figures over the IPC channel (worker-link.ts) and adds them up with prom-client's AggregatorRegistry:
// counters and most gauges are summed (websockets, deliveries, memory), a few say how they combine instead
// (pinghub_redis_up is the lowest, pinghub_build_info the first). Only what matters per worker carries a
// `worker` label: whether it is up, its restarts, its memory.
//
// A worker that is down or restarting is missing from the sum, so a counter can go down for a scrape or two;
// Prometheus's rate() takes that for a counter reset.

import { AggregatorRegistry, Counter, Gauge, Registry } from "prom-client";
import { formatListen, type TcpListen } from "./config.ts";
import type { Supervisor } from "./workers.ts";

export interface WorkerMetricsServer {
  /** `http://HOST:PORT` */
  url: string;
  stop(): Promise<void>;
}

/** Serves /metrics (every worker's, added up) and /healthz (200 only when every worker serves). */
export function serveWorkerMetrics(supervisor: Supervisor, address: TcpListen): WorkerMetricsServer {
  const own = new Registry();
  const { workers } = supervisor;
  new Gauge({
    name: "pinghub_workers",
    help: "Workers this machine runs (--workers).",
    registers: [own],
  }).set(workers.length);
  new Gauge({
    name: "pinghub_worker_up",
    help: "1 while the worker serves, 0 while it is down or restarting.",
    labelNames: ["worker"],
    registers: [own],
    collect() {
      this.reset();
      for (const w of workers) this.set({ worker: String(w.id) }, w.up ? 1 : 0);
    },
  });
  new Counter({
    name: "pinghub_worker_restarts_total",
    help: "Times the worker was started again after dying.",
    labelNames: ["worker"],
    registers: [own],
    collect() {
      this.reset();
      for (const w of workers) this.inc({ worker: String(w.id) }, w.restarts);
    },
  });
  const resident = new Gauge({
    name: "pinghub_worker_resident_memory_bytes",
    help: "Resident memory of each worker.",
    labelNames: ["worker"],
    registers: [own],
  });

  const server = Bun.serve({
    hostname: address.hostname,
    port: address.port,
    async fetch(req) {
      const path = new URL(req.url).pathname;
      if (path === "/metrics") {
        const scrapes = await Promise.all(workers.map((w) => (w.up ? w.scrape().catch(() => undefined) : undefined)));
        resident.reset();
        scrapes.forEach((metrics, i) => {
          const rss = metrics?.find((m) => m.name === "process_resident_memory_bytes")?.values[0]?.value;
          if (rss !== undefined) resident.set({ worker: String(workers[i]?.id) }, rss);
        });
        const all = [...scrapes.filter((m) => m !== undefined), await own.getMetricsAsJSON()];
        const registry = AggregatorRegistry.aggregate(all);
        return new Response(await registry.metrics(), { headers: { "Content-Type": registry.contentType } });
      }
      if (path === "/healthz") {
        if (supervisor.stopping) return new Response("shutting down\n", { status: 503 });
        const problems = await Promise.all(workers.map((w) => w.health()));
        const i = problems.findIndex((p) => p !== undefined);
        return i < 0
          ? new Response("ok\n")
          : new Response(`worker ${workers[i]?.id}: ${problems[i]}\n`, { status: 503 });
      }
      return new Response("not found: try /metrics or /healthz\n", { status: 404 });
    },
  });
  return {
    url: `http://${formatListen({ ...address, port: server.port ?? address.port })}`,
    async stop() {
      await server.stop(true);
    },
  };
}
