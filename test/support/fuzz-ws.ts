// Websocket cases of the fuzzer (see fuzz.ts): a raw client, a valid prefix that must come back whole, then
// something hostile that must get the close code RFC 6455 or pinghub defines, with nothing of it published.

import {
  type CaseContext,
  count,
  describeClose,
  hex,
  NOT_UTF8,
  type RefusalExpectation,
  type Rng,
  randomText,
  type Tally,
  TRUNCATED_UTF8,
  within,
  writeAll,
} from "./fuzz-core.ts";
import { type Frame, type FrameOptions, OPCODE, RawWebSocket } from "./raw-websocket.ts";

// ---------------------------------------------------------------------------------------------------------
// Websocket cases

type WsExpect =
  /** The server closes with one of these codes; nothing sent from the hostile part on is published. */
  | { kind: "close"; codes: number[] }
  /** Valid after all: these messages come back (the sender is a subscriber), a pong per ping, then it closes. */
  | { kind: "echo"; texts: string[]; pongs: Buffer[]; close: "clean" | "vanish" }
  /** What happens depends on what the bytes mean; the client leaves, and only liveness is checked. */
  | { kind: "open" };

export interface WsCase {
  description: string;
  /** The valid prefix: frames, what comes back. */
  prefix: Buffer;
  prefixTexts: string[];
  prefixPongs: Buffer[];
  /** The rest, hostile or not, and how the server must take it. */
  tail: Buffer;
  expect: WsExpect;
  refusals: RefusalExpectation;
  /** How the client leaves when the server does not close: a clean end (FIN) or a reset. */
  leave: "end" | "destroy";
}

/** Codes a client may send in a close frame: RFC 6455 section 7.4 plus the IANA registry, and 3000-4999. */
export function validCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}
const INVALID_CLOSE_CODES = [0, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 9999, 65535];
const VALID_CLOSE_CODES = [
  1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999,
];
const RESERVED_OPCODES = [3, 4, 5, 6, 7, 0xb, 0xc, 0xd, 0xe, 0xf];

class FrameWriter {
  constructor(private readonly rng: Rng) {}

  /** A client frame with a random mask key (sometimes zero) and, now and then, a non-minimal length. */
  frame(opcode: number, payload: Uint8Array | string, options: FrameOptions = {}): Buffer {
    const rng = this.rng;
    const data = typeof payload === "string" ? Buffer.from(payload) : Buffer.from(payload);
    const maskKey = rng.chance(0.1) ? Buffer.alloc(4) : rng.bytes(4);
    let lengthBytes = options.lengthBytes;
    // A longer length field than needed, for data frames only: RFC 6455 asks for the shortest, and Bun reads
    // any; a control frame's length must fit in 7 bits, which is another rule.
    const data_ = opcode === OPCODE.text || opcode === OPCODE.continuation || opcode === OPCODE.binary;
    if (data_ && lengthBytes === undefined && options.declaredLength === undefined && rng.chance(0.1)) {
      lengthBytes = data.length < 65536 && rng.chance(0.5) ? 2 : 8;
    }
    return RawWebSocket.encodeFrame(opcode, data, { maskKey, ...options, lengthBytes });
  }

  /** A control frame the server must accept: a ping (answered by a pong with its payload) or an unsolicited pong. */
  control(pongs: Buffer[]): Buffer {
    const payload = this.rng.bytes(this.rng.pick([0, 1, 4, 16, 125, this.rng.int(0, 125)]));
    if (this.rng.chance(0.3)) return this.frame(OPCODE.pong, payload);
    pongs.push(payload);
    return this.frame(OPCODE.ping, payload);
  }

  /** A valid text message in 1 to 6 fragments cut at random byte offsets, control frames in between. */
  message(text: string, pongs: Buffer[], maxFragments = 6): Buffer {
    const rng = this.rng;
    const bytes = Buffer.from(text);
    const cuts = Array.from({ length: rng.int(0, maxFragments - 1) }, () => rng.int(0, bytes.length)).sort(
      (a, b) => a - b,
    );
    const pieces: Buffer[] = [];
    let start = 0;
    for (const cut of [...cuts, bytes.length]) {
      pieces.push(bytes.subarray(start, cut));
      start = cut;
    }
    const out: Buffer[] = [];
    pieces.forEach((piece, i) => {
      if (i > 0 && rng.chance(0.3)) out.push(this.control(pongs));
      out.push(this.frame(i === 0 ? OPCODE.text : OPCODE.continuation, piece, { fin: i === pieces.length - 1 }));
    });
    if (rng.chance(0.1)) out.push(this.control(pongs));
    return Buffer.concat(out);
  }

  /** The first fragment of a text message that is never finished. */
  openFragment(): Buffer {
    return this.frame(OPCODE.text, "partial-", { fin: false });
  }
}

interface WsCategory {
  name: string;
  weight: number;
  /** How many fixed variants the category has; the classic run goes through each. */
  variants: number;
  build(rng: Rng, w: FrameWriter, variant: number, max: number): Omit<WsCase, "prefix" | "prefixTexts" | "prefixPongs">;
}

const AFTER = "must-not-be-published";
const protocolError = (description: string, tail: Buffer, codes = [1002], refusals: Partial<Tally> = {}) => ({
  description,
  tail,
  expect: { kind: "close", codes } as WsExpect,
  refusals: { exact: refusals },
  leave: "end" as const,
});

/** Optionally opens a fragmented message first and appends a valid frame after: neither may be published. */
function wrap(rng: Rng, w: FrameWriter, hostile: Buffer, allowOpenFragment = true): Buffer {
  const parts: Buffer[] = [];
  if (allowOpenFragment && rng.chance(0.3)) parts.push(w.openFragment());
  parts.push(hostile);
  if (rng.chance(0.6)) parts.push(w.frame(OPCODE.text, AFTER));
  return Buffer.concat(parts);
}

const WS_CATEGORIES: WsCategory[] = [
  {
    name: "reserved opcode",
    weight: 8,
    variants: RESERVED_OPCODES.length,
    build(rng, w, v) {
      const op = RESERVED_OPCODES[v] ?? 3;
      const payload = rng.bytes(rng.int(0, 40));
      return protocolError(
        `reserved opcode 0x${op.toString(16)}`,
        wrap(rng, w, w.frame(op, payload, { fin: rng.chance(0.8) })),
      );
    },
  },
  {
    name: "reserved bits",
    weight: 6,
    variants: 7 * 4,
    build(rng, w, v) {
      const rsv = (v % 7) + 1;
      const op = [OPCODE.text, OPCODE.ping, OPCODE.close, OPCODE.binary][Math.floor(v / 7)] ?? OPCODE.text;
      const payload = op === OPCODE.close ? Buffer.from([0x03, 0xe8]) : Buffer.from("rsv");
      return protocolError(`RSV bits ${rsv} on opcode ${op}`, wrap(rng, w, w.frame(op, payload, { rsv })));
    },
  },
  {
    name: "unmasked",
    weight: 6,
    variants: 5,
    build(rng, w, v) {
      const op = [OPCODE.text, OPCODE.binary, OPCODE.ping, OPCODE.pong, OPCODE.close][v] ?? OPCODE.text;
      const payload = op === OPCODE.close ? Buffer.from([0x03, 0xe8]) : Buffer.from("unmasked");
      return protocolError(`unmasked client frame, opcode ${op}`, wrap(rng, w, w.frame(op, payload, { mask: false })));
    },
  },
  {
    name: "control over 125 bytes",
    weight: 5,
    variants: 6,
    build(rng, w, v) {
      const op = [OPCODE.ping, OPCODE.pong, OPCODE.close][v % 3] ?? OPCODE.ping;
      const size = v < 3 ? 126 : rng.int(127, 2000);
      const payload =
        op === OPCODE.close
          ? Buffer.concat([Buffer.from([0x03, 0xe8]), Buffer.alloc(size - 2, 0x61)])
          : rng.bytes(size);
      return protocolError(`control frame ${op} of ${size} bytes`, wrap(rng, w, w.frame(op, payload)));
    },
  },
  {
    name: "fragmented control",
    weight: 4,
    variants: 3,
    build(rng, w, v) {
      const op = [OPCODE.ping, OPCODE.pong, OPCODE.close][v] ?? OPCODE.ping;
      const payload = op === OPCODE.close ? Buffer.from([0x03, 0xe8]) : Buffer.from("frag");
      return protocolError(`control frame ${op} without FIN`, wrap(rng, w, w.frame(op, payload, { fin: false })));
    },
  },
  {
    name: "close with an invalid code",
    weight: 6,
    variants: INVALID_CLOSE_CODES.length + 1,
    build(rng, w, v) {
      const code = INVALID_CLOSE_CODES[v];
      if (code === undefined) {
        return protocolError(
          "close frame with a 1-byte payload",
          wrap(rng, w, w.frame(OPCODE.close, Buffer.from([0x03]))),
        );
      }
      const payload = Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(rng.chance(0.5) ? "bye" : "")]);
      return protocolError(`close with invalid code ${code}`, wrap(rng, w, w.frame(OPCODE.close, payload)));
    },
  },
  {
    name: "close with a reason that is not UTF-8",
    weight: 3,
    variants: NOT_UTF8.length,
    build(rng, w, v) {
      const bad = NOT_UTF8[v] ?? [0xff];
      const payload = Buffer.from([0x03, 0xe8, 0x68, 0x69, ...bad]);
      return protocolError(
        `close 1000 with reason bytes ${hex(Buffer.from(bad))}`,
        wrap(rng, w, w.frame(OPCODE.close, payload)),
        [1007],
        {
          not_utf8: 1,
        },
      );
    },
  },
  {
    name: "close with a valid code",
    weight: 6,
    variants: VALID_CLOSE_CODES.length + 1,
    build(rng, w, v) {
      const code = VALID_CLOSE_CODES[v];
      if (code === undefined) {
        return {
          description: "close without a code",
          tail: Buffer.concat([w.frame(OPCODE.close, ""), w.frame(OPCODE.text, AFTER)]),
          expect: { kind: "close", codes: [1005] },
          refusals: { exact: {} },
          leave: "end",
        };
      }
      const reason = Buffer.from(randomText(rng, 0, 30)).subarray(0, 123);
      // Cut on a character boundary, so the reason stays UTF-8.
      const text = Buffer.from(reason.toString().replace(/\uFFFD+$/, ""));
      const parts = [w.frame(OPCODE.close, Buffer.concat([Buffer.from([code >> 8, code & 0xff]), text]))];
      if (rng.chance(0.5)) parts.push(w.frame(OPCODE.text, AFTER));
      return {
        description: `close with valid code ${code}`,
        tail: Buffer.concat(parts),
        expect: { kind: "close", codes: [code] },
        refusals: { exact: {} },
        leave: "end",
      };
    },
  },
  {
    name: "close in the middle of a fragmented message",
    weight: 3,
    variants: 1,
    build(_rng, w) {
      const tail = Buffer.concat([
        w.openFragment(),
        w.frame(OPCODE.close, Buffer.from([0x0f, 0xa0])),
        w.frame(OPCODE.continuation, "end"),
      ]);
      return {
        description: "close 4000 between two fragments of a message",
        tail,
        expect: { kind: "close", codes: [4000] },
        refusals: { exact: {} },
        leave: "end",
      };
    },
  },
  {
    name: "binary",
    weight: 6,
    variants: 3,
    build(rng, w, v, max) {
      const size = [0, rng.int(1, 100), max][v] ?? 1;
      const payload = rng.bytes(size);
      const fragmented = v === 1 && rng.chance(0.5);
      const hostile = fragmented
        ? Buffer.concat([
            w.frame(OPCODE.binary, payload.subarray(0, 1), { fin: false }),
            w.frame(OPCODE.ping, "between"),
            w.frame(OPCODE.continuation, payload.subarray(1)),
          ])
        : w.frame(OPCODE.binary, payload);
      return protocolError(
        `${fragmented ? "fragmented " : ""}binary message of ${size} bytes`,
        wrap(rng, w, hostile, false),
        [1003],
        { binary: 1 },
      );
    },
  },
  {
    name: "text that is not UTF-8",
    weight: 6,
    variants: NOT_UTF8.length + TRUNCATED_UTF8.length,
    build(rng, w, v) {
      const bad = NOT_UTF8[v] ?? TRUNCATED_UTF8[v - NOT_UTF8.length] ?? [0xff];
      const truncated = v >= NOT_UTF8.length;
      const before = Buffer.from(randomText(rng, 0, 10));
      const bytes = truncated
        ? Buffer.concat([before, Buffer.from(bad)])
        : Buffer.concat([before, Buffer.from(bad), Buffer.from("ok")]);
      let hostile: Buffer;
      if (rng.chance(0.5) && bytes.length > 1) {
        const cut = rng.int(1, bytes.length - 1);
        hostile = Buffer.concat([
          w.frame(OPCODE.text, bytes.subarray(0, cut), { fin: false }),
          w.frame(OPCODE.continuation, bytes.subarray(cut)),
        ]);
      } else hostile = w.frame(OPCODE.text, bytes);
      return protocolError(
        `text with ${truncated ? "truncated" : "invalid"} UTF-8 ${hex(Buffer.from(bad))}`,
        wrap(rng, w, hostile, false),
        [1007],
        {
          not_utf8: 1,
        },
      );
    },
  },
  {
    name: "too large",
    weight: 7,
    variants: 9,
    build(rng, w, v, max) {
      const claims: Array<[bigint, 2 | 8]> = [
        [BigInt(max + 1), max + 1 < 65536 ? 2 : 8],
        [65535n, 2],
        [65536n, 8],
        [2n ** 32n, 8],
        [2n ** 63n, 8],
        [2n ** 64n - 1n, 8],
      ];
      const claim = claims[v];
      if (claim !== undefined) {
        const [length, lengthBytes] = claim;
        const hostile = w.frame(OPCODE.text, "x".repeat(rng.int(0, 20)), { declaredLength: length, lengthBytes });
        return protocolError(
          `text declaring ${length} bytes`,
          wrap(rng, w, hostile, false),
          length >= 2n ** 63n ? [1009, 1002] : [1009],
          {
            too_large: 1,
          },
        );
      }
      if (v === 6) {
        return protocolError(
          `text of ${max + 1} bytes`,
          wrap(rng, w, w.frame(OPCODE.text, "y".repeat(max + 1)), false),
          [1009],
          { too_large: 1 },
        );
      }
      // Fragments each within the limit that add up to more than it.
      const half = Math.ceil((max + 1) / 2);
      const hostile = Buffer.concat([
        w.frame(OPCODE.text, "a".repeat(half), { fin: false }),
        w.frame(OPCODE.continuation, "b".repeat(max + 1 - half), { fin: v === 7 }),
        ...(v === 7 ? [] : [w.frame(OPCODE.continuation, "c")]),
      ]);
      return protocolError(`${max + 1} bytes in fragments`, wrap(rng, w, hostile, false), [1009], { too_large: 1 });
    },
  },
  {
    name: "continuation without a start",
    weight: 4,
    variants: 2,
    build(rng, w, v) {
      return protocolError(
        `continuation frame, FIN ${v}, outside a message`,
        wrap(rng, w, w.frame(OPCODE.continuation, "lost", { fin: v === 1 }), false),
      );
    },
  },
  {
    name: "new message inside a fragmented one",
    weight: 4,
    variants: 2,
    build(rng, w, v) {
      const op = v === 0 ? OPCODE.text : OPCODE.binary;
      const hostile = Buffer.concat([w.openFragment(), w.frame(op, "again")]);
      return protocolError(`opcode ${op} while a text message is open`, wrap(rng, w, hostile, false));
    },
  },
  {
    name: "valid but unusual",
    weight: 10,
    variants: 6,
    build(rng, w, v, max) {
      const pongs: Buffer[] = [];
      const texts: string[] = [];
      const parts: Buffer[] = [];
      const add = (text: string, maxFragments = 6) => {
        texts.push(text);
        parts.push(w.message(text, pongs, maxFragments));
      };
      let description: string;
      if (v === 0) {
        description = "a message of exactly the largest size";
        add(`${"z".repeat(max - 3)}é!`);
      } else if (v === 1) {
        description = "one message in 1-byte fragments with pings between";
        const text = randomText(rng, 5, 20);
        const bytes = Buffer.from(text);
        texts.push(text);
        for (let i = 0; i < bytes.length; i++) {
          if (rng.chance(0.5)) parts.push(w.control(pongs));
          parts.push(
            w.frame(i === 0 ? OPCODE.text : OPCODE.continuation, bytes.subarray(i, i + 1), {
              fin: i === bytes.length - 1,
            }),
          );
        }
      } else if (v === 2) {
        description = "empty fragments and an empty message (a keepalive)";
        texts.push("", "ab");
        parts.push(
          w.frame(OPCODE.text, ""),
          w.frame(OPCODE.text, "", { fin: false }),
          w.frame(OPCODE.continuation, "", { fin: false }),
          w.frame(OPCODE.continuation, "ab", { fin: false }),
          w.frame(OPCODE.continuation, ""),
        );
      } else if (v === 3) {
        description = "a ping flood";
        for (let i = rng.int(50, 300); i > 0; i--) parts.push(w.control(pongs));
        add(randomText(rng, 1, 10));
      } else if (v === 4) {
        description = "lengths in 16 and 64 bits for short payloads";
        const text = randomText(rng, 1, 20);
        texts.push(text);
        parts.push(w.frame(OPCODE.text, text, { lengthBytes: rng.chance(0.5) ? 2 : 8 }));
      } else {
        description = "several random messages";
        for (let i = rng.int(1, 8); i > 0; i--) add(rng.chance(0.15) ? "" : randomText(rng, 1, 60));
      }
      const close = rng.chance(0.6) ? "clean" : "vanish";
      return {
        description,
        tail: Buffer.concat(parts),
        expect: { kind: "echo", texts, pongs, close },
        refusals: { exact: {} },
        leave: rng.chance(0.5) ? "end" : "destroy",
      };
    },
  },
  {
    name: "lying length",
    weight: 8,
    variants: 6,
    build(rng, w, v, max) {
      // A length that claims less than what follows (the rest is read as frames: anything may happen), or more
      // (the server waits for bytes that never come, until the client leaves).
      const claimed = [0, 125, 126, 127, rng.int(1, max), rng.int(0, 10)][v] ?? 0;
      const lengthBytes: 0 | 2 | 8 = claimed < 126 ? 0 : claimed < 65536 ? 2 : 8;
      const actual =
        v === 5
          ? claimed + rng.int(1, 200)
          : rng.chance(0.5)
            ? claimed + rng.int(1, 50)
            : Math.max(0, claimed - rng.int(1, 50));
      const payload = Buffer.from("q".repeat(actual));
      const tail = Buffer.concat([
        w.frame(OPCODE.text, payload, { declaredLength: BigInt(claimed), lengthBytes }),
        w.frame(OPCODE.text, AFTER),
      ]);
      return {
        description: `length ${claimed} for ${actual} bytes`,
        tail,
        expect: { kind: "open" },
        refusals: { exact: {}, any: 1 },
        leave: rng.chance(0.5) ? "end" : "destroy",
      };
    },
  },
  {
    name: "garbage",
    weight: 6,
    variants: 3,
    build(rng, w, v) {
      const garbage =
        [rng.bytes(rng.int(1, 64)), Buffer.from("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Buffer.alloc(rng.int(1, 32))][
          v
        ] ?? Buffer.alloc(1);
      const tail = rng.chance(0.3) ? Buffer.concat([w.openFragment(), garbage]) : garbage;
      return {
        description: `garbage ${hex(garbage, 32)}`,
        tail,
        expect: { kind: "open" },
        refusals: { exact: {}, any: 1 },
        leave: rng.chance(0.5) ? "end" : "destroy",
      };
    },
  },
  {
    name: "vanish",
    weight: 4,
    variants: 3,
    build(rng, w, v) {
      const frame = w.frame(OPCODE.text, randomText(rng, 10, 40));
      const tail =
        [Buffer.alloc(0), frame.subarray(0, rng.int(1, frame.length - 1)), w.openFragment()][v] ?? Buffer.alloc(0);
      return {
        description:
          ["vanish between frames", "vanish in the middle of a frame", "vanish in the middle of a message"][v] ??
          "vanish",
        tail,
        expect: { kind: "open" },
        refusals: { exact: {} },
        leave: rng.chance(0.5) ? "end" : "destroy",
      };
    },
  },
];

/** A websocket case: a valid prefix, then one of the categories (a given variant, or a random one). */
export function buildWsCase(rng: Rng, max: number, pick?: { category: number; variant: number }): WsCase {
  const w = new FrameWriter(rng);
  const prefixPongs: Buffer[] = [];
  const prefixTexts: string[] = [];
  const parts: Buffer[] = [];
  for (let i = rng.int(0, 3); i > 0; i--) {
    const text = rng.chance(0.1) ? "" : randomText(rng, 1, rng.chance(0.1) ? 400 : 30);
    if (Buffer.byteLength(text) > max) continue;
    prefixTexts.push(text);
    parts.push(w.message(text, prefixPongs));
  }
  const category =
    pick === undefined ? rng.weighted(WS_CATEGORIES.map((c) => [c.weight, c] as const)) : WS_CATEGORIES[pick.category];
  if (category === undefined) throw new Error(`no websocket category ${pick?.category}`);
  const variant = pick?.variant ?? rng.int(0, category.variants - 1);
  const rest = category.build(rng, w, variant, max);
  return {
    ...rest,
    description: `${category.name}: ${rest.description}`,
    prefix: Buffer.concat(parts),
    prefixTexts,
    prefixPongs,
  };
}

/** Every variant of every websocket category once: the classic cases, each rule at least once. */
export function classicWsCases(): Array<{ category: number; variant: number }> {
  return WS_CATEGORIES.flatMap((c, category) =>
    Array.from({ length: c.variants }, (_, variant) => ({ category, variant })),
  );
}

const texts = (frames: Frame[]) => frames.filter((f) => f.opcode === OPCODE.text).map((f) => f.payload.toString());
const pongPayloads = (frames: Frame[]) => frames.filter((f) => f.opcode === OPCODE.pong).map((f) => f.payload);
const sameBuffers = (a: Buffer[], b: Buffer[]) =>
  a.length === b.length && a.every((x, i) => x.equals(b[i] ?? Buffer.alloc(0)));

/** Runs one websocket case on channel `path`; returns what went wrong, or undefined. */
export async function runWsCase(rng: Rng, c: WsCase, path: string, ctx: CaseContext): Promise<string | undefined> {
  const ws = await RawWebSocket.connect({ port: ctx.port }, path);
  try {
    if (ws.status !== 101) return `upgrade answered ${ws.head.split("\r\n")[0]}`;
    await writeAll(rng, ws, c.prefix, 3);
    const prefixBack = () =>
      texts(ws.frames).length >= c.prefixTexts.length && pongPayloads(ws.frames).length >= c.prefixPongs.length;
    if (!(await within(ws, () => prefixBack() || ws.closed, ctx.timeoutMs)))
      return `the valid prefix did not come back within ${ctx.timeoutMs} ms`;
    if (!prefixBack()) return `closed during the valid prefix: ${describeClose(ws)}`;
    if (!equalTexts(texts(ws.frames), c.prefixTexts))
      return `prefix came back as ${JSON.stringify(texts(ws.frames)).slice(0, 300)}`;
    if (!sameBuffers(pongPayloads(ws.frames), c.prefixPongs)) return "pongs to the prefix's pings differ";

    await writeAll(rng, ws, c.tail, 2);
    const expect = c.expect;
    if (expect.kind === "close") {
      const gotClose = () => ws.frames.some((f) => f.opcode === OPCODE.close);
      const published = () => texts(ws.frames).length > c.prefixTexts.length;
      if (!(await within(ws, () => gotClose() || ws.closed || published(), ctx.timeoutMs)))
        return `no close within ${ctx.timeoutMs} ms`;
      if (published()) {
        return `published from the hostile part: ${JSON.stringify(texts(ws.frames).slice(c.prefixTexts.length)).slice(0, 200)}`;
      }
      const close = ws.frames.find((f) => f.opcode === OPCODE.close);
      if (close === undefined) return "the connection ended without a close frame";
      const code = close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005;
      count(ctx, `close ${code}`);
      if (!expect.codes.includes(code))
        return `closed with ${code} ${JSON.stringify(close.payload.subarray(2).toString())}, expected ${expect.codes.join(" or ")}`;
      // Answer the close, as a client should, then the server must let go of the connection.
      if (!ws.closed) ws.sendFrame(OPCODE.close, close.payload.subarray(0, 2));
      if (!(await within(ws, () => ws.closed, ctx.timeoutMs)))
        return "the server sent a close but kept the connection open";
      const after = texts(ws.frames);
      if (!equalTexts(after, c.prefixTexts))
        return `published after the hostile frame: ${JSON.stringify(after.slice(c.prefixTexts.length)).slice(0, 200)}`;
      return undefined;
    }
    if (expect.kind === "echo") {
      const all = [...c.prefixTexts, ...expect.texts];
      const allPongs = [...c.prefixPongs, ...expect.pongs];
      const back = () => texts(ws.frames).length >= all.length && pongPayloads(ws.frames).length >= allPongs.length;
      if (!(await within(ws, () => back() || ws.closed, ctx.timeoutMs)))
        return `messages did not come back within ${ctx.timeoutMs} ms`;
      if (!back()) return `closed before its messages came back: ${describeClose(ws)}`;
      if (!equalTexts(texts(ws.frames), all))
        return `came back as ${JSON.stringify(texts(ws.frames).slice(c.prefixTexts.length)).slice(0, 300)}`;
      if (!sameBuffers(pongPayloads(ws.frames), allPongs)) return "pongs differ from the pings' payloads";
      if (ws.frames.some((f) => f.opcode === OPCODE.close)) return `closed a valid connection: ${describeClose(ws)}`;
      if (expect.close === "clean") {
        const code = rng.pick(VALID_CLOSE_CODES);
        ws.sendFrame(OPCODE.close, Buffer.from([code >> 8, code & 0xff]), { maskKey: rng.bytes(4) });
        if (!(await within(ws, () => ws.closed, ctx.timeoutMs))) return "no end after a clean close";
        const close = ws.frames.find((f) => f.opcode === OPCODE.close);
        const echoed = close !== undefined && close.payload.length >= 2 ? close.payload.readUInt16BE(0) : undefined;
        if (echoed !== code) return `clean close ${code} answered with ${echoed}`;
      }
      return undefined;
    }
    // An outcome nobody can predict; the only rule is that nothing from before is lost and the server lives.
    return undefined;
  } finally {
    if (!ws.closed) {
      if (c.leave === "destroy") ws.destroy();
      else ws.end();
    }
  }
}

function equalTexts(a: string[], b: string[]): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}
