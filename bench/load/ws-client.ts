// A websocket client on a raw TCP socket, made to cost the load generator as little per message as possible.
// The load generator has one core for a thousand subscribers and more; Bun's own WebSocket builds an event
// object and a string for every message, which would make the client, not the server, the limit long before
// the server is busy. Here a chunk of bytes from the socket is walked once: each frame's header is read, the
// first bytes of a text message (its sequence number and time stamp) are handed over in place, and the rest
// of its payload is skipped, across chunks if need be.
//
// Only what the benchmark needs: text messages in, text messages out (masked with a zero key, which leaves
// the payload as it is: the key is the client's to choose), pongs to pings, and the closing handshake.

import type { Socket, SocketHandler } from "bun";
import { HEADER_BYTES } from "./message.ts";

export interface ConnectionHandlers {
  /**
   * A text message arrived. Its payload starts at `bytes[at]` and is `length` bytes long, of which at least
   * min(length, HEADER_BYTES) are present in `bytes`. `now` is performance.now() when the chunk holding it
   * arrived: one clock reading per chunk, not per message.
   */
  text(conn: WsConnection, bytes: Uint8Array, at: number, length: number, now: number): void;
  /** The connection ended, from either side. */
  closed?(conn: WsConnection): void;
}

const OPCODE_TEXT = 0x1;
const OPCODE_CLOSE = 0x8;
const OPCODE_PING = 0x9;
const CRLFCRLF = "\r\n\r\n";
/** How long a connection may take from the TCP connect to the server's 101. */
const HANDSHAKE_TIMEOUT_MS = 15_000;

export class WsConnection {
  socket: Socket<WsConnection> | undefined;
  isOpen = false;
  isClosed = false;
  /** The server's answer to the upgrade, while it is incomplete. */
  private head = "";
  /** The start of a frame whose header (and message numbers) the last chunk cut in two. */
  private stash: Uint8Array | undefined;
  /** Payload bytes of the current frame still to come in later chunks, not needed. */
  private skip = 0;
  /** Bytes that socket.write did not take yet, sent on drain, in order. */
  private readonly unsent: Uint8Array[] = [];
  private settle: ((error?: Error) => void) | undefined;

  constructor(
    /** Index among all the connections of a load: which subscriber this is. */
    readonly index: number,
    /** Index of the channel it subscribes to. */
    readonly channel: number,
    private readonly path: string,
    private readonly handlers: ConnectionHandlers,
  ) {}

  /** Sends one frame, as built by textFrame. `frame` may be reused by the caller as soon as this returns. */
  send(frame: Uint8Array): void {
    const socket = this.socket;
    if (socket === undefined || this.isClosed) return;
    if (this.unsent.length > 0) {
      this.unsent.push(frame.slice());
      return;
    }
    const written = socket.write(frame);
    // slice copies: the caller reuses `frame`.
    if (written < frame.length) this.unsent.push(frame.slice(Math.max(written, 0)));
  }

  /** Closes the TCP connection without a closing handshake, as a client that goes away does. */
  close(): void {
    if (!this.isClosed) this.socket?.end();
  }

  // The socket's events, called by SOCKET_HANDLERS below.

  onOpen(socket: Socket<WsConnection>): void {
    this.socket = socket;
    // A publisher writes small frames one after another; Nagle's algorithm would hold each back until the
    // previous one is acknowledged, and the delay would be the client's, not the server's.
    socket.setNoDelay(true);
    socket.write(
      `GET ${this.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
  }

  onData(chunk: Uint8Array): void {
    if (this.isOpen) {
      this.onFrames(chunk);
      return;
    }
    const text = this.head + Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString("latin1");
    const end = text.indexOf(CRLFCRLF);
    if (end < 0) {
      this.head = text;
      return;
    }
    const used = end + CRLFCRLF.length - this.head.length;
    this.head = "";
    if (!text.startsWith("HTTP/1.1 101")) {
      this.finishHandshake(new Error(`upgrade refused: ${text.slice(0, text.indexOf("\r\n"))}`));
      this.socket?.end();
      return;
    }
    this.isOpen = true;
    this.finishHandshake();
    // A message published right after the subscription may share the chunk with the 101.
    if (used < chunk.length) this.onFrames(chunk.subarray(used));
  }

  onDrain(): void {
    const socket = this.socket;
    while (socket !== undefined && this.unsent.length > 0) {
      const head = this.unsent[0] as Uint8Array;
      const written = socket.write(head);
      if (written >= head.length) {
        this.unsent.shift();
        continue;
      }
      this.unsent[0] = head.subarray(Math.max(written, 0));
      return;
    }
  }

  onClosed(error?: Error): void {
    if (this.isClosed) return;
    this.isClosed = true;
    this.finishHandshake(error ?? new Error("connection closed during the handshake"));
    this.handlers.closed?.(this);
  }

  /** Resolves once the server has answered 101, rejects if it refuses, closes or is too slow. */
  handshake(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => this.finishHandshake(new Error("handshake timed out")), HANDSHAKE_TIMEOUT_MS);
      this.settle = (error) => {
        clearTimeout(timer);
        if (error === undefined) resolve();
        else reject(error);
      };
    });
  }

  private finishHandshake(error?: Error): void {
    const settle = this.settle;
    this.settle = undefined;
    settle?.(error);
  }

  /** Walks the frames in a chunk; the hot path of the whole load generator. */
  private onFrames(chunk: Uint8Array): void {
    let bytes = chunk;
    let i = 0;
    if (this.skip > 0) {
      if (this.skip >= bytes.length) {
        this.skip -= bytes.length;
        return;
      }
      i = this.skip;
      this.skip = 0;
    }
    if (this.stash !== undefined) {
      bytes = Buffer.concat([this.stash, bytes.subarray(i)]);
      i = 0;
      this.stash = undefined;
    }
    const end = bytes.length;
    const now = performance.now();
    while (i < end) {
      if (end - i < 2) break;
      const opcode = (bytes[i] as number) & 0x0f;
      let length = (bytes[i + 1] as number) & 0x7f;
      let at = i + 2;
      if (length === 126) {
        if (end - i < 4) break;
        length = ((bytes[i + 2] as number) << 8) | (bytes[i + 3] as number);
        at = i + 4;
      } else if (length === 127) {
        if (end - i < 10) break;
        // Messages here are at most 64 KiB: the high four bytes of the 64-bit length are zero.
        length =
          (bytes[i + 6] as number) * 2 ** 24 +
          (((bytes[i + 7] as number) << 16) | ((bytes[i + 8] as number) << 8) | (bytes[i + 9] as number));
        at = i + 10;
      }
      // A text message is handled once its numbers are here; a control frame once it is whole (at most 125 B).
      const needed = opcode === OPCODE_TEXT ? Math.min(length, HEADER_BYTES) : length;
      if (end - at < needed) break;
      if (opcode === OPCODE_TEXT) this.handlers.text(this, bytes, at, length, now);
      else if (opcode === OPCODE_PING) this.pong(bytes.subarray(at, at + length));
      else if (opcode === OPCODE_CLOSE) {
        this.socket?.end();
        return;
      }
      if (at + length > end) {
        this.skip = at + length - end;
        return;
      }
      i = at + length;
    }
    // Copied: the chunk's memory is not ours to keep.
    if (i < end) this.stash = bytes.slice(i);
  }

  private pong(payload: Uint8Array): void {
    const frame = new Uint8Array(6 + payload.length);
    frame[0] = 0x8a;
    frame[1] = 0x80 | payload.length;
    frame.set(payload, 6);
    this.send(frame);
  }
}

/** One set of handlers for every socket: each finds its connection in socket.data. */
const SOCKET_HANDLERS: SocketHandler<WsConnection> = {
  // Plain Uint8Arrays: Bun then need not make a Buffer of each chunk.
  binaryType: "uint8array",
  open: (socket: Socket<WsConnection>) => socket.data.onOpen(socket),
  data: (socket: Socket<WsConnection>, chunk: Uint8Array) => socket.data.onData(chunk),
  drain: (socket: Socket<WsConnection>) => socket.data.onDrain(),
  end: (socket: Socket<WsConnection>) => {
    socket.end();
  },
  close: (socket: Socket<WsConnection>, error?: Error) => socket.data.onClosed(error),
  error: (socket: Socket<WsConnection>, error: Error) => socket.data.onClosed(error),
  connectError: (socket: Socket<WsConnection>, error: Error) => socket.data.onClosed(error),
};

/**
 * A text frame for a message of `size` bytes, masked with a zero key; the message goes at `frame[at]`.
 * Client frames must be masked, and with a zero key masking changes no byte, so a frame is built once and
 * only its numbers are rewritten for each message.
 */
export function textFrame(size: number): { frame: Uint8Array; at: number } {
  const lengthBytes = size < 126 ? 0 : size < 65536 ? 2 : 8;
  const at = 2 + lengthBytes + 4;
  const frame = new Uint8Array(at + size);
  frame[0] = 0x81; // FIN, text
  if (lengthBytes === 0) frame[1] = 0x80 | size;
  else if (lengthBytes === 2) {
    frame[1] = 0x80 | 126;
    frame[2] = size >> 8;
    frame[3] = size & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    new DataView(frame.buffer).setBigUint64(2, BigInt(size));
  }
  return { frame, at };
}

export interface ConnectOptions {
  port: number;
  count: number;
  /** The request path of connection `i`: its channel. */
  path(i: number): string;
  /** The channel index of connection `i`, kept on the connection for the handlers. */
  channel(i: number): number;
  handlers: ConnectionHandlers;
  /**
   * Handshakes under way at once. Opening ten thousand at once overflows the listen queue (its length is
   * Bun's choice, not ours), and a dropped SYN waits a second to be sent again: the connect time would then
   * measure the kernel's retry timer, not the server.
   */
  concurrency?: number;
}

/** Opens `count` websockets to 127.0.0.1 and resolves when every one is subscribed; throws if any fails. */
export async function connectAll(options: ConnectOptions): Promise<WsConnection[]> {
  const conns = Array.from(
    { length: options.count },
    (_, i) => new WsConnection(i, options.channel(i), options.path(i), options.handlers),
  );
  let next = 0;
  const worker = async () => {
    while (next < conns.length) {
      const conn = conns[next++] as WsConnection;
      const handshake = conn.handshake();
      // A failed connect reaches connectError, which fails the handshake: that is the one error to await.
      Bun.connect({ hostname: "127.0.0.1", port: options.port, data: conn, socket: SOCKET_HANDLERS }).catch(() => {});
      await handshake;
    }
  };
  const workers = Array.from({ length: Math.min(options.concurrency ?? 256, conns.length) }, worker);
  try {
    await Promise.all(workers);
  } catch (error) {
    closeAll(conns);
    throw error;
  }
  return conns;
}

/** Ends every connection still open and waits, briefly, for them to be gone. */
export async function closeAll(conns: readonly WsConnection[]): Promise<void> {
  for (const conn of conns) conn.close();
  const deadline = Date.now() + 5_000;
  while (conns.some((c) => !c.isClosed && c.socket !== undefined) && Date.now() < deadline) await Bun.sleep(10);
}

/**
 * Opens a few websockets on channels of their own, and closes them: the server's first connections pay for
 * code compiled and buffers allocated once, which a memory baseline taken after this does not count against
 * every connection.
 */
export async function warmUp(port: number, connections = 64, query = ""): Promise<void> {
  const conns = await connectAll({
    port,
    count: connections,
    path: (i) => `/bench/warm-up/${i}${query}`,
    channel: (i) => i,
    handlers: { text() {} },
  });
  await closeAll(conns);
  await Bun.sleep(200);
}
