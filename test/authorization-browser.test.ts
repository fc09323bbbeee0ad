// Tokens in a real browser: Debian's headless Chromium, on another site's page, opening an EventSource and a
// websocket to a --jwt-key pinghub with ?token= (neither can set a header), and a fetch POST with an
// Authorization header, which needs the CORS preflight to allow it (--origin names the page's site).
// Without /usr/bin/chromium these tests are skipped with a warning, except under CI=true, where that fails.

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";
import type { Browser } from "playwright-core";
import { loadJwtKey } from "../src/jwt-access.ts";
import { CHROMIUM, launchChromium, serveTestPage } from "./support/browser.ts";
import { post } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { until } from "./support/until.ts";

setDefaultTimeout(30_000);

const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) {
  if (process.env.CI === "true") throw new Error(`${CHROMIUM} is missing: install Debian's package chromium`);
  console.warn(`\n!!! SKIPPING the browser token tests: ${CHROMIUM} is missing. apt-get install chromium\n`);
}

const SECRET = "browser-test-secret-that-is-long-enough-for-hs256";

/** Another site's page: it opens what the fragment says and records what arrives. */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>token test</title>
<script type="module">
const s = JSON.parse(decodeURIComponent(location.hash.slice(1)));
window.got = { events: [], websocket: [], websocketOpen: false, refusedStream: "", post: "" };
const es = new EventSource(s.sse);
es.onmessage = (e) => window.got.events.push(e.data);
const refused = new EventSource(s.refusedSse);
refused.onerror = () => { window.got.refusedStream = refused.readyState === EventSource.CLOSED ? "closed" : "retrying"; };
const ws = new WebSocket(s.ws);
ws.onopen = () => { window.got.websocketOpen = true; };
ws.onmessage = (e) => window.got.websocket.push(e.data);
window.publish = () =>
  fetch(s.post, { method: "POST", headers: { Authorization: "Bearer " + s.token }, body: "from fetch" }).then(
    (r) => { window.got.post = "status " + r.status; },
    (e) => { window.got.post = "error " + e; },
  );
</script>`;

describe.skipIf(!haveChromium)("tokens from another site's page in Chromium", () => {
  let browser: Browser;
  let server: TestServer;
  let other: ReturnType<typeof serveTestPage>;
  const dir = mkdtempSync(join(tmpdir(), "pinghub-auth-browser-"));
  beforeAll(async () => {
    writeFileSync(join(dir, "secret"), SECRET);
    other = serveTestPage(PAGE);
    server = await startServer({ jwtKey: loadJwtKey(join(dir, "secret")), origin: [new URL(other.url).origin] });
    browser = await launchChromium();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await other?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  test("EventSource and WebSocket with ?token=, fetch with Authorization after its preflight", async () => {
    const token = await new SignJWT({ pinghub: { subscribe: ["/b/*"], publish: ["/b/*"] } })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(SECRET));
    const settings = {
      sse: server.http(`/b/stream?token=${token}`),
      refusedSse: server.http("/b/stream"),
      ws: server.ws(`/b/socket?token=${token}`),
      post: server.http("/b/stream"),
      token,
    };
    const page = await browser.newPage();
    try {
      await page.goto(`${other.url}#${encodeURIComponent(JSON.stringify(settings))}`);
      type Got = {
        got: { events: string[]; websocket: string[]; websocketOpen: boolean; refusedStream: string; post: string };
      };
      const got = () => page.evaluate(() => (window as unknown as Got).got);
      await until(() => server.hub.eventStreams === 1 && server.hub.websockets === 1, "both subscribed");
      const auth = { Authorization: `Bearer ${token}` };
      expect((await post(server.http("/b/stream"), "to the stream", auth)).status).toBe(200);
      expect((await post(server.http("/b/socket"), "to the socket", auth)).status).toBe(200);
      await page.waitForFunction(() => {
        const g = (window as unknown as Got).got;
        return g.events.length === 1 && g.websocket.length === 1;
      });
      await page.evaluate(() => (window as unknown as { publish(): Promise<void> }).publish());
      await page.waitForFunction(() => (window as unknown as Got).got.events.length === 2);
      const seen = await got();
      expect(seen.events).toEqual(["to the stream", "from fetch"]);
      expect(seen.websocket).toEqual(["to the socket"]);
      expect(seen.websocketOpen).toBe(true);
      // "from fetch" arrived, so the preflight allowed Authorization (Chromium sends nothing otherwise). The POST's
      // answer carries no CORS headers, as before authorization existed: the page cannot read it.
      expect(seen.post).toBe("error TypeError: Failed to fetch");
      // Without a token: 401, and EventSource gives up for good rather than hammering.
      await page.waitForFunction(() => (window as unknown as Got).got.refusedStream !== "");
      expect((await got()).refusedStream).toBe("closed");
    } finally {
      await page.close();
    }
  });

  test("the channel page opened with ?token= subscribes with it, and shows what is published", async () => {
    const token = await new SignJWT({ pinghub: { subscribe: ["/b/page"], publish: ["/b/page"] } })
      .setProtectedHeader({ alg: "HS256" })
      .sign(new TextEncoder().encode(SECRET));
    // A server of its own, without --origin: the page's websocket comes from pinghub's own origin.
    const own = await startServer({ jwtKey: loadJwtKey(join(dir, "secret")) });
    const page = await browser.newPage();
    try {
      await page.goto(own.http(`/b/page?token=${token}`));
      await until(() => own.hub.subscriberCount("/b/page") === 1, "the page subscribed");
      const auth = { Authorization: `Bearer ${token}` };
      expect((await post(own.http("/b/page"), "to the page", auth)).status).toBe(200);
      await page.locator("#messages li .text", { hasText: "to the page" }).waitFor();
    } finally {
      await page.close();
      await own.stop();
    }
  });
});
