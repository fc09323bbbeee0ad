// The event-stream format (the WHATWG HTML standard's Server-Sent Events): how a message becomes the bytes of
// one event. Built once per message, whatever the number of SSE subscribers it goes to.

const encoder = new TextEncoder();
/** Encodes text; the bytes are a plain ArrayBuffer's, as a Response body or a Blob part wants. */
const encode = (text: string): Uint8Array<ArrayBuffer> => encoder.encode(text) as Uint8Array<ArrayBuffer>;

/**
 * Carriage return, line feed, or both: each ends a line in an event stream, and none can be carried inside a
 * `data:` line. A message's lines become `data:` lines, and EventSource joins them with a line feed: so every
 * line break, CRLF and a lone CR included, arrives as one LF.
 */
const LINE_BREAK = /\r\n|\r|\n/;

/** One event: an `id:` line when the message has an id, then one `data:` line per line of the message. */
export function eventBytes(message: string, id: string | undefined): Uint8Array<ArrayBuffer> {
  const data = `data: ${message.split(LINE_BREAK).join("\ndata: ")}\n\n`;
  return encode(id === undefined ? data : `id: ${id}\n${data}`);
}

/** The event that tells a subscriber it missed messages: named, so `onmessage` never takes it for one. */
export const GAP_EVENT = "gap";

/**
 * The gap event; with a position, an `id:` block with no data after it (as in retryBytes), so that EventSource
 * resumes from where the stream rejoined.
 */
export function gapEventBytes(reason: string, position?: string): Uint8Array<ArrayBuffer> {
  const event = `event: ${GAP_EVENT}\ndata: ${reason}\n\n`;
  return encode(position === undefined ? event : `${event}id: ${position}\n\n`);
}

/** A comment line: ignored by clients, it keeps proxies from closing a quiet stream. */
export function commentBytes(text: string): Uint8Array<ArrayBuffer> {
  return encode(`: ${text.replace(/\r\n|\r|\n/g, " ")}\n\n`);
}

/**
 * How long EventSource waits before it reconnects, told once at the start of each stream; with a position, an
 * `id:` field in the same block, and no data: EventSource sets its lastEventId and dispatches no event.
 */
export function retryBytes(ms: number, position?: string): Uint8Array<ArrayBuffer> {
  return encode(position === undefined ? `retry: ${ms}\n\n` : `retry: ${ms}\nid: ${position}\n\n`);
}
