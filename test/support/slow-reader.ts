// A subscriber on a slow network, over a real socket: it sends a websocket upgrade or an SSE GET by hand and
// then reads at most a given number of bytes a second, pausing the socket whenever it is ahead (the kernel's
// receive window then fills and closes, as a phone's does on a bad link). Or one that never reads at all.

import type { Socket } from "bun";

export interface SlowReader {
  /** Everything received, as Latin-1 text (the tests' messages are ASCII). */
  text(): string;
  /** Bytes received. */
  readonly received: number;
  /** Whether the server closed or reset the connection (seen only while the socket is read). */
  readonly ended: boolean;
  /** Reads again, at full speed: for one that never read, to see that the server dropped it. */
  resume(): void;
  close(): void;
}

const UPGRADE =
  "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n";

/**
 * Subscribes to `path` by `transport` and reads at `bytesPerSecond` (0: never reads). Resolves once the first
 * bytes of the answer came (the subscriber has joined), or at once for one that never reads.
 */
export async function slowReader(
  port: number,
  path: string,
  transport: "websocket" | "sse",
  bytesPerSecond: number,
): Promise<SlowReader> {
  const chunks: Buffer[] = [];
  let received = 0;
  let ended = false;
  const started = performance.now();
  let answered: () => void = () => {};
  const firstBytes = new Promise<void>((resolve) => {
    answered = resolve;
  });
  let resumeTimer: ReturnType<typeof setTimeout> | undefined;
  const socket: Socket<undefined> = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(s, data) {
        if (bytesPerSecond === 0) {
          s.pause();
          return;
        }
        chunks.push(Buffer.from(data));
        received += data.length;
        answered();
        // Ahead of its rate: it stops reading until the rate allows what it has read so far.
        const dueMs = (received / bytesPerSecond) * 1000 - (performance.now() - started);
        if (dueMs > 0 && resumeTimer === undefined) {
          s.pause();
          resumeTimer = setTimeout(() => {
            resumeTimer = undefined;
            if (!ended) s.resume();
          }, dueMs);
        }
      },
      close() {
        ended = true;
      },
      error() {
        ended = true;
      },
    },
  });
  const headers = transport === "websocket" ? UPGRADE : "Accept: text/event-stream\r\n";
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n${headers}\r\n`);
  if (bytesPerSecond === 0) socket.pause();
  else await firstBytes;
  return {
    text: () => Buffer.concat(chunks).toString("latin1"),
    get received() {
      return received;
    },
    get ended() {
      return ended;
    },
    resume() {
      bytesPerSecond = Number.POSITIVE_INFINITY;
      socket.resume();
    },
    close() {
      clearTimeout(resumeTimer);
      socket.end();
    },
  };
}
