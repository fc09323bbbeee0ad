// EventSource in Chromium, from a page on another origin: it subscribes under CORS, and when its connection
// drops it reconnects by itself with Last-Event-ID and gets exactly what it missed. On one node, with the
// connection cut under it; in cluster mode behind examples/nginx-cluster.conf, with its node killed.

import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { CHROMIUM, launchChromium, serveTestPage } from "./support/browser.ts";
import { post } from "./support/clients.ts";
import { missingNginx, type Nginx, startNginx, templateConfig } from "./support/nginx.ts";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { startRelay } from "./support/relay.ts";
import { freePort, type PinghubProcess, ROOT, sample, spawnPinghub, startServer } from "./support/server.ts";
import { until as waitUntil } from "./support/until.ts";

setDefaultTimeout(30_000);

const CI = process.env.CI === "true";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !CI)
  console.warn(`\n*** SKIPPED EventSource tests: ${CHROMIUM} missing (apt-get install chromium) ***\n`);
if (!haveChromium && CI) {
  test(`${CHROMIUM} is installed (CI=true)`, () => {
    throw new Error(`${CHROMIUM} is missing: install Debian's package chromium`);
  });
}

/** A page on its own origin that opens an EventSource to the URL in its fragment and records what it hears. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>EventSource test</title>
<script>
window.heard = [];
window.opens = 0;
const source = new EventSource(decodeURIComponent(location.hash.slice(1)));
source.onopen = () => { window.opens++; };
source.onmessage = (event) => window.heard.push({ data: event.data, id: event.lastEventId });
source.addEventListener("gap", (event) => window.heard.push({ gap: event.data }));
</script>`;

interface Heard {
  data?: string;
  id?: string;
  gap?: string;
}

const heard = (page: Page) => page.evaluate(() => (window as unknown as { heard: Heard[] }).heard);
const opens = (page: Page) => page.evaluate(() => (window as unknown as { opens: number }).opens);

async function waitFor(page: Page, what: string, check: (list: Heard[], opened: number) => boolean) {
  await waitUntil(
    async () => check(await heard(page), await opens(page)),
    async () => `${what}: ${JSON.stringify(await heard(page))}`,
  );
}

describe.skipIf(!haveChromium)("EventSource in Chromium", () => {
  let browser: Browser;
  let other: ReturnType<typeof serveTestPage>;
  const cleanup: Array<() => unknown> = [];
  beforeAll(async () => {
    browser = await launchChromium();
    other = serveTestPage(PAGE);
  });
  afterAll(async () => {
    await browser?.close();
    await other?.stop();
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step();
  });

  async function openPage(streamUrl: string): Promise<Page> {
    const context = await browser.newContext();
    cleanup.push(() => context.close());
    const page = await context.newPage();
    await page.goto(`${other.url}#${encodeURIComponent(streamUrl)}`);
    await waitFor(page, "the stream to open", (_, opened) => opened === 1);
    return page;
  }

  test("from another origin: a dropped connection is resumed with Last-Event-ID, nothing lost or doubled", async () => {
    const server = await startServer({ history: 100 });
    cleanup.push(() => server.stop());
    const relay = startRelay(server.port);
    cleanup.push(() => relay.stop());
    const page = await openPage(`http://127.0.0.1:${relay.port}/es/drop`);
    await waitUntil(() => server.hub.eventStreams === 1, "the server counts the stream");

    for (const m of ["one", "two", "three"]) await post(server.http("/es/drop"), m);
    await waitFor(page, "three messages", (list) => list.length === 3);

    relay.dropAll();
    await waitUntil(() => server.hub.eventStreams === 0, "the server sees the stream gone");
    // Published while the browser has no connection: EventSource waits the retry time (1 s) before it asks again.
    for (const m of ["four", "five"]) await post(server.http("/es/drop"), m);
    await waitFor(page, "the reconnection", (_, opened) => opened === 2);
    await post(server.http("/es/drop"), "six");
    await waitFor(page, "six messages", (list) => list.length === 6);
    const list = await heard(page);
    expect(list.map((h) => h.data)).toEqual(["one", "two", "three", "four", "five", "six"]);
    expect(new Set(list.map((h) => h.id)).size).toBe(6);
    expect(relay.connections).toBe(2);
  });

  /**
   * The reproduction of a stream cut before its first message: EventSource through a relay on a quiet channel,
   * the connection cut, two messages published meanwhile (on `publishOn`), then one after it reconnected.
   */
  async function quietChannelCut(subscribePort: number, publishOn: string, path: string) {
    const relay = startRelay(subscribePort);
    cleanup.push(() => relay.stop());
    const page = await openPage(`http://127.0.0.1:${relay.port}${path}`);
    // The stream's first block, its position, has reached the browser's socket: Chromium reads it at once.
    await waitUntil(() => relay.toClients.includes(`: pinghub channel ${path}\n\n`), "the stream's first bytes");
    // The body's first chunk (chunked encoding) opens with the position, before anything else.
    expect(relay.toClients).toMatch(/\r\n\r\n[0-9a-f]+\r\nretry: 1000\nid: \S+\n\n/);
    relay.dropAll();
    for (const m of ["c", "d"]) expect((await post(`${publishOn}${path}`, m)).status).toBe(200);
    await waitFor(page, "the reconnection", (_, opened) => opened === 2);
    expect((await post(`${publishOn}${path}`, "e")).status).toBe(200);
    await waitFor(page, "three messages", (list) => list.length === 3);
    const list = await heard(page);
    expect(list.map((h) => h.data)).toEqual(["c", "d", "e"]);
    expect(new Set(list.map((h) => h.id)).size).toBe(3);
    expect(relay.connections).toBe(2);
  }

  test("a quiet channel, cut before any message: EventSource resumes from the stream's first bytes", async () => {
    const server = await startServer({ history: 5 });
    cleanup.push(() => server.stop());
    await quietChannelCut(server.port, server.http(""), "/es/fresh");
  });

  describe.skipIf(skipWithoutRedis())("in cluster mode, subscribed on one node, published on another", () => {
    let redis: RedisServer;
    const urls: string[] = [];
    const processes: PinghubProcess[] = [];
    beforeAll(async () => {
      redis = await startRedis();
      for (let i = 0; i < 2; i++) {
        const node = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0", "--redis", redis.url, "--history", "5"]);
        processes.push(node);
        const [, url = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
        urls.push(url);
      }
    });
    afterAll(async () => {
      for (const node of processes) node.proc.kill("SIGKILL");
      await Promise.all(processes.map((node) => node.exited));
      await redis?.stop();
    });

    test("a quiet channel, cut before any message: EventSource resumes from the stream's first bytes", async () => {
      await quietChannelCut(Number(new URL(urls[0] ?? "").port), urls[1] ?? "", "/es/fresh-cluster");
    });
  });

  test("without history events carry no id, so a reconnected EventSource simply goes on live, as the original", async () => {
    const server = await startServer({});
    cleanup.push(() => server.stop());
    const relay = startRelay(server.port);
    cleanup.push(() => relay.stop());
    const page = await openPage(`http://127.0.0.1:${relay.port}/es/nohistory`);
    await waitUntil(() => server.hub.eventStreams === 1, "the server counts the stream");
    await post(server.http("/es/nohistory"), "before");
    await waitFor(page, "one message", (list) => list.length === 1);
    relay.dropAll();
    await waitFor(page, "the reconnection", (_, opened) => opened === 2);
    await post(server.http("/es/nohistory"), "after");
    // No id ever came, so EventSource has none to send back: a plain new subscription, live from now on.
    await waitFor(page, "the message after", (list) => list.length === 2);
    expect(await heard(page)).toEqual([
      { data: "before", id: "" },
      { data: "after", id: "" },
    ]);
  });

  describe.skipIf(missingNginx(false) !== "" || skipWithoutRedis())("in cluster mode behind nginx", () => {
    const dir = mkdtempSync(join(tmpdir(), "pinghub-eventsource-"));
    chmodSync(dir, 0o755);
    let redis: RedisServer;
    let nginx: Nginx;
    const nodes: Array<PinghubProcess & { metrics: string }> = [];

    beforeAll(async () => {
      redis = await startRedis();
      for (const n of [1, 2, 3]) {
        const run = join(dir, `run${n}`);
        mkdirSync(run);
        chmodSync(run, 0o755);
        const mport = freePort();
        const node = spawnPinghub([
          ...["--addr", join(run, "pinghub.sock"), "--socket-mode", "0666", "--mport", String(mport)],
          ...["--redis", redis.url, "--history", "100"],
        ]);
        await node.waitForStderr(/serving /);
        nodes.push({ ...node, metrics: `http://127.0.0.1:${mport}/metrics` });
      }
      const port = freePort();
      mkdirSync(join(dir, "var"));
      const config = templateConfig(readFileSync(join(ROOT, "examples", "nginx-cluster.conf"), "utf8"), [
        ...[1, 2, 3].map((n) => [`/run/pinghub${n}/pinghub.sock`, join(dir, `run${n}`, "pinghub.sock")] as const),
        ["/run/nginx.pid", join(dir, "nginx.pid")],
        ["/var/log/nginx/", `${join(dir, "logs")}/`],
        ["/var/lib/nginx/", `${join(dir, "var")}/`],
        ["listen 80;", `listen 127.0.0.1:${port};`],
      ]);
      nginx = await startNginx(dir, "nginx", config, port);
    });
    afterAll(async () => {
      await nginx?.stop();
      for (const node of nodes) node.proc.kill("SIGKILL");
      await Promise.all(nodes.map((node) => node.exited));
      await redis?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    test("its node killed, EventSource reconnects through nginx to another node and resumes from Redis", async () => {
      const page = await openPage(`${nginx.url}/pinghub/es/cluster`);
      const streamsOn = async () =>
        Promise.all(nodes.map(async (n) => sample(await (await fetch(n.metrics)).text(), "pinghub_sse_subscribers")));
      // The node nginx gave the stream to: the one whose gauge counts it.
      const holder = await waitUntil(async () => {
        const node = (await streamsOn()).indexOf(1);
        return node >= 0 && node;
      }, "a node counts the stream");

      for (const m of ["a", "b"]) expect((await post(`${nginx.url}/pinghub/es/cluster`, m)).status).toBe(200);
      await waitFor(page, "two messages", (list) => list.length === 2);

      const victim = nodes[holder] as PinghubProcess;
      victim.proc.kill("SIGKILL");
      await victim.exited;
      // Accepted by the surviving nodes while the browser has no stream.
      for (const m of ["c", "d"]) expect((await post(`${nginx.url}/pinghub/es/cluster`, m)).status).toBe(200);
      await waitFor(page, "the reconnection", (_, opened) => opened === 2);
      expect((await post(`${nginx.url}/pinghub/es/cluster`, "e")).status).toBe(200);
      await waitFor(page, "five messages", (list) => list.length === 5);
      const list = await heard(page);
      expect(list.map((h) => h.data)).toEqual(["a", "b", "c", "d", "e"]);
      expect(new Set(list.map((h) => h.id)).size).toBe(5);
    });
  });
});
