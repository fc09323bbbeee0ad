// Where cluster mode finds Redis: the --redis value, parsed and checked before anything is bound, and a form of
// it that is safe to print. A password given in the URL lives only in `RedisTarget.password`, never in a message.

import { ConfigError } from "./config-error.ts";
import { type ClusterTarget, parseHaUrl, type SentinelTarget } from "./redis-ha-url.ts";

export type RedisTarget =
  | {
      kind: "tcp";
      host: string;
      port: number;
      username: string | undefined;
      password: string | undefined;
      db: number;
      tls: boolean;
      /** The URL with any password replaced by `***`: what logs, errors and metrics may show. */
      display: string;
    }
  | { kind: "unix"; path: string; display: string }
  | SentinelTarget
  | ClusterTarget;

export const REDIS_DEFAULT_PORT = 6379;
/** Redis's own default number of logical databases is 16; a server may be set up with more. */
const MAX_DB = 1_000_000;

/**
 * `redis://[[user]:password@]host[:port][/db]`, `rediss://…` (TLS), an absolute UNIX socket path, or Redis
 * Sentinel's and Redis Cluster's forms (redis-ha-url.ts).
 */
export function parseRedisUrl(value: string, name = "--redis"): RedisTarget {
  if (value.startsWith("/")) return { kind: "unix", path: value, display: value };
  // The value itself is never echoed: it may hold a password. The scheme alone is safe to name.
  const bad = (why: string) =>
    new ConfigError(
      `bad ${name}: ${why}; expected redis://[[user]:password@]host[:port][/db], rediss://…, /path, ` +
        "redis+sentinel://… or redis+cluster://… (rediss+cluster://…)",
    );
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(value)?.[1]?.toLowerCase();
  if (scheme === undefined) throw bad("not a URL");
  if (scheme === "redis+sentinel" || scheme === "redis+cluster" || scheme === "rediss+cluster") {
    return parseHaUrl(scheme, value, name);
  }
  if (scheme !== "redis" && scheme !== "rediss") throw bad(`unknown scheme "${scheme.slice(0, 20)}"`);
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw bad("the URL does not parse");
  }
  if (url.hostname === "") throw bad("no host");
  if (url.search !== "" || url.hash !== "") throw bad("no query or fragment is understood");
  const path = url.pathname;
  if (path !== "" && path !== "/" && !/^\/\d{1,7}$/.test(path)) throw bad("the path must be a database number");
  const db = path.length > 1 ? Number(path.slice(1)) : 0;
  if (db > MAX_DB) throw bad("database number too large");
  const port = url.port === "" ? REDIS_DEFAULT_PORT : Number(url.port);
  const username = url.username === "" ? undefined : decodeURIComponent(url.username);
  const password = url.password === "" ? undefined : decodeURIComponent(url.password);
  const host = url.hostname.startsWith("[") ? url.hostname.slice(1, -1) : url.hostname;
  const auth = password === undefined ? (username === undefined ? "" : `${url.username}@`) : `${url.username}:***@`;
  return {
    kind: "tcp",
    host,
    port,
    username,
    password,
    db,
    tls: scheme === "rediss",
    display: `${scheme}://${auth}${url.host}/${db}`,
  };
}
