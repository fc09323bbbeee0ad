// Real pinghub servers for the tests: in this process on a free port (fast, for protocol tests), or as a
// separate `bun src/main.ts` process (for flags, signals, files and exit codes).

import type { Subprocess } from "bun";
import { localBroker } from "../../src/broker.ts";
import { type Config, toConfig } from "../../src/config.ts";
import { historySettings } from "../../src/history.ts";
import { Hub } from "../../src/hub.ts";
import { type ChannelServer, type ServerHooks, startChannelServer } from "../../src/server.ts";

// Where the tests have always found it; it lives in ports.ts, which the benchmark and the scripts share.
export { freePort } from "./ports.ts";

export const ROOT = new URL("../../", import.meta.url).pathname;

/** The defaults (config.ts's table), on a free loopback port, with no metrics server and no log. */
export function testConfig(overrides: Partial<Config> = {}): Config {
  return { ...toConfig({ addr: "127.0.0.1:0", mport: "off", "log-level": "silent" }), ...overrides };
}

export interface TestServer extends ChannelServer {
  /** `http://127.0.0.1:PORT` + path, with the path used as given (no encoding added). */
  http(path: string): string;
  ws(path: string): string;
  port: number;
}

export async function startServer(overrides: Partial<Config> = {}, hooks: ServerHooks = {}): Promise<TestServer> {
  const config = testConfig(overrides);
  // A single node's hub, as main.ts makes it without --redis.
  const hub = new Hub(config, undefined, localBroker(historySettings(config)));
  const channels = await startChannelServer(config, hub, hooks);
  const port = channels.server.port ?? 0;
  return {
    ...channels,
    port,
    http: (path) => `http://127.0.0.1:${port}${path}`,
    ws: (path) => `ws://127.0.0.1:${port}${path}`,
  };
}

export interface PinghubProcess {
  proc: Subprocess<"ignore", "pipe", "pipe">;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** Resolves with the first stderr text matching `pattern`. */
  waitForStderr(pattern: RegExp, timeoutMs?: number): Promise<RegExpMatchArray>;
  exited: Promise<number>;
}

/** Runs `bun src/main.ts` with these flags, as an operator would. */
export function spawnPinghub(args: string[], env: Record<string, string> = {}): PinghubProcess {
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const waiters = new Set<() => void>();
  (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) {
      text += decoder.decode(chunk, { stream: true });
      for (const wake of waiters) wake();
    }
  })();
  return {
    proc,
    stderr: () => text,
    exited: proc.exited,
    waitForStderr(pattern, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const match = text.match(pattern);
          if (match === null) return false;
          cleanup();
          resolve(match);
          return true;
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`stderr never matched ${pattern}; it was:\n${text}`));
        }, timeoutMs);
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(wake);
        };
        const wake = () => void check();
        if (!check()) {
          waiters.add(wake);
          // Once the process has exited and its last output is read, a pattern not seen yet never will be.
          proc.exited.then(() =>
            setTimeout(() => {
              if (check()) return;
              cleanup();
              reject(new Error(`exited; stderr:\n${text}`));
            }),
          );
        }
      });
    },
  };
}

/** Starts a pinghub process on a free port and returns it with its URL, once it says it is serving. */
export async function spawnServing(args: string[] = [], env: Record<string, string> = {}) {
  const pinghub = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "off", ...args], env);
  const [, url] = await pinghub.waitForStderr(/serving ([^\s,]+)/);
  return { ...pinghub, url: url as string };
}

/** Reads one sample from a Prometheus text scrape: `name` or `name{labels}` as written there. */
export function sample(scrape: string, series: string): number | undefined {
  const line = scrape.split("\n").find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
