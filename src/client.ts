// The command-line client, so that a newcomer sees a message arrive without writing a script or finding a
// websocket tool: `pinghub watch URL` prints a channel's messages, `pinghub publish URL [MESSAGE]` POSTs one.

import { connect, withToken } from "../public/pinghub.js";
import { NODES_HEADER, SUBSCRIBERS_HEADER } from "./post.ts";

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** A channel URL as given (http, https, ws or wss), in the scheme each side needs. */
export function channelUrls(given: string): { http: string; ws: string } | undefined {
  let url: URL;
  try {
    url = new URL(given);
  } catch {
    return undefined;
  }
  const scheme = { "http:": "ws:", "https:": "wss:", "ws:": "http:", "wss:": "https:" }[url.protocol];
  if (scheme === undefined) return undefined;
  const other = `${scheme}${url.href.slice(url.protocol.length)}`;
  return url.protocol.startsWith("http") ? { http: url.href, ws: other } : { http: other, ws: url.href };
}

/**
 * One message on one line: a line feed inside it is written `\n`, a carriage return `\r` and a backslash
 * `\\`, so that every line printed is exactly one message and the text can be recovered.
 */
export function messageLine(message: string): string {
  return `${message.replace(/[\\\n\r]/g, (c) => (c === "\\" ? "\\\\" : c === "\n" ? "\\n" : "\\r"))}\n`;
}

/**
 * Subscribes and prints each message until the channel closes (exit 1) or, with `reconnect`, for ever. A token
 * (--token, for --jwt-key) goes in the URL's query, as pinghub.js sends it; it is never printed.
 */
export function watch(given: string, reconnect: boolean, io: Output = stdio, token?: string): Promise<number> {
  const urls = channelUrls(given);
  if (urls === undefined) {
    io.err(`pinghub watch: "${given}" is not an http, https, ws or wss URL\n`);
    return Promise.resolve(2);
  }
  if (reconnect) {
    // pinghub.js itself: the browser library's keepalive and backoff, and its reconnecting for ever.
    connect(urls.ws, {
      token,
      onMessage: (text: string) => io.out(messageLine(text)),
      onState: (state: { status: string; code?: number; reason?: string; delayMs?: number }) => {
        if (state.status === "live") io.err(`watching ${urls.ws}\n`);
        if (state.status === "reconnecting") {
          io.err(`closed: ${state.code} ${state.reason || "(no reason)"}; reconnecting in ${state.delayMs} ms\n`);
        }
      },
    });
    return new Promise(() => {});
  }
  return new Promise((resolve) => {
    const ws = new WebSocket(token === undefined ? urls.ws : withToken(urls.ws, token));
    let opened = false;
    ws.onopen = () => {
      opened = true;
      io.err(`watching ${urls.ws}\n`);
    };
    ws.onmessage = (event) => {
      // An empty message is a keepalive's echo, never a message of the channel.
      const text = String(event.data);
      if (text !== "") io.out(messageLine(text));
    };
    ws.onclose = (event) => {
      io.err(
        opened
          ? `closed: ${event.code} ${event.reason || "(no reason)"}\n`
          : `pinghub watch: cannot subscribe to ${urls.ws} (close ${event.code})\n`,
      );
      resolve(1);
    };
  });
}

/**
 * POSTs the message (or standard input) and prints whom it reached; a refusal prints the server's reason. A
 * token goes in the Authorization header.
 */
export async function publish(
  given: string,
  message: string | undefined,
  io: Output = stdio,
  token?: string,
): Promise<number> {
  const urls = channelUrls(given);
  if (urls === undefined) {
    io.err(`pinghub publish: "${given}" is not an http, https, ws or wss URL\n`);
    return 2;
  }
  const body = message ?? (await Bun.stdin.bytes());
  let response: Response;
  try {
    const headers: Record<string, string> = token === undefined ? {} : { Authorization: `Bearer ${token}` };
    response = await fetch(urls.http, { method: "POST", body, headers });
  } catch (error) {
    io.err(`pinghub publish: cannot reach ${urls.http}: ${(error as Error).message}\n`);
    return 1;
  }
  const text = (await response.text()).trim();
  if (response.status !== 200) {
    io.err(`pinghub publish: ${response.status} ${text.split("\n")[0] ?? ""}\n`);
    return 1;
  }
  const nodes = response.headers.get(NODES_HEADER);
  const subscribers = response.headers.get(SUBSCRIBERS_HEADER);
  if (nodes !== null) io.out(`published to ${nodes} node${nodes === "1" ? "" : "s"} with subscribers\n`);
  else io.out(`published to ${subscribers ?? "?"} subscriber${subscribers === "1" ? "" : "s"}\n`);
  return 0;
}
