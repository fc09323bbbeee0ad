// The metrics server of a real pinghub process: the original's six figures and ours, exact counts, bounded
// labels, /healthz, and a scrape that promtool accepts.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import pkg from "../package.json" with { type: "json" };
import { post, subscribe } from "./support/clients.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { freePort, type PinghubProcess, sample, spawnServing } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

let pinghub: PinghubProcess & { url: string };
let metricsUrl: string;
beforeAll(async () => {
  const mport = freePort();
  pinghub = await spawnServing(["--mport", String(mport), "--max-message-size", "100"]);
  metricsUrl = `http://127.0.0.1:${mport}`;
});
afterAll(async () => {
  pinghub.proc.kill("SIGTERM");
  await pinghub.exited;
});

const scrape = async () => (await fetch(`${metricsUrl}/metrics`)).text();
const ws = (path: string) => `${pinghub.url.replace("http", "ws")}${path}`;

/** The server counts a close once it has seen it; poll the scrape until the gauge agrees. */
async function gaugeBecomes(series: string, value: number): Promise<void> {
  await until(
    async () => sample(await scrape(), series) === value,
    async () => `${series} is ${value}; it is ${sample(await scrape(), series)}`,
  );
}

test("the six figures of the original, by name, moving by exactly what happened", async () => {
  const before = await scrape();
  const at = (text: string, name: string) => sample(text, name) ?? 0;
  expect(at(before, "pinghub_websockets")).toBe(0);
  expect(at(before, "pinghub_channels")).toBe(0);

  const a = await subscribe(ws("/m/one"));
  const b = await subscribe(ws("/m/one"));
  const c = await subscribe(ws("/m/two"));
  let now = await scrape();
  expect(at(now, "pinghub_websockets")).toBe(3);
  expect(at(now, "pinghub_channels")).toBe(2);

  await post(`${pinghub.url}/m/one`, "posted"); // 2 deliveries
  await post(`${pinghub.url}/m/nobody`, "dropped"); // dropped
  await post(`${pinghub.url}/m/one`, ""); // empty: neither published nor dropped
  await (await fetch(`${pinghub.url}/m/one`)).text(); // the channel page
  c.send("from c"); // 1 delivery
  c.send(""); // keepalive: not a message
  await Promise.all([a.received(1), b.received(1), c.received(2)]);

  now = await scrape();
  const moved = (name: string) => at(now, name) - at(before, name);
  // Both POSTed messages count as published by POST; one of them was also dropped.
  expect(moved("pinghub_post_messages_total")).toBe(2);
  expect(moved("pinghub_websocket_messages_total")).toBe(1);
  expect(moved("pinghub_dropped_messages_total")).toBe(1);
  expect(moved("pinghub_sent_messages_total")).toBe(3);
  // HTTP request metrics from @hono/prometheus, labelled by route pattern, never by channel. They count what the
  // Hono app answers (pages here); POSTs with a Content-Length take the shorter path and are counted above.
  expect(moved('http_requests_total{method="GET",route="/*",status="200",ok="true"}')).toBe(1);

  for (const s of [a, b, c]) s.close();
  await gaugeBecomes("pinghub_websockets", 0);
  await gaugeBecomes("pinghub_channels", 0);
});

test("SSE subscribers: their gauge, their channel, their deliveries in sent, and back to 0", async () => {
  const before = await scrape();
  expect(sample(before, "pinghub_sse_subscribers")).toBe(0);
  const sentBefore = sample(before, "pinghub_sent_messages_total") ?? 0;
  const streams = await Promise.all([0, 1].map(() => openEvents(`${pinghub.url}/m/sse`)));
  const socket = await subscribe(ws("/m/sse"));
  await gaugeBecomes("pinghub_sse_subscribers", 2);
  expect(sample(await scrape(), "pinghub_channels")).toBe(1);
  expect((await post(`${pinghub.url}/m/sse`, "to three")).headers.get("x-pinghub-subscribers")).toBe("3");
  for (const s of streams) await s.received(1);
  await socket.received(1);
  expect(sample(await scrape(), "pinghub_sent_messages_total")).toBe(sentBefore + 3);
  for (const s of streams) s.close();
  socket.close();
  await gaugeBecomes("pinghub_sse_subscribers", 0);
  await gaugeBecomes("pinghub_channels", 0);
  // No history was asked for: its series are not there.
  expect(await scrape()).not.toContain("pinghub_history_");
});

test("refused requests are counted by reason", async () => {
  const before = await scrape();
  const reason = (text: string, r: string) => sample(text, `pinghub_refused_total{reason="${r}"}`) ?? Number.NaN;
  await fetch(`${pinghub.url}/%ZZ`);
  await post(`${pinghub.url}/m/big`, "x".repeat(101));
  await post(`${pinghub.url}/m/bytes`, new Uint8Array([0xff]));
  const binary = await RawWebSocket.connect({ port: Number(new URL(pinghub.url).port) }, "/m/binary");
  binary.sendFrame(0x2, "bin");
  await binary.closeFrame();
  const tooBig = await RawWebSocket.connect({ port: Number(new URL(pinghub.url).port) }, "/m/big");
  tooBig.sendText("y".repeat(101));
  await tooBig.closeFrame();
  const now = await until(async () => {
    const text = await scrape();
    return reason(text, "too_large") - reason(before, "too_large") >= 2 && text;
  }, "both too_large refusals are counted");
  expect(reason(now, "bad_path") - reason(before, "bad_path")).toBe(1);
  expect(reason(now, "too_large") - reason(before, "too_large")).toBe(2);
  expect(reason(now, "not_utf8") - reason(before, "not_utf8")).toBe(1);
  expect(reason(now, "binary") - reason(before, "binary")).toBe(1);
  expect(reason(now, "bad_origin") - reason(before, "bad_origin")).toBe(0);
});

test(
  "ten thousand channels add no series: no channel name becomes a label",
  async () => {
    await fetch(`${pinghub.url}/m/warm-up`); // so the HTTP series for pages exist
    const series = (text: string) => text.split("\n").filter((l) => l !== "" && !l.startsWith("#")).length;
    const before = series(await scrape());
    const subscribers: WebSocket[] = [];
    const opened: Promise<unknown>[] = [];
    for (let i = 0; i < 10_000; i++) {
      const socket = new WebSocket(ws(`/many/${i}`));
      subscribers.push(socket);
      opened.push(new Promise((resolve, reject) => Object.assign(socket, { onopen: resolve, onerror: reject })));
      // Pace the connects a little so the backlog of the listen socket never overflows.
      if (i % 500 === 499) await Promise.all(opened.slice(i - 499));
    }
    await Promise.all(opened);
    for (let i = 0; i < 100; i++) {
      await post(`${pinghub.url}/many/${i}`, "hello");
      await (await fetch(`${pinghub.url}/many/${i}`)).text();
    }
    const during = await scrape();
    expect(sample(during, "pinghub_channels")).toBe(10_000);
    expect(series(during)).toBe(before);
    expect(during).not.toContain("/many/");
    for (const socket of subscribers) socket.close();
    await gaugeBecomes("pinghub_channels", 0);
  },
  { timeout: 60_000 },
);

test("promtool accepts a live scrape taken after traffic", async () => {
  const promtool = "/usr/bin/promtool";
  if (!existsSync(promtool)) {
    if (process.env.CI === "true") throw new Error("promtool is missing: apt-get install prometheus");
    console.warn("\n*** SKIPPED: promtool not found; install Debian package `prometheus` to run this check ***\n");
    return;
  }
  const check = Bun.spawn([promtool, "check", "metrics"], { stdin: new Blob([await scrape()]), stderr: "pipe" });
  const problems = await new Response(check.stderr).text();
  expect(problems).toBe("");
  expect(await check.exited).toBe(0);
});

test("/healthz answers 200 ok while serving; anything else on the metrics port is 404", async () => {
  const health = await fetch(`${metricsUrl}/healthz`);
  expect([health.status, await health.text()]).toEqual([200, "ok\n"]);
  expect((await fetch(`${metricsUrl}/elsewhere`)).status).toBe(404);
});

test("pinghub's own series come first, led by pinghub_build_info with the version", async () => {
  const lines = (await scrape()).split("\n").filter((l) => l !== "" && !l.startsWith("#"));
  expect(lines[0]).toBe(`pinghub_build_info{version="${pkg.version}"} 1`);
  const lastOwn = lines.findLastIndex((l) => l.startsWith("pinghub_"));
  const firstOther = lines.findIndex((l) => !l.startsWith("pinghub_"));
  expect(lastOwn).toBeLessThan(firstOther);
});

test("websockets opened, and closed by the class of their close code", async () => {
  const at = async (series: string) => sample(await scrape(), series) ?? 0;
  const closed = (codeClass: string) => `pinghub_websockets_closed_total{code_class="${codeClass}"}`;
  const before = {
    opened: await at("pinghub_websockets_opened_total"),
    normal: await at(closed("normal")),
    refused: await at(closed("refused")),
    other: await at(closed("other")),
  };
  const a = await subscribe(ws("/m/churn"));
  const b = await subscribe(ws("/m/churn"));
  const c = await subscribe(ws("/m/churn"));
  a.ws.close(1000);
  b.ws.close(4001, "the application's own code");
  // Binary is refused by the server with 1003.
  c.ws.send(new Uint8Array([1, 2, 3]));
  await Promise.all([a.closed, b.closed, c.closed]);
  await gaugeBecomes("pinghub_websockets", 0);
  expect(await at("pinghub_websockets_opened_total")).toBe(before.opened + 3);
  expect(await at(closed("normal"))).toBe(before.normal + 1);
  expect(await at(closed("other"))).toBe(before.other + 1);
  expect(await at(closed("refused"))).toBe(before.refused + 1);
});
