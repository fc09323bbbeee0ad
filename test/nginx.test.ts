// The shipped nginx recipes, run for real: three pinghub nodes on UNIX sockets behind nginx started from
// examples/nginx.conf, then from examples/nginx-auth.conf with examples/internal-auth.ts, each changed only in
// its paths and ports. Checked: channels spread over the nodes and every URL of a channel meets on one node;
// publishing by POST and websocket reaches exactly the right subscribers; a node killed or stopped hands its
// channels to the others once its subscribers reconnect; a reload brings a returning node its channels back;
// the auth service's 204, 403 and X-Rewrite, and that any other answer lets nobody in.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { missingNginx, type Nginx, startNginx, templateConfig } from "./support/nginx.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { freePort, type PinghubProcess, ROOT, sample, spawnPinghub } from "./support/server.ts";
import { until as waitUntil } from "./support/until.ts";

setDefaultTimeout(20_000);

const CI = process.env.CI === "true";
const noNginx = missingNginx(false);
const noLua = missingNginx(true);
if (noLua !== "" && !CI) {
  console.warn(`\n*** SKIPPED nginx tests: ${noLua}. Without them the nginx recipes are not tested. ***\n`);
}
// In CI nothing may be skipped: a missing program is a failure, not a skip.
if (CI && noLua !== "") {
  test("nginx and its Lua module are installed", () => {
    throw new Error(noLua);
  });
}

/** What the pinghub nodes allow as Origin: the site whose pages use the channels. */
const SITE = "https://app.example";
const dir = mkdtempSync(join(tmpdir(), "pinghub-nginx-"));
// The shipped config runs nginx's workers as www-data, which in production is in pinghub's group. Here that
// user must reach the sockets some other way: the directories are open to all and the sockets are 0666.
chmodSync(dir, 0o755);

// ---------------------------------------------------------------------------------------------------------
// The pinghub nodes

interface Node {
  /** 1, 2 or 3, as in /run/pinghub1/pinghub.sock. */
  n: number;
  socket: string;
  metrics: string;
  process: PinghubProcess;
}

const nodes: Node[] = [];

/** Starts node `n` of `list` on its socket under `run` (run1, run2...); extra flags such as --redis last. */
async function startNode(n: number, list = nodes, run = "run", extra: string[] = []): Promise<Node> {
  const socketDir = join(dir, `${run}${n}`);
  mkdirSync(socketDir, { recursive: true });
  chmodSync(socketDir, 0o755);
  const socket = join(socketDir, "pinghub.sock");
  const mport = freePort();
  const pinghub = spawnPinghub([
    "--addr",
    socket,
    "--mport",
    String(mport),
    "--socket-mode",
    "0666",
    "--origin",
    SITE,
    ...extra,
  ]);
  await pinghub.waitForStderr(/serving /);
  const node = { n, socket, metrics: `http://127.0.0.1:${mport}/metrics`, process: pinghub };
  list[n - 1] = node;
  return node;
}

async function scrape(node: Node, series: string): Promise<number> {
  const value = sample(await (await fetch(node.metrics)).text(), series);
  if (value === undefined) throw new Error(`no ${series} on node ${node.n}`);
  return value;
}

/** Channels per node, in node order. */
const channelsOn = (list: Node[]) => Promise.all(list.map((node) => scrape(node, "pinghub_channels")));

const total = (values: number[]) => values.reduce((a, b) => a + b, 0);

/** The shipped config with its paths and ports, and nothing else, moved to this test's. */
function configFor(example: string, name: string, port: number, authPort?: number, run = "run"): string {
  const base = join(dir, name);
  mkdirSync(join(base, "var"), { recursive: true });
  chmodSync(base, 0o755);
  return templateConfig(readFileSync(join(ROOT, "examples", example), "utf8"), [
    ...[1, 2, 3].map((n) => [`/run/pinghub${n}/pinghub.sock`, join(dir, `${run}${n}`, "pinghub.sock")] as const),
    ["/run/nginx.pid", join(base, "nginx.pid")],
    ["/var/log/nginx/", `${join(base, "logs")}/`],
    ["/var/lib/nginx/", `${join(base, "var")}/`],
    ["listen 80;", `listen 127.0.0.1:${port};`],
    ...(authPort === undefined ? [] : [["127.0.0.1:8089", `127.0.0.1:${authPort}`] as const]),
  ]);
}

/** Why the HTTP/2 test cannot run (openssl and curl make the certificate and the client), or "". */
function missingTlsTools(): string {
  const missing = ["/usr/bin/openssl", "/usr/bin/curl"].find((path) => !existsSync(path));
  if (missing === undefined) return "";
  const why = `${missing} not found: install the Debian package ${missing.slice(9)}`;
  if (CI) throw new Error(why);
  console.warn(`\n*** SKIPPED the nginx HTTP/2 test: ${why} ***\n`);
  return why;
}

/** Whether this nginx takes `http2 on;` (1.25.1 and later); older ones take `listen ... http2` instead. */
function http2Directive(): boolean {
  const said = Bun.spawnSync(["nginx", "-v"]).stderr.toString();
  const [major = 0, minor = 0, patch = 0] = (/nginx\/(\d+)\.(\d+)\.(\d+)/.exec(said) ?? []).slice(1).map(Number);
  return major > 1 || (major === 1 && (minor > 25 || (minor === 25 && patch >= 1)));
}

/** TCP connections established from this machine to 127.0.0.1:`port`, from /proc/net/tcp (the client side). */
function establishedTo(port: number): number {
  const remote = `0100007F:${port.toString(16).toUpperCase().padStart(4, "0")}`;
  return readFileSync("/proc/net/tcp", "utf8")
    .split("\n")
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields[2] === remote && fields[3] === "01").length;
}

// ---------------------------------------------------------------------------------------------------------
// Clients

/** The shared `until`, with what is awaited named first, as this file's many waits read best. */
function until<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  timeoutMs?: number,
) {
  return waitUntil(check, what, timeoutMs);
}

/**
 * A subscriber that reconnects after every close, as the browser library does, with a short backoff: 25 ms,
 * doubling to at most 400 ms, from the first again once a connection opens. Only its first connection must
 * succeed at once: a refusal there is the test's failure, not something to retry.
 */
class Subscriber {
  readonly messages: string[] = [];
  /** Close codes of connections that had opened, in order. */
  readonly closes: number[] = [];
  private ws: WebSocket | undefined;
  private failures = 0;
  private stopped = false;
  private everOpened = false;
  private firstOpen = Promise.withResolvers<void>();

  constructor(
    readonly url: string,
    private readonly headers: Record<string, string> = {},
  ) {}

  get live(): boolean {
    return this.ws?.readyState === WebSocket.OPEN;
  }

  /** Connects; resolves once the first connection is open. */
  start(): Promise<void> {
    this.open();
    return this.firstOpen.promise;
  }

  send(text: string): void {
    if (this.ws === undefined || !this.live) throw new Error(`${this.url} is not connected`);
    this.ws.send(text);
  }

  stop(): void {
    this.stopped = true;
    this.ws?.close();
  }

  private open(): void {
    // Bun's WebSocket takes headers, as a browser sends its cookies.
    const ws = new WebSocket(this.url, { headers: this.headers } as unknown as string[]);
    this.ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this.everOpened = true;
      this.failures = 0;
      this.firstOpen.resolve();
    };
    ws.onmessage = (event) => this.messages.push(String(event.data));
    ws.onclose = (event) => {
      if (opened) this.closes.push(event.code);
      if (!this.everOpened) {
        this.stopped = true;
        this.firstOpen.reject(new Error(`${this.url} was refused`));
      }
      if (this.stopped) return;
      const delay = Math.min(25 * 2 ** this.failures++, 400);
      setTimeout(() => this.open(), delay);
    };
  }
}

async function post(url: string, body: BodyInit, headers: Record<string, string> = {}) {
  const response = await fetch(url, { method: "POST", body, headers });
  return {
    status: response.status,
    subscribers: response.headers.get("x-pinghub-subscribers"),
    text: await response.text(),
    nodes: response.headers.get("x-pinghub-nodes"),
  };
}

/** Runs `work` over `items`, `width` at a time. */
async function inBatches<T>(items: T[], width: number, work: (item: T, index: number) => Promise<void>) {
  for (let i = 0; i < items.length; i += width) {
    await Promise.all(items.slice(i, i + width).map((item, j) => work(item, i + j)));
  }
}

// ---------------------------------------------------------------------------------------------------------

beforeAll(async () => {
  if (noNginx !== "") return;
  await Promise.all([1, 2, 3].map((n) => startNode(n)));
});

afterAll(async () => {
  for (const node of nodes) node?.process.proc.kill("SIGKILL");
  await Promise.all(nodes.map((node) => node?.process.exited));
  rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(noNginx !== "")("examples/nginx.conf", () => {
  const CHANNELS = 300;
  let nginx: Nginx;
  let ws: (path: string) => string;
  let subscribers: Subscriber[] = [];
  const path = (i: number) => `/pinghub/load/${i}`;

  beforeAll(async () => {
    const port = freePort();
    nginx = await startNginx(join(dir, "plain"), "nginx", configFor("nginx.conf", "plain", port), port);
    ws = (p) => `${nginx.url.replace("http:", "ws:")}${p}`;
  });

  afterAll(async () => {
    for (const subscriber of subscribers) subscriber.stop();
    await nginx?.stop();
  });

  /**
   * Publishes one message to every channel by POST, then one by websocket from its subscriber, and checks that
   * each subscriber got exactly those two, in that order, and nothing from any other channel.
   */
  async function publishToAll(round: string) {
    const seen = subscribers.map((s) => s.messages.length);
    await inBatches(subscribers, 50, async (_, i) => {
      const response = await post(`${nginx.url}${path(i)}`, `${round} post ${i}`);
      expect(response).toEqual({ status: 200, subscribers: "1", text: "OK\n", nodes: null });
    });
    for (const [i, s] of subscribers.entries()) s.send(`${round} ws ${i}`);
    await until(`every subscriber to receive the ${round} messages`, () =>
      subscribers.every((s, i) => s.messages.length >= (seen[i] ?? 0) + 2),
    );
    subscribers.forEach((s, i) => {
      expect(s.messages.slice(seen[i])).toEqual([`${round} post ${i}`, `${round} ws ${i}`]);
    });
  }

  /** The subscribers closed since `closesBefore` was taken, once every one of them is connected again. */
  function backSince(closesBefore: number[]): Subscriber[] | undefined {
    const dropped = subscribers.filter((s, i) => s.closes.length > (closesBefore[i] ?? 0));
    return dropped.every((s) => s.live) ? dropped : undefined;
  }

  test("300 channels spread over the three nodes; POSTs and websocket messages reach exactly their channel", async () => {
    subscribers = Array.from({ length: CHANNELS }, (_, i) => new Subscriber(ws(path(i))));
    await inBatches(subscribers, 100, (s) => s.start());
    const counts = await until("all channels counted on the nodes", async () => {
      const c = await channelsOn(nodes);
      return total(c) === CHANNELS && c;
    });
    for (const count of counts) expect(count).toBeGreaterThan(0);

    await publishToAll("first");
    // Every POST found its channel's node: none was dropped for want of a subscriber.
    expect(total(await Promise.all(nodes.map((n) => scrape(n, "pinghub_post_messages_total"))))).toBe(CHANNELS);
    expect(total(await Promise.all(nodes.map((n) => scrape(n, "pinghub_dropped_messages_total"))))).toBe(0);
    expect(total(await Promise.all(nodes.map((n) => scrape(n, "pinghub_sent_messages_total"))))).toBe(2 * CHANNELS);
  });

  test("every URL of one channel meets on one node: query string, percent-encoding, raw UTF-8", async () => {
    const encoded = new Subscriber(ws("/pinghub/caf%C3%A9?x=1"));
    await encoded.start();
    // Written to the request line byte for byte: lower-case escapes, and raw UTF-8 as curl would send it.
    const lower = await RawWebSocket.connect({ port: Number(new URL(nginx.url).port) }, "/pinghub/caf%c3%a9");
    const raw = await RawWebSocket.connect(
      { port: Number(new URL(nginx.url).port) },
      new TextEncoder().encode("/pinghub/café"),
    );
    expect([lower.status, raw.status]).toEqual([101, 101]);

    const posts = ["/pinghub/caf%C3%A9", "/pinghub/caf%c3%a9?token=1", "/pinghub/café"];
    for (const p of posts) {
      expect((await post(`${nginx.url}${p}`, `to ${p}`)).subscribers).toBe("3");
    }
    const expected = posts.map((p) => `to ${p}`);
    await until("the three messages on each variant", () => encoded.messages.length === 3);
    await lower.until(() => lower.texts().length === 3);
    await raw.until(() => raw.texts().length === 3);
    expect([encoded.messages, lower.texts(), raw.texts()]).toEqual([expected, expected, expected]);
    encoded.stop();
    lower.end();
    raw.end();
  });

  test("pinghub's Origin check works through nginx", async () => {
    const port = Number(new URL(nginx.url).port);
    const foreign = await RawWebSocket.connect({ port }, "/pinghub/origin", { Origin: "https://evil.example" });
    expect(foreign.status).toBe(403);
    foreign.end();
    const own = await RawWebSocket.connect({ port }, "/pinghub/origin", { Origin: SITE });
    expect(own.status).toBe(101);
    own.end();
    expect((await post(`${nginx.url}/pinghub/origin`, "x", { Origin: "https://evil.example" })).status).toBe(403);
  });

  test.skipIf(missingTlsTools() !== "")(
    "HTTPS with HTTP/2 as the example's commented lines give it: 8 SSE streams on one connection, all hear",
    async () => {
      const tls = join(dir, "tls");
      mkdirSync(tls);
      const [key, cert] = [join(tls, "key.pem"), join(tls, "cert.pem")];
      const openssl = Bun.spawnSync(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", cert, "-days", "1"].concat(
          ["-subj", "/CN=127.0.0.1"],
        ),
        { stdin: "ignore", stdout: "ignore", stderr: "pipe" },
      );
      expect(openssl.exitCode).toBe(0);
      const [port, tlsPort] = [freePort(), freePort()];
      // Uncommented as the example says: `http2 on;` from nginx 1.25.1, `listen ... ssl http2;` before it.
      const config = templateConfig(configFor("nginx.conf", "h2", port), [
        ["#listen 443 ssl;", `listen 127.0.0.1:${tlsPort} ssl${http2Directive() ? "" : " http2"};`],
        ["#http2 on;", http2Directive() ? "http2 on;" : ""],
        ["#ssl_certificate_key /etc/ssl/private/example.com.key;", `ssl_certificate_key ${key};`],
        ["#ssl_certificate /etc/ssl/certs/example.com.pem;", `ssl_certificate ${cert};`],
      ]);
      const h2 = await startNginx(join(dir, "h2"), "nginx", config, port);
      const url = `https://127.0.0.1:${tlsPort}/pinghub/over/h2`;
      // curl, as a browser would, multiplexes parallel requests to one host over one HTTP/2 connection.
      const curl = Bun.spawn(
        ["curl", "-skN", "--http2", "--parallel", "--parallel-max", "8", "-H", "Accept: text/event-stream"].concat(
          Array(8).fill(url),
        ),
        { stdin: "ignore", stdout: "pipe", stderr: "ignore" },
      );
      let events = "";
      const reading = (async () => {
        const decoder = new TextDecoder();
        for await (const chunk of curl.stdout) events += decoder.decode(chunk, { stream: true });
      })();
      const count = (line: string) => events.split(line).length - 1;
      try {
        // An SSE answer starts once its subscriber has joined.
        await until("8 streams to start", () => count(": pinghub channel /over/h2\n") === 8);
        expect(establishedTo(tlsPort)).toBe(1);
        const post = Bun.spawnSync(["curl", "-sk", "--http2", "-w", " %{http_version}", "-d", "over h2", url]);
        expect(post.stdout.toString()).toBe("OK\n 2");
        await until("the message on every stream", () => count("data: over h2\n") === 8);
      } finally {
        curl.kill();
        await reading;
        await h2.stop();
      }
    },
  );

  test("a POST body up to 64 KiB goes through; a larger one gets nginx's 413, with or without a length", async () => {
    const limit = 65536;
    expect((await post(`${nginx.url}/pinghub/big`, "x".repeat(limit))).status).toBe(200);
    const tooLarge = await post(`${nginx.url}/pinghub/big`, "x".repeat(limit + 1));
    expect(tooLarge).toEqual({
      status: 413,
      subscribers: null,
      text: "message too large: the limit is 65536 bytes\n",
      nodes: null,
    });
    const chunked = new ReadableStream({
      start(controller) {
        for (let i = 0; i <= limit; i += 8192) controller.enqueue(new TextEncoder().encode("x".repeat(8192)));
        controller.close();
      },
    });
    expect((await post(`${nginx.url}/pinghub/big`, chunked)).status).toBe(413);
  });

  test("a node killed: its subscribers are dropped, reconnect, and their channels work on the other nodes", async () => {
    const victim = nodes[1] as Node;
    const [lost] = await channelsOn([victim]);
    const closesBefore = subscribers.map((s) => s.closes.length);

    victim.process.proc.kill("SIGKILL");
    await victim.process.exited;
    const dropped = await until("the killed node's subscribers to be dropped and reconnected", () => {
      const back = backSince(closesBefore);
      return back !== undefined && back.length >= (lost ?? 0) && back;
    });
    expect(dropped.length).toBe(lost as number);
    // No close frame from a killed process: nginx just closes the connection.
    for (const s of dropped) expect(s.closes.at(-1)).toBe(1006);

    const survivors = [nodes[0] as Node, nodes[2] as Node];
    await until("all channels on the two surviving nodes", async () => total(await channelsOn(survivors)) === CHANNELS);
    await publishToAll("after the kill");
  });

  test("the node back and nginx reloaded: everyone reconnects, the node has its channels again", async () => {
    await startNode(2);
    const closesBefore = subscribers.map((s) => s.closes.length);
    // Without this, subscribers moved during the outage would stay on the other nodes while publishers of
    // their channels were sent back to this one. Old workers close every websocket after worker_shutdown_timeout.
    nginx.reload();
    await until(
      "every subscriber to be reconnected after the reload",
      () => backSince(closesBefore)?.length === CHANNELS,
    );
    const counts = await until("all channels counted on the three nodes", async () => {
      const c = await channelsOn(nodes);
      return total(c) === CHANNELS && c;
    });
    for (const count of counts) expect(count).toBeGreaterThan(0);
    await publishToAll("after the reload");
  });

  test("a node stopped: its subscribers see 1001 through nginx and move to the other nodes", async () => {
    const victim = nodes[2] as Node;
    const [lost] = await channelsOn([victim]);
    const closesBefore = subscribers.map((s) => s.closes.length);

    victim.process.proc.kill("SIGTERM");
    expect(await victim.process.exited).toBe(0);
    const dropped = await until("the stopped node's subscribers to reconnect", () => {
      const back = backSince(closesBefore);
      return back !== undefined && back.length >= (lost ?? 0) && back;
    });
    expect(dropped.length).toBe(lost as number);
    for (const s of dropped) expect(s.closes.at(-1)).toBe(1001);
    const survivors = [nodes[0] as Node, nodes[1] as Node];
    await until("all channels on the two remaining nodes", async () => total(await channelsOn(survivors)) === CHANNELS);
    await publishToAll("after the stop");
    await startNode(3);
  });
});

describe.skipIf(noNginx !== "" || skipWithoutRedis())("examples/nginx-cluster.conf: cluster mode on Redis", () => {
  const SUBSCRIBERS = 60;
  const CHANNEL = "/pinghub/everyone";
  const cluster: Node[] = [];
  let redis: RedisServer;
  let nginx: Nginx;
  let subscribers: Subscriber[] = [];
  const ws = (p: string) => `${nginx.url.replace("http:", "ws:")}${p}`;
  const websocketsOn = (list: Node[]) => Promise.all(list.map((node) => scrape(node, "pinghub_websockets")));
  const startClusterNode = (n: number) => startNode(n, cluster, "crun", ["--redis", redis.url]);

  beforeAll(async () => {
    redis = await startRedis();
    await Promise.all([1, 2, 3].map(startClusterNode));
    const port = freePort();
    const config = configFor("nginx-cluster.conf", "cluster", port, undefined, "crun");
    nginx = await startNginx(join(dir, "cluster"), "nginx", config, port);
  });

  afterAll(async () => {
    for (const s of subscribers) s.stop();
    await nginx?.stop();
    for (const node of cluster) node?.process.proc.kill("SIGKILL");
    await Promise.all(cluster.map((node) => node?.process.exited));
    await redis?.stop();
  });

  /** POSTs `count` numbered messages through nginx and waits until every live subscriber has them all. */
  async function publishRound(round: string, count: number, nodesWithSubscribers: number) {
    const seen = subscribers.map((s) => s.messages.length);
    for (let i = 0; i < count; i++) {
      const response = await post(`${nginx.url}${CHANNEL}`, `${round} ${i}`);
      expect([response.status, response.nodes]).toEqual([200, String(nodesWithSubscribers)]);
    }
    await until(`every subscriber to receive ${round}`, () =>
      subscribers.every((s, i) => s.messages.length >= (seen[i] ?? 0) + count),
    );
    const expected = Array.from({ length: count }, (_, i) => `${round} ${i}`);
    for (const [i, s] of subscribers.entries()) expect(s.messages.slice(seen[i])).toEqual(expected);
  }

  test("one channel's subscribers spread over the three nodes by least_conn, and every message reaches all", async () => {
    subscribers = Array.from({ length: SUBSCRIBERS }, () => new Subscriber(ws(CHANNEL), { Origin: SITE }));
    await inBatches(subscribers, 20, (s) => s.start());
    const counts = await until("every websocket counted on a node", async () => {
      const c = await websocketsOn(cluster);
      return total(c) === SUBSCRIBERS && c;
    });
    // No hashing: the one channel has an audience on every node.
    for (const count of counts) expect(count).toBeGreaterThan(0);
    await publishRound("first", 20, 3);
    // And a browser publishing on its websocket reaches everyone, wherever nginx put it.
    const seen = subscribers.map((s) => s.messages.length);
    subscribers[7]?.send("from a browser");
    await until("the websocket message everywhere", () =>
      subscribers.every((s, i) => s.messages.length > (seen[i] ?? 0)),
    );
    for (const [i, s] of subscribers.entries()) expect(s.messages.slice(seen[i])).toEqual(["from a browser"]);
  });

  test("a node killed: the others' subscribers miss nothing, its own reconnect through nginx and hear again", async () => {
    const victim = cluster[1] as Node;
    const [lost = 0] = await websocketsOn([victim]);
    expect(lost).toBeGreaterThan(0);
    const closesBefore = subscribers.map((s) => s.closes.length);
    const seen = subscribers.map((s) => s.messages.length);
    // Messages keep coming through nginx while the victim dies: a POST nginx sends to the dead node's socket
    // fails over to a live one (proxy_next_upstream), so every one of them is accepted.
    const publishing = (async () => {
      for (let i = 0; i < 100; i++) {
        const response = await post(`${nginx.url}${CHANNEL}`, `during ${i}`);
        expect(response.status).toBe(200);
        if (i === 30) {
          victim.process.proc.kill("SIGKILL");
          await victim.process.exited;
        }
      }
    })();
    await publishing;
    const untouched = subscribers.filter((s, i) => s.closes.length === closesBefore[i]);
    expect(untouched.length).toBe(SUBSCRIBERS - lost);
    const all = Array.from({ length: 100 }, (_, i) => `during ${i}`);
    await until("the survivors' subscribers to have all 100", () =>
      untouched.every((s) => s.messages.length >= (seen[subscribers.indexOf(s)] ?? 0) + 100),
    );
    for (const s of untouched) expect(s.messages.slice(seen[subscribers.indexOf(s)])).toEqual(all);
    // The victim's subscribers reconnected, through nginx, to the two survivors.
    await until("the killed node's subscribers back", () =>
      subscribers.every((s, i) => s.live && (s.closes.length === closesBefore[i] || s.closes.at(-1) === 1006)),
    );
    await until("all websockets on the survivors", async () => {
      const c = await websocketsOn([cluster[0] as Node, cluster[2] as Node]);
      return total(c) === SUBSCRIBERS;
    });
    await publishRound("after the kill", 10, 2);
  });

  test("the node restarted: with no nginx reload it takes new subscribers, who hear everything", async () => {
    await startClusterNode(2);
    // nginx left the dead node out for fail_timeout; once that is over, least_conn sends new connections to the
    // node holding the fewest: the one that came back. Newcomers arrive one by one until one lands there.
    const restarted = cluster[1] as Node;
    await until(
      "a newcomer on the restarted node",
      async () => {
        const newcomer = new Subscriber(ws(CHANNEL), { Origin: SITE });
        await newcomer.start();
        subscribers.push(newcomer);
        const [count = 0] = await websocketsOn([restarted]);
        return count > 0;
      },
      20_000,
    );
    await publishRound("after the restart", 10, 3);
  }, 30_000);
});

describe.skipIf(noLua !== "")("examples/nginx-auth.conf with examples/internal-auth.ts", () => {
  const ALICE = { Authorization: "Bearer alice-secret" };
  const ALICE_COOKIE = { Cookie: "theme=dark; pinghub_token=alice-secret" };
  const BOB = { Authorization: "Bearer bob-secret" };
  const APP = { Authorization: "Bearer app-server-secret" };
  let nginx: Nginx;
  let port: number;
  let auth: Subprocess<"ignore", "ignore", "pipe">;
  /** Between nginx and the example service: passes requests on, or answers as a broken auth service would. */
  let front: ReturnType<typeof Bun.serve>;
  let behaviour: "pass" | 200 | 500 = "pass";
  const open: Subscriber[] = [];
  const ws = (p: string) => `${nginx.url.replace("http:", "ws:")}${p}`;
  const subscribe = async (p: string, headers: Record<string, string>) => {
    const s = new Subscriber(ws(p), headers);
    open.push(s);
    await s.start();
    return s;
  };
  /** The status of a websocket upgrade through nginx (101 when let in). */
  const upgrade = async (p: string, headers: Record<string, string> = {}) => {
    const raw = await RawWebSocket.connect({ port }, p, headers);
    raw.end();
    return raw.status;
  };

  beforeAll(async () => {
    auth = Bun.spawn([process.execPath, "examples/internal-auth.ts", "--port", "0"], {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "ignore",
      stderr: "pipe",
    });
    let said = "";
    for await (const chunk of auth.stderr) {
      said += new TextDecoder().decode(chunk);
      if (said.includes("\n")) break;
    }
    const authUrl = /listening on (\S+)/.exec(said)?.[1];
    if (authUrl === undefined) throw new Error(`examples/internal-auth.ts did not start: ${said}`);
    front = Bun.serve({
      hostname: "127.0.0.1",
      port: 0,
      fetch(req) {
        if (behaviour !== "pass") return new Response("whatever\n", { status: behaviour });
        const url = new URL(req.url);
        return fetch(`${authUrl}${url.pathname}${url.search}`, { headers: req.headers });
      },
    });
    port = freePort();
    nginx = await startNginx(
      join(dir, "auth"),
      "nginx",
      configFor("nginx-auth.conf", "auth", port, front.port ?? 0),
      port,
    );
  });

  afterAll(async () => {
    for (const s of open) s.stop();
    await nginx?.stop();
    await front?.stop(true);
    auth?.kill();
    await auth?.exited;
  });

  test("an allowed client subscribes and receives; the others get 403", async () => {
    const byHeader = await subscribe("/pinghub/user/157/inbox", ALICE);
    const byCookie = await subscribe("/pinghub/user/157/inbox", ALICE_COOKIE);
    expect(await post(`${nginx.url}/pinghub/user/157/inbox`, "hello", APP)).toEqual({
      status: 200,
      subscribers: "2",
      nodes: null,
      text: "OK\n",
    });

    expect(await upgrade("/pinghub/user/157/inbox")).toBe(403); // nobody
    expect(await upgrade("/pinghub/user/157/inbox", BOB)).toBe(403); // someone else
    expect(await upgrade("/pinghub/user/157/inbox", APP)).toBe(403); // the app server publishes, never reads
    // The same channel spelt otherwise: the auth service judges the path nginx routes by, not the raw URI.
    expect(await upgrade("/pinghub/%75ser/157/inbox", BOB)).toBe(403);
    expect(await upgrade("/pinghub//user/157/inbox", BOB)).toBe(403);
    expect(await upgrade("/pinghub/elsewhere", ALICE)).toBe(403); // no rule
    expect((await post(`${nginx.url}/pinghub/user/157/inbox`, "from nobody")).status).toBe(403);
    expect((await post(`${nginx.url}/pinghub/user/157/inbox`, "from bob", BOB)).status).toBe(403);
    // The browser library is for everyone.
    expect((await fetch(`${nginx.url}/pinghub/.pinghub/pinghub.js`)).status).toBe(200);

    expect((await post(`${nginx.url}/pinghub/user/157/inbox`, "from alice", ALICE)).subscribers).toBe("2");
    await until("both of alice's subscribers to receive", () =>
      [byHeader, byCookie].every((s) => s.messages.length === 2),
    );
    expect(byHeader.messages).toEqual(["hello", "from alice"]);
    expect(byCookie.messages).toEqual(["hello", "from alice"]);
    // ... by which alice's own channel spelt otherwise is hers.
    expect(await upgrade("/pinghub/%75ser/157/inbox", ALICE)).toBe(101);
  });

  test("/pinghub/me/... is rewritten to the user's own channel, and routed there", async () => {
    const alice = await subscribe("/pinghub/me/news", ALICE_COOKIE);
    const bob = await subscribe("/pinghub/me/news", BOB);
    expect((await post(`${nginx.url}/pinghub/user/157/news`, "for alice", APP)).subscribers).toBe("1");
    expect((await post(`${nginx.url}/pinghub/me/news?from=me`, "alice to herself", ALICE)).subscribers).toBe("1");
    expect((await post(`${nginx.url}/pinghub/user/158/news`, "for bob", APP)).subscribers).toBe("1");
    await until("the messages", () => alice.messages.length === 2 && bob.messages.length === 1);
    expect(alice.messages).toEqual(["for alice", "alice to herself"]);
    expect(bob.messages).toEqual(["for bob"]);
    // Anonymous: no "me" to rewrite to.
    expect(await upgrade("/pinghub/me/news")).toBe(403);

    // X-Rewrite is percent-encoded and nginx decodes it: a + stays a +, UTF-8 stays UTF-8.
    const odd = await subscribe("/pinghub/me/tea+café", ALICE);
    expect((await post(`${nginx.url}/pinghub/user/157/tea+caf%C3%A9`, "odd name", APP)).subscribers).toBe("1");
    await until("the message on the odd name", () => odd.messages.length === 1);
    expect(odd.messages).toEqual(["odd name"]);
  });

  for (const status of [200, 500] as const) {
    test(`an auth service answering ${status} lets nobody in`, async () => {
      const channel = `/pinghub/user/157/broken-${status}`;
      const alice = await subscribe(channel, ALICE);
      behaviour = status;
      try {
        expect(await upgrade(channel, ALICE)).toBe(500);
        expect(await upgrade("/pinghub/me/broken", ALICE)).toBe(500);
        expect((await post(`${nginx.url}${channel}`, "let through?", APP)).status).toBe(500);
        expect((await fetch(`${nginx.url}/pinghub/.pinghub/pinghub.js`)).status).toBe(500);
      } finally {
        behaviour = "pass";
      }
      expect(nginx.errorLog()).toContain(`internal auth answered ${status} (not 204 or 403)`);
      // The refused POST was not delivered: the next message alice gets is the next one let through.
      expect((await post(`${nginx.url}${channel}`, "after", APP)).subscribers).toBe("1");
      await until("alice's message", () => alice.messages.length > 0);
      expect(alice.messages).toEqual(["after"]);
    });
  }
});
