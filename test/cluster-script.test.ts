// `bun run cluster`, the way to try cluster mode on one machine: Redis, N nodes and nginx from one command,
// the URLs printed, a message through nginx reaching a subscriber, a killed node restarted with the flags it
// was given, and Ctrl-C leaving nothing behind.

import { afterEach, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import type { Subprocess } from "bun";
import { post, subscribe } from "./support/clients.ts";
import { missingNginx } from "./support/nginx.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { skipWithoutRedis } from "./support/redis.ts";
import { freePort, ROOT } from "./support/server.ts";

const noNginx = missingNginx(false);
if (noNginx !== "" && process.env.CI === "true") throw new Error(noNginx);
const skip = noNginx !== "" || skipWithoutRedis();

/** Scripts still running when a test ends, failed or not: Ctrl-C, so that nothing is left behind. */
const running = new Set<Subprocess>();
afterEach(async () => {
  for (const proc of running) proc.kill("SIGINT");
  await Promise.all([...running].map((proc) => proc.exited));
  running.clear();
});

/** `bun scripts/cluster.ts ARGS`, with its output so far and a way to wait for a line of it. */
function startCluster(args: string[]) {
  const proc = Bun.spawn([process.execPath, "scripts/cluster.ts", ...args], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  running.add(proc);
  const output = { stdout: "", stderr: "" };
  const waiters = new Set<() => void>();
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) {
      output[key] += decoder.decode(chunk, { stream: true });
      for (const wake of waiters) wake();
    }
  };
  const done = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")]);
  /** Resolves with the match once `pattern` is in the output (stdout then stderr); rejects if the script ends. */
  const waitFor = (key: "stdout" | "stderr", pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpMatchArray>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no ${pattern} in the script's ${key}: ${JSON.stringify(output)}`));
      }, timeoutMs);
      const check = () => {
        const match = output[key].match(pattern);
        if (match === null) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(match);
      };
      waiters.add(check);
      check();
      void done.then(() => {
        if (waiters.has(check)) {
          check();
          if (waiters.has(check)) reject(new Error(`the script ended without ${pattern}: ${JSON.stringify(output)}`));
        }
      });
    });
  return { proc, output, done, waitFor };
}

test.skipIf(skip)(
  "starts Redis, three nodes and nginx, prints the URLs, carries a message, and stops it all on Ctrl-C",
  async () => {
    const port = freePort();
    const cluster = startCluster(["--nodes", "3", "--port", String(port)]);
    await cluster.waitFor("stdout", /Ctrl-C stops everything\.\n/);
    const printed = cluster.output.stdout;
    const base = `http://127.0.0.1:${port}/pinghub`;
    expect(printed).toContain(`pinghub cluster: 3 nodes on redis://127.0.0.1:`);
    expect(printed).toContain(`bun run pinghub watch ${base}/hello`);
    expect(printed).not.toContain("node flags");
    const dir = /files and logs:\s+(\S+)/.exec(printed)?.[1] ?? "";
    expect(existsSync(dir)).toBe(true);

    const s = await subscribe(`ws://127.0.0.1:${port}/pinghub/hello`);
    const response = await post(`${base}/hello`, "through the cluster");
    expect([response.status, response.headers.get("x-pinghub-nodes")]).toEqual([200, "1"]);
    expect(await s.received(1)).toEqual(["through the cluster"]);

    cluster.proc.kill("SIGINT");
    expect(await cluster.proc.exited).toBe(0);
    expect((await s.closed).code).not.toBe(1000);
    expect(existsSync(dir)).toBe(false);
    // nginx is gone with its port.
    await expect(fetch(`${base}/hello`)).rejects.toThrow();
  },
  30_000,
);

test.skipIf(skip)(
  "a node killed with SIGKILL is restarted on its socket, says so, and serves with the node flags given",
  async () => {
    const port = freePort();
    const cluster = startCluster(["--port", String(port), "--nodes", "2", "--history", "10", "--max-message-size=100"]);
    await cluster.waitFor("stdout", /Ctrl-C stops everything\.\n/);
    expect(cluster.output.stdout).toContain("  node flags:        --history 10 --max-message-size=100\n");
    const [, socket = "", pid = ""] = await cluster.waitFor("stdout", /node 2: +(\S+), metrics \S+, pid (\d+)\n/);

    process.kill(Number(pid), "SIGKILL");
    await cluster.waitFor("stderr", /cluster: node 2 was killed by SIGKILL; restarting it in \d+ ms\n/);
    const [, newPid] = await cluster.waitFor("stderr", /cluster: node 2 serves again, pid (\d+)\n/);
    expect(newPid).not.toBe(pid);

    // Back on the same socket, on Redis: its subscribers, a websocket and an SSE stream (whose answer comes once
    // it has joined), hear a message POSTed through nginx.
    const subscriber = await RawWebSocket.connect({ unix: socket }, "/back");
    expect(subscriber.status).toBe(101);
    const stream = await fetch("http://localhost/back", { headers: { Accept: "text/event-stream" }, unix: socket });
    expect(stream.status).toBe(200);
    const response = await post(`http://127.0.0.1:${port}/pinghub/back`, "after the restart");
    expect(response.status).toBe(200);
    await subscriber.until(() => subscriber.texts().length === 1);
    expect(subscriber.texts()).toEqual(["after the restart"]);
    subscriber.destroy();
    // The restarted node has the flags too: --history's id on the SSE event, and --max-message-size.
    const reader = (stream.body as ReadableStream<Uint8Array>).getReader();
    let events = "";
    while (!events.includes("after the restart")) {
      const { value, done } = await reader.read();
      if (done) break;
      events += new TextDecoder().decode(value);
    }
    await reader.cancel();
    expect(events).toMatch(/\nid: \S+\ndata: after the restart\n/);
    const big = await fetch("http://localhost/back", { method: "POST", body: "x".repeat(101), unix: socket });
    expect([big.status, await big.text()]).toEqual([413, "message too large: the limit is 100 bytes\n"]);

    cluster.proc.kill("SIGINT");
    expect(await cluster.proc.exited).toBe(0);
    await cluster.done;
    expect(cluster.output.stderr).not.toContain("stopping everything");
  },
  40_000,
);

/** The `n`th occurrence of `line` (a regular expression with one group): its group is the one matched. */
function nth(n: number, line: string): RegExp {
  const earlier = line.replace(/\((?!\?)/g, "(?:");
  return new RegExp(`^(?:[\\s\\S]*?${earlier}){${n - 1}}[\\s\\S]*?${line}`);
}

test.skipIf(skip)(
  "a node that dies at once after each restart is restarted later each time, then everything stops",
  async () => {
    const cluster = startCluster(["--nodes", "1", "--port", String(freePort())]);
    await cluster.waitFor("stdout", /Ctrl-C stops everything\.\n/);
    const dir = /files and logs:\s+(\S+)/.exec(cluster.output.stdout)?.[1] ?? "";
    let [, pid = ""] = await cluster.waitFor("stdout", /node 1: +\S+, metrics \S+, pid (\d+)\n/);
    for (let death = 1; death < 5; death++) {
      process.kill(Number(pid), "SIGTERM");
      const backoff = await cluster.waitFor("stderr", nth(death, "restarting it in (\\d+) ms\n"));
      expect(backoff[1]).toBe(String(250 * 2 ** (death - 1)));
      [, pid = ""] = await cluster.waitFor("stderr", nth(death, "serves again, pid (\\d+)\n"));
    }
    process.kill(Number(pid), "SIGTERM");
    expect(await cluster.proc.exited).toBe(1);
    await cluster.done;
    expect(cluster.output.stderr).toContain("cluster: node 1 exited with status 0; restarting it in 250 ms\n");
    expect(cluster.output.stderr).toMatch(
      /cluster: node 1 exited with status 0, its 5th death in a row within 10 s of starting; stopping everything\n$/,
    );
    expect(existsSync(dir)).toBe(false);
  },
  40_000,
);

test.skipIf(skip)("a node that cannot start stops everything with its own error line, and exit 1", async () => {
  const cluster = startCluster(["--nodes", "2", "--port", String(freePort()), "--history", "lots"]);
  expect(await cluster.proc.exited).toBe(1);
  await cluster.done;
  expect(cluster.output.stderr).toContain("--history");
  expect(cluster.output.stderr).toMatch(/cluster: node 1 exited with status 2 while starting; stopping everything\n$/);
  expect(cluster.output.stdout).toBe("");
});

test("a flag the script sets for each node is refused, exit 2", async () => {
  const cluster = startCluster(["--mport", "9000"]);
  expect(await cluster.proc.exited).toBe(2);
  await cluster.done;
  expect(cluster.output.stderr).toBe("cluster: --mport is set by the script for each node\n");
});
