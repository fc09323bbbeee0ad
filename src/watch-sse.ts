// `pinghub watch --sse`: the command-line client subscribing with Server-Sent Events, as EventSource does: it
// keeps the last id it saw (a message's, or the position a stream opens with), and with --reconnect comes back
// with it as Last-Event-ID after the wait the server asked for, so that with history nothing is missed; a gap
// the server reports is said on stderr in its own words. `--ids` prints each message's id before it, `--last N`
// asks for the newest N kept messages first.

import { LAST_PARAMETER } from "./last-query.ts";

export interface SseWatchOptions {
  /** Print each message's id, and a space, before it. */
  ids: boolean;
  /** Come back after the stream ends or the connection drops, with the last id seen. */
  reconnect: boolean;
  /** Ask for the newest N kept messages first (?last=N), on a connection that has no id to resume from. */
  last: number;
  /** A token for a server with --jwt-key, sent as `Authorization: Bearer`. */
  token?: string;
}

export interface WatchOutput {
  out(text: string): void;
  err(text: string): void;
}

/** How client.ts writes what it prints, shared by both doors. */
export interface WatchWords {
  /** One message as its line (escaped line breaks). */
  line(message: string): string;
  /** A failure to connect in words ("connection refused"). */
  connectionError(error: unknown): string;
}

/** What EventSource waits before reconnecting when the server named no time: its usual, about a second. */
const DEFAULT_RETRY_MS = 1000;
/** The event by which pinghub reports a gap (sse-event.ts); its data says which. */
const GAP_EVENT = "gap";
/** What the id field stands for when a message has none (history off): `--ids` lines keep two columns. */
const NO_ID = "-";

/** Subscribes by SSE and prints each message until the stream ends (exit 1) or, with `reconnect`, for ever. */
export async function watchSse(
  url: string,
  options: SseWatchOptions,
  io: WatchOutput,
  words: WatchWords,
): Promise<number> {
  const state = { lastEventId: "", retryMs: DEFAULT_RETRY_MS };
  for (;;) {
    const target = new URL(url);
    if (state.lastEventId !== "") target.searchParams.delete(LAST_PARAMETER);
    else if (options.last > 0) target.searchParams.set(LAST_PARAMETER, String(options.last));
    const headers: Record<string, string> = { Accept: "text/event-stream" };
    if (state.lastEventId !== "") headers["Last-Event-ID"] = state.lastEventId;
    if (options.token !== undefined) headers.Authorization = `Bearer ${options.token}`;
    const from = () => (state.lastEventId === "" ? "" : ` from id ${state.lastEventId}`);
    let response: Response;
    try {
      response = await fetch(target, { headers });
    } catch (error) {
      // Never opened: said as the websocket watch says it, and tried again with --reconnect.
      const why = `cannot subscribe to ${url}: ${words.connectionError(error)}`;
      if (!options.reconnect) {
        io.err(`pinghub watch: ${why}\n`);
        return 1;
      }
      io.err(`${why}; reconnecting in ${state.retryMs} ms${from()}\n`);
      await Bun.sleep(state.retryMs);
      continue;
    }
    // A refusal (400, 403) is meant: asking again would get the same answer.
    if (response.status !== 200 || !response.headers.get("content-type")?.startsWith("text/event-stream")) {
      const text = (await response.text()).trim().split("\n")[0] ?? "";
      io.err(`pinghub watch: cannot subscribe to ${url}: ${response.status} ${text}\n`);
      return 1;
    }
    io.err(`watching ${url} (SSE)${from()}\n`);
    const why = await read(response, state, options.ids, io, words.line);
    if (!options.reconnect) {
      io.err(`closed: ${why}\n`);
      return 1;
    }
    io.err(`closed: ${why}; reconnecting in ${state.retryMs} ms${from()}\n`);
    await Bun.sleep(state.retryMs);
  }
}

/**
 * Reads one stream to its end, as the event-stream format says (lines end at CR, LF or CRLF; a blank line ends
 * a block, which sets the last id even with no data); resolves with why it ended.
 */
async function read(
  response: Response,
  state: { lastEventId: string; retryMs: number },
  ids: boolean,
  io: WatchOutput,
  line: (message: string) => string,
): Promise<string> {
  let data: string[] = [];
  let type = "";
  let idBuffer = state.lastEventId;
  let lastComment = "";
  const field = (text: string) => {
    if (text === "") {
      state.lastEventId = idBuffer;
      if (data.length > 0) {
        const message = data.join("\n");
        if (type === GAP_EVENT) io.err(`gap: ${message}\n`);
        else if (type === "" || type === "message") {
          io.out(ids ? `${idBuffer === "" ? NO_ID : idBuffer} ${line(message)}` : line(message));
        }
      }
      data = [];
      type = "";
      return;
    }
    if (text.startsWith(":")) {
      lastComment = text.slice(1).trim();
      return;
    }
    const colon = text.indexOf(":");
    const name = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (name === "data") data.push(value);
    else if (name === "event") type = value;
    else if (name === "id" && !value.includes("\0")) idBuffer = value;
    else if (name === "retry" && /^\d+$/.test(value)) state.retryMs = Number(value);
  };
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for await (const chunk of response.body ?? []) {
      buffer += decoder.decode(chunk, { stream: true });
      for (;;) {
        // A CR at the very end may be the first half of a CRLF: it waits for the next chunk.
        const match = /\r\n|\r(?!$)|\n/.exec(buffer);
        if (match === null) break;
        field(buffer.slice(0, match.index));
        buffer = buffer.slice(match.index + match[0].length);
      }
    }
  } catch (error) {
    return `connection lost: ${(error as Error).message}`;
  }
  // The server's word on why, when it gave one (`unavailable: ...`); otherwise it simply ended the stream.
  return lastComment.startsWith("unavailable") ? lastComment : "the server ended the stream";
}
