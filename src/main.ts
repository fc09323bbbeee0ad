// The pinghub process: read the command line, open the log, start the channel server, and stop cleanly on
// SIGTERM or SIGINT. `bun run pinghub` runs this file.

import pkg from "../package.json" with { type: "json" };
import { parseCommandLine } from "./cli.ts";
import { type Config, formatListen } from "./config.ts";
import { createLog } from "./log.ts";
import { type ChannelServer, startChannelServer } from "./server.ts";

async function main(): Promise<number> {
  const cli = await parseCommandLine(process.argv.slice(2), process.env);
  if (cli.kind === "exit") {
    if (cli.stdout) process.stdout.write(cli.stdout);
    if (cli.stderr) process.stderr.write(cli.stderr);
    return cli.status;
  }
  return run(cli.config);
}

async function run(config: Config): Promise<number> {
  let log: ReturnType<typeof createLog>;
  try {
    log = createLog(config.logLevel, config.logFile);
  } catch (error) {
    process.stderr.write(`pinghub: cannot open log file ${config.logFile}: ${(error as Error).message}\n`);
    return 1;
  }
  const { logger } = log;
  let channels: ChannelServer;
  try {
    channels = await startChannelServer(config, {
      slowSubscriber: (channel) =>
        logger.warn(`subscriber of ${JSON.stringify(channel)} cut off: over ${config.maxBacklog} bytes behind`),
    });
  } catch (error) {
    const line = `pinghub: cannot serve on ${formatListen(config.listen)}: ${(error as Error).message}`;
    logger.error(line);
    // A fatal start-up error also goes to stderr when the log is a file, so whoever started pinghub sees it.
    if (config.logFile !== undefined) process.stderr.write(`${line}\n`);
    return 1;
  }
  logger.info(`pinghub ${pkg.version} started: pid ${process.pid}, serving ${channels.url}`);

  process.on("SIGHUP", () => {
    log.reopen();
    logger.info("log file reopened");
  });
  const stopped = new Promise<string>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  const signal = await stopped;
  logger.info(`stopping on ${signal}: closing ${channels.hub.websockets} websockets`);
  await channels.stop();
  logger.info("pinghub stopped");
  log.close();
  return 0;
}

process.exit(await main());
