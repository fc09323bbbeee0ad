// --workers N: the supervising parent. It serves no channel itself: it starts N pinghub processes with its own
// command line, each a cluster node on --redis that listens on the same TCP port (Bun.serve's reusePort, so the
// kernel spreads new connections over them), and it keeps them running. One pid for systemd, one log (each
// worker's lines, labelled, pass through the parent's), one metrics endpoint (worker-metrics.ts).
//
// A worker that dies is started again after a delay that doubles with each death; one that dies more than
// MAX_DEATHS_PER_WINDOW times within DEATH_WINDOW_MS is a fault no restart will cure, and the parent stops the
// others and exits 1, so that systemd sees it. SIGTERM or SIGINT stops every worker as it would stop a single
// node (every websocket closed with 1001), and the parent exits 0 once they all have.

import type { Subprocess } from "bun";
import type { Log } from "./log.ts";
import {
  type ParentMessage,
  WORKER_ID_VARIABLE,
  WORKER_PORT_VARIABLE,
  type WorkerMessage,
  type WorkerMetrics,
} from "./worker-link.ts";

export interface SuperviseOptions {
  /** How many workers. */
  count: number;
  /** The command that starts one worker: this process's own command line. */
  command: string[];
  /** The port the workers share; 0 lets the first worker take a free one, which the others then share. */
  port: number;
  /** Seconds a worker may take to stop at shutdown (--shutdown-timeout) before it is killed. */
  shutdownTimeout: number;
  log: Log;
  /** Resolves with the signal's name on SIGTERM or SIGINT. */
  stopSignal: Promise<string>;
  /** Called once every worker serves, with the port they share; returns what to add to the start line. */
  started(port: number): void;
}

/** A worker as the metrics and health endpoint sees it. */
export interface SupervisedWorker {
  readonly id: number;
  /** Started and serving: it said it was ready and has not exited since. */
  readonly up: boolean;
  /** Times it was started again after dying. */
  readonly restarts: number;
  /** Its metrics, as prom-client's JSON. Rejects if it does not answer within ASK_TIMEOUT_MS. */
  scrape(): Promise<WorkerMetrics>;
  /** Why it cannot serve (Redis away, shutting down), or undefined when it can. */
  health(): Promise<string | undefined>;
}

/** A worker that dies this many times within the window is not started again: the parent gives up. */
export const MAX_DEATHS_PER_WINDOW = 5;
export const DEATH_WINDOW_MS = 60_000;
/** Delay before the first restart, doubled for each further death within the window. */
const FIRST_RESTART_DELAY_MS = 250;
/** A worker still running this long past --shutdown-timeout at shutdown is killed. */
const STOP_MARGIN_MS = 5000;
/** A worker busy past this does not hold up a scrape or a health check: it counts as not answering. */
const ASK_TIMEOUT_MS = 2000;
/** A worker's own log lines start with their time; anything else it writes (a crash's trace) is labelled. */
const LOG_LINE = /^\d{4}-\d\d-\d\dT\S+ /;

class Worker implements SupervisedWorker {
  proc: Subprocess<"ignore", "pipe", "pipe"> | undefined;
  up = false;
  restarts = 0;
  /** When it died, within the last DEATH_WINDOW_MS. */
  deaths: number[] = [];
  restartTimer: ReturnType<typeof setTimeout> | undefined;
  private asked = 0;
  private readonly answers = new Map<number, (message: WorkerMessage | undefined) => void>();

  constructor(readonly id: number) {}

  answered(message: WorkerMessage): void {
    if (message.type === "ready") return;
    this.answers.get(message.id)?.(message);
    this.answers.delete(message.id);
  }

  /** Fails every question still open: the worker is gone. */
  gone(): void {
    for (const answer of this.answers.values()) answer(undefined);
    this.answers.clear();
  }

  async scrape(): Promise<WorkerMetrics> {
    const answer = await this.ask("scrape");
    if (answer?.type !== "scrape") throw new Error(`worker ${this.id} did not answer`);
    return answer.metrics;
  }

  async health(): Promise<string | undefined> {
    if (!this.up) return "not running";
    const answer = await this.ask("health");
    return answer?.type === "health" ? answer.problem : "not answering";
  }

  private ask(type: ParentMessage["type"]): Promise<WorkerMessage | undefined> {
    const proc = this.proc;
    if (proc === undefined || !this.up) return Promise.resolve(undefined);
    const id = ++this.asked;
    const { promise, resolve } = Promise.withResolvers<WorkerMessage | undefined>();
    const timer = setTimeout(() => {
      this.answers.delete(id);
      resolve(undefined);
    }, ASK_TIMEOUT_MS);
    this.answers.set(id, (message) => {
      clearTimeout(timer);
      resolve(message);
    });
    proc.send({ type, id } satisfies ParentMessage);
    return promise;
  }
}

export interface Supervisor {
  workers: readonly SupervisedWorker[];
  /** True once shutdown has begun. */
  readonly stopping: boolean;
  /** Starts the workers; resolves with the parent's exit status once every worker has stopped. */
  run(): Promise<number>;
}

/** The workers' supervisor: `run` starts them and keeps them until a stop signal, or until one cannot be kept. */
export function superviseWorkers(options: SuperviseOptions): Supervisor {
  const { logger } = options.log;
  const workers = Array.from({ length: options.count }, (_, i) => new Worker(i + 1));
  let port = options.port;
  let stopping = false;
  let startedAll = false;
  /** Resolves with an exit status when the workers cannot be started or kept running. */
  const failed = Promise.withResolvers<number>();

  const spawn = (worker: Worker): Promise<void> => {
    const ready = Promise.withResolvers<void>();
    const env: Record<string, string | undefined> = { ...process.env, [WORKER_ID_VARIABLE]: String(worker.id) };
    if (port !== 0) env[WORKER_PORT_VARIABLE] = String(port);
    const proc = Bun.spawn(options.command, {
      env,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      serialization: "json",
      ipc(message: WorkerMessage) {
        if (message.type === "ready") {
          if (port === 0) port = message.port;
          worker.up = true;
          ready.resolve();
        } else worker.answered(message);
      },
    });
    worker.proc = proc;
    const label = `worker ${worker.id}`;
    const output = Promise.all([
      passLines(proc.stdout, label, options.log.write),
      passLines(proc.stderr, label, options.log.write),
    ]);
    void (async () => {
      await proc.exited;
      // Its last lines (why it failed, a crash's trace) come before the parent's word on its death.
      await output;
      worker.up = false;
      worker.proc = undefined;
      worker.gone();
      const how = proc.signalCode === null ? `with status ${proc.exitCode}` : `by ${proc.signalCode}`;
      ready.reject(new Error(`${label} exited ${how} before it served`));
      if (stopping) return;
      if (!startedAll) {
        failed.resolve(proc.exitCode === null || proc.exitCode === 0 ? 1 : proc.exitCode);
        return;
      }
      died(worker, `${label} (pid ${proc.pid}) exited ${how}`);
    })();
    return ready.promise;
  };

  const died = (worker: Worker, what: string) => {
    const now = Date.now();
    worker.deaths = [...worker.deaths.filter((t) => now - t < DEATH_WINDOW_MS), now];
    if (worker.deaths.length > MAX_DEATHS_PER_WINDOW) {
      logger.error(
        `${what}: it died ${worker.deaths.length} times within ${DEATH_WINDOW_MS / 1000} s; giving up, stopping every worker`,
      );
      failed.resolve(1);
      return;
    }
    const delay = FIRST_RESTART_DELAY_MS * 2 ** (worker.deaths.length - 1);
    logger.warn(`${what}; starting it again in ${delay} ms`);
    worker.restartTimer = setTimeout(() => {
      worker.restartTimer = undefined;
      if (stopping) return;
      worker.restarts++;
      spawn(worker).then(
        () => logger.info(`worker ${worker.id} serves again`),
        () => {},
      );
    }, delay);
  };

  const start = async () => {
    // The first one alone: with port 0 it is given the port the others are then told to share.
    const [first, ...others] = workers;
    if (first === undefined) return;
    await spawn(first);
    await Promise.all(others.map(spawn));
    startedAll = true;
    options.started(port);
  };

  const stopAll = async (): Promise<boolean> => {
    stopping = true;
    for (const worker of workers) clearTimeout(worker.restartTimer);
    const running = workers.flatMap((w) => (w.proc === undefined ? [] : [w.proc]));
    for (const proc of running) proc.kill("SIGTERM");
    const kill = setTimeout(
      () => {
        for (const proc of running) {
          if (proc.exitCode !== null || proc.signalCode !== null) continue;
          logger.error(`worker (pid ${proc.pid}) still running ${options.shutdownTimeout} s after SIGTERM; killing it`);
          proc.kill("SIGKILL");
        }
      },
      options.shutdownTimeout * 1000 + STOP_MARGIN_MS,
    );
    const statuses = await Promise.all(running.map((proc) => proc.exited));
    clearTimeout(kill);
    return statuses.every((status) => status === 0);
  };

  const run = async () => {
    start().catch(() => {
      // The worker's exit decides the status (failed, above); its own lines said why.
    });
    const outcome = await Promise.race([
      options.stopSignal.then((signal) => ({ signal, status: 0 })),
      failed.promise.then((status) => ({ signal: undefined, status })),
    ]);
    if (outcome.signal !== undefined) logger.info(`stopping on ${outcome.signal}: stopping ${options.count} workers`);
    const clean = await stopAll();
    if (outcome.signal !== undefined && !clean) return 1;
    return outcome.status;
  };

  return {
    workers,
    get stopping() {
      return stopping;
    },
    run,
  };
}

/** Copies a worker's output into the parent's log line by line, labelling lines that are not log lines. */
async function passLines(stream: ReadableStream<Uint8Array>, label: string, write: (line: string) => void) {
  const decoder = new TextDecoder();
  let rest = "";
  const emit = (line: string) => {
    if (line === "") return;
    write(LOG_LINE.test(line) ? `${line}\n` : `${new Date().toISOString()} error ${label}: ${line}\n`);
  };
  for await (const chunk of stream) {
    rest += decoder.decode(chunk, { stream: true });
    for (let end = rest.indexOf("\n"); end >= 0; end = rest.indexOf("\n")) {
      emit(rest.slice(0, end));
      rest = rest.slice(end + 1);
    }
  }
  emit(rest + decoder.decode());
}
