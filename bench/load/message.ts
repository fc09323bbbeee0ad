// The messages the load generator publishes: ASCII text, so that pinghub accepts them, with a sequence number
// and the send time at fixed places, then padding to the size under test:
//
//   "0000000042 000123456789 xxxxxxxx..."
//    sequence   sent at, µs on the load generator's performance.now() clock
//
// Fixed widths let the sender write the digits into a reused frame and the receiver read them from the bytes
// it was handed, without making a string of either.

const SEQ_DIGITS = 10;
const STAMP_DIGITS = 12;
const STAMP_AT = SEQ_DIGITS + 1;
/** Bytes at the start of every message that carry its numbers; the smallest message size. */
export const HEADER_BYTES = STAMP_AT + STAMP_DIGITS + 1;

const ZERO = 0x30;
const SPACE = 0x20;
const PAD = 0x78; // "x"

/** Fills `frame` from `at` on with a message of `size` bytes and zero numbers; write them in with writeNumbers. */
export function fillMessage(frame: Uint8Array, at: number, size: number): void {
  if (size < HEADER_BYTES) throw new Error(`messages must be at least ${HEADER_BYTES} bytes`);
  frame.fill(ZERO, at, at + HEADER_BYTES);
  frame[at + SEQ_DIGITS] = SPACE;
  frame[at + HEADER_BYTES - 1] = SPACE;
  frame.fill(PAD, at + HEADER_BYTES, at + size);
}

/** Writes a sequence number and a time stamp (whole µs) into a message filled by fillMessage. */
export function writeNumbers(frame: Uint8Array, at: number, seq: number, stampMicros: number): void {
  writeDigits(frame, at, SEQ_DIGITS, seq);
  writeDigits(frame, at + STAMP_AT, STAMP_DIGITS, stampMicros);
}

function writeDigits(bytes: Uint8Array, at: number, width: number, value: number): void {
  let v = value;
  for (let i = at + width - 1; i >= at; i--) {
    const digit = v % 10;
    bytes[i] = ZERO + digit;
    v = (v - digit) / 10;
  }
}

/** The sequence number of the message starting at `at`; the caller has checked HEADER_BYTES are there. */
export function readSeq(bytes: Uint8Array, at: number): number {
  return readDigits(bytes, at, SEQ_DIGITS);
}

/** The send time, in µs, of the message starting at `at`. */
export function readStamp(bytes: Uint8Array, at: number): number {
  return readDigits(bytes, at + STAMP_AT, STAMP_DIGITS);
}

function readDigits(bytes: Uint8Array, at: number, width: number): number {
  let v = 0;
  for (let i = at; i < at + width; i++) v = v * 10 + ((bytes[i] as number) - ZERO);
  return v;
}

/** Now, in whole µs, on the clock the stamps use; shared by every connection of the one load process. */
export function nowMicros(): number {
  return Math.round(performance.now() * 1000);
}
