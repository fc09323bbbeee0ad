// The command line: flags, their environment variables and defaults, --help, and turning them into a Config.
// Every flag also works in the original Go server's single-dash form (-addr :8081, -addr=:8081), so existing
// service files keep working.

import { stripVTControlCharacters } from "node:util";
import { type ArgsDef, parseArgs, renderUsage } from "citty";
import pkg from "../package.json" with { type: "json" };
import { type Config, ConfigError, DEFAULTS, LOG_LEVELS, type RawSettings, toConfig } from "./config.ts";

interface Flag {
  /** Key in RawSettings. */
  key: keyof RawSettings;
  valueHint: string;
  description: string;
  default?: string;
}

/** The flags by name; each is also read from PINGHUB_<NAME> (upper case, dashes as underscores). */
const FLAGS: Record<string, Flag> = {
  addr: {
    key: "addr",
    valueHint: "address",
    description:
      "where to serve channels: host:port, :port (all interfaces), [::1]:port, or an absolute UNIX socket path",
    default: DEFAULTS.addr,
  },
  mport: {
    key: "mport",
    valueHint: "port",
    description: "port of the metrics server on 127.0.0.1 (/metrics, /healthz); 0 turns it off",
    default: DEFAULTS.mport,
  },
  origin: {
    key: "origin",
    valueHint: "scheme://host[:port]",
    description: "refuse websockets and POSTs whose Origin header names another site (off when unset)",
  },
  log: {
    key: "log",
    valueHint: "/absolute/path",
    description: "append the log to this file instead of stderr; SIGHUP reopens it",
  },
  "log-level": {
    key: "logLevel",
    valueHint: "level",
    description: `how much to log: ${LOG_LEVELS.join(", ")}`,
    default: DEFAULTS.logLevel,
  },
  "max-message-size": {
    key: "maxMessageSize",
    valueHint: "bytes",
    description: "largest message; larger ones get 413 (POST) or close 1009 (websocket)",
    default: DEFAULTS.maxMessageSize,
  },
  "max-backlog": {
    key: "maxBacklog",
    valueHint: "bytes",
    description: "bytes queued for a subscriber that is not reading before it is disconnected",
    default: DEFAULTS.maxBacklog,
  },
  "idle-timeout": {
    key: "idleTimeout",
    valueHint: "seconds",
    description: "close a websocket silent this long; it is pinged a few seconds before",
    default: DEFAULTS.idleTimeout,
  },
  "shutdown-timeout": {
    key: "shutdownTimeout",
    valueHint: "seconds",
    description: "at SIGTERM, how long requests in flight may take to finish before they are cut",
    default: DEFAULTS.shutdownTimeout,
  },
  redis: {
    key: "redis",
    valueHint: "url",
    description:
      "cluster mode: share channels with every node on this Redis, redis://[[user]:password@]host[:port][/db], " +
      "rediss://… or a socket path (pass a password through the environment, not the command line)",
  },
  "redis-prefix": {
    key: "redisPrefix",
    valueHint: "prefix",
    description: "put before each channel name to make its Redis channel",
    default: DEFAULTS.redisPrefix,
  },
  history: {
    key: "history",
    valueHint: "messages",
    description: "keep this many recent messages per channel, so that SSE subscribers resume without a gap",
    default: DEFAULTS.history,
  },
  "history-ttl": {
    key: "historyTtl",
    valueHint: "seconds",
    description: "keep a channel's history this long after its last message",
    default: DEFAULTS.historyTtl,
  },
  "history-memory": {
    key: "historyMemory",
    valueHint: "bytes",
    description: "most memory all histories may use on a single node; the least recently used go first",
    default: DEFAULTS.historyMemory,
  },
  "socket-mode": {
    key: "socketMode",
    valueHint: "octal",
    description: "permissions of a UNIX socket",
    default: DEFAULTS.socketMode,
  },
};

export const envName = (flag: string) => `PINGHUB_${flag.toUpperCase().replaceAll("-", "_")}`;

const args: ArgsDef = {
  ...Object.fromEntries(
    Object.entries(FLAGS).map(([name, flag]) => [
      name,
      {
        type: "string",
        valueHint: flag.valueHint,
        description: `${flag.description} [env ${envName(name)}]${flag.default === undefined ? "" : ` (default: ${flag.default})`}`,
      },
    ]),
  ),
  help: { type: "boolean", alias: "h", description: "show this help" },
  version: { type: "boolean", description: "print the version" },
};

export const command = {
  meta: { name: "pinghub", version: pkg.version, description: "a publish/subscribe message bus for websocket clients" },
  args,
};

export type CliResult =
  | { kind: "run"; config: Config }
  | { kind: "exit"; status: number; stdout?: string; stderr?: string };

/** Reads flags, then the environment, then defaults; never exits itself, so it can be tested as a function. */
export async function parseCommandLine(argv: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const normalised = argv.map(singleDashToDouble);
  const unknown = normalised.find((a) => /^--?[a-z]/i.test(a) && !isKnownFlag(a));
  if (unknown !== undefined) {
    return { kind: "exit", status: 2, stderr: `unknown flag ${unknown.split("=")[0]}: see pinghub --help\n` };
  }
  const parsed = parseArgs(normalised, args);
  if (parsed.help) {
    const usage = await renderUsage(command);
    // citty colours the help unless NO_COLOR is exactly "1"; a pipe, a file or any NO_COLOR gets plain text.
    const colour = process.stdout.isTTY === true && (env.NO_COLOR ?? "") === "";
    return { kind: "exit", status: 0, stdout: `${colour ? usage : stripVTControlCharacters(usage)}\n` };
  }
  if (parsed.version) return { kind: "exit", status: 0, stdout: `${pkg.version}\n` };
  if (parsed._.length > 0) {
    return { kind: "exit", status: 2, stderr: `unexpected argument "${parsed._[0]}": see pinghub --help\n` };
  }
  const raw: Partial<RawSettings> = {};
  for (const [name, flag] of Object.entries(FLAGS)) {
    const value = parsed[name];
    if (value === true || (value === "" && normalised.includes(`--${name}`))) {
      return { kind: "exit", status: 2, stderr: `flag --${name} needs a value: see pinghub --help\n` };
    }
    // A variable set but empty counts as unset, as in most shells' and systemd's use.
    raw[flag.key] = typeof value === "string" ? value : env[envName(name)] || flag.default;
  }
  try {
    return { kind: "run", config: toConfig(raw as RawSettings) };
  } catch (error) {
    if (error instanceof ConfigError) return { kind: "exit", status: 2, stderr: `pinghub: ${error.message}\n` };
    throw error;
  }
}

/** `-addr` and `-addr=:8081`, the Go flag package's forms, become `--addr` and `--addr=:8081`. */
function singleDashToDouble(arg: string): string {
  const match = /^-([a-z][a-z-]+)(=.*)?$/.exec(arg);
  return match?.[1] !== undefined && isKnownFlag(match[1]) ? `-${arg}` : arg;
}

function isKnownFlag(arg: string): boolean {
  const name = arg.replace(/^--?/, "").split("=")[0] ?? "";
  return name in FLAGS || ["h", "help", "version"].includes(name);
}
