// pinghub's settings, in one table. Each row gives a setting's flag, its key in Config, its default, its parser
// and its help; from the table come the Config type (each parser's return type), reading the settings (flag, then
// environment variable, then default: toConfig), --help (cli.ts) and the defaults the tests start from. Every value
// is checked here, before anything is bound, so that a bad one is one clear line and exit status 2 rather than a
// half-started server.

import { ConfigError } from "./config-error.ts";
import { loadJwtKey } from "./jwt-access.ts";
import { parsePemFile, redisTlsFits } from "./redis-tls.ts";
import { parseRedisUrl } from "./redis-url.ts";
import {
  LOG_LEVELS,
  parseCount,
  parseHttpUrl,
  parseIdleTimeout,
  parseListen,
  parseLogFile,
  parseLogLevel,
  parseMetricsListen,
  parseOrigins,
  parsePositiveInt,
  parseSeconds,
  parseSocketMode,
  parseText,
  parseWorkers,
  parseYesNo,
} from "./setting-values.ts";

export { formatListen, type Listen, type LogLevel, type TcpListen } from "./setting-values.ts";
export { ConfigError };

/** One row of the table. */
export interface Setting {
  /** The setting's name in Config. */
  readonly key: string;
  /** What the value is, in --help: `--max-backlog=<bytes>`. */
  readonly hint: string;
  /** As written on the command line. Without one the setting is undefined (off) unless given. */
  readonly default?: string;
  /**
   * Checks a value (never empty) and returns what Config holds; throws a ConfigError naming the value by `name`,
   * which is how the operator gave it: `--mport` or `PINGHUB_MPORT`.
   */
  readonly parse: (value: string, name: string) => unknown;
  /** The flag may be given several times; its values are joined by commas, the form its variable takes. */
  readonly repeatable?: true;
  /** One sentence for --help, which wraps it. */
  readonly help: string;
  /** The environment variable, for the one row whose value is not itself the setting (a file's path). */
  readonly env?: string;
}

/** Keeps each row's own types (its key's name, its parser's return type), from which Config is built. */
const table = <const T extends Record<string, Setting>>(rows: T): T => rows;

/**
 * The settings, in --help's order, by long flag. A flag `--max-backlog` is also `-max-backlog` (the original Go
 * pinghub's form, which every flag takes so that existing service files keep working) and PINGHUB_MAX_BACKLOG
 * (upper case, dashes as underscores); these follow from the name so that no flag can break the pattern.
 *
 * To add a setting, add one row, such as
 *   "auth-timeout": { key: "authTimeout", hint: "seconds", default: "5", parse: parsePositiveInt, help: "…" },
 * and config.authTimeout is a number (its parser's return type; `| undefined` for a row without a default), read
 * from --auth-timeout, -auth-timeout or PINGHUB_AUTH_TIMEOUT, shown in --help and in the tests' defaults. A new
 * kind of value gets its parser in setting-values.ts. Then add the flag to README's table; nothing else lists them.
 */
export const SETTINGS = table({
  addr: {
    key: "listen",
    hint: "address",
    default: "127.0.0.1:8081",
    parse: parseListen,
    help:
      "where to serve channels: host:port, :port (all interfaces), [::1]:port, or a UNIX socket as an absolute " +
      "path or unix:/path",
  },
  mport: {
    key: "metrics",
    hint: "address",
    // Undefined when off. `0` turned the metrics server off before `off` did; it now means any free port, as it
    // does for --addr, so that tests never race for a port (README tells operators).
    default: "8082",
    parse: parseMetricsListen,
    help:
      "where the metrics server listens (/metrics, /healthz): a port on 127.0.0.1 (0: any free one), " +
      "host:port such as 0.0.0.0:8082 to reach it from other hosts (never from the public), or off",
  },
  origin: {
    key: "origin",
    hint: "origin",
    // Normalised (`https://example.com`), or subdomain patterns (`https://*.example.com`).
    parse: parseOrigins,
    repeatable: true,
    help:
      "refuse websockets, streams and POSTs from pages of other sites: scheme://host[:port] or " +
      "scheme://*.host[:port] for its subdomains; repeat the flag or separate origins by commas (off when unset)",
  },
  log: {
    key: "logFile",
    hint: "/absolute/path",
    parse: parseLogFile,
    help: "append the log to this file instead of stderr; SIGHUP reopens it",
  },
  "log-level": {
    key: "logLevel",
    hint: "level",
    default: "info",
    parse: parseLogLevel,
    help: `how much to log: ${LOG_LEVELS.join(", ")}`,
  },
  "max-message-size": {
    key: "maxMessageSize",
    hint: "bytes",
    // 64 KiB: far above any notification, small enough that one message never strains a subscriber.
    default: "65536",
    parse: parsePositiveInt,
    help: "largest message; larger ones get 413 (POST) or close 1009 (websocket)",
  },
  "max-backlog": {
    key: "maxBacklog",
    hint: "bytes",
    // 1 MiB: sixteen maximum-size messages, or thousands of typical ones, of slack for a subscriber that is
    // briefly slow; 10,000 stalled subscribers then hold at most 10 GiB, and usually far less.
    default: "1048576",
    parse: parsePositiveInt,
    help: "bytes queued for a subscriber that is not reading before it is disconnected",
  },
  "max-backlog-total": {
    key: "maxBacklogTotal",
    hint: "bytes",
    // 16 MiB: what a herd of clients that stop reading may make the node hold in the process, whatever their
    // number (without it, 10,000 of them could hold 10,000 × --max-backlog), plus the part of a message each
    // that the kernel did not take as their buffers filled. Measured: 1000 that never read beside readers, 60 KB
    // messages at 50/s, peak RSS 95–142 MiB (60 MiB of it the node with its connections open) against 1.35 GB
    // without it (README, "Behind readers: the backlog limits"). A subscriber that reads has its bursts taken by
    // the kernel's socket buffers first, so it holds next to nothing here, and it shows progress (backlog.ts).
    default: "16777216",
    parse: parsePositiveInt,
    help: "bytes queued for all subscribers together; past it, those stuck longest are disconnected first",
  },
  "idle-timeout": {
    key: "idleTimeout",
    hint: "seconds",
    // The original pings every 27 s and gives up after 30 s. Bun, whose timers tick every 4 s, pings a websocket
    // silent for 20 to 24 s of these 30 and drops it, without a close frame, about 8 s later (28 to 32 s in all)
    // if nothing at all came back.
    default: "30",
    parse: parseIdleTimeout,
    help: "close a websocket silent this long; it is pinged a few seconds before",
  },
  "shutdown-timeout": {
    key: "shutdownTimeout",
    hint: "seconds",
    // Long enough for any honest POST to finish, short enough to stop within systemd's default 90 s.
    default: "10",
    parse: parsePositiveInt,
    help: "at SIGTERM, how long requests in flight may take to finish before they are cut",
  },
  redis: {
    key: "redis",
    hint: "url",
    // Without it, the single node, with no Redis.
    parse: parseRedisUrl,
    help:
      "cluster mode: share channels with every node on this Redis, redis://[[user]:password@]host[:port][/db], " +
      "rediss://…, a socket path, redis+sentinel://…, redis+cluster://… or rediss+cluster://… (pass a password " +
      "through the environment, not the command line)",
  },
  "redis-prefix": {
    key: "redisPrefix",
    hint: "prefix",
    // Several clusters, or other applications, can share one Redis, each under its own prefix.
    default: "pinghub:",
    parse: parseText,
    help: "put before each channel name to make its Redis channel",
  },
  // TLS to Redis as operators run it (redis-tls.ts): each file is read here, at start-up, into its PEM text, so
  // that a missing or unreadable one is a usage error before anything is bound, not a reconnect loop.
  "redis-ca": {
    key: "redisCa",
    hint: "file",
    parse: parsePemFile,
    help: "with rediss:// or rediss+cluster://: trust this CA (PEM) for Redis's certificate instead of the system's",
  },
  "redis-cert": {
    key: "redisCert",
    hint: "file",
    parse: parsePemFile,
    help: "with rediss:// or rediss+cluster://: present this client certificate (PEM) to Redis; needs --redis-key",
  },
  "redis-key": {
    key: "redisKey",
    hint: "file",
    parse: parsePemFile,
    help: "with rediss:// or rediss+cluster://: the private key (PEM) of --redis-cert",
  },
  history: {
    key: "history",
    hint: "messages",
    // Nothing is stored unless asked for, as in the original.
    default: "0",
    parse: parseCount,
    help: "keep this many recent messages per channel, so that SSE subscribers resume without a gap",
  },
  "history-ttl": {
    key: "historyTtl",
    hint: "seconds",
    // Five minutes: a deploy, a node restarted, a laptop woken from a short sleep; not a day offline.
    default: "300",
    parse: parsePositiveInt,
    help: "keep a channel's history this long after its last message",
  },
  "history-memory": {
    key: "historyMemory",
    hint: "bytes",
    // 64 MiB: a hundred 1 KiB messages for each of six hundred busy channels.
    default: "67108864",
    parse: parsePositiveInt,
    help: "most memory all histories may use on a single node; the least recently published go first",
  },
  workers: {
    key: "workers",
    hint: "count",
    // One process, as before: more takes a Redis, which carries the channels between the workers (workers.ts).
    default: "1",
    parse: parseWorkers,
    help:
      "serve the TCP port from this many processes, each a cluster node on --redis (needed above 1); " +
      "auto: one per CPU this process may use",
  },
  "socket-mode": {
    key: "socketMode",
    hint: "octal",
    // Owner and group may connect (the proxy is put in pinghub's group), others may not.
    default: "0660",
    parse: parseSocketMode,
    help: "permissions of a UNIX socket",
  },
  "websocket-publish": {
    key: "websocketPublish",
    hint: "yes|no",
    // As the original: every websocket subscriber may publish to its channel.
    default: "yes",
    parse: parseYesNo,
    help:
      "whether websockets may publish by sending messages; with no, a message closes the websocket with 1008 " +
      "(POST still publishes)",
  },
  "jwt-key": {
    key: "jwtKey",
    hint: "file",
    // Read while the settings are checked, so that a key that cannot be used stops pinghub before anything is
    // bound. Without it, no JWT.
    parse: loadJwtKey,
    // The variable names a file, as the _FILE variables of container images do: the key itself never goes in
    // the environment.
    env: "PINGHUB_JWT_KEY_FILE",
    help:
      "every subscribe and publish needs a JSON Web Token granting it (claim pinghub), checked with this file: " +
      "an HMAC secret (HS256/384/512) or a PEM public key (RS, PS, ES, EdDSA)",
  },
  "jwt-audience": {
    key: "jwtAudience",
    hint: "audience",
    parse: parseText,
    help: "with --jwt-key: a token's aud must include this",
  },
  "jwt-issuer": {
    key: "jwtIssuer",
    hint: "issuer",
    parse: parseText,
    help: "with --jwt-key: a token's iss must be this",
  },
  "auth-url": {
    key: "authUrl",
    hint: "url",
    // Without it, no forward auth.
    parse: parseHttpUrl,
    help:
      "before each subscribe and POST, ask this URL of your application with the client's Cookie and " +
      "Authorization: 2xx allows, 401/403 refuses, anything else is 503 (not with --jwt-key)",
  },
  "auth-timeout": {
    key: "authTimeout",
    hint: "seconds",
    // An application on the same network answers in milliseconds; two seconds is trouble, not load.
    default: "2",
    parse: parseSeconds,
    help: "how long --auth-url has to answer before the client gets 503",
  },
});

export type FlagName = keyof typeof SETTINGS;
export const FLAG_NAMES = Object.keys(SETTINGS) as FlagName[];

/** What a row gives Config: its parser's return type, or undefined as well when the row has no default. */
type ValueOf<Row> = Row extends { parse: (value: string, name: string) => infer T }
  ? Row extends { default: string }
    ? T
    : T | undefined
  : never;

/** Every setting, checked and typed: the table's rows under their keys. */
export type Config = { [F in FlagName as (typeof SETTINGS)[F]["key"]]: ValueOf<(typeof SETTINGS)[F]> };

/** `max-backlog` → `PINGHUB_MAX_BACKLOG`, unless the row names its variable. */
export const envName = (flag: string) =>
  (Object.hasOwn(SETTINGS, flag) ? (SETTINGS[flag as FlagName] as Setting).env : undefined) ??
  `PINGHUB_${flag.toUpperCase().replaceAll("-", "_")}`;

/**
 * Each setting from its flag's value (`flags`, by flag name: a repeatable flag's values already joined by
 * commas), else its environment variable, else its default. A variable set but empty counts as unset, as in most
 * shells' and systemd's use. Throws a ConfigError for the first bad value, in the table's order, then for settings
 * that do not fit together.
 */
export function toConfig(
  flags: Partial<Record<FlagName, string>>,
  env: Record<string, string | undefined> = {},
): Config {
  const config: Record<string, unknown> = {};
  const names: Partial<Record<FlagName, string>> = {};
  for (const flag of FLAG_NAMES) {
    const row: Setting = SETTINGS[flag];
    // A value is named as it was given. A flag beats its variable, which is then not even checked.
    let value = flags[flag];
    let name = `--${flag}`;
    if (value === undefined) {
      value = env[envName(flag)] || undefined;
      if (value === undefined) value = row.default;
      else name = envName(flag);
    }
    config[row.key] = value === undefined ? undefined : row.parse(value, name);
    names[flag] = `${name} "${value}"`;
  }
  // The checks across settings: one way to authorize at most; the TLS files only with rediss://, a certificate
  // only with its key; --workers with what it needs.
  redisTlsFits(config as Config);
  checkTogether(config as Config, names);
  return config as Config;
}

/** The checks no single row can make: settings that only make sense together, or only apart. */
function checkTogether(config: Config, given: Partial<Record<FlagName, string>>): void {
  if (config.workers > 1 && config.redis === undefined) {
    throw new ConfigError(`bad ${given.workers}: more than one worker needs --redis, which carries their channels`);
  }
  if (config.workers > 1 && config.listen.kind === "unix") {
    throw new ConfigError(`bad ${given.workers}: workers share a TCP port, not a UNIX socket (--addr)`);
  }
  if (config.jwtKey !== undefined && config.authUrl !== undefined) {
    throw new ConfigError("--jwt-key and --auth-url cannot be used together: choose one way to authorize");
  }
  if (config.jwtKey === undefined && (config.jwtAudience ?? config.jwtIssuer) !== undefined) {
    throw new ConfigError("--jwt-audience and --jwt-issuer need --jwt-key");
  }
}
