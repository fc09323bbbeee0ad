// Nchan, the peer the benchmark measures pinghub beside: nginx with Debian's libnginx-mod-nchan, configured by
// nchan.conf beside this file, alone ("nchan") or publishing through a redis-server of its own ("nchan-redis",
// nostore, the Redis placed as the cluster scenario places pinghub's). Where nginx or the module is missing the
// peer's figures say "not installed" and the benchmark runs without it.

import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export const NGINX = "/usr/sbin/nginx";
/**
 * Where Debian puts the module (libnginx-mod-nchan): the file itself, or the directory that
 * /usr/share/nginx/modules-available/mod-nchan.conf's `load_module modules/...` is relative to.
 */
const MODULE_PATHS = ["/usr/lib/nginx/modules/ngx_nchan_module.so", "/usr/share/nginx/modules/ngx_nchan_module.so"];
const TEMPLATE = new URL("./nchan.conf", import.meta.url).pathname;

/** The module file, or undefined when the package is not installed. */
export function nchanModule(): string | undefined {
  return MODULE_PATHS.find((path) => existsSync(path));
}

/** Why Nchan cannot run here, naming the Debian packages; undefined when it can. */
export function missingNchan(): string | undefined {
  if (!existsSync(NGINX)) return `${NGINX} not found: install the Debian packages nginx and libnginx-mod-nchan`;
  if (nchanModule() === undefined)
    return "ngx_nchan_module.so not found: install the Debian package libnginx-mod-nchan";
  return undefined;
}

/** "Nchan 1.3.6 (nginx 1.22.1)", read from the package and the binary; for the report. */
export function nchanVersion(): string {
  const nginx = /nginx\/([\d.]+)/.exec(Bun.spawnSync([NGINX, "-v"]).stderr.toString())?.[1] ?? "?";
  // dpkg-query's own format placeholder, not a template string.
  const format = "$" + "{Version}";
  const query = Bun.spawnSync(["dpkg-query", "-W", "-f", format, "libnginx-mod-nchan"]);
  const nchan = /(?:\d+:)?([\d.]+)/.exec(query.stdout.toString())?.[1] ?? "?";
  return `Nchan ${nchan} (nginx ${nginx})`;
}

/**
 * Writes a config for one Nchan server on 127.0.0.1:`port` (through Redis on `redisPort` when given) into a
 * fresh directory, and returns the nginx command that runs it in the foreground, with its prefix there.
 */
export function nchanCommand(port: number, redisPort: number | undefined): { command: string[]; dir: string } {
  const module = nchanModule();
  if (module === undefined) throw new Error(missingNchan());
  const dir = mkdtempSync(join(tmpdir(), "pinghub-bench-nchan-"));
  mkdirSync(join(dir, "logs"));
  mkdirSync(join(dir, "tmp"));
  const redis = redisPort !== undefined;
  const config = readFileSync(TEMPLATE, "utf8")
    .replace("@MODULE@", module)
    .replace("@PORT@", String(port))
    .replace(
      "@REDIS_UPSTREAM@",
      redis
        ? `  upstream redis {\n    nchan_redis_server redis://127.0.0.1:${redisPort};\n    nchan_redis_storage_mode nostore;\n  }`
        : "",
    )
    .replace("@REDIS_PASS@", redis ? "      nchan_redis_pass redis;" : "");
  const file = join(dir, "nchan.conf");
  writeFileSync(file, config);
  return { command: [NGINX, "-p", dir, "-c", file, "-g", "daemon off;"], dir };
}

/** nginx's worker, once the master has forked it: the one process that does the work, whose CPU is the server's. */
export async function nginxWorker(masterPid: number, timeoutMs: number): Promise<number | undefined> {
  const deadline = performance.now() + timeoutMs;
  while (performance.now() < deadline) {
    try {
      const children = readFileSync(`/proc/${masterPid}/task/${masterPid}/children`, "latin1").trim().split(/\s+/);
      const first = Number(children[0]);
      if (Number.isInteger(first) && first > 0) return first;
    } catch {
      return undefined;
    }
    await Bun.sleep(10);
  }
  return undefined;
}
