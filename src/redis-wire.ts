// What crosses Redis on pinghub's channels, read strictly. A node publishes the messages of one channel from one
// turn of its event loop as one JSON array: of strings, or with --history of [id, message] pairs (written by the
// script in redis-history.ts). Anything else on `prefix + channel` came from another program, or from a node
// started with another --history: it is dropped whole, never delivered in part, and the reason is given for the
// log. Every node reads a payload the same way, so every node drops the same ones.

/** A stream id as the history script makes them: INCARNATION-SEQUENCE. */
const ID_PATTERN = /^\d{1,20}-\d{1,20}$/;
/** A UTF-16 code unit is at most 3 bytes of UTF-8: a message this short is under the limit without counting. */
const MAX_UTF8_BYTES_PER_UNIT = 3;

export type Decoded =
  | { ok: true; messages: string[]; ids: string[] | undefined }
  | {
      ok: false;
      /** What was wrong, for the log: a short phrase, the same for every payload wrong in the same way. */
      reason: string;
      /** Set when the payload is a well-formed batch of the other --history: the cluster is misconfigured. */
      otherHistory?: boolean;
    };

/** A batch of messages as a node publishes it without history (with history, the script writes it). */
export function encodeBatch(messages: string[]): string {
  return JSON.stringify(messages);
}

/** Reads a payload from a pinghub channel: exactly pinghub's shape for this node, or a reason to drop it. */
export function decodeBatch(payload: string, history: boolean, maxMessageBytes: number): Decoded {
  let batch: unknown;
  try {
    batch = JSON.parse(payload);
  } catch {
    return { ok: false, reason: "not JSON" };
  }
  if (!Array.isArray(batch)) return { ok: false, reason: "not a JSON array" };
  if (batch.length === 0) return { ok: false, reason: "an empty array" };
  const messages: string[] = new Array(batch.length);
  const ids: string[] | undefined = history ? new Array(batch.length) : undefined;
  for (let i = 0; i < batch.length; i++) {
    const item: unknown = batch[i];
    let message: unknown = item;
    if (ids !== undefined) {
      if (!isPair(item)) {
        return typeof item === "string" && batch.every((m) => typeof m === "string")
          ? { ok: false, reason: "messages without ids: a node runs without --history", otherHistory: true }
          : { ok: false, reason: "an item is not an [id, message] pair" };
      }
      ids[i] = item[0];
      message = item[1];
    } else if (typeof item !== "string") {
      return batch.every(isPair)
        ? { ok: false, reason: "messages with ids: a node runs with --history", otherHistory: true }
        : { ok: false, reason: "an item is not a string" };
    }
    const text = message as string;
    if (text.length === 0) return { ok: false, reason: "an empty message" };
    if (text.length * MAX_UTF8_BYTES_PER_UNIT > maxMessageBytes && Buffer.byteLength(text) > maxMessageBytes) {
      return { ok: false, reason: `a message over --max-message-size (${maxMessageBytes} bytes)` };
    }
    // JSON may carry lone surrogates ("\ud800"), which no text a client sent can hold.
    if (!text.isWellFormed()) return { ok: false, reason: "a message that is not valid Unicode" };
    messages[i] = text;
  }
  return { ok: true, messages, ids };
}

function isPair(item: unknown): item is [string, string] {
  return (
    Array.isArray(item) &&
    item.length === 2 &&
    typeof item[0] === "string" &&
    ID_PATTERN.test(item[0]) &&
    typeof item[1] === "string"
  );
}
