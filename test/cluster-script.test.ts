// `bun run cluster`, the way to try cluster mode on one machine: Redis, N nodes and nginx from one command,
// the URLs printed, a message through nginx reaching a subscriber, and Ctrl-C leaving nothing behind.

import { expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { post, subscribe } from "./support/clients.ts";
import { missingNginx } from "./support/nginx.ts";
import { skipWithoutRedis } from "./support/redis.ts";
import { freePort, ROOT } from "./support/server.ts";

const noNginx = missingNginx(false);
if (noNginx !== "" && process.env.CI === "true") throw new Error(noNginx);

test.skipIf(noNginx !== "" || skipWithoutRedis())(
  "starts Redis, three nodes and nginx, prints the URLs, carries a message, and stops it all on Ctrl-C",
  async () => {
    const port = freePort();
    const cluster = Bun.spawn([process.execPath, "scripts/cluster.ts", "--nodes", "3", "--port", String(port)], {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
    });
    let printed = "";
    const decoder = new TextDecoder();
    for await (const chunk of cluster.stdout) {
      printed += decoder.decode(chunk, { stream: true });
      if (printed.includes("Ctrl-C stops everything.")) break;
    }
    const base = `http://127.0.0.1:${port}/pinghub`;
    expect(printed).toContain(`pinghub cluster: 3 nodes on redis://127.0.0.1:`);
    expect(printed).toContain(`bun run pinghub watch ${base}/hello`);
    const dir = /files and logs:\s+(\S+)/.exec(printed)?.[1] ?? "";
    expect(existsSync(dir)).toBe(true);

    const s = await subscribe(`ws://127.0.0.1:${port}/pinghub/hello`);
    const response = await post(`${base}/hello`, "through the cluster");
    expect([response.status, response.headers.get("x-pinghub-nodes")]).toEqual([200, "1"]);
    expect(await s.received(1)).toEqual(["through the cluster"]);

    cluster.kill("SIGINT");
    expect(await cluster.exited).toBe(0);
    expect((await s.closed).code).not.toBe(1000);
    expect(existsSync(dir)).toBe(false);
    // nginx is gone with its port.
    await expect(fetch(`${base}/hello`)).rejects.toThrow();
  },
  30_000,
);
