// What an operator sees of refusals and subscribers, on a real pinghub process at --log-level debug: a
// refused CORS preflight is counted and logged like the GET or POST it stands for, a debug refusal line names
// the refused Origin, SSE streams opening and closing are logged like websockets, and the shutdown line counts
// both kinds of subscriber.

import { expect, test } from "bun:test";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { freePort, sample, spawnPinghub } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";

async function start(args: string[] = []) {
  const mport = freePort();
  const pinghub = spawnPinghub([
    ...["--addr", "127.0.0.1:0", "--mport", String(mport), "--log-level", "debug"],
    ...["--origin", "https://app.example", ...args],
  ]);
  const [, url = ""] = await pinghub.waitForStderr(/serving (http:\/\/[^\s,]+)/);
  const scrape = async () => (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  return { ...pinghub, url, port: Number(new URL(url).port), scrape };
}

const REFUSED_ORIGIN = 'pinghub_refused_total{reason="bad_origin"}';

test("a preflight from a foreign origin: 403, counted as bad_origin, logged with the Origin it refused", async () => {
  const pinghub = await start();
  try {
    expect(sample(await pinghub.scrape(), REFUSED_ORIGIN)).toBe(0);
    const preflight = await fetch(`${pinghub.url}/obs/preflight`, {
      method: "OPTIONS",
      headers: { Origin: "https://evil.example", "Access-Control-Request-Method": "GET", "X-Real-IP": "192.0.2.9" },
    });
    expect(preflight.status).toBe(403);
    await pinghub.waitForStderr(
      /debug refused bad_origin: channel "\/obs\/preflight" from 192\.0\.2\.9, origin "https:\/\/evil\.example"\n/,
    );
    expect(sample(await pinghub.scrape(), REFUSED_ORIGIN)).toBe(1);

    // The allowed origin's preflight is no refusal.
    const allowed = await fetch(`${pinghub.url}/obs/preflight`, {
      method: "OPTIONS",
      headers: { Origin: "https://app.example", "Access-Control-Request-Method": "GET" },
    });
    expect(allowed.status).toBe(204);
    // An SSE GET and a POST from the foreign page: the same reason, each naming the Origin.
    const events = await fetch(`${pinghub.url}/obs/sse`, {
      headers: { Accept: "text/event-stream", Origin: "https://evil.example" },
    });
    expect(events.status).toBe(403);
    await pinghub.waitForStderr(
      /debug refused bad_origin: channel "\/obs\/sse" from 127\.0\.0\.1, origin "https:\/\/evil\.example"\n/,
    );
    const posted = await fetch(`${pinghub.url}/obs/post`, {
      method: "POST",
      body: "hello",
      headers: { Origin: "https://evil.example" },
    });
    expect(posted.status).toBe(403);
    await pinghub.waitForStderr(
      /debug refused bad_origin: channel "\/obs\/post" from 127\.0\.0\.1, origin "https:\/\/evil\.example"\n/,
    );
    expect(sample(await pinghub.scrape(), REFUSED_ORIGIN)).toBe(3);
    // A refusal of another reason names no Origin.
    expect((await fetch(`${pinghub.url}/obs/%ff`)).status).toBe(400);
    await pinghub.waitForStderr(/debug refused bad_path: channel \(none\) from 127\.0\.0\.1\n/);
  } finally {
    pinghub.proc.kill("SIGTERM");
    expect(await pinghub.exited).toBe(0);
  }
});

test("SSE streams: opening and closing logged at debug, as websockets are; the client's going away named", async () => {
  const pinghub = await start();
  try {
    const stream = await openEvents(`${pinghub.url}/obs/stream`, { "X-Forwarded-For": "198.51.100.4" });
    expect(stream.status).toBe(200);
    await pinghub.waitForStderr(/debug SSE stream opened: channel "\/obs\/stream" from 198\.51\.100\.4\n/);
    stream.close();
    await pinghub.waitForStderr(
      /debug SSE stream closed: channel "\/obs\/stream" from 198\.51\.100\.4, the client went away\n/,
    );
  } finally {
    pinghub.proc.kill("SIGTERM");
    expect(await pinghub.exited).toBe(0);
  }
});

test("at shutdown: the stop line counts websockets and SSE streams, each stream's end logged", async () => {
  const pinghub = await start();
  const ws = await RawWebSocket.connect({ port: pinghub.port }, "/obs/down");
  expect(ws.status).toBe(101);
  const streams = [await openEvents(`${pinghub.url}/obs/down`), await openEvents(`${pinghub.url}/obs/other`)];
  await pinghub.waitForStderr(/SSE stream opened: channel "\/obs\/other"/);
  pinghub.proc.kill("SIGTERM");
  await pinghub.waitForStderr(/info stopping on SIGTERM: closing 1 websocket and 2 SSE streams\n/);
  expect(await ws.closeFrame()).toEqual({ code: 1001, reason: "server shutting down" });
  expect(await Promise.all(streams.map((s) => s.ended))).toEqual([true, true]);
  expect(await pinghub.exited).toBe(0);
  const closed = pinghub
    .stderr()
    .match(/debug SSE stream closed: channel "[^"]+" from 127\.0\.0\.1, server shutting down\n/g);
  expect(closed?.length).toBe(2);
});
