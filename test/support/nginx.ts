// Real nginx for the tests: a shipped examples/nginx*.conf with only its paths and ports moved under a temporary
// directory, run in the foreground as `nginx -p DIR -c FILE -g 'daemon off;'`, so the test owns the process.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { until } from "./until.ts";

export const NGINX = "/usr/sbin/nginx";
/** Loaded by absolute path in examples/nginx-auth.conf; both come with Debian's libnginx-mod-http-lua. */
export const LUA_MODULES = [
  "/usr/lib/nginx/modules/ndk_http_module.so",
  "/usr/lib/nginx/modules/ngx_http_lua_module.so",
] as const;

/**
 * What is missing to run nginx (and, with `lua`, the auth recipe), as a line naming the Debian packages; an
 * empty string when nothing is.
 */
export function missingNginx(lua: boolean): string {
  if (!existsSync(NGINX)) return `${NGINX} not found: install the Debian packages nginx and libnginx-mod-http-lua`;
  const module = lua ? LUA_MODULES.find((path) => !existsSync(path)) : undefined;
  if (module !== undefined) return `${module} not found: install the Debian package libnginx-mod-http-lua`;
  return "";
}

/**
 * The shipped file with each `[from, to]` replaced everywhere. Every `from` must occur: if the example
 * changes, the test must change with it rather than quietly run something else.
 */
export function templateConfig(text: string, replacements: ReadonlyArray<readonly [string, string]>): string {
  let result = text;
  for (const [from, to] of replacements) {
    if (!result.includes(from)) throw new Error(`the example config no longer contains ${JSON.stringify(from)}`);
    result = result.replaceAll(from, to);
  }
  return result;
}

export interface Nginx {
  proc: Subprocess<"ignore", "ignore", "pipe">;
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** The error log so far. */
  errorLog(): string;
  /** `nginx -s reload`: new workers with the config read again; old ones close what is left at the timeout. */
  reload(): void;
  stop(): Promise<void>;
}

/**
 * Writes `config` (already templated to log to `dir`/logs/ and listen on `port`) to `dir` and runs nginx on
 * it; resolves once nginx answers on the port.
 */
export async function startNginx(dir: string, name: string, config: string, port: number): Promise<Nginx> {
  mkdirSync(join(dir, "logs"), { recursive: true });
  const file = join(dir, `${name}.conf`);
  writeFileSync(file, config);
  const proc = Bun.spawn([NGINX, "-p", dir, "-c", file, "-g", "daemon off;"], {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  const stderr = new Response(proc.stderr).text();
  const errorLog = () => {
    try {
      return readFileSync(join(dir, "logs", "error.log"), "utf8");
    } catch {
      return "";
    }
  };
  const url = `http://127.0.0.1:${port}`;
  await until(
    async () => {
      if (proc.exitCode !== null) throw new Error(`nginx exited with ${proc.exitCode}: ${await stderr}${errorLog()}`);
      return fetch(`${url}/`).then(
        () => true,
        () => false,
      );
    },
    () => `nginx answers on ${url}: ${errorLog()}`,
  );
  return {
    proc,
    url,
    errorLog,
    reload: () => proc.kill("SIGHUP"),
    async stop() {
      // SIGTERM: nginx's fast shutdown, which closes websockets at once rather than after the timeout.
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      await proc.exited;
      clearTimeout(timer);
    },
  };
}
