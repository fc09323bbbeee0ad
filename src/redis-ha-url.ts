// The --redis forms that name several Redis processes rather than one, for a broker that survives losing one:
// Redis Sentinel (`redis+sentinel://`, the sentinels that say which Redis is the master now) and Redis Cluster
// (`redis+cluster://`, or `rediss+cluster://` with TLS, a few of the cluster's nodes, from which the client learns
// the rest). Several hosts
// separated by commas are not a URL that `new URL` takes, so the value is taken apart here by hand; as for
// redis://, a password lives only in the target's `password`, never in a message.

import { ConfigError } from "./config-error.ts";

export interface HostPort {
  host: string;
  port: number;
}

export interface SentinelTarget {
  kind: "sentinel";
  /** The sentinels to ask, in order. */
  sentinels: HostPort[];
  /** The master's name in the sentinels' configuration (`sentinel monitor NAME ...`). */
  name: string;
  /** The credentials of the master and its replicas; the sentinels are asked without any. */
  username: string | undefined;
  password: string | undefined;
  db: number;
  /** The URL with any password replaced by `***`. */
  display: string;
}

export interface ClusterTarget {
  kind: "cluster";
  /** Some of the cluster's nodes: the client learns the others, and which owns what, from them. */
  nodes: HostPort[];
  username: string | undefined;
  password: string | undefined;
  /** rediss+cluster://: TLS to every node (the cluster's own `tls-cluster yes` makes it name its TLS ports). */
  tls: boolean;
  display: string;
}

export const SENTINEL_DEFAULT_PORT = 26379;
const CLUSTER_DEFAULT_PORT = 6379;
const MAX_DB = 1_000_000;
export const SENTINEL_FORM = "redis+sentinel://[[user]:password@]host[:port][,host[:port]...]/MASTER_NAME[/db]";
export const CLUSTER_FORM =
  "redis+cluster://[[user]:password@]host[:port][,host[:port]...] (rediss+cluster:// for TLS)";

/** Parses a value whose scheme is redis+sentinel, redis+cluster or rediss+cluster (parseRedisUrl hands them here). */
export function parseHaUrl(
  scheme: "redis+sentinel" | "redis+cluster" | "rediss+cluster",
  value: string,
  name = "--redis",
): SentinelTarget | ClusterTarget {
  const form = scheme === "redis+sentinel" ? SENTINEL_FORM : CLUSTER_FORM;
  // The value itself is never echoed: it may hold a password.
  const bad = (why: string) => new ConfigError(`bad ${name}: ${why}; expected ${form}`);
  const rest = value.slice(scheme.length + 3);
  if (/[?#]/.test(rest)) throw bad("no query or fragment is understood");
  const slash = rest.indexOf("/");
  const authority = slash < 0 ? rest : rest.slice(0, slash);
  const path = slash < 0 ? "" : rest.slice(slash);
  const at = authority.lastIndexOf("@");
  const { username, password, auth } = credentials(at < 0 ? undefined : authority.slice(0, at), bad);
  const hostList = authority.slice(at + 1);
  const defaultPort = scheme === "redis+sentinel" ? SENTINEL_DEFAULT_PORT : CLUSTER_DEFAULT_PORT;
  const hosts = hostList.split(",").map((part) => hostPort(part, defaultPort, bad));
  const hostText = hosts.map((h) => `${h.host.includes(":") ? `[${h.host}]` : h.host}:${h.port}`).join(",");
  if (scheme !== "redis+sentinel") {
    if (path !== "" && path !== "/") throw bad("a Redis Cluster has no database number or other path");
    const tls = scheme === "rediss+cluster";
    return { kind: "cluster", nodes: hosts, username, password, tls, display: `${scheme}://${auth}${hostText}` };
  }
  const match = /^\/([A-Za-z0-9._-]{1,200})(?:\/(\d{1,7}))?\/?$/.exec(path);
  if (match?.[1] === undefined) throw bad("the path must be the master's name, then a database number if any");
  const db = match[2] === undefined ? 0 : Number(match[2]);
  if (db > MAX_DB) throw bad("database number too large");
  return {
    kind: "sentinel",
    sentinels: hosts,
    name: match[1],
    username,
    password,
    db,
    display: `${scheme}://${auth}${hostText}/${match[1]}/${db}`,
  };
}

function credentials(userinfo: string | undefined, bad: (why: string) => ConfigError) {
  if (userinfo === undefined) return { username: undefined, password: undefined, auth: "" };
  const colon = userinfo.indexOf(":");
  const rawUser = colon < 0 ? userinfo : userinfo.slice(0, colon);
  const rawPassword = colon < 0 ? "" : userinfo.slice(colon + 1);
  let username: string | undefined;
  let password: string | undefined;
  try {
    username = rawUser === "" ? undefined : decodeURIComponent(rawUser);
    password = rawPassword === "" ? undefined : decodeURIComponent(rawPassword);
  } catch {
    throw bad("the user or password is not well %-encoded");
  }
  const auth = password === undefined ? (username === undefined ? "" : `${rawUser}@`) : `${rawUser}:***@`;
  return { username, password, auth };
}

function hostPort(part: string, defaultPort: number, bad: (why: string) => ConfigError): HostPort {
  const match = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(?::(\d{1,5}))?$/.exec(part);
  if (match?.[1] === undefined) throw bad(part === "" ? "a host is missing" : "a host is not host[:port]");
  const port = match[3] === undefined ? defaultPort : Number(match[3]);
  if (port < 1 || port > 65535) throw bad("a port is not from 1 to 65535");
  const host = match[1].startsWith("[") ? match[1].slice(1, -1) : match[1];
  return { host, port };
}
