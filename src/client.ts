// The command-line client, so that a newcomer sees a message arrive without writing a script or finding a
// websocket tool: `pinghub watch URL` prints a channel's messages, `pinghub publish URL [MESSAGE]` POSTs one.

import { connect, withToken } from "../public/pinghub.js";
import { LAST_PARAMETER } from "./last-query.ts";
import { NODES_HEADER, SUBSCRIBERS_HEADER } from "./post.ts";
import { watchSse } from "./watch-sse.ts";

export interface Output {
  out(text: string): void;
  err(text: string): void;
}

const stdio: Output = {
  out: (text) => void process.stdout.write(text),
  err: (text) => void process.stderr.write(text),
};

/** The close code of a websocket that ended without a close frame: refused, unreachable or cut. */
const CLOSE_ABNORMAL = 1006;

/** The longest wait for the second asking of a refused upgrade. */
const PROBE_TIMEOUT_MS = 5_000;

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

/** How `pinghub watch` subscribes: by websocket unless `sse`; see watch-sse.ts for the rest. */
export interface WatchOptions {
  reconnect: boolean;
  sse: boolean;
  ids: boolean;
  /** ?last=N: the newest N kept messages first; 0 for none. */
  last: number;
  /**
   * A token for a server with --jwt-key: in the query for a websocket (as pinghub.js sends it), in the
   * Authorization header for SSE. Never printed.
   */
  token: string | undefined;
}

/**
 * Why a websocket to `http` closed before it opened, with no close frame (code 1006): what the server answered
 * the upgrade (`503 unavailable: ...`), or why it could not be reached (`connection refused`). Bun's WebSocket
 * client does not expose a refused upgrade's response, so the upgrade is asked again by fetch, which does.
 */
export async function whyNotOpened(http: string): Promise<string> {
  const key = Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64");
  let response: Response;
  try {
    response = await fetch(http, {
      headers: { Upgrade: "websocket", Connection: "Upgrade", "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13" },
      redirect: "manual",
      // An upgrade accepted this time gets 101, which Bun's fetch never resolves: the wait is cut short.
      signal: AbortSignal.timeout(PROBE_TIMEOUT_MS),
    });
  } catch (error) {
    if ((error as Error).name === "TimeoutError") return `no answer (asked again, none within ${PROBE_TIMEOUT_MS} ms)`;
    return connectionError(error);
  }
  return answerLine(response);
}

/** A refusal as one line: the status and pinghub's one-line reason, or the status text of another's page. */
async function answerLine(response: Response): Promise<string> {
  const text = await response.text().catch(() => "");
  const plain = response.headers.get("content-type")?.startsWith("text/plain") ?? false;
  const reason = plain ? (text.trim().split("\n")[0] ?? "") : response.statusText;
  return `${response.status} ${reason}`.trimEnd();
}

/** A failure to connect in words: "connection refused" rather than Bun's "ECONNREFUSED: Unable to connect...". */
function connectionError(error: unknown): string {
  const { code, message } = error as { code?: string; message: string };
  const known: Record<string, string> = {
    ECONNREFUSED: "connection refused",
    ConnectionRefused: "connection refused",
    ENOTFOUND: "host not found",
    ECONNRESET: "connection reset",
  };
  return (code === undefined ? undefined : known[code]) ?? message;
}

/** Subscribes and prints each message until the channel closes (exit 1) or, with `reconnect`, for ever. */
export function watch(given: string, options: WatchOptions, io: Output = stdio): Promise<number> {
  const urls = channelUrls(given);
  if (urls === undefined) {
    io.err(`pinghub watch: "${given}" is not an http, https, ws or wss URL\n`);
    return Promise.resolve(2);
  }
  if (options.sse) return watchSse(urls.http, options, io, { line: messageLine, connectionError });
  if (options.last > 0) {
    for (const side of ["ws", "http"] as const) {
      const url = new URL(urls[side]);
      url.searchParams.set(LAST_PARAMETER, String(options.last));
      urls[side] = url.href;
    }
  }
  const token = options.token;
  /** Why an attempt that never opened failed: the close's own code and reason when the server sent one. */
  const refusal = (code: number, reason: string): Promise<string> =>
    code === CLOSE_ABNORMAL
      ? whyNotOpened(token === undefined ? urls.http : withToken(urls.http, token))
      : Promise.resolve(`close ${code} ${reason || "(no reason)"}`);
  if (options.reconnect) {
    // pinghub.js itself: the browser library's keepalive and backoff, and its reconnecting for ever.
    connect(urls.ws, {
      token,
      onMessage: (text: string) => io.out(messageLine(text)),
      onState: (state: { status: string; code?: number; reason?: string; wasLive?: boolean; delayMs?: number }) => {
        if (state.status === "live") io.err(`watching ${urls.ws}\n`);
        if (state.status !== "reconnecting") return;
        const again = `; reconnecting in ${state.delayMs} ms\n`;
        if (state.wasLive) io.err(`closed: ${state.code} ${state.reason || "(no reason)"}${again}`);
        else {
          void refusal(state.code ?? CLOSE_ABNORMAL, state.reason ?? "").then((why) =>
            io.err(`cannot subscribe to ${urls.ws}: ${why}${again}`),
          );
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
    ws.onclose = async (event) => {
      if (opened) io.err(`closed: ${event.code} ${event.reason || "(no reason)"}\n`);
      else io.err(`pinghub watch: cannot subscribe to ${urls.ws}: ${await refusal(event.code, event.reason)}\n`);
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
    io.err(`pinghub publish: cannot reach ${urls.http}: ${connectionError(error)}\n`);
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
