// The parsers of single setting values: addresses, ports, origins, paths, numbers. Each takes the value and the
// name it came by (`--mport`, or `PINGHUB_MPORT` when it came from the environment), so that a bad value is
// named as the operator wrote it, and throws a ConfigError whose message is the whole line printed.

import { availableParallelism } from "node:os";
import { ConfigError } from "./config-error.ts";

/** Where the channel server listens: a TCP host and port, or a UNIX socket path. */
export type Listen = TcpListen | { kind: "unix"; path: string };
export type TcpListen = { kind: "tcp"; hostname: string; port: number };

export type LogLevel = "silent" | "error" | "warn" | "info" | "debug";
export const LOG_LEVELS: readonly LogLevel[] = ["silent", "error", "warn", "info", "debug"];

/** `host:port`, `:port` (all interfaces), `[v6]:port`, or an absolute UNIX socket path. */
export function parseListen(value: string, name: string): Listen {
  if (value.startsWith("/")) return { kind: "unix", path: value };
  // The form the start line prints: `unix:/run/pinghub/pinghub.sock`.
  if (value.startsWith("unix:/")) return { kind: "unix", path: value.slice("unix:".length) };
  return parseHostPort(value, name, "expected host:port, :port, [ipv6]:port or an absolute socket path");
}

/**
 * The metrics server's address: `off`; a port on 127.0.0.1 (0: any free one, shown in the start line); or a TCP
 * address in --addr's forms, such as 0.0.0.0:8082 for a Prometheus on another host.
 */
export function parseMetricsListen(value: string, name: string): TcpListen | undefined {
  if (value === "off") return undefined;
  if (/^\d+$/.test(value)) return { kind: "tcp", hostname: "127.0.0.1", port: parsePort(value, `${name} "${value}"`) };
  return parseHostPort(value, name, "expected a port, host:port, [ipv6]:port or off");
}

function parseHostPort(value: string, name: string, expected: string): TcpListen {
  const bad = (why: string) => new ConfigError(`bad ${name} "${value}": ${why}`);
  const colon = value.lastIndexOf(":");
  if (colon < 0) throw bad(expected);
  let host = value.slice(0, colon);
  const port = parsePort(value.slice(colon + 1), `${name} "${value}"`);
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

/** How a listen address is written in logs and messages: `127.0.0.1:8081`, `[::1]:8081`, `unix:/path`. */
export function formatListen(listen: Listen): string {
  if (listen.kind === "unix") return `unix:${listen.path}`;
  return listen.hostname.includes(":") ? `[${listen.hostname}]:${listen.port}` : `${listen.hostname}:${listen.port}`;
}

/**
 * `scheme://host[:port]`, returned in the form browsers send in the Origin header, or `scheme://*.host[:port]`
 * for every subdomain of host.
 */
export function parseOrigin(value: string, name: string): string {
  const bad = new ConfigError(
    `bad ${name} "${value}": expected scheme://host[:port] or scheme://*.host[:port], such as https://example.com`,
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

/** One or more origins, comma-separated, normalised, without duplicates. */
export function parseOrigins(value: string, name: string): string[] {
  const origins = value
    .split(",")
    .map((part) => part.trim())
    .filter((part) => part !== "");
  if (origins.length === 0) throw new ConfigError(`bad ${name} "${value}": no origin in it`);
  return [...new Set(origins.map((origin) => parseOrigin(origin, name)))];
}

export function parseLogFile(value: string, name: string): string {
  if (!value.startsWith("/")) throw new ConfigError(`bad ${name} "${value}": the log file must be an absolute path`);
  return value;
}

export function parseLogLevel(value: string, name: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === value);
  if (!level) throw new ConfigError(`bad ${name} "${value}": expected one of ${LOG_LEVELS.join(", ")}`);
  return level;
}

/** A whole number above zero, as bytes or seconds. */
export function parsePositiveInt(value: string, name: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
    throw new ConfigError(`bad ${name} "${value}": expected a whole number above zero`);
  }
  return n;
}

/** A whole number, zero included. */
export function parseCount(value: string, name: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || !Number.isSafeInteger(n)) {
    throw new ConfigError(`bad ${name} "${value}": expected a whole number, 0 or more`);
  }
  return n;
}

/** Seconds of websocket silence: Bun's idle timer counts in steps of 4 s, pings one step before, stops at 960 s. */
export function parseIdleTimeout(value: string, name: string): number {
  const seconds = parsePositiveInt(value, name);
  if (seconds < 8 || seconds > 960) throw new ConfigError(`bad ${name} "${value}": from 8 to 960 seconds`);
  return seconds;
}

/** An octal file mode such as 0660. */
export function parseSocketMode(value: string, name: string): number {
  if (!/^0?[0-7]{3}$/.test(value)) throw new ConfigError(`bad ${name} "${value}": expected octal such as 0660`);
  return Number.parseInt(value, 8);
}

/** Any text, as given (a value is never empty: an empty one counts as not given). */
export const parseText = (value: string): string => value;

/** More workers than this is surely a typo: each holds its own Redis connections and memory. */
const MAX_WORKERS = 256;

/** A number of workers, or `auto`: as many as the CPUs this process may run on (its affinity, not the box's). */
export function parseWorkers(value: string, name: string): number {
  if (value === "auto") return availableParallelism();
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_WORKERS) {
    throw new ConfigError(`bad ${name} "${value}": expected auto or a whole number from 1 to ${MAX_WORKERS}`);
  }
  return n;
}
/** `yes` or `no`. */
export function parseYesNo(value: string, name: string): boolean {
  if (value === "yes") return true;
  if (value === "no") return false;
  throw new ConfigError(`bad ${name} "${value}": expected yes or no`);
}

/** Seconds above zero, fractions allowed (`0.5`), up to an hour. */
export function parseSeconds(value: string, name: string): number {
  const n = Number(value);
  if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > 3600) {
    throw new ConfigError(`bad ${name} "${value}": expected seconds above 0, up to 3600, such as 2 or 0.5`);
  }
  return n;
}

/** An http:// or https:// URL, normalised. */
export function parseHttpUrl(value: string, name: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigError(`bad ${name} "${value}": not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(`bad ${name} "${value}": expected an http:// or https:// URL`);
  }
  return url.href;
}
