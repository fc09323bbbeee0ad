// A raw websocket client over a plain socket, for what a well-behaved client never sends: binary frames,
// text that is not UTF-8, reserved opcodes, lying lengths, and for a subscriber that stops reading.

import type { Socket } from "bun";

export const OPCODE = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

export interface Frame {
  fin: boolean;
  opcode: number;
  payload: Buffer;
}

export interface FrameOptions {
  fin?: boolean;
  /** The three reserved bits, as a number from 0 to 7. */
  rsv?: number;
  /** Client frames must be masked; false sends one unmasked. */
  mask?: boolean;
  /** A length to declare instead of the payload's own. */
  declaredLength?: bigint;
  /**
   * Bytes of extended length to write: 0 (the 7-bit field alone), 2 or 8. By default the shortest that holds
   * the length; a longer one is a non-minimal encoding, which RFC 6455 forbids and servers commonly accept.
   */
  lengthBytes?: 0 | 2 | 8;
  /** The masking key for a masked frame; 12 34 56 78 unless given. */
  maskKey?: Uint8Array;
}

export type RawTarget = { port: number; hostname?: string } | { unix: string };

export class RawWebSocket {
  /** Frames received after the handshake, in order. */
  readonly frames: Frame[] = [];
  /** The HTTP response head to the upgrade request. */
  head = "";
  /** Resolves when the server closes the TCP connection. */
  readonly ended: Promise<void>;
  private buffer = Buffer.alloc(0);
  private socket!: Socket<undefined>;
  private wake: () => void = () => {};
  private endedResolve!: () => void;
  private isEnded = false;

  private constructor() {
    this.ended = new Promise((resolve) => {
      this.endedResolve = resolve;
    });
  }

  /** Opens a socket and sends an upgrade for `path`, written to the request line byte for byte. */
  static async connect(
    target: RawTarget,
    path: string | Uint8Array,
    headers: Record<string, string> = {},
  ): Promise<RawWebSocket> {
    const client = new RawWebSocket();
    const handlers = {
      data: (_s: Socket<undefined>, data: Buffer) => client.onData(data),
      close: () => client.onEnd(),
      end: () => client.onEnd(),
      error: () => client.onEnd(),
    };
    client.socket =
      "unix" in target
        ? await Bun.connect({ unix: target.unix, socket: handlers })
        : await Bun.connect({ hostname: target.hostname ?? "127.0.0.1", port: target.port, socket: handlers });
    const extra = Object.entries(headers)
      .map(([k, v]) => `${k}: ${v}\r\n`)
      .join("");
    client.socket.write(
      Buffer.concat([
        Buffer.from("GET "),
        typeof path === "string" ? Buffer.from(path, "latin1") : Buffer.from(path),
        Buffer.from(
          " HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
            `Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n${extra}\r\n`,
        ),
      ]),
    );
    await client.until(() => client.head !== "" || client.isEnded);
    return client;
  }

  get status(): number {
    return Number(this.head.split(" ")[1]);
  }

  sendFrame(opcode: number, payload: string | Uint8Array, options: FrameOptions = {}): void {
    this.socket.write(RawWebSocket.encodeFrame(opcode, payload, options));
  }

  /** The bytes of one client frame, as sendFrame would write them, for a test that splits or mangles them. */
  static encodeFrame(opcode: number, payload: string | Uint8Array, options: FrameOptions = {}): Buffer {
    const data = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
    const length = options.declaredLength ?? BigInt(data.length);
    const mask = options.mask ?? true;
    const first = ((options.fin ?? true) ? 0x80 : 0) | ((options.rsv ?? 0) << 4) | opcode;
    const lengthBytes = options.lengthBytes ?? (length < 126n ? 0 : length < 65536n ? 2 : 8);
    let header: Buffer;
    if (lengthBytes === 0) header = Buffer.from([first, Number(length & 0x7fn)]);
    else if (lengthBytes === 2)
      header = Buffer.from([first, 126, Number((length >> 8n) & 0xffn), Number(length & 0xffn)]);
    else {
      header = Buffer.alloc(10);
      header[0] = first;
      header[1] = 127;
      header.writeBigUInt64BE(BigInt.asUintN(64, length), 2);
    }
    if (mask) header[1] = (header[1] ?? 0) | 0x80;
    const key = Buffer.from(options.maskKey ?? [0x12, 0x34, 0x56, 0x78]);
    const body = mask ? data.map((b, i) => b ^ (key[i % 4] ?? 0)) : data;
    return Buffer.concat(mask ? [header, key, body] : [header, body]);
  }

  sendText(text: string | Uint8Array): void {
    this.sendFrame(OPCODE.text, text);
  }

  /** Writes bytes as they are, frame or not. */
  write(bytes: Uint8Array | string): void {
    this.socket.write(bytes);
  }

  /** Stops reading: the kernel buffers fill and the server's queue for us grows. */
  pause(): void {
    this.socket.pause();
  }

  end(): void {
    this.socket.end();
  }

  /** Starts reading again after pause(). */
  resume(): void {
    this.socket.resume();
  }

  /** Drops the connection at once, without a close frame or a clean end: a client that vanished. */
  destroy(): void {
    this.socket.terminate();
  }

  /** True once the TCP connection has ended, from either side. */
  get closed(): boolean {
    return this.isEnded;
  }

  /** The close frame the server sent, once it has arrived. */
  async closeFrame(timeoutMs = 10_000): Promise<{ code: number; reason: string }> {
    await this.until(() => this.frames.some((f) => f.opcode === OPCODE.close) || this.isEnded, timeoutMs);
    const frame = this.frames.find((f) => f.opcode === OPCODE.close);
    if (frame === undefined) throw new Error("the connection ended without a close frame");
    return {
      code: frame.payload.length >= 2 ? frame.payload.readUInt16BE(0) : 1005,
      reason: frame.payload.subarray(2).toString(),
    };
  }

  /** Text messages received, in order. */
  texts(): string[] {
    return this.frames.filter((f) => f.opcode === OPCODE.text).map((f) => f.payload.toString());
  }

  async until(condition: () => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!condition()) {
      if (Date.now() > deadline) throw new Error("timed out waiting on a raw websocket");
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
    }
  }

  private onData(data: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, data]);
    if (this.head === "") {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      this.head = this.buffer.subarray(0, end).toString("latin1");
      this.buffer = this.buffer.subarray(end + 4);
      // A refused upgrade is an ordinary HTTP response: keep its body readable as the one "frame".
      if (this.status !== 101) {
        this.frames.push({ fin: true, opcode: -1, payload: this.buffer });
        this.buffer = Buffer.alloc(0);
      }
    }
    if (this.status === 101) this.parseFrames();
    this.wake();
  }

  private parseFrames(): void {
    for (;;) {
      const b = this.buffer;
      if (b.length < 2) return;
      let length = (b[1] ?? 0) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) return;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) return;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) return;
      this.frames.push({
        fin: ((b[0] ?? 0) & 0x80) !== 0,
        opcode: (b[0] ?? 0) & 0x0f,
        payload: b.subarray(offset, offset + length),
      });
      this.buffer = b.subarray(offset + length);
    }
  }

  private onEnd(): void {
    if (this.isEnded) return;
    this.isEnded = true;
    this.endedResolve();
    this.wake();
  }
}
