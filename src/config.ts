// Parsing and checking pinghub's settings. Every value a user can give is checked here, before anything is
// bound, so that a bad flag is one clear line and exit status 2 rather than a half-started server.

import { ConfigError } from "./config-error.ts";
import { type JwtKey, loadJwtKey } from "./jwt-access.ts";
import { parseRedisUrl, type RedisTarget } from "./redis-url.ts";

/** Where the channel server listens: a TCP host and port, or a UNIX socket path. */
export type Listen = { kind: "tcp"; hostname: string; port: number } | { kind: "unix"; path: string };

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["silent", "error", "warn", "info", "debug"];

export interface Config {
  listen: Listen;
  /** Port of the metrics server on 127.0.0.1; 0 turns it off. */
  metricsPort: number;
  /**
   * The allowed Origins, normalised (`https://example.com`), or subdomain patterns (`https://*.example.com`);
   * undefined turns the check off.
   */
  origin: string[] | undefined;
  /** Absolute path of the log file; undefined logs to stderr. */
  logFile: string | undefined;
  logLevel: LogLevel;
  /** Largest message, in bytes, by websocket or POST. */
  maxMessageSize: number;
  /** Bytes queued for one websocket that is not reading before it is disconnected. */
  maxBacklog: number;
  /** Seconds of silence after which a websocket is closed; it is pinged a few seconds before. */
  idleTimeout: number;
  /** Permission bits of a UNIX socket. */
  socketMode: number;
  /** Seconds that requests in flight at shutdown may take to finish before they are cut. */
  shutdownTimeout: number;
  /** Cluster mode's Redis; undefined runs the single node, with no Redis. */
  redis: RedisTarget | undefined;
  /** Put before a channel name to make its Redis channel: `pinghub:` + `/x`. */
  redisPrefix: string;
  /** Messages kept per channel for subscribers that resume; 0 keeps none. */
  history: number;
  /** Seconds a channel's history is kept after its last message. */
  historyTtl: number;
  /** Bytes all histories may hold together, on a single node. */
  historyMemory: number;
  /** Whether a websocket may publish by sending a message (still subject to its rights). */
  websocketPublish: boolean;
  /** The key tokens are checked with (--jwt-key); undefined: no JWT. */
  jwtKey: JwtKey | undefined;
  /** The `aud` and `iss` a token must have, when given. */
  jwtAudience: string | undefined;
  jwtIssuer: string | undefined;
  /** The application asked before each subscribe and POST (--auth-url); undefined: no forward auth. */
  authUrl: string | undefined;
  /** Seconds the application has to answer. */
  authTimeout: number;
}

export const DEFAULTS = {
  addr: "127.0.0.1:8081",
  mport: "8082",
  logLevel: "info",
  // 64 KiB: far above any notification, small enough that one message never strains a subscriber.
  maxMessageSize: "65536",
  // 1 MiB: sixteen maximum-size messages, or thousands of typical ones, of slack for a subscriber that is
  // briefly slow; 10,000 stalled subscribers then hold at most 10 GiB, and usually far less.
  maxBacklog: "1048576",
  // The original pings every 27 s and gives up after 30 s. Bun, whose timers tick every 4 s, pings a websocket
  // silent for 20 to 24 s of these 30 and drops it, without a close frame, about 8 s later (28 to 32 s in all)
  // if nothing at all came back.
  idleTimeout: "30",
  // Owner and group may connect (the proxy is put in pinghub's group), others may not.
  socketMode: "0660",
  // Long enough for any honest POST to finish, short enough to stop within systemd's default 90 s.
  shutdownTimeout: "10",
  // Several clusters, or other applications, can share one Redis, each under its own prefix.
  redisPrefix: "pinghub:",
  // Nothing is stored unless asked for, as in the original.
  history: "0",
  // Five minutes: a deploy, a node restarted, a laptop woken from a short sleep; not a day offline.
  historyTtl: "300",
  // 64 MiB: a hundred 1 KiB messages for each of six hundred busy channels.
  historyMemory: "67108864",
  // As the original: every websocket subscriber may publish to its channel.
  websocketPublish: "yes",
  // An application on the same network answers in milliseconds; two seconds is trouble, not load.
  authTimeout: "2",
} as const;

export { ConfigError };

/** Parses `host:port`, `:port` (all interfaces), `[v6]:port`, or an absolute UNIX socket path. */
export function parseAddr(value: string): Listen {
  if (value.startsWith("/")) return { kind: "unix", path: value };
  // The form the start line prints: `unix:/run/pinghub/pinghub.sock`.
  if (value.startsWith("unix:/")) return { kind: "unix", path: value.slice("unix:".length) };
  const bad = (why: string) => new ConfigError(`bad --addr "${value}": ${why}`);
  const colon = value.lastIndexOf(":");
  if (colon < 0) throw bad("expected host:port, :port, [ipv6]:port or an absolute socket path");
  let host = value.slice(0, colon);
  const port = parsePort(value.slice(colon + 1), `--addr "${value}"`);
  if (host.startsWith("[") && host.endsWith("]")) {
    host = host.slice(1, -1);
    if (!/^[0-9a-fA-F:.]+$/.test(host) || !host.includes(":")) throw bad("not an IPv6 address in brackets");
    return { kind: "tcp", hostname: host, port };
  }
  // An empty host means every interface; "::" is dual-stack in Bun, so IPv4 clients reach it too.
  if (host === "") return { kind: "tcp", hostname: "::", port };
  if (!/^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$/.test(host)) {
    throw bad(host.includes(":") ? "put an IPv6 address in brackets: [::1]:8081" : "not a host name or IPv4 address");
  }
  return { kind: "tcp", hostname: host, port };
}

/** A TCP port, 0 to 65535 (0 asks the system for a free one). */
export function parsePort(value: string, what: string): number {
  if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) {
    throw new ConfigError(`bad ${what}: port must be a number from 0 to 65535`);
  }
  return Number(value);
}

/**
 * `scheme://host[:port]`, returned in the form browsers send in the Origin header, or `scheme://*.host[:port]`
 * for every subdomain of host.
 */
export function parseOrigin(value: string): string {
  const bad = new ConfigError(
    `bad --origin "${value}": expected scheme://host[:port] or scheme://*.host[:port], such as https://example.com`,
  );
  if (!/^[a-z][a-z0-9+.-]*:\/\/[^/?#@*]+\/?$/i.test(value.replace("://*.", "://"))) throw bad;
  const pattern = /^[a-z][a-z0-9+.-]*:\/\/\*\./i.test(value);
  try {
    // A pattern is checked as the origin of one of its subdomains, then given its star back.
    const url = new URL(pattern ? value.replace("://*.", "://x.") : value);
    if (url.origin === "null") throw bad;
    if (pattern && !/^[a-z0-9-]+\.[^.]/i.test(url.hostname.slice(2))) throw bad;
    return pattern ? url.origin.replace("://x.", "://*.") : url.origin;
  } catch {
    throw bad;
  }
}

/** One or more origins, comma-separated. */
export function parseOrigins(value: string): string[] {
  const origins = value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (origins.length === 0) throw new ConfigError(`bad --origin "${value}": no origin in it`);
  return [...new Set(origins.map(parseOrigin))];
}

export function parseLogFile(value: string): string {
  if (!value.startsWith("/")) throw new ConfigError(`bad --log "${value}": the log file must be an absolute path`);
  return value;
}

export function parseLogLevel(value: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level) throw new ConfigError(`bad --log-level "${value}": expected one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

/** A whole number above zero, as bytes or seconds. */
export function parsePositiveInt(value: string, what: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(`bad ${what} "${value}": expected a whole number above zero`);
  }
  return n;
}

/** A whole number, zero included. */
export function parseCount(value: string, what: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new ConfigError(`bad ${what} "${value}": expected a whole number, 0 or more`);
  }
  return n;
}

/** An octal file mode such as 0660. */
export function parseSocketMode(value: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new ConfigError(`bad --socket-mode "${value}": expected octal such as 0660`);
  return Number.parseInt(value, 8);
}

/** `yes` or `no`. */
export function parseYesNo(value: string, what: string): boolean {
  if (value === "yes") return true;
  if (value === "no") return false;
  throw new ConfigError(`bad ${what} "${value}": expected yes or no`);
}

/** Seconds, above zero, fractions allowed (`0.5`). */
export function parseSeconds(value: string, what: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 3600) {
    throw new ConfigError(`bad ${what} "${value}": expected seconds above 0, up to 3600, such as 2 or 0.5`);
  }
  return n;
}

/** An http or https URL. */
export function parseHttpUrl(value: string, what: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`bad ${what} "${value}": not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`bad ${what} "${value}": expected an http:// or https:// URL`);
  }
  return url.href;
}

/** The raw settings, one string each, as they come from flags, the environment or the defaults. */
export interface RawSettings {
  addr: string;
  mport: string;
  origin: string | undefined;
  log: string | undefined;
  logLevel: string;
  maxMessageSize: string;
  maxBacklog: string;
  idleTimeout: string;
  socketMode: string;
  shutdownTimeout: string;
  redis: string | undefined;
  redisPrefix: string;
  history: string;
  historyTtl: string;
  historyMemory: string;
  websocketPublish: string;
  jwtKey: string | undefined;
  jwtAudience: string | undefined;
  jwtIssuer: string | undefined;
  authUrl: string | undefined;
  authTimeout: string;
}

export function toConfig(raw: RawSettings): Config {
  const origin = raw.origin === undefined || raw.origin === "" ? undefined : parseOrigins(raw.origin);
  const logFile = raw.log === undefined || raw.log === "" ? undefined : parseLogFile(raw.log);
  const idleTimeout = parsePositiveInt(raw.idleTimeout, "--idle-timeout");
  // Bun's idle timer counts in steps of 4 s, pings one step before the end, and stops at 960 s.
  if (idleTimeout < 8 || idleTimeout > 960) {
    throw new ConfigError(`bad --idle-timeout "${raw.idleTimeout}": from 8 to 960 seconds`);
  }
  const given = (value: string | undefined) => (value === undefined || value === "" ? undefined : value);
  const jwtKeyFile = given(raw.jwtKey);
  const authUrl = given(raw.authUrl);
  if (jwtKeyFile !== undefined && authUrl !== undefined) {
    throw new ConfigError("--jwt-key and --auth-url cannot be used together: choose one way to authorize");
  }
  if (jwtKeyFile === undefined && (given(raw.jwtAudience) ?? given(raw.jwtIssuer)) !== undefined) {
    throw new ConfigError("--jwt-audience and --jwt-issuer need --jwt-key");
  }
  return {
    listen: parseAddr(raw.addr),
    metricsPort: parsePort(raw.mport, `--mport "${raw.mport}"`),
    origin,
    logFile,
    logLevel: parseLogLevel(raw.logLevel),
    maxMessageSize: parsePositiveInt(raw.maxMessageSize, "--max-message-size"),
    maxBacklog: parsePositiveInt(raw.maxBacklog, "--max-backlog"),
    idleTimeout,
    socketMode: parseSocketMode(raw.socketMode),
    shutdownTimeout: parsePositiveInt(raw.shutdownTimeout, "--shutdown-timeout"),
    redis: raw.redis === undefined || raw.redis === "" ? undefined : parseRedisUrl(raw.redis),
    redisPrefix: raw.redisPrefix,
    history: parseCount(raw.history, "--history"),
    historyTtl: parsePositiveInt(raw.historyTtl, "--history-ttl"),
    historyMemory: parsePositiveInt(raw.historyMemory, "--history-memory"),
    websocketPublish: parseYesNo(raw.websocketPublish, "--websocket-publish"),
    // Read now, so that a key that cannot be used stops pinghub before anything is bound.
    jwtKey: jwtKeyFile === undefined ? undefined : loadJwtKey(jwtKeyFile),
    jwtAudience: given(raw.jwtAudience),
    jwtIssuer: given(raw.jwtIssuer),
    authUrl: authUrl === undefined ? undefined : parseHttpUrl(authUrl, "--auth-url"),
    authTimeout: parseSeconds(raw.authTimeout, "--auth-timeout"),
  };
}

/** How a listen address is written in logs and messages. */
export function formatListen(listen: Listen): string {
  if (listen.kind === "unix") return `unix:${listen.path}`;
  return listen.hostname.includes(":") ? `[${listen.hostname}]:${listen.port}` : `${listen.hostname}:${listen.port}`;
}
