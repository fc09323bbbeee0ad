// The pinghub process: read the command line, open the log, start the metrics and channel servers, reopen the
// log on SIGHUP, and shut down cleanly on SIGTERM or SIGINT. `bun run pinghub` runs this file.

import pkg from "../package.json" with { type: "json" };
import { localBroker } from "./broker.ts";
import { parseCommandLine } from "./cli.ts";
import { type Config, formatListen } from "./config.ts";
import { watchDescriptors } from "./descriptors.ts";
import { historySettings } from "./history.ts";
import { Hub } from "./hub.ts";
import { createLog, type Log } from "./log.ts";
import { createMetrics, type Health, type Metrics } from "./metrics.ts";
import { redisTlsFiles } from "./redis-tls.ts";
import { type ChannelServer, startChannelServer } from "./server.ts";
import { linkToParent, sharedPort, type WorkerLink, workerId } from "./worker-link.ts";

/** How long a cluster node waits for Redis at start-up before it serves without it. */
const STARTUP_WAIT_MS = 3000;
/** Shortest time between two warnings that --auth-url did not answer yes or no. */
const AUTH_WARNING_INTERVAL_MS = 10_000;

async function main(): Promise<number> {
  const cli = await parseCommandLine(process.argv.slice(2), process.env);
  switch (cli.kind) {
    case "exit":
      if (cli.stdout) process.stdout.write(cli.stdout);
      if (cli.stderr) process.stderr.write(cli.stderr);
      return cli.status;
    case "watch":
      return (await import("./client.ts")).watch(cli.url, cli);
    case "publish":
      return (await import("./client.ts")).publish(cli.url, cli.message, undefined, cli.token);
    case "run":
      return run(cli.config);
  }
}

async function run(config: Config): Promise<number> {
  // Listened for from the start, so a signal during start-up still ends in an orderly stop. Not `once`: under
  // --workers a worker may be sent the same signal twice (by the parent, and by a terminal's or systemd's
  // signal to the whole group), and the second must not kill it halfway through its stop.
  const stopSignal = new Promise<string>((resolve) => {
    process.on("SIGTERM", () => resolve("SIGTERM"));
    process.on("SIGINT", () => resolve("SIGINT"));
  });
  const worker = workerId();
  if (config.workers > 1 && worker === undefined) return runWorkers(config, stopSignal);
  if (worker !== undefined) {
    // A worker logs to its stderr, which the parent copies into the one log; it serves no metrics of its own;
    // it listens on the port the parent says, the one the first worker was given.
    config = { ...config, logFile: undefined, metrics: undefined };
    const port = sharedPort();
    if (port !== undefined && config.listen.kind === "tcp") config = { ...config, listen: { ...config.listen, port } };
  }
  let log: Log;
  try {
    log = createLog(config.logLevel, config.logFile, worker === undefined ? undefined : `worker ${worker}`);
  } catch (error) {
    process.stderr.write(`pinghub: cannot open log file ${config.logFile}: ${(error as Error).message}\n`);
    return 1;
  }
  const { logger } = log;
  const fatal = (line: string) => {
    logger.error(line);
    // When the log is a file, whoever started pinghub still sees why it did not start.
    if (config.logFile !== undefined) process.stderr.write(`${line}\n`);
    log.close();
    return 1;
  };

  const health: Health = { serving: true };
  const redis = config.redis;
  const history = historySettings(config);
  const reports = {
    onDown: (reason: string) =>
      logger.warn(`cluster: ${reason}; refusing publishes and new subscribers until it is back`),
    onUp: (channels: number, first: boolean) =>
      logger.info(
        first
          ? `cluster: connected to redis at ${redis?.display}`
          : `cluster: redis at ${redis?.display} is back; re-subscribed ${counted(channels, "channel")}`,
      ),
  };
  // What both Redis brokers are given besides their target.
  const onRedis = {
    tls: redisTlsFiles(config),
    prefix: config.redisPrefix,
    history,
    maxMessageBytes: config.maxMessageSize,
    warn: (line: string) => logger.warn(line),
    ...reports,
  };
  // The Redis brokers (ioredis with them) are imported only in cluster mode, so a single node never loads them:
  // about 2 MB of JavaScript heap and 20k objects, half of what pinghub's imports hold (bun:jsc heapStats after
  // a full GC); a single node starts with 3.7 MB less RSS (53.6 against 57.3 MB). Issue 20 §3 found the floor
  // with pinghub's imports added (and nothing of them called) slower per POST than the floor alone; whether
  // dropping these from a single node gains a measurable part of it did not repeat (17 alternating pairs).
  const broker =
    redis === undefined
      ? localBroker(history)
      : redis.kind === "cluster"
        ? (await import("./redis-cluster-broker.ts")).redisClusterBroker({ target: redis, ...onRedis })
        : (await import("./redis-broker.ts")).redisBroker({ target: redis, ...onRedis });
  const hub = new Hub(
    config,
    {
      slowSubscriber: (channel) =>
        logger.warn(`slow subscriber cut off: over ${config.maxBacklog} bytes behind on ${JSON.stringify(channel)}`),
      // One line for a whole herd: each subscriber of it is in the debug log, as its connection closes.
      overBacklogTotal: (cut, total) =>
        logger.warn(
          `slow subscribers cut off: ${cut} stuck longest, all backlogs together ${total} bytes, over ` +
            `--max-backlog-total ${config.maxBacklogTotal}`,
        ),
    },
    broker,
  );
  let metrics: Metrics;
  try {
    metrics = createMetrics(hub, health, config.metrics, config.authUrl !== undefined);
  } catch (error) {
    const where = config.metrics === undefined ? "" : ` on ${formatListen(config.metrics)}`;
    return fatal(`pinghub: cannot serve metrics${where}: ${(error as Error).message}`);
  }
  // Cluster mode: a node that listens before it reaches Redis could only refuse its first clients. It waits a
  // moment for Redis, then serves anyway (answering 503 until Redis is there), so nothing has to start first.
  const reachedRedis = await Promise.race([hub.broker.ready.then(() => true), Bun.sleep(STARTUP_WAIT_MS)]);
  if (reachedRedis === undefined) logger.warn("cluster: serving without redis for now; it is tried again every 2 s");
  let channels: ChannelServer;
  try {
    channels = await startChannelServer(config, hub, {
      refused: metrics.refused,
      debug: config.logLevel === "debug" ? (line) => logger.debug(line) : undefined,
      httpMiddleware: metrics.httpMiddleware,
      error: (error) => logger.warn(`request failed: ${error.message}`),
      forwardAuth: { ...metrics.forwardAuth, trouble: authTrouble(config, logger) },
    });
  } catch (error) {
    await metrics.stop();
    await hub.close();
    return fatal(`pinghub: cannot serve on ${formatListen(config.listen)}: ${(error as Error).message}`);
  }
  let link: WorkerLink | undefined;
  if (worker === undefined) {
    logger.info(
      `pinghub ${pkg.version} started: pid ${process.pid}, serving ${channels.url}, metrics ${metrics.url ?? "off"}`,
    );
  } else {
    logger.info(`started: pid ${process.pid}`);
    link = linkToParent(metrics.registry, () => (health.serving ? hub.unavailable : "shutting down"));
    link.ready(channels.server.port ?? 0);
  }

  const authorizing = describeAccess(config);
  if (authorizing !== undefined) logger.info(authorizing);
  if (!config.websocketPublish) logger.info("websockets subscribe only (--websocket-publish no): publish by POST");

  const stopWatching = watchDescriptors(logger);
  process.on("SIGHUP", () => {
    // A worker has no file: the parent holds the log and reopens it. The handler stays, so that a SIGHUP sent
    // to the whole group does not end the worker (Bun's default for it).
    if (worker !== undefined) return;
    if (config.logFile === undefined) {
      logger.info("SIGHUP: logging to stderr, there is no log file to reopen");
      return;
    }
    try {
      log.reopen();
      logger.info("log file reopened");
    } catch (error) {
      // Keep writing to the file we have rather than lose the log.
      logger.warn(`cannot reopen log file ${config.logFile}: ${(error as Error).message}`);
    }
  });
  const signal = await (link === undefined
    ? stopSignal
    : Promise.race([stopSignal, link.parentGone.then(() => "the parent's exit")]));

  health.serving = false;
  logger.info(
    `stopping on ${signal}: closing ${counted(hub.websockets, "websocket")} and ${counted(hub.eventStreams, "SSE stream")}`,
  );
  stopWatching();
  await channels.stop();
  await metrics.stop();
  logger.info("pinghub stopped");
  log.close();
  return 0;
}

/**
 * --workers N, the parent: starts the workers (workers.ts), serves the machine's one metrics endpoint, holds the
 * one log, and returns once every worker has stopped.
 */
async function runWorkers(config: Config, stopSignal: Promise<string>): Promise<number> {
  let log: Log;
  try {
    log = createLog(config.logLevel, config.logFile);
  } catch (error) {
    process.stderr.write(`pinghub: cannot open log file ${config.logFile}: ${(error as Error).message}\n`);
    return 1;
  }
  const { logger } = log;
  if (config.listen.kind !== "tcp") return 2; // toConfig refuses --workers with a UNIX socket.
  const listen = config.listen;
  process.on("SIGHUP", () => {
    if (config.logFile === undefined) return;
    try {
      log.reopen();
      logger.info("log file reopened");
    } catch (error) {
      logger.warn(`cannot reopen log file ${config.logFile}: ${(error as Error).message}`);
    }
  });
  // Bun runs a script as `bun [its flags] script args`: a worker is started the same way.
  const command = [process.execPath, ...process.execArgv, ...process.argv.slice(1)];
  let metricsUrl = "off";
  let stopMetrics = async () => {};
  // Imported here, as the Redis brokers are in run(): a worker, or a single node, never loads the supervisor.
  const { superviseWorkers } = await import("./workers.ts");
  const { serveWorkerMetrics } = await import("./worker-metrics.ts");
  const supervisor = superviseWorkers({
    count: config.workers,
    command,
    port: listen.port,
    shutdownTimeout: config.shutdownTimeout,
    log,
    stopSignal,
    started(port) {
      const url = `http://${formatListen({ ...listen, port })}`;
      logger.info(
        `pinghub ${pkg.version} started: pid ${process.pid}, ${config.workers} workers serving ${url}, metrics ${metricsUrl}`,
      );
    },
  });
  const address = config.metrics;
  if (address !== undefined) {
    try {
      const metrics = serveWorkerMetrics(supervisor, address);
      metricsUrl = metrics.url;
      stopMetrics = metrics.stop;
    } catch (error) {
      const line = `pinghub: cannot serve metrics on ${formatListen(address)}: ${(error as Error).message}`;
      logger.error(line);
      if (config.logFile !== undefined) process.stderr.write(`${line}\n`);
      log.close();
      return 1;
    }
  }
  const status = await supervisor.run();
  await stopMetrics();
  logger.info(status === 0 ? "pinghub stopped" : `pinghub stopped: exit status ${status}`);
  log.close();
  return status;
}

/** `1 channel`, `2 channels`. */
function counted(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? "" : "s"}`;
}

/**
 * A warning when --auth-url does not answer yes or no, at most one per AUTH_WARNING_INTERVAL_MS: an application
 * that is down would otherwise write a line per client.
 */
function authTrouble(config: Config, logger: Log["logger"]): (line: string) => void {
  let last = 0;
  let quiet = 0;
  const where = config.authUrl === undefined ? "" : safeUrl(config.authUrl);
  return (line) => {
    const now = Date.now();
    if (now - last < AUTH_WARNING_INTERVAL_MS) {
      quiet++;
      return;
    }
    const also = quiet === 0 ? "" : ` (and ${quiet} more since the last warning)`;
    logger.warn(`forward auth: ${where}: ${line}; refusing with 503${also}`);
    last = now;
    quiet = 0;
  };
}

/** A URL without user, password or query: the log is no place for credentials an operator put in it. */
function safeUrl(given: string): string {
  const url = new URL(given);
  return `${url.origin}${url.pathname}`;
}

/** The start-up line that says who may subscribe and publish, or undefined when everyone may. */
function describeAccess(config: Config): string | undefined {
  if (config.jwtKey !== undefined) {
    const checks = [
      config.jwtAudience === undefined ? undefined : `audience ${JSON.stringify(config.jwtAudience)}`,
      config.jwtIssuer === undefined ? undefined : `issuer ${JSON.stringify(config.jwtIssuer)}`,
    ].filter((check) => check !== undefined);
    const also = checks.length === 0 ? "" : `, ${checks.join(", ")}`;
    return `authorizing by JWT: tokens checked with ${config.jwtKey.description}${also}`;
  }
  if (config.authUrl !== undefined) {
    return `authorizing by asking ${safeUrl(config.authUrl)} (timeout ${config.authTimeout} s)`;
  }
  return undefined;
}

process.exit(await main());
