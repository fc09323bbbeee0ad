// Path cases of the fuzzer (see fuzz.ts): random Unicode channel names of every length, raw or percent-encoded,
// valid or broken in one way, and what pinghub must make of them.

import {
  type CaseContext,
  codePoint,
  count,
  describeClose,
  NOT_UTF8,
  type RefusalExpectation,
  type Rng,
  TRUNCATED_UTF8,
  within,
} from "./fuzz-core.ts";
import { RawHttp } from "./fuzz-http.ts";
import { RawWebSocket } from "./raw-websocket.ts";

// ---------------------------------------------------------------------------------------------------------
// Paths

export interface PathCase {
  description: string;
  /** The request-target, byte for byte. */
  target: Buffer;
  /** The channel it names, when it is valid. */
  channel?: string;
  /** The one-line reason pinghub gives a path it refuses. */
  reason?: string;
}

export const MAX_CHANNEL = 256;
const REASON_PERCENT = 'bad channel path: "%" must be followed by two hex digits';
const REASON_UTF8 = "bad channel path: not valid UTF-8";
const REASON_LONG = `bad channel path: longer than ${MAX_CHANNEL} characters`;

/** ASCII characters that may stand raw in a request-target and mean themselves once the path is decoded. */
const RAW_ASCII = /^[A-Za-z0-9\-._~!$&'()*+,;=:@"<>^`{|}[\]]$/;

const percent = (rng: Rng, bytes: Uint8Array) =>
  [...bytes].map((b) => {
    const h = b.toString(16).padStart(2, "0");
    return `%${rng.chance(0.5) ? h.toUpperCase() : h}`;
  });

/** One code point of a channel name as it may appear in a request-target: raw, raw UTF-8 or percent-encoded. */
function encodePoint(rng: Rng, ch: string): string[] {
  const bytes = Buffer.from(ch);
  if (ch === "/") return [rng.chance(0.8) ? "/" : rng.pick(["%2F", "%2f"])];
  if (bytes.length === 1 && RAW_ASCII.test(ch) && rng.chance(0.8)) return [ch];
  if (bytes.length > 1 && rng.chance(0.5)) return [bytes.toString("latin1")];
  return [percent(rng, bytes).join("")];
}

function isDotSegment(segment: string): boolean {
  return /^(\.|%2e){1,2}$/i.test(segment);
}

/** A random channel path of 0 to 300 characters after the slash, valid or broken in one way. */
export function buildPathCase(rng: Rng): PathCase {
  for (;;) {
    const length = rng.chance(0.3) ? rng.int(MAX_CHANNEL - 6, MAX_CHANNEL + 4) : rng.int(0, 300);
    const points: string[] = [];
    while (points.length < length) {
      const roll = rng.next();
      const cp =
        roll < 0.1 ? 0x2f : roll < 0.17 ? rng.pick([0x25, 0x3f, 0x23, 0x5c, 0x20, 0x2e, 0x2e, 0x7f]) : codePoint(rng);
      if (cp === 0xfffd) continue;
      points.push(String.fromCodePoint(cp));
    }
    const channel = `/${points.join("")}`;
    const encoded = ["/", ...points.flatMap((p) => encodePoint(rng, p))];
    // A case is broken in at most one way, besides being too long; the reason pinghub gives follows its checks:
    // a bad "%" first, then bytes that are not UTF-8, then the length.
    const breakage = rng.weighted([
      [6, "none"],
      [1, "percent"],
      [1, "utf8"],
      [1, "raw"],
      [0.5, "fffd"],
    ] as const);
    const at = rng.int(1, encoded.length);
    let reason: string | undefined;
    if (breakage === "percent") {
      encoded.splice(
        at,
        0,
        rng.pick(["%", "%G", "%g1", "%1", "%-1", "%%", "%1z", "%/"]) + (at === encoded.length ? "" : "z"),
      );
      reason = REASON_PERCENT;
    } else if (breakage === "utf8") {
      encoded.splice(at, 0, percent(rng, Uint8Array.from(rng.pick([...NOT_UTF8, ...TRUNCATED_UTF8]))).join(""));
      reason = REASON_UTF8;
    } else if (breakage === "raw") {
      encoded.splice(
        at,
        0,
        Buffer.from(
          rng.pick([[0xff], [0x80], [0xc3, 0x28], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]),
        ).toString("latin1"),
      );
      reason = REASON_UTF8;
    } else if (breakage === "fffd") {
      encoded.splice(at, 0, rng.chance(0.5) ? "\u00ef\u00bf\u00bd" : "%EF%BF%BD");
      reason = REASON_UTF8;
    } else if (length + 1 > MAX_CHANNEL) reason = REASON_LONG;
    let path = encoded.join("");
    // URL parsing removes dot segments before pinghub sees the path: a name cannot contain them.
    if (path.split("/").some(isDotSegment)) continue;
    if (rng.chance(0.3))
      path += `?${Array.from({ length: rng.int(0, 30) }, () => rng.pick([..."abc=&%ZZ%zz/?.é", "%"])).join("")}`;
    const target = Buffer.from(path, "latin1");
    const shown = `${JSON.stringify(path.slice(0, 60))}${path.length > 60 ? "…" : ""} (${length + 1} characters)`;
    return reason === undefined
      ? { description: `valid path ${shown}`, target, channel }
      : { description: `${breakage === "none" ? "too long" : breakage} path ${shown}`, target, reason };
  }
}

/** The simplest request-target for a channel: every character after the first slash percent-encoded as needed. */
export function canonicalTarget(channel: string): string {
  return `/${encodeURIComponent(channel.slice(1))}`;
}

/** Runs one path case by websocket upgrade, GET, HEAD or POST; returns what went wrong, or undefined. */
export async function runPathCase(rng: Rng, c: PathCase, ctx: CaseContext, base: string): Promise<string | undefined> {
  const how = rng.weighted([
    [5, "upgrade"],
    [2, "GET"],
    [1, "HEAD"],
    [2, "POST"],
  ] as const);
  const token = `path-token-${rng.int(0, 2 ** 31)}`;
  if (how === "upgrade") {
    const ws = await RawWebSocket.connect({ port: ctx.port }, c.target);
    try {
      count(ctx, `upgrade ${ws.status}`);
      if (c.channel === undefined) return ws.status === 400 ? undefined : `upgrade answered ${ws.status}, expected 400`;
      if (ws.status !== 101) return `upgrade answered ${ws.head.split("\r\n")[0]}, expected 101`;
      // The same channel under its plainest name: the message must reach this subscriber.
      const response = await fetch(`${base}${canonicalTarget(c.channel)}`, { method: "POST", body: token });
      const subscribers = Number(response.headers.get("x-pinghub-subscribers"));
      if (response.status !== 200 || !(subscribers >= 1))
        return `POST to the canonical name: ${response.status}, ${subscribers} subscribers`;
      if (!(await within(ws, () => ws.texts().includes(token) || ws.closed, ctx.timeoutMs)))
        return "the message to the canonical name never arrived";
      if (!ws.texts().includes(token))
        return `closed before the message to the canonical name arrived: ${describeClose(ws)}`;
      return undefined;
    } finally {
      if (!ws.closed) rng.chance(0.5) ? ws.destroy() : ws.end();
    }
  }
  const body = how === "POST" ? token : "";
  const head = Buffer.concat([
    Buffer.from(`${how} `),
    c.target,
    Buffer.from(` HTTP/1.1\r\nHost: x\r\n${how === "POST" ? `Content-Length: ${body.length}\r\n` : ""}\r\n${body}`),
  ]);
  const http = await RawHttp.open(ctx.port, [how]);
  try {
    http.write(head);
    if (!(await http.until(() => http.responses.length > 0 || http.closed, ctx.timeoutMs)))
      return `no answer to ${how} within ${ctx.timeoutMs} ms`;
    const r = http.responses[0];
    if (r === undefined) return `${how} closed without an answer`;
    count(ctx, `HTTP ${r.status}`);
    if (c.channel === undefined) {
      if (r.status !== 400) return `${how} answered ${r.status}, expected 400`;
      const text = r.body.toString();
      if (how !== "HEAD" && text !== `${c.reason}\n`)
        return `${how} 400 said ${JSON.stringify(text)}, expected ${JSON.stringify(c.reason)}`;
      return undefined;
    }
    if (r.status !== 200)
      return `${how} answered ${r.status} ${JSON.stringify(r.body.toString().slice(0, 80))}, expected 200`;
    if (how === "POST" && r.body.toString() !== "OK\n") return `POST said ${JSON.stringify(r.body.toString())}`;
    if (how === "GET") {
      // The page is the page of a plain channel with this one's name in its place, HTML-escaped: no markup from
      // the path is ever reflected, and nothing else changes.
      const problem = checkPage(r.body.toString(), await pageParts(base), c.channel);
      if (problem !== undefined) return problem;
    }
    return undefined;
  } finally {
    if (!http.closed) http.end();
  }
}

/** The refusals a path case adds: one bad_path for a refused one. */
export function pathRefusals(c: PathCase): RefusalExpectation {
  return { exact: c.channel === undefined ? { bad_path: 1 } : {} };
}

const PROBE = "/fuzz-page-probe";
const probed = new Map<string, Promise<string[]>>();

/** The channel page cut where a channel's name goes, learnt once from the page of a plain channel. */
function pageParts(base: string): Promise<string[]> {
  let parts = probed.get(base);
  if (parts === undefined) {
    parts = fetch(`${base}${PROBE}`).then(async (r) => (await r.text()).split(PROBE));
    probed.set(base, parts);
  }
  return parts;
}

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'" };

/** Where the plain page has its name, this one has `channel` escaped: no raw markup, and decoding gives it back. */
function checkPage(page: string, parts: string[], channel: string): string | undefined {
  let at = 0;
  for (const [i, part] of parts.entries()) {
    if (!page.startsWith(part, at)) return `the page differs from the plain one around character ${at}`;
    at += part.length;
    if (i === parts.length - 1) return at === page.length ? undefined : "the page is longer than the plain one";
    const next = parts[i + 1] ?? "";
    const end = next === "" ? page.length : page.indexOf(next, at);
    if (end < 0) return "the page differs from the plain one after the channel name";
    const inserted = page.slice(at, end);
    if (/[<>"']|&(?!(?:amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);)/i.test(inserted)) {
      return `the page shows the channel unescaped: ${JSON.stringify(inserted.slice(0, 80))}`;
    }
    const decoded = inserted.replace(/&(amp|lt|gt|quot|apos|#\d+|#x[0-9a-f]+);/gi, (_, e: string) =>
      e.startsWith("#x") || e.startsWith("#X")
        ? String.fromCodePoint(Number.parseInt(e.slice(2), 16))
        : e.startsWith("#")
          ? String.fromCodePoint(Number(e.slice(1)))
          : (ENTITIES[e.toLowerCase()] ?? ""),
    );
    if (decoded !== channel) return `the page names another channel: ${JSON.stringify(decoded.slice(0, 80))}`;
    at = end;
  }
  return undefined;
}
