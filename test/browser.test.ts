// The channel page and the browser client library, in a real browser: Debian's headless Chromium driven by
// playwright-core, against real pinghub servers. Without /usr/bin/chromium these tests are skipped with a
// warning, except under CI=true, where that is a failure.
//
// PINGHUB_UPDATE_SCREENSHOT=1 writes the README's screenshot, docs/channel-page.png; otherwise it goes to a
// temporary folder (the page is rendered and checked either way).

import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser, BrowserContextOptions, Page } from "playwright-core";
import { CHANNEL_PAGE_CSP, CLIENT_LIBRARY_PATH } from "../src/page.ts";
import {
  CHROMIUM,
  foreignRequests,
  launchChromium,
  type RecordedPage,
  recordedPage,
  selfSignedCertificate,
  serveTestPage,
  startPrefixProxy,
} from "./support/browser.ts";
import { post, subscribe } from "./support/clients.ts";
import { ROOT, startServer, type TestServer } from "./support/server.ts";
import { until as waitUntil } from "./support/until.ts";

// A browser test waits on real servers and Chromium; Bun's default of 5 s per test is too tight for that.
setDefaultTimeout(30_000);

const CI = process.env.CI === "true";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium && !CI) {
  console.warn(
    `\n!!! SKIPPING the browser tests: ${CHROMIUM} is missing. Install Debian's package: apt-get install chromium\n`,
  );
}

const LIBRARY_SOURCE = readFileSync(join(ROOT, "public/pinghub.js"), "utf8");

describe("the client library's reserved path", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.stop());

  test("GET serves public/pinghub.js to any origin, with an ETag", async () => {
    const response = await fetch(server.http(CLIENT_LIBRARY_PATH), { headers: { Origin: "https://other.example" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(response.headers.get("access-control-allow-origin")).toBe("*");
    expect(response.headers.get("x-content-type-options")).toBe("nosniff");
    expect(await response.text()).toBe(LIBRARY_SOURCE);
    const etag = response.headers.get("etag") ?? "";
    expect(etag).toMatch(/^"[^"]+"$/);
    const again = await fetch(server.http(CLIENT_LIBRARY_PATH), { headers: { "If-None-Match": etag } });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe("");
    const head = await fetch(server.http(CLIENT_LIBRARY_PATH), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    // HEAD says what GET would send: the same length.
    expect(head.headers.get("content-length")).toBe(String(Buffer.byteLength(LIBRARY_SOURCE)));
    expect(head.headers.get("content-length")).toBe(response.headers.get("content-length"));
  });

  test("websockets and POSTs to that path are still a channel", async () => {
    const subscriber = await subscribe(server.ws(CLIENT_LIBRARY_PATH));
    const response = await post(server.http(CLIENT_LIBRARY_PATH), "still a channel");
    expect(response.text).toBe("OK\n");
    expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
    expect(await subscriber.received(1)).toEqual(["still a channel"]);
    subscriber.close();
  });

  test("only that one path is reserved: its neighbours are channel pages", async () => {
    for (const path of ["/.pinghub/other.js", "/.pinghub/", "/pinghub.js", "/x/.pinghub/pinghub.js"]) {
      const response = await fetch(server.http(path));
      expect(response.headers.get("content-type")).toStartWith("text/html");
      expect(await response.text()).toContain("pinghub channel");
    }
  });

  test("the page is one self-contained response under a strict policy", async () => {
    const html = await (await fetch(server.http("/self/contained"))).text();
    expect(html).toContain(`<meta http-equiv="Content-Security-Policy" content="${CHANNEL_PAGE_CSP}">`);
    expect(CHANNEL_PAGE_CSP).toContain("default-src 'none'");
    expect(CHANNEL_PAGE_CSP).not.toContain("unsafe");
    // Nothing to fetch: no external script, style sheet, font or image, so nothing that a path prefix breaks.
    expect(html.match(/\b(?:src|href)=["']?[^"'\s>]*/g)).toEqual([`href="data:image/svg+xml,%3Csvg`]);
    expect(html).not.toMatch(/@import|@font-face|url\(/);
  });
});

// Registered only when it fails: a skipped test counts as a failure in .ci/run.
if (!haveChromium && CI) {
  test(`${CHROMIUM} is installed (CI=true)`, () => {
    throw new Error(
      `${CHROMIUM} is missing: the browser tests need Debian's package chromium (apt-get install chromium)`,
    );
  });
}

describe.skipIf(!haveChromium)("in Chromium", () => {
  let browser: Browser;
  let server: TestServer;
  /** Pages of the current test, and the hosts each may talk to; checked and closed after every test. */
  let pages: Array<{ recorded: RecordedPage; hosts: string[] }> = [];

  beforeAll(async () => {
    browser = await launchChromium();
    server = await startServer();
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });
  afterEach(async () => {
    const open = pages;
    pages = [];
    try {
      for (const { recorded, hosts } of open) {
        // Every test: no request left the allowed hosts, and the page's policy blocked nothing.
        expect(foreignRequests(recorded.requests, hosts)).toEqual([]);
        if (!recorded.page.isClosed()) expect(await recorded.violations()).toEqual([]);
      }
    } finally {
      for (const { recorded } of open) await recorded.context.close();
    }
  });

  const hostOf = (url: string) => new URL(url).host;

  /** A recorded page in a new context; it may talk to the hosts of `allowed` (default: the page's own). */
  async function newPage(options: BrowserContextOptions = {}, allowed: string[] = []): Promise<RecordedPage> {
    const recorded = await recordedPage(browser, options);
    pages.push({ recorded, hosts: allowed });
    return recorded;
  }

  /** Opens the channel page at `url` and waits until it is live and the server counts it. */
  async function openChannel(
    url: string,
    channel: string,
    at: TestServer = server,
    options: BrowserContextOptions = {},
  ): Promise<RecordedPage> {
    const recorded = await newPage(options, [hostOf(url)]);
    await recorded.page.goto(url);
    await live(recorded);
    await waitUntil(() => at.hub.subscriberCount(channel) >= 1, `${channel} has a subscriber`);
    return recorded;
  }

  const live = (recorded: RecordedPage, timeout = 10_000) =>
    recorded.page.locator('#state[data-state="live"]').waitFor({ timeout });

  const messageBox = (page: Page) => page.getByLabel("Message", { exact: true });

  const lines = (recorded: RecordedPage) => recorded.page.locator("#messages li .text").allTextContents();

  test("shows the channel, goes live, and shows a POSTed message with its arrival time", async () => {
    const before = Date.now();
    const { page, errors, dialogs } = await openChannel(server.http("/demo/alerts"), "/demo/alerts");
    expect(await page.locator("h1").textContent()).toBe("/demo/alerts");
    expect(await page.title()).toBe("/demo/alerts · pinghub");
    expect(await page.getByRole("status").textContent()).toBe("Live");
    expect(await page.locator("#curl").textContent()).toBe(`curl -d 'hello' '${server.http("/demo/alerts")}'`);
    expect(await page.locator("#empty").isVisible()).toBe(true);

    const response = await post(server.http("/demo/alerts"), "disk 93% full on db-2\n  second line");
    expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
    const line = page.locator("#messages li").first();
    await line.waitFor();
    expect(await line.locator(".text").textContent()).toBe("disk 93% full on db-2\n  second line");
    expect(await line.locator("time").textContent()).toMatch(/^\d\d:\d\d:\d\d$/);
    const arrived = Date.parse((await line.locator("time").getAttribute("datetime")) ?? "");
    expect(arrived).toBeGreaterThanOrEqual(before - 1000);
    expect(arrived).toBeLessThanOrEqual(Date.now() + 1000);
    expect(await page.locator("#empty").isVisible()).toBe(false);
    expect(await page.locator("#count").textContent()).toBe("1");
    expect(errors).toEqual([]);
    expect(dialogs).toEqual([]);
  });

  test("typing and pressing Enter reaches another websocket subscriber; empty input sends nothing", async () => {
    const subscriber = await subscribe(server.ws("/chat"));
    const recorded = await openChannel(server.http("/chat"), "/chat");
    const { page } = recorded;
    await waitUntil(() => server.hub.subscriberCount("/chat") === 2, "two subscribers");
    const input = messageBox(page);

    await input.press("Enter");
    await input.fill("hello from the browser");
    await input.press("Enter");
    expect(await subscriber.received(1)).toEqual(["hello from the browser"]);
    expect(await input.inputValue()).toBe("");

    await input.fill("and by the button");
    await page.getByRole("button", { name: "Send" }).click();
    expect(await subscriber.received(2)).toEqual(["hello from the browser", "and by the button"]);

    // The page is a subscriber too, so its own messages come back to it, newest first.
    await page.locator("#messages li").nth(1).waitFor();
    expect(await lines(recorded)).toEqual(["and by the button", "hello from the browser"]);
    // The Enter on an empty box sent no message at all (not even an empty one).
    expect((await recorded.frames()).sent).toEqual(["hello from the browser", "and by the button"]);
    subscriber.close();
  });

  for (const bypassCSP of [true, false]) {
    test(`markup in a message and in the path is shown as text and never runs (${bypassCSP ? "escaping alone, CSP bypassed" : "with the page's CSP"})`, async () => {
      const name = `/<img src=x onerror="window.__pwned='path';alert('path')">${bypassCSP ? "a" : "b"}`;
      const encoded = `/${encodeURIComponent(name.slice(1))}`;
      const recorded = await openChannel(server.http(encoded), name, server, { bypassCSP });
      const { page } = recorded;
      expect(await page.locator("h1").textContent()).toBe(name);
      expect(await page.title()).toBe(`${name} · pinghub`);

      const message = `<img src=y onerror="window.__pwned='message';alert('message')"><script>window.__pwned='script';alert('script')</script><b>bold</b>`;
      await post(server.http(encoded), message);
      await page.locator("#messages li").first().waitFor();
      expect(await lines(recorded)).toEqual([message]);

      expect(await page.locator("img, script:not(:last-of-type), b, h1 *, title *").count()).toBe(0);
      expect(await page.evaluate(() => (window as unknown as { __pwned?: string }).__pwned)).toBeUndefined();
      expect(recorded.dialogs).toEqual([]);
      // An <img src=x> or src=y that had been made would have asked the server for it.
      expect(recorded.requests.filter((url) => /\/[xy]$/.test(url))).toEqual([]);
      expect(recorded.errors).toEqual([]);
    });
  }

  test("no request leaves the server's host, and the page's policy blocks nothing it needs", async () => {
    const url = server.http("/offline/ok");
    const recorded = await openChannel(url, "/offline/ok");
    const { page } = recorded;
    await messageBox(page).fill("round trip");
    await messageBox(page).press("Enter");
    await page.locator("#messages li").first().waitFor();
    await page.getByRole("button", { name: "Clear" }).click();
    await page.locator("#empty").waitFor();

    // The document and the websocket, and nothing else: no CDN, font, favicon or script of its own.
    expect(recorded.requests).toEqual([url, server.ws("/offline/ok")]);
    expect(foreignRequests(recorded.requests, [hostOf(url)])).toEqual([]);
    expect(await recorded.violations()).toEqual([]);
    expect(await page.locator('meta[http-equiv="Content-Security-Policy"]').getAttribute("content")).toBe(
      CHANNEL_PAGE_CSP,
    );
    expect(recorded.errors).toEqual([]);
  });

  test("sends an empty keepalive every 30 s and shows nothing for its echo", async () => {
    const recorded = await newPage({}, [hostOf(server.http("/"))]);
    const { page } = recorded;
    await page.clock.install();
    await page.goto(server.http("/keepalive"));
    await live(recorded);
    await page.clock.runFor(29_000);
    expect((await recorded.frames()).sent).toEqual([]);
    await page.clock.runFor(1_000);
    await recorded.waitForEmpty(1, 1);
    // The echo answered the keepalive, so the next one goes out as usual and the connection stays up.
    await page.clock.runFor(30_000);
    await recorded.waitForEmpty(2, 2);

    expect(await page.locator("#state").getAttribute("data-state")).toBe("live");
    expect(await page.locator("#messages li").count()).toBe(0);
    expect(await page.locator("#empty").isVisible()).toBe(true);
    expect(await recorded.frames()).toEqual({ sent: ["", ""], received: ["", ""] });
  });

  test("keeps the newest 500 lines, newest first", async () => {
    const recorded = await openChannel(server.http("/busy"), "/busy");
    const publisher = await subscribe(server.ws("/busy"));
    await waitUntil(() => server.hub.subscriberCount("/busy") === 2, "two subscribers");
    for (let i = 0; i < 505; i++) publisher.send(`line ${i}`);
    await recorded.page.locator("#count", { hasText: "505 (latest 500 shown)" }).waitFor();
    const shown = await lines(recorded);
    expect(shown.length).toBe(500);
    expect(shown[0]).toBe("line 504");
    expect(shown[499]).toBe("line 5");
    publisher.close();
  });

  test("reconnects by itself after the server restarts", async () => {
    const first = await startServer();
    const port = first.port;
    let second: TestServer | undefined;
    try {
      const recorded = await openChannel(first.http("/restart"), "/restart", first);
      const { page } = recorded;
      await first.stop();

      // While it waits to retry, it says why it closed and when it tries again; the screen reader's live region
      // says the same without the ticking countdown. The retry button shows only then.
      await page.locator('#state[data-state="reconnecting"]').waitFor();
      const closed = (await recorded.statesShown()).find((s) => s.state === "reconnecting");
      expect(closed?.shown).toMatch(/^Closed: .+ \(\d{4}\)\. Reconnecting in \d+ s$/);
      expect(closed?.announced).toMatch(/^Closed: .+ \(\d{4}\)\. Reconnecting$/);
      expect(closed?.retry).toBe(true);
      // What is typed while the channel is down stays in the box, with a word why.
      await messageBox(page).fill("typed while down");
      await messageBox(page).press("Enter");
      expect(await page.getByRole("alert").textContent()).toContain("Not sent");
      expect(await messageBox(page).inputValue()).toBe("typed while down");

      second = await startServer({ listen: { kind: "tcp", hostname: "127.0.0.1", port } });
      await live(recorded, 20_000);
      await waitUntil(() => second?.hub.subscriberCount("/restart") === 1, "the page subscribed again");
      expect(await page.getByRole("alert").isVisible()).toBe(false);
      for (const seen of await recorded.statesShown()) expect(seen.retry).toBe(seen.state === "reconnecting");
      await post(second.http("/restart"), "after the restart");
      await page.locator("#messages li .text", { hasText: "after the restart" }).waitFor();
      await messageBox(page).press("Enter");
      await page.locator("#messages li .text", { hasText: "typed while down" }).waitFor();
      expect(await lines(recorded)).toEqual(["typed while down", "after the restart"]);
    } finally {
      await second?.stop();
    }
  });

  test("works behind a path prefix over https, as behind nginx", async () => {
    const certificate = selfSignedCertificate();
    if (certificate === undefined) console.warn("openssl is missing: the prefix proxy test runs over plain http");
    const proxy = startPrefixProxy(server.http(""), "/pinghub", certificate);
    try {
      const url = proxy.url("/team/builds");
      const subscriber = await subscribe(server.ws("/team/builds"));
      const recorded = await openChannel(url, "/team/builds", server, { ignoreHTTPSErrors: true });
      const { page } = recorded;
      await waitUntil(() => server.hub.subscriberCount("/team/builds") === 2, "two subscribers");
      expect(await page.locator("h1").textContent()).toBe("/team/builds");
      const websocket = url.replace(/^http/, "ws");
      expect(websocket).toStartWith(certificate === undefined ? "ws://" : "wss://");
      expect(recorded.requests).toEqual([url, websocket]);

      await post(server.http("/team/builds"), "build 118 passed");
      await page.locator("#messages li .text", { hasText: "build 118 passed" }).waitFor();
      await messageBox(page).fill("thanks");
      await messageBox(page).press("Enter");
      expect(await subscriber.received(2)).toEqual(["build 118 passed", "thanks"]);
      expect(await page.locator("#curl").textContent()).toBe(`curl -d 'hello' '${url}'`);
      subscriber.close();
    } finally {
      await proxy.stop();
    }
  });

  describe("the client library from another site's page", () => {
    let other: ReturnType<typeof serveTestPage>;
    beforeAll(() => {
      // Another origin (another port) that imports the library from pinghub, as a module, and connects; the
      // settings come in the fragment so that one page serves every test.
      other = serveTestPage(`<!doctype html>
<meta charset="utf-8">
<title>library test</title>
<script type="module">
import { connect, websocketUrl } from ${JSON.stringify(server.http(CLIENT_LIBRARY_PATH))};
const settings = JSON.parse(decodeURIComponent(location.hash.slice(1)));
window.states = [];
window.messages = [];
window.websocketUrl = websocketUrl;
window.channel = connect(settings.url, {
  keepaliveMs: settings.keepaliveMs,
  onMessage: (text) => window.messages.push(text),
  onState: (state) => window.states.push(state),
});
</script>`);
    });
    afterAll(() => other.stop());

    type Window = { states: Array<{ status: string; code?: number; reason?: string }>; messages: string[] };
    type LibraryWindow = Window & {
      channel: { send(text: string): boolean; close(): void; url: string; state: { status: string } };
      websocketUrl(url: string): string;
    };

    async function openLibraryPage(settings: { url: string; keepaliveMs?: number }) {
      const recorded = await newPage({}, [hostOf(other.url), hostOf(server.http("/"))]);
      await recorded.page.goto(`${other.url}#${encodeURIComponent(JSON.stringify(settings))}`);
      return recorded;
    }

    test("connect, receive, send, keepalive, close", async () => {
      const recorded = await openLibraryPage({ url: server.http("/lib/test"), keepaliveMs: 500 });
      const { page } = recorded;
      await page.waitForFunction(() => (window as unknown as Window).states.some((s) => s.status === "live"));
      await waitUntil(() => server.hub.subscriberCount("/lib/test") === 1, "the library subscribed");
      expect(await page.evaluate(() => (window as unknown as LibraryWindow).channel.url)).toBe(server.ws("/lib/test"));
      expect(await page.evaluate(() => (window as unknown as Window).states.map((s) => s.status))).toEqual([
        "connecting",
        "live",
      ]);

      await post(server.http("/lib/test"), "from curl");
      await page.waitForFunction(() => (window as unknown as Window).messages.includes("from curl"));

      const subscriber = await subscribe(server.ws("/lib/test"));
      expect(await page.evaluate(() => (window as unknown as LibraryWindow).channel.send("from the library"))).toBe(
        true,
      );
      expect(await subscriber.received(1)).toEqual(["from the library"]);
      expect(await page.evaluate(() => (window as unknown as LibraryWindow).channel.send(""))).toBe(false);

      // Keepalives every 500 ms here (long enough for an echo on a loaded machine): they go out, their empty echoes come back, and none reaches onMessage.
      await recorded.waitForEmpty(3, 3);
      await page.waitForFunction(() => (window as unknown as Window).messages.length === 2);
      expect(await page.evaluate(() => (window as unknown as Window).messages)).toEqual([
        "from curl",
        "from the library",
      ]);

      await page.evaluate(() => (window as unknown as LibraryWindow).channel.close());
      await waitUntil(() => server.hub.subscriberCount("/lib/test") === 1, "the library unsubscribed");
      const states = await page.evaluate(() => (window as unknown as Window).states);
      expect(states.map((s) => s.status)).toEqual(["connecting", "live", "closed"]);
      expect(await page.evaluate(() => (window as unknown as LibraryWindow).channel.send("too late"))).toBe(false);
      // The library came from pinghub itself, on another origin than the page: CORS let the module load.
      expect(recorded.requests).toContain(server.http(CLIENT_LIBRARY_PATH));
      expect(
        await page.evaluate(() => [
          (window as unknown as LibraryWindow).websocketUrl("https://example.com/a/b?c=d#e"),
          (window as unknown as LibraryWindow).websocketUrl("/rel"),
        ]),
      ).toEqual(["wss://example.com/a/b?c=d", `ws://${hostOf(other.url)}/rel`]);
      expect(recorded.errors).toEqual([]);
      subscriber.close();
    });

    test("gives up on a connection that stops answering keepalives, and reconnects", async () => {
      const recorded = await openLibraryPage({ url: server.http("/lib/silent"), keepaliveMs: 100 });
      const { page } = recorded;
      let connections = 0;
      // A websocket that opens and then never answers anything, not even a keepalive.
      await page.routeWebSocket(/\/lib\/silent$/, () => {
        connections++;
      });
      await page.reload();
      await page.waitForFunction(
        () => (window as unknown as Window).states.filter((s) => s.status === "live").length >= 2,
        undefined,
        { timeout: 10_000 },
      );
      const states = await page.evaluate(() => (window as unknown as Window).states);
      const dropped = states.find((s) => s.status === "reconnecting");
      expect(dropped).toMatchObject({ code: 4000, reason: "no answer to keepalive", wasLive: true });
      expect(connections).toBeGreaterThanOrEqual(2);
      expect(await recorded.page.evaluate(() => (window as unknown as Window).messages)).toEqual([]);
    });
  });

  test("readable on a phone and a desktop, light and dark, and accessible", async () => {
    const longName = `/${"a-rather-long-channel-name-without-spaces-".repeat(5)}`;
    const url = server.http(longName);
    // Screenshots go to a scratch directory, kept only if the test fails.
    const shots = mkdtempSync(join(tmpdir(), "pinghub-page-"));
    console.error(`if this test fails, its screenshots are in ${shots}`);
    const backgrounds: string[] = [];
    for (const colorScheme of ["light", "dark"] as const) {
      for (const viewport of [
        { width: 360, height: 740 },
        { width: 1280, height: 800 },
      ]) {
        const recorded = await openChannel(url, longName, server, { colorScheme, viewport });
        const { page } = recorded;
        await post(url, `a message with one very long word: ${"x".repeat(300)}`);
        await page.locator("#messages li").first().waitFor();
        // Nothing wider than the screen: long names and words wrap instead of scrolling sideways.
        expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
        backgrounds.push(await page.evaluate(() => getComputedStyle(document.body).backgroundColor));
        const shot = join(shots, `${colorScheme}-${viewport.width}.png`);
        await page.screenshot({ path: shot, fullPage: true, animations: "disabled" });

        // Labels and roles a screen reader uses, and a visible focus ring for keyboard users.
        expect(await page.getByRole("textbox", { name: "Message" }).count()).toBe(1);
        expect(await page.getByRole("button", { name: "Send" }).count()).toBe(1);
        expect(await page.getByRole("log").locator("li").count()).toBe(1);
        expect(await page.getByRole("status").textContent()).toBe("Live");
        await page.keyboard.press("Tab");
        expect(await page.evaluate(() => document.activeElement?.id)).toBe("message");
        expect(await page.evaluate(() => getComputedStyle(document.activeElement as Element).outlineStyle)).toBe(
          "solid",
        );
        await recorded.context.close();
      }
    }
    expect(backgrounds[0]).toBe(backgrounds[1] ?? "");
    expect(backgrounds[2]).toBe(backgrounds[3] ?? "");
    expect(backgrounds[0]).not.toBe(backgrounds[2] ?? "");
    rmSync(shots, { recursive: true, force: true });
  });

  test("screenshot for the README", async () => {
    const update = process.env.PINGHUB_UPDATE_SCREENSHOT === "1";
    // Only PINGHUB_UPDATE_SCREENSHOT=1 writes docs/; otherwise the shot is taken into a scratch directory, which
    // goes once the test has passed.
    const dir = update ? join(ROOT, "docs") : mkdtempSync(join(tmpdir(), "pinghub-readme-"));
    mkdirSync(dir, { recursive: true });
    const removeScratch = () => {
      if (!update) rmSync(dir, { recursive: true, force: true });
    };
    const url = server.http("/ops/deploys");
    // As tall as the page, no taller: the screenshot is the full page.
    const recorded = await newPage({ colorScheme: "light", viewport: { width: 960, height: 320 } }, [hostOf(url)]);
    const { page } = recorded;
    await page.goto(url);
    await live(recorded);
    await waitUntil(() => server.hub.subscriberCount("/ops/deploys") === 1, "the page subscribed");
    const messages = [
      "deploy api@4.18.2 started by maria",
      '{"service":"api","region":"eu-west","healthy":12,"total":12}',
      "deploy api@4.18.2 finished in 3m 12s",
      "cache warm-up done: 48,210 keys",
    ];
    let time = Date.parse("2026-03-14T09:41:07");
    for (const [i, message] of messages.entries()) {
      await page.clock.setFixedTime(time);
      time += 17_000 + i * 29_000;
      await post(url, message);
      await page.locator("#count", { hasText: String(i + 1) }).waitFor();
    }
    await messageBox(page).fill("rollback plan ready if needed");
    const path = join(dir, "channel-page.png");
    await page.screenshot({ path, fullPage: true, animations: "disabled" });
    expect(existsSync(path)).toBe(true);
    removeScratch();
  });
});
