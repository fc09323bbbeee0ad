// What crosses Redis on pinghub's channels, read strictly. A node publishes the messages of one channel from one
// turn of its event loop as one JSON array: of strings, or with --history of [id, message] pairs (written by the
// script in redis-history.ts). Anything else on `prefix + channel` came from another program, or from a node
// started with another --history: it is dropped whole, never delivered in part, and the reason is given for the
// log. Every node reads a payload the same way, so every node drops the same ones.
//
// This runs once per batch on every node: the parsed array itself is handed on, checked, with no copy.

/** A stream id as the history script makes them: INCARNATION-SEQUENCE. */
const ID_PATTERN = /^\d{1,20}-\d{1,20}$/;
/** A UTF-16 code unit is at most 3 bytes of UTF-8: a message this short is under the limit without counting. */
const MAX_UTF8_BYTES_PER_UNIT = 3;

/** Why a payload was dropped. */
export interface Dropped {
  /** What was wrong, for the log: a short phrase, the same for every payload wrong in the same way. */
  reason: string;
  /** Set when the payload is a well-formed batch of the other --history: the cluster is misconfigured. */
  otherHistory: boolean;
}

/** A message and its id, as a node with --history publishes them. */
export type Pair = [id: string, message: string];

/** A batch of messages as a node publishes it without history (with history, the script writes it). */
export function encodeBatch(messages: string[]): string {
  return JSON.stringify(messages);
}

/** Reads a payload on a node without history: an array of messages, or why it is dropped. */
export function readMessages(payload: string, maxMessageBytes: number): string[] | Dropped {
  const batch = parseArray(payload);
  if (!Array.isArray(batch)) return batch;
  for (const item of batch as unknown[]) {
    if (typeof item !== "string") {
      return (batch as unknown[]).every(isPair)
        ? drop("messages with ids: a node runs with --history", true)
        : drop("an item is not a string");
    }
    const wrong = checkMessage(item, maxMessageBytes);
    if (wrong !== undefined) return wrong;
  }
  return batch as string[];
}

/** Reads a payload on a node with history: an array of [id, message] pairs, or why it is dropped. */
export function readPairs(payload: string, maxMessageBytes: number): Pair[] | Dropped {
  const batch = parseArray(payload);
  if (!Array.isArray(batch)) return batch;
  for (const item of batch as unknown[]) {
    if (!isPair(item)) {
      return (batch as unknown[]).every((m) => typeof m === "string")
        ? drop("messages without ids: a node runs without --history", true)
        : drop("an item is not an [id, message] pair");
    }
    const wrong = checkMessage(item[1], maxMessageBytes);
    if (wrong !== undefined) return wrong;
  }
  return batch as Pair[];
}

function parseArray(payload: string): unknown[] | Dropped {
  let batch: unknown;
  try {
    batch = JSON.parse(payload);
  } catch {
    return drop("not JSON");
  }
  if (!Array.isArray(batch)) return drop("not a JSON array");
  if (batch.length === 0) return drop("an empty array");
  return batch;
}

function checkMessage(text: string, maxMessageBytes: number): Dropped | undefined {
  if (text.length === 0) return drop("an empty message");
  if (text.length * MAX_UTF8_BYTES_PER_UNIT > maxMessageBytes && Buffer.byteLength(text) > maxMessageBytes) {
    return drop(`a message over --max-message-size (${maxMessageBytes} bytes)`);
  }
  // JSON may carry lone surrogates ("\ud800"), which no text a client sent can hold.
  if (!text.isWellFormed()) return drop("a message that is not valid Unicode");
  return undefined;
}

function isPair(item: unknown): item is Pair {
  return (
    Array.isArray(item) &&
    item.length === 2 &&
    typeof item[0] === "string" &&
    ID_PATTERN.test(item[0]) &&
    typeof item[1] === "string"
  );
}

const drop = (reason: string, otherHistory = false): Dropped => ({ reason, otherHistory });
