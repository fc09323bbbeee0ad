// TLS to Redis (rediss://) as operators run it: a private CA to trust (--redis-ca), and a client certificate for
// Redis's default `tls-auth-clients yes` (--redis-cert with --redis-key). The files are read once, at start-up,
// as config.ts reads its settings, so that a missing or unreadable one is a usage error before anything is bound,
// not a reconnect loop.

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

/** The settings these come from, read (config.ts's rows --redis-ca, --redis-cert, --redis-key). */
interface TlsSettings {
  redis: RedisTarget | undefined;
  redisCa: string | undefined;
  redisCert: string | undefined;
  redisKey: string | undefined;
}

/** A row's parser: reads a PEM file (--redis-ca, --redis-cert, --redis-key) and returns its text. */
export function parsePemFile(path: string, name: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new ConfigError(`cannot read ${name} ${path}: ${code}`);
  }
  if (!text.includes("-----BEGIN ")) throw new ConfigError(`bad ${name} ${path}: not a PEM file`);
  return text;
}

/** Throws unless the TLS files given fit --redis: only with rediss://, a certificate only with its key. */
export function redisTlsFits(settings: TlsSettings): void {
  const given = Object.entries({
    "--redis-ca": settings.redisCa,
    "--redis-cert": settings.redisCert,
    "--redis-key": settings.redisKey,
  })
    .filter(([, text]) => text !== undefined)
    .map(([flag]) => flag);
  if (given.length === 0) return;
  const target = settings.redis;
  if ((target?.kind !== "tcp" && target?.kind !== "cluster") || !target.tls) {
    throw new ConfigError(`${given[0]} needs a rediss:// or rediss+cluster:// --redis: it is for TLS to Redis`);
  }
  if ((settings.redisCert === undefined) !== (settings.redisKey === undefined)) {
    throw new ConfigError("--redis-cert and --redis-key go together: give both or neither");
  }
}

/** The files for the Redis connections; undefined when none was given. */
export function redisTlsFiles(settings: TlsSettings): TlsFiles | undefined {
  const { redisCa: ca, redisCert: cert, redisKey: key } = settings;
  return ca === undefined && cert === undefined && key === undefined ? undefined : { ca, cert, key };
}

/**
 * ioredis's `tls` for a rediss:// target. Only a name may be the server name (SNI); an IP address is checked
 * against the certificate's IP addresses instead, and giving it as servername makes the connection fail.
 */
export function tlsOptions(host: string, files: TlsFiles | undefined): ConnectionOptions {
  return { ...(isIP(host) === 0 ? { servername: host } : {}), ...certificates(files) };
}

/**
 * ioredis's `tls` for every node of a rediss+cluster:// target: no server name, since one would be wrong for all
 * but one node. Each node is reached at the address the cluster gives for it, checked against the certificate.
 */
export function clusterTlsOptions(files: TlsFiles | undefined): ConnectionOptions {
  return certificates(files);
}

function certificates(files: TlsFiles | undefined): ConnectionOptions {
  return {
    ...(files?.ca === undefined ? {} : { ca: files.ca }),
    ...(files?.cert === undefined ? {} : { cert: files.cert, key: files.key }),
  };
}
