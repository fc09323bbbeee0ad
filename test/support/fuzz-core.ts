// What the fuzzer's kinds of case share: the seeded generator, random text, the refusals a case expects, and
// the plumbing of writing bytes in random pieces and waiting on a raw websocket. See fuzz.ts.

import type { RefusalReason } from "../../src/refusal.ts";
import { OPCODE, type RawWebSocket } from "./raw-websocket.ts";

// ---------------------------------------------------------------------------------------------------------
// Seeds and the generator

/** mulberry32, as in test/random.test.ts: small, fast, the same sequence everywhere for a given seed. */
export class Rng {
  private a: number;

  constructor(seed: number) {
    this.a = seed >>> 0;
  }

  next(): number {
    this.a = (this.a + 0x6d2b79f5) >>> 0;
    let t = this.a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** A whole number from min to max, both included. */
  int(min: number, max: number): number {
    return min + Math.floor(this.next() * (max - min + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    const item = items[Math.floor(this.next() * items.length)];
    if (item === undefined) throw new Error("pick from an empty list");
    return item;
  }

  bytes(n: number): Buffer {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.next() * 256);
    return out;
  }

  /** One of `entries`, each as likely as its weight. */
  weighted<T>(entries: ReadonlyArray<readonly [number, T]>): T {
    const total = entries.reduce((sum, [w]) => sum + w, 0);
    let r = this.next() * total;
    for (const [w, value] of entries) {
      r -= w;
      if (r < 0) return value;
    }
    const last = entries.at(-1);
    if (last === undefined) throw new Error("weighted pick from an empty list");
    return last[1];
  }
}

/** The seed of one case, from the run's seed, its lane and its index in the lane. */
export function caseSeed(seed: number, lane: number, index: number): number {
  let h = seed >>> 0;
  for (const n of [lane + 1, index + 1]) {
    h = Math.imul(h ^ n, 0x9e3779b1) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** A seed from the environment or the command line, or a random one when none is given. */
export function parseSeed(value: string | undefined, what: string): number {
  if (value === undefined || value === "") return crypto.getRandomValues(new Uint32Array(1))[0] ?? 0;
  if (!/^\d+$/.test(value) || Number(value) > 0xffffffff) {
    throw new Error(`${what} must be a whole number from 0 to 4294967295, not "${value}"`);
  }
  return Number(value);
}

/** A Unicode scalar value: ASCII, the rest of the BMP or a supplementary plane; never a surrogate. */
export function codePoint(rng: Rng): number {
  const kind = rng.next();
  if (kind < 0.4) return rng.int(0x20, 0x7e);
  if (kind < 0.45) return rng.int(0, 0x1f);
  if (kind < 0.75) {
    const n = rng.int(0x80, 0xffff - 0x800);
    return n < 0xd800 ? n : n + 0x800;
  }
  return rng.int(0x10000, 0x10ffff);
}

export function randomText(rng: Rng, minCodePoints: number, maxCodePoints: number): string {
  const out: number[] = [];
  const n = rng.int(minCodePoints, maxCodePoints);
  while (out.length < n) out.push(codePoint(rng));
  return String.fromCodePoint(...out);
}

export const hex = (bytes: Uint8Array, max = 96) =>
  Buffer.from(bytes.subarray(0, max)).toString("hex") + (bytes.length > max ? `…(${bytes.length} bytes)` : "");

// ---------------------------------------------------------------------------------------------------------
// Refusals: what each case must add to pinghub_refused_total{reason}

export type Tally = Record<RefusalReason, number>;

export const emptyTally = (): Tally => ({
  bad_path: 0,
  bad_query: 0,
  bad_origin: 0,
  too_large: 0,
  not_utf8: 0,
  binary: 0,
  bad_upgrade: 0,
  redis_down: 0,
  unauthorized: 0,
  forbidden: 0,
  token_expired: 0,
  auth_unavailable: 0,
  websocket_publish_off: 0,
});

/** Exactly these refusals, or (for a case whose outcome depends on what random bytes happen to mean) up to `any` more. */
export interface RefusalExpectation {
  exact: Partial<Tally>;
  /** A case that may add at most this many refusals of any websocket reason (binary, not_utf8, too_large). */
  any?: number;
  /** Refusals a case may or may not add, on top of `exact`. */
  maybe?: Partial<Tally>;
}

// ---------------------------------------------------------------------------------------------------------
// Shared by the kinds of case

/** Splits bytes into random pieces, to be written one by one: frames must survive any segmentation. */
export function pieces(rng: Rng, bytes: Buffer): Buffer[] {
  if (bytes.length === 0) return [];
  const style = rng.next();
  if (style < 0.5) return [bytes];
  const out: Buffer[] = [];
  let at = 0;
  while (at < bytes.length) {
    const size = style < 0.6 ? 1 : rng.int(1, Math.max(1, Math.ceil(bytes.length / 3)));
    out.push(bytes.subarray(at, at + size));
    at += size;
  }
  return out;
}

export async function writeAll(
  rng: Rng,
  ws: { write(b: Uint8Array): void },
  bytes: Buffer,
  maxDripMs: number,
): Promise<void> {
  const drip = maxDripMs > 0 && rng.chance(0.1);
  for (const piece of pieces(rng, bytes)) {
    ws.write(piece);
    if (drip) await Bun.sleep(rng.int(0, maxDripMs));
  }
}

export interface CaseContext {
  port: number;
  maxMessageSize: number;
  timeoutMs: number;
  /** Status codes and close codes seen, for the report. */
  seen: Map<string, number>;
}

export const count = (ctx: CaseContext, key: string) => ctx.seen.set(key, (ctx.seen.get(key) ?? 0) + 1);

export function describeClose(ws: RawWebSocket): string {
  const close = ws.frames.find((f) => f.opcode === OPCODE.close);
  if (close === undefined) return "no close frame";
  return `close ${close.payload.length >= 2 ? close.payload.readUInt16BE(0) : 1005} ${close.payload.subarray(2).toString()}`;
}

export async function within(ws: RawWebSocket, condition: () => boolean, timeoutMs: number): Promise<boolean> {
  try {
    await ws.until(condition, timeoutMs);
    return true;
  } catch {
    return false;
  }
}

/** Byte sequences that are not UTF-8: a lone continuation, overlong forms, surrogates, beyond U+10FFFF, truncated. */
export const NOT_UTF8: number[][] = [
  [0x80],
  [0xbf],
  [0xc0, 0xaf],
  [0xc1, 0xbf],
  [0xe0, 0x80, 0xaf],
  [0xed, 0xa0, 0x80],
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf5, 0x80, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xfe],
  [0xff],
  [0xc3, 0x28],
  [0xe2, 0x82, 0x28],
];
export const TRUNCATED_UTF8: number[][] = [[0xc3], [0xe2, 0x82], [0xf0, 0x9f, 0x98]];
