// Turning a request URL into a channel name. The name is the percent-decoded path: `/caf%C3%A9` and `/café`
// are one channel, the query string is not part of it, and case and a trailing slash matter.

/** Longest channel name, in Unicode code points, counting the leading slash. */
export const MAX_CHANNEL_LENGTH = 256;

/** A channel name, or the one-line reason the path cannot name a channel. */
export type ChannelResult = { channel: string; error?: undefined } | { channel?: undefined; error: string };

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The channel named by a request URL as Bun gives it (`http://host/path?query`). Bun has already
 * percent-encoded raw non-ASCII bytes of the request line, and replaced bytes that are not UTF-8 with U+FFFD,
 * so the path seen here is ASCII.
 */
export function channelFromUrl(url: string): ChannelResult {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  if (start < 0) return { channel: "/" };
  const query = url.indexOf("?", start);
  const path = query < 0 ? url.slice(start) : url.slice(start, query);
  // The common case, a plain ASCII path, needs no decoding: one scan and it is done.
  if (!path.includes("%")) {
    if (path.length > MAX_CHANNEL_LENGTH) return tooLong();
    return { channel: path };
  }
  return decodeChannel(path);
}

function decodeChannel(path: string): ChannelResult {
  const bytes = new Uint8Array(path.length);
  let n = 0;
  for (let i = 0; i < path.length; i++) {
    const c = path.charCodeAt(i);
    if (c !== 0x25) {
      bytes[n++] = c;
      continue;
    }
    const hi = hexValue(path.charCodeAt(i + 1));
    const lo = hexValue(path.charCodeAt(i + 2));
    if (hi < 0 || lo < 0) return { error: `bad channel path: "%" must be followed by two hex digits` };
    bytes[n++] = hi * 16 + lo;
    i += 2;
  }
  let channel: string;
  try {
    // The fatal decoder refuses every byte sequence that is not UTF-8, encoded surrogates and overlong forms too.
    channel = strictUtf8.decode(bytes.subarray(0, n));
  } catch {
    return notUtf8();
  }
  // Bun turns raw bytes that are not UTF-8 into U+FFFD before we see them, so the replacement character in a
  // name almost always means bytes that were not UTF-8; no real channel needs it.
  if (channel.includes("\uFFFD")) return notUtf8();
  // Code points, not UTF-16 units: a character outside the BMP counts once.
  let length = 0;
  for (const _ of channel) if (++length > MAX_CHANNEL_LENGTH) return tooLong();
  return { channel };
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  return -1;
}

function notUtf8(): ChannelResult {
  return { error: "bad channel path: not valid UTF-8" };
}

function tooLong(): ChannelResult {
  return { error: `bad channel path: longer than ${MAX_CHANNEL_LENGTH} characters` };
}
