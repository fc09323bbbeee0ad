// A Server-Sent Events client for the load generator: Bun's fetch with a streaming body reader, as any HTTP
// client would subscribe (`GET /channel` with `Accept: text/event-stream`). Each chunk of the body is walked
// once: its lines are found with the native indexOf, a `data:` line's first bytes (the message's sequence
// number and time stamp) are handed over in place, and every other line (`retry:`, `id:`, comments) is
// skipped. A line cut in two by the end of a chunk is kept until the rest comes.
//
// Bun's fetch runs at most BUN_CONFIG_MAX_HTTP_REQUESTS requests at once (256 unless set) and queues the
// rest, and it reads the variable once, when the process starts: a thousand streams need it raised in the
// environment of the process (bench/run.ts starts itself again with it when the SSE scenario is to run).
//
// What it costs the load generator, measured on the benchmark's machine with 1000 streams on one core: about
// 6 µs per message received at 100 messages/s (Bun's HTTP client thread, which reads the sockets and decodes
// the chunked body, about 60 % of it; the JavaScript thread the rest), so that core is about 60 % busy at
// 100 messages/s (the websocket client's: 37 %) and full from about 200 on: at 300 messages/s this client,
// not the server, sets most of the latency (BENCHMARKS.md, "Server-Sent Events").

import { HEADER_BYTES } from "./message.ts";

export interface EventHandlers {
  /**
   * One `data:` line arrived: the message starts at `bytes[at]` and is `length` bytes long, all of them
   * present. `now` is performance.now() when the chunk holding it arrived: one clock reading per chunk.
   */
  data(conn: SseConnection, bytes: Uint8Array, at: number, length: number, now: number): void;
  /** The stream ended or failed, from either side. */
  closed?(conn: SseConnection): void;
}

const LF = 0x0a;
const CR = 0x0d;
/** "data:" and the one space after it, which is not part of the data. */
const DATA = [0x64, 0x61, 0x74, 0x61, 0x3a, 0x20] as const;
/** How long a stream may take from the request to the answer's headers. */
const OPEN_TIMEOUT_MS = 15_000;
/** The most concurrent fetches Bun allows (its limit is a 16-bit count). */
export const MAX_HTTP_REQUESTS = 65_535;

export class SseConnection {
  isOpen = false;
  isClosed = false;
  /** The start of a line that the last chunk cut in two. */
  private stash: Uint8Array | undefined;
  private readonly abort = new AbortController();

  constructor(
    /** Index among all the streams of a load: which subscriber this is. */
    readonly index: number,
    /** Index of the channel it subscribes to. */
    readonly channel: number,
    private readonly url: string,
    private readonly handlers: EventHandlers,
  ) {}

  /**
   * Sends the request and resolves once the server has answered 200 with an event stream: pinghub joins the
   * stream to its channel before it answers, so the subscriber is then subscribed. Reading goes on after.
   */
  async open(): Promise<void> {
    const timer = setTimeout(() => this.abort.abort(new Error("no answer in time")), OPEN_TIMEOUT_MS);
    let res: Response;
    try {
      res = await fetch(this.url, {
        headers: { Accept: "text/event-stream" },
        signal: this.abort.signal,
        // Straight to 127.0.0.1, whatever proxy the environment names.
        proxy: false,
        // pinghub never compresses a stream: nothing to decode, and no decoder to pay for.
        decompress: false,
      });
    } catch (error) {
      this.isClosed = true;
      throw error;
    } finally {
      clearTimeout(timer);
    }
    const type = res.headers.get("content-type") ?? "";
    if (res.status !== 200 || !type.startsWith("text/event-stream") || res.body === null) {
      this.isClosed = true;
      await res.body?.cancel();
      throw new Error(`subscription refused: ${res.status} ${type}`);
    }
    this.isOpen = true;
    void this.read(res.body.getReader());
  }

  /** Ends the stream from the client's side, as a subscriber that goes away does. */
  close(): void {
    if (!this.isClosed) this.abort.abort();
  }

  private async read(reader: ReadableStreamDefaultReader<Uint8Array>): Promise<void> {
    try {
      for (;;) {
        // Bun's readMany: every chunk queued so far in one call, and a promise only when none is.
        const pending = reader.readMany();
        const result = pending instanceof Promise ? await pending : pending;
        if (result.done) break;
        const now = performance.now();
        for (const chunk of result.value) this.onChunk(chunk, now);
      }
    } catch {
      // Aborted by close(), or the connection was reset: either way the stream is over.
    } finally {
      this.isClosed = true;
      this.handlers.closed?.(this);
    }
  }

  /** Walks the lines of a chunk; the hot path of the SSE load generator. */
  private onChunk(chunk: Uint8Array, now: number): void {
    let bytes = chunk;
    if (this.stash !== undefined) {
      bytes = Buffer.concat([this.stash, chunk]);
      this.stash = undefined;
    }
    const end = bytes.length;
    let i = 0;
    while (i < end) {
      const lf = bytes.indexOf(LF, i);
      if (lf < 0) break;
      // pinghub ends lines with LF alone; a CR before it would not be part of the data either.
      const lineEnd = lf > i && bytes[lf - 1] === CR ? lf - 1 : lf;
      if (
        lineEnd - i >= DATA.length &&
        bytes[i] === DATA[0] &&
        bytes[i + 1] === DATA[1] &&
        bytes[i + 2] === DATA[2] &&
        bytes[i + 3] === DATA[3] &&
        bytes[i + 4] === DATA[4] &&
        bytes[i + 5] === DATA[5]
      ) {
        const at = i + DATA.length;
        const length = lineEnd - at;
        if (length >= HEADER_BYTES) this.handlers.data(this, bytes, at, length, now);
      }
      i = lf + 1;
    }
    // Copied: the chunk's memory is not ours to keep.
    if (i < end) this.stash = bytes.slice(i);
  }
}

export interface OpenOptions {
  port: number;
  count: number;
  /** The request path of stream `i`: its channel. */
  path(i: number): string;
  /** The channel index of stream `i`, kept on the connection for the handlers. */
  channel(i: number): number;
  handlers: EventHandlers;
  /** Requests under way at once while opening, as for the websockets' handshakes. */
  concurrency?: number;
}

/**
 * Opens `count` SSE streams to 127.0.0.1 and resolves when every one is subscribed; throws if any fails, or
 * if one is not answered within OPEN_TIMEOUT_MS: past BUN_CONFIG_MAX_HTTP_REQUESTS, Bun would hold the
 * request back until another ends, which a stream never does.
 */
export async function openEventStreams(options: OpenOptions): Promise<SseConnection[]> {
  const conns = Array.from(
    { length: options.count },
    (_, i) =>
      new SseConnection(i, options.channel(i), `http://127.0.0.1:${options.port}${options.path(i)}`, options.handlers),
  );
  let next = 0;
  const worker = async () => {
    while (next < conns.length) await (conns[next++] as SseConnection).open();
  };
  const workers = Array.from({ length: Math.min(options.concurrency ?? 256, conns.length) }, worker);
  try {
    await Promise.all(workers);
  } catch (error) {
    await closeEventStreams(conns);
    throw error;
  }
  return conns;
}

/** Ends every stream still open and waits, briefly, for them to be gone. */
export async function closeEventStreams(conns: readonly SseConnection[]): Promise<void> {
  for (const conn of conns) conn.close();
  const deadline = Date.now() + 5_000;
  while (conns.some((c) => c.isOpen && !c.isClosed) && Date.now() < deadline) await Bun.sleep(10);
}
