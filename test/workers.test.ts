// --workers against a real redis-server and real pinghub processes: connections spread over the workers on one
// port, one order per channel across them, a worker killed and started again while its clients reconnect to a
// live one, the parent giving up on a worker that keeps dying, SIGTERM closing every websocket with 1001, one
// metrics endpoint adding the workers up, one log with labelled lines reopened on SIGHUP, and the usage errors.

import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { parseCommandLine } from "../src/cli.ts";
import { NODES_HEADER } from "../src/post.ts";
import { post, type Subscriber } from "./support/clients.ts";
import { health, scrape, subscriberPool } from "./support/cluster-node.ts";
import { freePort } from "./support/ports.ts";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { inScratch } from "./support/scratch.ts";
import { type PinghubProcess, sample, spawnPinghub } from "./support/server.ts";
import { until } from "./support/until.ts";

interface Workers extends PinghubProcess {
  /** `http://127.0.0.1:PORT`, the port every worker serves. */
  url: string;
  ws(path: string): string;
  /** `http://127.0.0.1:MPORT`, the parent's metrics endpoint. */
  metrics: string;
  /** The pid of worker `id` as it last said it started. */
  pid(id: number): number;
}

const running: Workers[] = [];
const pool = subscriberPool();
const open = pool.open;
let redis: RedisServer | undefined;

/** Starts `pinghub --workers N` on free ports and waits until the parent says every worker serves. */
async function startWorkers(count: number, args: string[] = []): Promise<Workers> {
  redis ??= await startRedis();
  const mport = freePort();
  const pinghub = spawnPinghub([
    "--workers",
    String(count),
    "--redis",
    redis.url,
    "--addr",
    "127.0.0.1:0",
    "--mport",
    String(mport),
    ...args,
  ]);
  // With --log, the lines go to that file instead of stderr.
  const logFile = args[args.indexOf("--log") + 1];
  const output = () => (args.includes("--log") && logFile !== undefined ? readLog(logFile) : pinghub.stderr());
  const serving = new RegExp(`${count} workers serving (http://[^\\s,]+)`);
  await until(() => serving.test(output()) || pinghub.proc.exitCode !== null, "the parent says they serve");
  const url = output().match(serving)?.[1] ?? "";
  const port = new URL(url).port;
  const started = {
    ...pinghub,
    url,
    ws: (path: string) => `ws://127.0.0.1:${port}${path}`,
    metrics: `http://127.0.0.1:${mport}`,
    pid(id: number) {
      const pids = [...output().matchAll(new RegExp(`worker ${id}: started: pid (\\d+)`, "g"))];
      return Number(pids.at(-1)?.[1]);
    },
  };
  running.push(started);
  return started;
}

/** The log file's text so far; empty before it exists. */
function readLog(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

const count = (text: string, pattern: RegExp) => text.split("\n").filter((l) => pattern.test(l)).length;

const skip = skipWithoutRedis();
setDefaultTimeout(30_000);

afterEach(async () => {
  pool.closeAll();
  const all = running.splice(0);
  for (const workers of all) {
    // The parent's SIGKILL would leave its workers to notice the closed IPC channel; kill them too, at once.
    for (const id of [1, 2, 3]) {
      const pid = workers.pid(id);
      if (Number.isInteger(pid)) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    }
    workers.proc.kill("SIGKILL");
  }
  await Promise.all(all.map((w) => w.exited));
  await redis?.stop();
  redis = undefined;
});

describe("--workers usage errors", () => {
  test("more than one worker without --redis, or on a UNIX socket: exit 2 with one line", async () => {
    const noRedis = await parseCommandLine(["--workers", "2"], {});
    expect(noRedis).toEqual({
      kind: "exit",
      status: 2,
      stderr: 'pinghub: bad --workers "2": more than one worker needs --redis, which carries their channels\n',
    });
    const unix = await parseCommandLine(
      ["--workers", "2", "--redis", "redis://127.0.0.1", "--addr", "unix:/tmp/p.sock"],
      {},
    );
    expect(unix).toMatchObject({ kind: "exit", status: 2 });
    expect((unix as { stderr: string }).stderr).toBe(
      'pinghub: bad --workers "2": workers share a TCP port, not a UNIX socket (--addr)\n',
    );
    const fromEnv = await parseCommandLine([], { PINGHUB_WORKERS: "0" });
    expect((fromEnv as { stderr: string }).stderr).toMatch(/^pinghub: bad PINGHUB_WORKERS "0": expected auto or/);
    // One worker is the plain single process, Redis or not; auto is a count of CPUs.
    expect(await parseCommandLine(["--workers", "1"], {})).toMatchObject({ kind: "run", config: { workers: 1 } });
    const auto = await parseCommandLine(["--workers", "auto", "--redis", "redis://127.0.0.1"], {});
    expect((auto as { config: { workers: number } }).config.workers).toBeGreaterThanOrEqual(1);
  });
});

describe.skipIf(skip)("--workers", () => {
  test("connections land on both workers; a channel with subscribers on both has one order; the metrics add up", async () => {
    const workers = await startWorkers(2);
    const audience: Subscriber[] = [];
    for (let i = 0; i < 20; i++) audience.push(await open(workers.ws("/mix")));
    // Each worker is a cluster node: a POST says how many had subscribers of the channel.
    const first = await post(`${workers.url}/mix`, "first");
    expect([first.status, first.headers.get(NODES_HEADER)]).toEqual([200, "2"]);
    // Heard by every subscriber, so on both workers: a POST is answered once Redis took it, and the other worker
    // may hear it a moment later, when a websocket opened there meanwhile would hear it too (seen once in CI).
    await Promise.all(audience.map((s) => s.received(1)));
    // Publishers on both workers at once, websocket frames and POSTs interleaved.
    const publishers = [await open(workers.ws("/mix")), await open(workers.ws("/mix"))];
    const posts: Promise<unknown>[] = [];
    for (let i = 0; i < 30; i++) {
      for (const [p, publisher] of publishers.entries()) publisher.send(`ws ${p} ${i}`);
      posts.push(post(`${workers.url}/mix`, `post ${i}`));
    }
    await Promise.all(posts);
    const total = 1 + 30 * 3;
    const orders = await Promise.all(audience.map((s) => s.received(total)));
    for (const order of orders) expect(order).toEqual(orders[0] as string[]);
    // Every subscriber but the publishers missed "first"; the publishers joined after it.
    for (const p of publishers) expect(await p.received(total - 1)).toEqual((orders[0] as string[]).slice(1));

    const metrics = await scrape(workers);
    expect(sample(metrics, "pinghub_websockets")).toBe(22);
    expect(sample(metrics, "pinghub_websockets_opened_total")).toBe(22);
    expect(sample(metrics, "pinghub_post_messages_total")).toBe(31);
    expect(sample(metrics, "pinghub_websocket_messages_total")).toBe(60);
    expect(sample(metrics, "pinghub_sent_messages_total")).toBe(20 * total + 2 * (total - 1));
    expect(sample(metrics, "pinghub_workers")).toBe(2);
    expect(sample(metrics, 'pinghub_worker_up{worker="1"}')).toBe(1);
    expect(sample(metrics, 'pinghub_worker_up{worker="2"}')).toBe(1);
    expect(sample(metrics, "pinghub_redis_up")).toBe(1);
    expect(sample(metrics, 'pinghub_build_info{version="0.2.0"}')).toBe(1);
    expect(sample(metrics, 'pinghub_worker_resident_memory_bytes{worker="2"}')).toBeGreaterThan(1_000_000);
    expect(await health(workers)).toEqual({ status: 200, text: "ok\n" });
  });

  test("a worker SIGKILLed is started again; its clients reconnect to a live worker and receive again", async () => {
    const workers = await startWorkers(2);
    const audience: Subscriber[] = [];
    for (let i = 0; i < 20; i++) audience.push(await open(workers.ws("/k")));
    const killed = workers.pid(1);
    process.kill(killed, "SIGKILL");
    await workers.waitForStderr(/worker 1 \(pid \d+\) exited by SIGKILL; starting it again in 250 ms/);
    // The kernel hashed some connections to the killed worker: they are cut, the others stay. While no one has
    // reconnected, the endpoint's websockets are worker 2's alone, worker 1 being gone or just started again.
    const closedCount = () => audience.filter((s) => s.ws.readyState === WebSocket.CLOSED).length;
    await until(
      async () => closedCount() + (sample(await scrape(workers), "pinghub_websockets") ?? -1) === 20,
      "the killed worker's subscribers are cut and the other's kept",
    );
    const closedOnes = audience.filter((s) => s.ws.readyState === WebSocket.CLOSED);
    expect(closedOnes.length).toBeGreaterThan(0);
    expect(closedOnes.length).toBeLessThan(20);
    for (const s of closedOnes) expect((await s.closed).code).toBe(1006);
    const kept = audience.filter((s) => s.ws.readyState === WebSocket.OPEN);
    const again = await Promise.all(closedOnes.map(() => open(workers.ws("/k"))));
    await workers.waitForStderr(/worker 1 serves again/);
    expect(workers.pid(1)).not.toBe(killed);
    const response = await post(`${workers.url}/k`, "after");
    expect(response.status).toBe(200);
    for (const s of [...kept, ...again]) expect(await s.received(1)).toContain("after");
    await until(async () => (await health(workers)).status === 200, "/healthz is 200 again");
    const metrics = await scrape(workers);
    expect(sample(metrics, 'pinghub_worker_restarts_total{worker="1"}')).toBe(1);
    expect(sample(metrics, 'pinghub_worker_restarts_total{worker="2"}')).toBe(0);
  });

  test("/healthz is 503 while a worker does not answer, and says which", async () => {
    const workers = await startWorkers(2);
    expect((await health(workers)).status).toBe(200);
    const pid = workers.pid(2);
    process.kill(pid, "SIGSTOP");
    try {
      expect(await health(workers)).toEqual({ status: 503, text: "worker 2: not answering\n" });
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await until(async () => (await health(workers)).status === 200, "/healthz is 200 again");
  });

  test("a worker that keeps dying: the parent gives up, stops the others and exits 1", async () => {
    const workers = await startWorkers(2);
    for (let death = 1; death <= 6; death++) {
      const pid = workers.pid(1);
      process.kill(pid, "SIGKILL");
      if (death <= 5) await until(() => workers.pid(1) !== pid, `worker 1 started again after death ${death}`);
    }
    expect(await workers.exited).toBe(1);
    expect(workers.stderr()).toMatch(
      /exited by SIGKILL: it died 6 times within 60 s; giving up, stopping every worker/,
    );
    expect(workers.stderr()).toMatch(/worker 2: pinghub stopped/);
  });

  test("SIGTERM: every websocket on every worker closed with 1001, then the parent exits 0", async () => {
    const workers = await startWorkers(2);
    const audience: Subscriber[] = [];
    for (let i = 0; i < 20; i++) audience.push(await open(workers.ws(`/t${i % 3}`)));
    expect((await post(`${workers.url}/t0`, "x")).headers.get(NODES_HEADER)).toBe("2");
    workers.proc.kill("SIGTERM");
    const codes = await Promise.all(audience.map(async (s) => (await s.closed).code));
    expect(new Set(codes)).toEqual(new Set([1001]));
    expect(await workers.exited).toBe(0);
    const stderr = workers.stderr();
    expect(count(stderr, /worker [12]: pinghub stopped/)).toBe(2);
    expect(stderr).toMatch(/ info pinghub stopped\n$/);
  });

  test("the parent killed without a word: its workers notice and stop, leaving no one serving the port", async () => {
    const workers = await startWorkers(2);
    const pids = [workers.pid(1), workers.pid(2)];
    const s = await open(workers.ws("/orphan"));
    workers.proc.kill("SIGKILL");
    expect((await s.closed).code).toBe(1001);
    const alive = (pid: number) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(() => !pids.some(alive), "both workers have exited");
  });

  test("one log file, each worker's lines labelled; SIGHUP reopens it for every worker's lines", async () => {
    await inScratch("workers-log", async (dir) => {
      const file = join(dir, "pinghub.log");
      const workers = await startWorkers(2, ["--log", file, "--log-level", "debug"]);
      const log = readFileSync(file, "utf8");
      expect(count(log, /^\S+ info worker 1: started: pid \d+$/)).toBe(1);
      expect(count(log, /^\S+ info worker 2: started: pid \d+$/)).toBe(1);
      expect(count(log, /^\S+ info pinghub 0\.2\.0 started: pid \d+, 2 workers serving/)).toBe(1);
      renameSync(file, `${file}.1`);
      workers.proc.kill("SIGHUP");
      await until(() => readLog(file).includes("log file reopened"), "the log is reopened");
      // Each its own channel: consola folds identical lines into "(repeated N times)".
      for (let i = 0; i < 10; i++) await open(workers.ws(`/logged/${i}`));
      await until(() => count(readFileSync(file, "utf8"), /worker [12]: websocket opened/) === 10, "10 lines");
      const reopened = readFileSync(file, "utf8");
      expect(count(reopened, /^\S+ debug worker 1: websocket opened: channel "\/logged\/\d"/)).toBeGreaterThan(0);
      expect(count(reopened, /^\S+ debug worker 2: websocket opened: channel "\/logged\/\d"/)).toBeGreaterThan(0);
      // Nothing went to the old file after the rename but the parent's word that it reopens.
      expect(readFileSync(`${file}.1`, "utf8")).not.toContain("websocket opened");
    });
  });

  test("the port is taken: the first worker cannot bind it, and the parent exits 1 with the worker's reason", async () => {
    redis = await startRedis();
    // A listener without SO_REUSEPORT: the kernel refuses every other socket on its port.
    const taken = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
    try {
      const pinghub = spawnPinghub([
        "--workers",
        "2",
        "--redis",
        redis.url,
        "--addr",
        `127.0.0.1:${taken.port}`,
        "--mport",
        "0",
      ]);
      expect(await pinghub.exited).toBe(1);
      expect(pinghub.stderr()).toMatch(new RegExp(`worker 1: pinghub: cannot serve on 127.0.0.1:${taken.port}: `));
      expect(pinghub.stderr()).not.toContain("worker 2:");
    } finally {
      taken.stop(true);
    }
  });
});
