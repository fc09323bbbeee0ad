// A worker's side of --workers (workers.ts is the parent's): the messages a worker and its supervising parent
// exchange over Bun's IPC channel, and what a worker does with them. A worker is an ordinary pinghub process
// started by the parent with the same command line; it knows it is one by the id in its environment and by the
// IPC channel the parent opened. It serves no metrics of its own: the parent asks it for its figures and adds
// every worker's up, so that a machine has one metrics endpoint.

import type { Registry } from "prom-client";

/** The worker's number, 1 to N, set by the parent in the environment of each worker it starts. */
export const WORKER_ID_VARIABLE = "PINGHUB_WORKER_ID";
/**
 * The port every worker listens on, set by the parent once the first worker has bound it: with `--addr
 * host:0` the first worker is given a free port by the system, and the others must share that one.
 */
export const WORKER_PORT_VARIABLE = "PINGHUB_WORKER_PORT";

/** One worker's metrics, as prom-client gives them for adding up (`Registry.getMetricsAsJSON`). */
export type WorkerMetrics = Awaited<ReturnType<Registry["getMetricsAsJSON"]>>;

/** From the parent to a worker. */
export type ParentMessage = { type: "scrape"; id: number } | { type: "health"; id: number };

/** From a worker to the parent. */
export type WorkerMessage =
  | { type: "ready"; port: number }
  | { type: "scrape"; id: number; metrics: WorkerMetrics }
  | { type: "health"; id: number; problem: string | undefined };

/** This process's worker number, or undefined when it is not a worker of a supervising parent. */
export function workerId(env: Record<string, string | undefined> = process.env): number | undefined {
  // Without the IPC channel this is not the parent's child, whatever the environment says.
  if (process.send === undefined) return undefined;
  const id = Number(env[WORKER_ID_VARIABLE]);
  return Number.isSafeInteger(id) && id > 0 ? id : undefined;
}

/** The port the parent said to share, if it has said one. */
export function sharedPort(env: Record<string, string | undefined> = process.env): number | undefined {
  const port = Number(env[WORKER_PORT_VARIABLE]);
  return env[WORKER_PORT_VARIABLE] !== undefined && Number.isInteger(port) && port > 0 ? port : undefined;
}

export interface WorkerLink {
  /** Tells the parent this worker serves, on this port. */
  ready(port: number): void;
  /** Resolves when the parent is gone (the IPC channel closed): the worker then stops as on SIGTERM. */
  readonly parentGone: Promise<void>;
}

/**
 * Answers the parent's questions: the worker's metrics as prom-client's JSON (which the parent adds up), and
 * why it cannot serve, if it cannot (`problem`: shutting down, Redis away).
 */
export function linkToParent(registry: Registry, problem: () => string | undefined): WorkerLink {
  const send = (message: WorkerMessage) => process.send?.(message);
  process.on("message", async (message: ParentMessage) => {
    if (message.type === "scrape") send({ type: "scrape", id: message.id, metrics: await registry.getMetricsAsJSON() });
    else if (message.type === "health") send({ type: "health", id: message.id, problem: problem() });
  });
  // A parent killed without a word (SIGKILL) leaves no one to stop its workers; Bun closes the IPC channel, and
  // the worker stops itself rather than serve on unsupervised.
  const parentGone = new Promise<void>((resolve) => process.once("disconnect", () => resolve()));
  return { ready: (port) => send({ type: "ready", port }), parentGone };
}
