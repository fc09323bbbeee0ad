// A real browser for the tests: Debian's headless Chromium driven by playwright-core (no browser download is
// possible here), plus what the browser tests need around it: a page that records every request it makes,
// a TLS proxy that serves pinghub under a path prefix as nginx would, and a tiny server for other pages.

import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Server, ServerWebSocket } from "bun";
import { type Browser, type BrowserContext, type BrowserContextOptions, chromium, type Page } from "playwright-core";
import { until } from "./until.ts";

/** Debian's package `chromium` installs it here. */
export const CHROMIUM = "/usr/bin/chromium";

export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
}

export interface RecordedPage {
  context: BrowserContext;
  page: Page;
  /** Every URL the page asked for: documents, scripts, images, fetches and websockets. */
  requests: string[];
  /** Dialogs (alert, confirm, prompt) the page tried to open; each is dismissed. */
  dialogs: string[];
  /** Console errors and uncaught exceptions on the page. */
  errors: string[];
  /** Content-Security-Policy violations the page reported. */
  violations(): Promise<string[]>;
  /** Text messages the page sent and received on its websockets, in order, empty ones included. */
  frames(): Promise<Frames>;
  /** Every state the channel page's state box showed, in order (states may pass too fast to poll). */
  statesShown(): Promise<StateShown[]>;
  /** Waits until the page has sent and received at least these many empty (keepalive) messages. */
  waitForEmpty(sent: number, received: number): Promise<void>;
}

export interface Frames {
  sent: string[];
  received: string[];
}

/** What the channel page's state box showed, each time it changed. */
export interface StateShown {
  state: string | undefined;
  /** The whole box as seen, countdown included. */
  shown: string;
  /** The live region's text, what a screen reader announces. */
  announced: string;
  retry: boolean;
}

type Recorder = { __violations: string[]; __frames: Frames; __states: StateShown[] };

/** A fresh context and page that records every request, websocket frame, dialog, error and CSP violation. */
export async function recordedPage(browser: Browser, options: BrowserContextOptions = {}): Promise<RecordedPage> {
  const context = await browser.newContext({ colorScheme: "light", ...options });
  // Runs before any script of the page, so it sees every violation and every websocket from the first one.
  // Messages are recorded in the page: the DevTools protocol reports no empty frames, and keepalives are empty.
  await context.addInitScript(() => {
    const recorder = window as unknown as Recorder;
    const violations: string[] = [];
    const frames: Frames = { sent: [], received: [] };
    recorder.__violations = violations;
    recorder.__frames = frames;
    const states: StateShown[] = [];
    recorder.__states = states;
    new MutationObserver(() => {
      const box = document.getElementById("state");
      if (box === null) return;
      const seen: StateShown = {
        state: box.dataset.state,
        shown: box.textContent ?? "",
        announced: document.getElementById("state-text")?.textContent ?? "",
        retry: !(document.getElementById("retry")?.hidden ?? true),
      };
      const last = states.at(-1);
      if (last === undefined || JSON.stringify(last) !== JSON.stringify(seen)) states.push(seen);
    }).observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
    document.addEventListener("securitypolicyviolation", (e) =>
      violations.push(`${e.violatedDirective} ${e.blockedURI}`),
    );
    const NativeWebSocket = window.WebSocket;
    window.WebSocket = class extends NativeWebSocket {
      constructor(url: string | URL, protocols?: string | string[]) {
        super(url, protocols);
        this.addEventListener("message", (event) => frames.received.push(String(event.data)));
      }
      override send(data: Parameters<WebSocket["send"]>[0]): void {
        frames.sent.push(String(data));
        super.send(data);
      }
    };
  });
  const page = await context.newPage();
  const recorded: RecordedPage = {
    context,
    page,
    requests: [],
    dialogs: [],
    errors: [],
    violations: () => page.evaluate(() => (window as unknown as Recorder).__violations.slice()),
    frames: () => page.evaluate(() => structuredClone((window as unknown as Recorder).__frames)),
    statesShown: () => page.evaluate(() => structuredClone((window as unknown as Recorder).__states)),
    async waitForEmpty(sent, received) {
      // Polled from here rather than with waitForFunction, which would stall under a page's fake clock.
      const empty = (list: string[]) => list.filter((f) => f === "").length;
      let frames = await recorded.frames();
      await until(
        async () => {
          frames = await recorded.frames();
          return empty(frames.sent) >= sent && empty(frames.received) >= received;
        },
        () => `${sent} sent and ${received} received empty messages: ${JSON.stringify(frames)}`,
      );
    },
  };
  context.on("request", (request) => recorded.requests.push(request.url()));
  page.on("websocket", (ws) => recorded.requests.push(ws.url()));
  page.on("dialog", (dialog) => {
    recorded.dialogs.push(`${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on("console", (message) => {
    if (message.type() === "error") recorded.errors.push(message.text());
  });
  page.on("pageerror", (error) => recorded.errors.push(error.message));
  return recorded;
}

/** The requests that went anywhere but `hosts` (such as `127.0.0.1:8081`); data: URLs stay in the page. */
export function foreignRequests(requests: string[], hosts: string[]): string[] {
  return requests.filter((url) => !url.startsWith("data:") && !hosts.includes(new URL(url).host));
}

export interface Certificate {
  cert: string;
  key: string;
}

/** A throwaway self-signed certificate for 127.0.0.1, made by openssl; undefined where openssl is missing. */
export function selfSignedCertificate(): Certificate | undefined {
  const dir = mkdtempSync(join(tmpdir(), "pinghub-tls-"));
  try {
    const result = spawnSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=127.0.0.1",
        "-addext",
        "subjectAltName=IP:127.0.0.1",
        "-keyout",
        join(dir, "key.pem"),
        "-out",
        join(dir, "cert.pem"),
      ],
      { stdio: "ignore" },
    );
    if (result.status !== 0 || !existsSync(join(dir, "cert.pem"))) return undefined;
    return { cert: readFileSync(join(dir, "cert.pem"), "utf8"), key: readFileSync(join(dir, "key.pem"), "utf8") };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

interface ProxiedSocket {
  upstream: WebSocket;
  client: ServerWebSocket<ProxiedSocket> | undefined;
  /** Messages each way that arrived before the other side was ready. */
  toUpstream: string[];
  toClient: string[];
}

export interface PrefixProxy {
  server: Server<ProxiedSocket>;
  /** `https://127.0.0.1:PORT` + prefix + path (http: without a certificate). */
  url(path: string): string;
  stop(): Promise<void>;
}

/**
 * What nginx does in front of pinghub with `location /prefix/ { proxy_pass http://pinghub/; }` and websocket
 * upgrades passed on: requests under `prefix` go to `backend` without it, over TLS when given a certificate.
 */
export function startPrefixProxy(backend: string, prefix: string, tls?: Certificate): PrefixProxy {
  const server = Bun.serve<ProxiedSocket>({
    hostname: "127.0.0.1",
    port: 0,
    ...(tls === undefined ? {} : { tls }),
    fetch(req, srv) {
      const url = new URL(req.url);
      if (!url.pathname.startsWith(`${prefix}/`)) return new Response("not found\n", { status: 404 });
      const path = url.pathname.slice(prefix.length) + url.search;
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        const headers = new Headers(req.headers);
        headers.delete("host");
        return fetch(`${backend}${path}`, { method: req.method, headers, body: req.body, redirect: "manual" });
      }
      const data: ProxiedSocket = {
        upstream: new WebSocket(`${backend.replace(/^http/, "ws")}${path}`),
        client: undefined,
        toUpstream: [],
        toClient: [],
      };
      data.upstream.onopen = () => {
        for (const message of data.toUpstream.splice(0)) data.upstream.send(message);
      };
      data.upstream.onmessage = (event) => {
        if (data.client === undefined) data.toClient.push(String(event.data));
        else data.client.send(String(event.data));
      };
      data.upstream.onclose = (event) => {
        // 1005 and 1006 may not be sent in a close frame; nginx would just drop the connection.
        const code = event.code === 1005 || event.code === 1006 ? 1011 : event.code;
        data.client?.close(code, event.reason);
      };
      if (srv.upgrade(req, { data })) return undefined;
      data.upstream.close();
      return new Response("bad websocket upgrade\n", { status: 400 });
    },
    websocket: {
      open(ws) {
        ws.data.client = ws;
        for (const message of ws.data.toClient.splice(0)) ws.send(message);
        if (ws.data.upstream.readyState === WebSocket.CLOSED) ws.close(1011, "upstream closed");
      },
      message(ws, message) {
        const text = String(message);
        if (ws.data.upstream.readyState === WebSocket.OPEN) ws.data.upstream.send(text);
        else ws.data.toUpstream.push(text);
      },
      close(ws) {
        ws.data.upstream.close();
      },
    },
  });
  const origin = `${tls === undefined ? "http" : "https"}://127.0.0.1:${server.port}`;
  return {
    server,
    url: (path) => `${origin}${prefix}${path}`,
    stop: () => server.stop(true),
  };
}

/** A tiny server on another port (so another origin) that serves `html` for every GET: some other site's page. */
export function serveTestPage(html: string): { server: Server<undefined>; url: string; stop(): Promise<void> } {
  const server = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(html, { headers: { "Content-Type": "text/html; charset=utf-8" } }),
  });
  return { server, url: `http://127.0.0.1:${server.port}/`, stop: () => server.stop(true) };
}
