// TLS to Redis (rediss://) as operators run it: a private CA to trust (--redis-ca), and a client certificate for
// Redis's default `tls-auth-clients yes` (--redis-cert with --redis-key). The files are read once, at start-up,
// so that a missing or unreadable one is a usage error before anything is bound, not a reconnect loop.

import { readFileSync } from "node:fs";
import { isIP } from "node:net";
import type { ConnectionOptions } from "node:tls";
import { ConfigError } from "./config-error.ts";
import type { RedisTarget } from "./redis-url.ts";

/** The PEM text of each file given; each undefined when its flag was not. */
export interface TlsFiles {
  ca: string | undefined;
  cert: string | undefined;
  key: string | undefined;
}

/** Reads --redis-ca, --redis-cert and --redis-key; undefined when none was given. */
export function readRedisTls(
  paths: { ca: string | undefined; cert: string | undefined; key: string | undefined },
  target: RedisTarget | undefined,
): TlsFiles | undefined {
  const given = Object.entries({ "--redis-ca": paths.ca, "--redis-cert": paths.cert, "--redis-key": paths.key })
    .filter(([, path]) => path !== undefined && path !== "")
    .map(([flag]) => flag);
  if (given.length === 0) return undefined;
  if (target?.kind !== "tcp" || !target.tls) {
    throw new ConfigError(`${given[0]} needs a rediss:// --redis: it is for TLS to Redis`);
  }
  const hasCert = paths.cert !== undefined && paths.cert !== "";
  const hasKey = paths.key !== undefined && paths.key !== "";
  if (hasCert !== hasKey) throw new ConfigError("--redis-cert and --redis-key go together: give both or neither");
  return {
    ca: readPem(paths.ca, "--redis-ca"),
    cert: readPem(paths.cert, "--redis-cert"),
    key: readPem(paths.key, "--redis-key"),
  };
}

function readPem(path: string | undefined, flag: string): string | undefined {
  if (path === undefined || path === "") return undefined;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`cannot read ${flag} ${path}: ${code}`);
  }
  if (!text.includes("-----BEGIN ")) throw new ConfigError(`bad ${flag} ${path}: not a PEM file`);
  return text;
}

/**
 * ioredis's `tls` for a rediss:// target. Only a name may be the server name (SNI); an IP address is checked
 * against the certificate's IP addresses instead, and giving it as servername makes the connection fail.
 */
export function tlsOptions(host: string, files: TlsFiles | undefined): ConnectionOptions {
  return {
    ...(isIP(host) === 0 ? { servername: host } : {}),
    ...(files?.ca === undefined ? {} : { ca: files.ca }),
    ...(files?.cert === undefined ? {} : { cert: files.cert, key: files.key }),
  };
}
