// HTTP cases of the fuzzer (see fuzz.ts): raw bytes over TCP and what Bun or pinghub must answer, and the raw
// HTTP/1.1 client that reads the answers.

import type { Socket } from "bun";
import type { RefusalReason } from "../../src/refusal.ts";
import {
  type CaseContext,
  count,
  emptyTally,
  type RefusalExpectation,
  type Rng,
  randomText,
  type Tally,
  writeAll,
} from "./fuzz-core.ts";

// ---------------------------------------------------------------------------------------------------------
// Raw HTTP

export interface HttpResponse {
  status: number;
  /** Header names in lower case. */
  headers: Record<string, string>;
  body: Buffer;
}

/** One TCP connection speaking raw bytes, parsing what comes back as HTTP/1.1 responses. */
export class RawHttp {
  readonly responses: HttpResponse[] = [];
  /** Interim (1xx) responses. */
  readonly interim: number[] = [];
  closed = false;
  /** Bytes that could not be parsed as a response, when the server wrote something else. */
  garbage = false;
  private buffer = Buffer.alloc(0);
  private socket!: Socket<undefined>;
  private wake: () => void = () => {};

  /** @param methods the method of each request, in order, so that a HEAD answer is read without a body. */
  private constructor(private readonly methods: string[]) {}

  static async open(port: number, methods: string[] = []): Promise<RawHttp> {
    const http = new RawHttp(methods);
    const onEnd = () => {
      http.closed = true;
      http.parse(true);
      http.wake();
    };
    http.socket = await Bun.connect({
      hostname: "127.0.0.1",
      port,
      socket: {
        data: (_s, data: Buffer) => {
          http.buffer = Buffer.concat([http.buffer, data]);
          http.parse(false);
          http.wake();
        },
        close: onEnd,
        end: onEnd,
        error: onEnd,
      },
    });
    return http;
  }

  write(bytes: Uint8Array): void {
    if (!this.closed) this.socket.write(bytes);
  }

  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.terminate();
  }

  async until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return true;
  }

  private parse(atEnd: boolean): void {
    for (;;) {
      const headEnd = this.buffer.indexOf("\r\n\r\n");
      if (headEnd < 0) {
        if (atEnd && this.buffer.length > 0) this.garbage = true;
        return;
      }
      const lines = this.buffer.subarray(0, headEnd).toString("latin1").split("\r\n");
      const match = lines[0]?.match(/^HTTP\/1\.[01] (\d{3})/);
      if (!match) {
        this.garbage = true;
        this.buffer = Buffer.alloc(0);
        return;
      }
      const status = Number(match[1]);
      const headers: Record<string, string> = {};
      for (const line of lines.slice(1)) {
        const colon = line.indexOf(":");
        if (colon > 0) headers[line.slice(0, colon).toLowerCase()] = line.slice(colon + 1).trim();
      }
      const start = headEnd + 4;
      const method = this.methods[this.responses.length] ?? "GET";
      let length: number;
      if (method === "HEAD" || status < 200 || status === 204 || status === 304) length = 0;
      else if (headers["content-length"] !== undefined) length = Number(headers["content-length"]);
      else if (headers["transfer-encoding"]?.toLowerCase() === "chunked") {
        const decoded = decodeChunked(this.buffer.subarray(start));
        if (decoded === undefined) return;
        this.push(status, headers, decoded.body);
        this.buffer = this.buffer.subarray(start + decoded.used);
        continue;
      } else if (!atEnd) return;
      else length = this.buffer.length - start;
      if (this.buffer.length < start + length) return;
      this.push(status, headers, this.buffer.subarray(start, start + length));
      this.buffer = this.buffer.subarray(start + length);
    }
  }

  private push(status: number, headers: Record<string, string>, body: Buffer): void {
    if (status >= 100 && status < 200 && status !== 101) this.interim.push(status);
    else this.responses.push({ status, headers, body: Buffer.from(body) });
  }
}

function decodeChunked(bytes: Buffer): { body: Buffer; used: number } | undefined {
  const parts: Buffer[] = [];
  let at = 0;
  for (;;) {
    const lineEnd = bytes.indexOf("\r\n", at);
    if (lineEnd < 0) return undefined;
    const size = Number.parseInt(bytes.subarray(at, lineEnd).toString("latin1"), 16);
    at = lineEnd + 2;
    if (size === 0) {
      const end = bytes.indexOf("\r\n", at);
      return end < 0 ? undefined : { body: Buffer.concat(parts), used: end + 2 };
    }
    if (bytes.length < at + size + 2) return undefined;
    parts.push(bytes.subarray(at, at + size));
    at += size + 2;
  }
}

// ---------------------------------------------------------------------------------------------------------
// HTTP cases

type StatusCheck = (r: HttpResponse) => string | undefined;

type HttpExpect =
  /** These responses in order (each status one of a set), then the connection closed, open or either. */
  | {
      kind: "responses";
      statuses: number[][];
      after: "closed" | "open" | "any";
      checks?: Array<StatusCheck | undefined>;
    }
  /** Refused: one 4xx or 505 answer and the connection closed, or closed without an answer. */
  | { kind: "refused"; firstOk?: boolean }
  /** The client leaves before any answer is due; nothing to check but liveness. */
  | { kind: "dropped" };

export interface HttpCase {
  description: string;
  bytes: Buffer;
  methods: string[];
  expect: HttpExpect;
  refusals: RefusalExpectation;
  /** Milliseconds between pieces for a slow drip; 0 writes at once. */
  dripMs: number;
  /** How long a slowloris trickles bytes before giving up; 0 for an ordinary case. */
  slowlorisMs?: number;
  /** Bytes a slowloris writes at once before it starts trickling. */
  atOnce?: number;
  /** Leaves right after writing, with a FIN or a reset. */
  leave?: "end" | "destroy";
}

const CRLF = "\r\n";
const request = (line: string, headers: string[], body: Buffer | string = "") =>
  Buffer.concat([
    Buffer.from(`${line}${CRLF}${headers.map((h) => h + CRLF).join("")}${CRLF}`, "latin1"),
    Buffer.from(body),
  ]);

const REFUSED_STATUSES = [400, 405, 411, 413, 414, 417, 426, 431, 501, 505];
const okText: StatusCheck = (r) =>
  r.body.toString() === "OK\n" ? undefined : `body ${JSON.stringify(r.body.toString().slice(0, 80))}`;
const allowHeader: StatusCheck = (r) =>
  r.headers.allow === "GET, HEAD, POST" ? undefined : `Allow: ${r.headers.allow}`;
const html: StatusCheck = (r) =>
  r.headers["content-type"]?.startsWith("text/html") ? undefined : `Content-Type ${r.headers["content-type"]}`;

interface HttpCategory {
  name: string;
  weight: number;
  variants: number;
  build(rng: Rng, path: string, variant: number, max: number): Omit<HttpCase, "dripMs">;
}

const responses = (
  statuses: number[][],
  after: "closed" | "open" | "any" = "any",
  checks?: Array<StatusCheck | undefined>,
): HttpExpect => ({
  kind: "responses",
  statuses,
  after,
  checks,
});
const none = { exact: {} };

/** A valid request of some kind, for pipelining and slow drips. */
function validRequest(
  rng: Rng,
  path: string,
  max: number,
): { bytes: Buffer; method: string; status: number; check?: StatusCheck; refusals: Partial<Tally> } {
  const kind = rng.int(0, 5);
  const host = "Host: 127.0.0.1";
  if (kind === 0)
    return { bytes: request(`GET ${path} HTTP/1.1`, [host]), method: "GET", status: 200, check: html, refusals: {} };
  if (kind === 1) return { bytes: request(`HEAD ${path} HTTP/1.1`, [host]), method: "HEAD", status: 200, refusals: {} };
  if (kind === 2) {
    const body = Buffer.from(randomText(rng, 0, 40));
    return {
      bytes: request(`POST ${path} HTTP/1.1`, [host, `Content-Length: ${body.length}`], body),
      method: "POST",
      status: 200,
      check: okText,
      refusals: {},
    };
  }
  if (kind === 3) {
    const body = Buffer.from(randomText(rng, 1, 40));
    const cut = rng.int(0, body.length);
    const chunks = [body.subarray(0, cut), body.subarray(cut)].filter((c) => c.length > 0);
    const encoded = chunks
      .map((c) => `${c.length.toString(16)}${rng.chance(0.2) ? ";ext=1" : ""}\r\n${c.toString("latin1")}\r\n`)
      .join("");
    return {
      bytes: request(
        `POST ${path} HTTP/1.1`,
        [host, "Transfer-Encoding: chunked"],
        Buffer.from(`${encoded}0\r\n\r\n`, "latin1"),
      ),
      method: "POST",
      status: 200,
      check: okText,
      refusals: {},
    };
  }
  if (kind === 4) {
    return {
      bytes: request(`PUT ${path} HTTP/1.1`, [host, "Content-Length: 3"], "abc"),
      method: "PUT",
      status: 405,
      check: allowHeader,
      refusals: {},
    };
  }
  const body = Buffer.from("x".repeat(max + 1));
  return {
    bytes: request(`POST ${path} HTTP/1.1`, [host, `Content-Length: ${body.length}`], body),
    method: "POST",
    status: 413,
    refusals: { too_large: 1 },
  };
}

const HTTP_CATEGORIES: HttpCategory[] = [
  {
    name: "methods pinghub does not allow",
    weight: 5,
    variants: 9,
    build(_rng, path, v) {
      const method =
        ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND", "PURGE", "QUERY", "M-SEARCH"][v] ?? "PUT";
      return {
        description: `${method} ${path}`,
        bytes: request(`${method} ${path} HTTP/1.1`, ["Host: x"]),
        methods: [method],
        expect: responses([[405]], "open", [allowHeader]),
        refusals: none,
      };
    },
  },
  {
    name: "unknown and malformed methods",
    weight: 4,
    variants: 7,
    build(rng, path, v) {
      const method =
        ["FOO", "get", "G", "GETT", "X".repeat(rng.int(20, 300)), "GE T", "P\u00d6ST"][v] ??
        Array.from({ length: rng.int(1, 12) }, () => rng.pick([..."ABCXYZ!#$%&'*+-.^_`|~0123456789"])).join("");
      return {
        description: `method ${JSON.stringify(method.slice(0, 20))}`,
        bytes: request(`${method} ${path} HTTP/1.1`, ["Host: x"]),
        methods: ["GET"],
        expect: { kind: "refused" },
        refusals: none,
      };
    },
  },
  {
    name: "request targets",
    weight: 5,
    variants: 9,
    build(rng, path, v) {
      const host = rng.pick(["example.com", "127.0.0.1:1", "[::1]:8081", "evil.test", "u:p@h"]);
      const cases: Array<[string, string, HttpExpect, Partial<Tally>]> = [
        ["OPTIONS", "*", { kind: "refused" }, {}],
        ["GET", "*", { kind: "refused" }, {}],
        ["POST", "*", { kind: "refused" }, {}],
        ["GET", `http://${host}${path}`, responses([[200]], "open", [html]), {}],
        ["HEAD", `https://${host}${path}`, responses([[200]], "open"), {}],
        ["POST", `http://${host}${path}`, responses([[200]], "open", [okText]), {}],
        ["GET", "example.com:80", { kind: "refused" }, {}],
        ["GET", `foo://${host}${path}`, { kind: "refused" }, {}],
        ["GET", "", { kind: "refused" }, {}],
      ];
      const [method, target, expect] = cases[v] ?? ["GET", "*", { kind: "refused" }, {}];
      const body = method === "POST" ? "absolute" : "";
      const headers = method === "POST" ? ["Host: x", `Content-Length: ${body.length}`] : ["Host: x"];
      return {
        description: `${method} ${target}`,
        bytes: request(`${method} ${target} HTTP/1.1`, headers, body),
        methods: [method],
        expect,
        refusals: none,
      };
    },
  },
  {
    name: "Content-Length games",
    weight: 6,
    variants: 11,
    build(rng, path, v, max) {
      const post = (headers: string[], body: string | Buffer) =>
        request(`POST ${path} HTTP/1.1`, ["Host: x", ...headers], body);
      const table: Array<[string, Buffer, HttpExpect, RefusalExpectation]> = [
        [
          "two different Content-Lengths",
          post(["Content-Length: 3", "Content-Length: 5"], "abcde"),
          { kind: "refused" },
          none,
        ],
        [
          "two equal Content-Lengths",
          post(["Content-Length: 3", "Content-Length: 3"], "abc"),
          responses([[200]], "open", [okText]),
          none,
        ],
        ["negative Content-Length", post([`Content-Length: -${rng.int(1, 100)}`], "abc"), { kind: "refused" }, none],
        [
          "Content-Length that is not a number",
          post(
            [`Content-Length: ${rng.pick(["abc", "1e3", "+3", "0x10", "3,3", "", "3 3", "99999999999999999999999"])}`],
            "abc",
          ),
          { kind: "refused" },
          none,
        ],
        [
          "Content-Length and chunked",
          post(["Content-Length: 3", "Transfer-Encoding: chunked"], "3\r\nabc\r\n0\r\n\r\n"),
          { kind: "refused" },
          none,
        ],
        [
          "Content-Length over the limit",
          post([`Content-Length: ${max + 1}`], "x".repeat(max + 1)),
          responses([[413]], "any"),
          { exact: { too_large: 1 } },
        ],
        // Over 1 MiB, Bun's own maxRequestBodySize answers first, a bare 413 that pinghub never sees (see fuzz.test.ts).
        [
          "Content-Length far over the limit, no body",
          post([`Content-Length: ${2 ** 40}`], ""),
          responses([[413]], "any"),
          { exact: {}, maybe: { too_large: 1 } },
        ],
        // The body is shorter than announced and the client leaves: nothing may be published.
        [
          "body shorter than Content-Length, then gone",
          post(["Content-Length: 100"], "short"),
          { kind: "dropped" },
          { exact: {}, maybe: { not_utf8: 1 } },
        ],
        // The body is longer than announced: the rest is the next request, here garbage.
        [
          "body longer than Content-Length",
          post(["Content-Length: 2"], `ab${"\u0001".repeat(3)}\r\n\r\n`),
          { kind: "refused", firstOk: true },
          none,
        ],
        [
          "a body that is not UTF-8",
          post(["Content-Length: 2"], Buffer.from([0xc3, 0x28])),
          responses([[400]], "any"),
          { exact: { not_utf8: 1 } },
        ],
        [
          "GET with a body",
          request(`GET ${path} HTTP/1.1`, ["Host: x", "Content-Length: 3"], "abc"),
          responses([[200]], "open", [html]),
          none,
        ],
      ];
      const [description, bytes, expect, refusals] = table[v] ??
        table[0] ?? ["", Buffer.alloc(0), { kind: "dropped" }, none];
      return {
        description,
        bytes,
        methods: [description.startsWith("GET") ? "GET" : "POST"],
        expect,
        refusals,
        leave: expect.kind === "dropped" ? rng.pick(["end", "destroy"] as const) : undefined,
      };
    },
  },
  {
    name: "chunked bodies",
    weight: 6,
    variants: 11,
    build(rng, path, v, max) {
      const post = (body: string, te = "chunked") =>
        request(`POST ${path} HTTP/1.1`, ["Host: x", `Transfer-Encoding: ${te}`], Buffer.from(body, "latin1"));
      const table: Array<[string, Buffer, HttpExpect, RefusalExpectation]> = [
        [
          "chunk size not hex",
          post(`${rng.pick(["zz", "g", "-3", "0x3", " 3", "3 "])}\r\nabc\r\n0\r\n\r\n`),
          { kind: "refused" },
          none,
        ],
        ["chunk size overflowing", post("ffffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), { kind: "refused" }, none],
        ["chunk longer than its size", post("2\r\nabc\r\n0\r\n\r\n"), { kind: "refused" }, none],
        ["chunk without its CRLF", post("3\r\nabcXX0\r\n\r\n"), { kind: "refused" }, none],
        ["chunked, cut short, then gone", post("5\r\nab"), { kind: "dropped" }, none],
        ["chunked with extensions", post("3;a=b;c\r\nabc\r\n0\r\n\r\n"), responses([[200]], "open", [okText]), none],
        [
          "chunked over the limit",
          post(`${(max + 1).toString(16)}\r\n${"c".repeat(max + 1)}\r\n0\r\n\r\n`),
          responses([[413]], "any"),
          { exact: { too_large: 1 } },
        ],
        [
          "Transfer-Encoding other than chunked",
          post("abc", rng.pick(["gzip", "identity", "chunked, gzip", "x"])),
          { kind: "refused" },
          none,
        ],
        [
          "two Transfer-Encoding headers",
          request(
            `POST ${path} HTTP/1.1`,
            ["Host: x", "Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            "0\r\n\r\n",
          ),
          { kind: "refused" },
          none,
        ],
        [
          "chunked, mixed-case name and leading zeros",
          post("0003\r\nabc\r\n0\r\n\r\n", "Chunked"),
          responses([[200]], "open", [okText]),
          none,
        ],
        // Bun takes a trailer section for the next request: the message is published, then a 400.
        [
          "chunked with a trailer",
          post("3\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n"),
          responses([[200], REFUSED_STATUSES], "any", [okText]),
          none,
        ],
      ];
      const [description, bytes, expect, refusals] = table[v] ??
        table[0] ?? ["", Buffer.alloc(0), { kind: "dropped" }, none];
      // A broken chunked body may also arrive after pinghub started reading it: then the reader fails instead.
      return {
        description,
        bytes,
        methods: ["POST", "POST"],
        expect,
        refusals,
        leave: expect.kind === "dropped" ? rng.pick(["end", "destroy"] as const) : undefined,
      };
    },
  },
  {
    name: "huge headers",
    weight: 4,
    variants: 6,
    build(rng, path, v) {
      const table: Array<[string, string[], string, HttpExpect]> = [
        ["a 8 KB header", [`X-Big: ${"a".repeat(8000)}`], path, responses([[200]], "open")],
        ["a 20 KB header", [`X-Big: ${"a".repeat(20_000)}`], path, { kind: "refused" }],
        ["a 1 MB header", [`X-Big: ${"a".repeat(1_000_000)}`], path, { kind: "refused" }],
        ["50 headers", Array.from({ length: 50 }, (_, i) => `X-H${i}: ${i}`), path, responses([[200]], "open")],
        ["2000 headers", Array.from({ length: 2000 }, (_, i) => `X-H${i}: ${i}`), path, { kind: "refused" }],
        ["a 20 KB target", [], `${path}/${"t".repeat(20_000)}`, { kind: "refused" }],
      ];
      const [description, headers, target, expect] = table[v] ?? table[0] ?? ["", [], path, { kind: "dropped" }];
      void rng;
      return {
        description,
        bytes: request(`HEAD ${target} HTTP/1.1`, ["Host: x", ...headers]),
        methods: ["HEAD"],
        expect,
        refusals: none,
      };
    },
  },
  {
    name: "malformed heads",
    weight: 6,
    variants: 16,
    build(rng, path, v) {
      const raw = (s: string) => Buffer.from(s, "latin1");
      const table: Array<[string, Buffer]> = [
        ["header without a colon", request(`GET ${path} HTTP/1.1`, ["Host: x", "NoColon"])],
        ["space before the colon", request(`GET ${path} HTTP/1.1`, ["Host: x", "X-A : b"])],
        ["obsolete line folding", request(`GET ${path} HTTP/1.1`, ["Host: x", "X-A: b", " c"])],
        ["NUL in a header", request(`GET ${path} HTTP/1.1`, ["Host: x", "X-A: b\0c"])],
        ["bare LF line ends", raw(`GET ${path} HTTP/1.1\nHost: x\n\n`)],
        ["bare CR line ends", raw(`GET ${path} HTTP/1.1\rHost: x\r\r`)],
        ["no Host", request(`GET ${path} HTTP/1.1`, [])],
        ["HTTP/2.0", request(`GET ${path} HTTP/2.0`, ["Host: x"])],
        ["HTTP/0.9 request line", raw(`GET ${path}\r\n\r\n`)],
        ["HTTP/1.2", request(`GET ${path} HTTP/1.2`, ["Host: x"])],
        ["HTTP/2 preface", raw("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")],
        [
          "TLS ClientHello",
          Buffer.concat([
            Buffer.from([0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03]),
            rng.bytes(60),
            raw("\r\n\r\n"),
          ]),
        ],
        ["SSH banner", raw("SSH-2.0-OpenSSH_9.6\r\n\r\n")],
        ["random bytes", Buffer.concat([rng.bytes(rng.int(1, 200)), raw("\r\n\r\n")])],
        ["control character in the target", raw(`GET ${path}\u0001x HTTP/1.1\r\nHost: x\r\n\r\n`)],
        ["empty lines only", raw("\r\n\r\n\r\n\r\n")],
      ];
      const [description, bytes] = table[v] ?? table[0] ?? ["", Buffer.alloc(0)];
      return { description, bytes, methods: ["GET"], expect: { kind: "refused" }, refusals: none };
    },
  },
  {
    name: "upgrades that are not websocket handshakes",
    weight: 4,
    variants: 6,
    build(_rng, path, v) {
      const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==";
      const up = ["Upgrade: websocket", "Connection: Upgrade"];
      const table: Array<[string, Buffer, HttpExpect, RefusalExpectation]> = [
        [
          "no key",
          request(`GET ${path} HTTP/1.1`, ["Host: x", ...up, "Sec-WebSocket-Version: 13"]),
          responses([[400]], "any"),
          { exact: { bad_upgrade: 1 } },
        ],
        [
          "version 8",
          request(`GET ${path} HTTP/1.1`, ["Host: x", ...up, key, "Sec-WebSocket-Version: 8"]),
          responses([[400, 426]], "any"),
          { exact: { bad_upgrade: 1 } },
        ],
        [
          "no version",
          request(`GET ${path} HTTP/1.1`, ["Host: x", ...up, key]),
          responses([[400, 426]], "any"),
          { exact: { bad_upgrade: 1 } },
        ],
        [
          // A POST is no handshake: pinghub may refuse it as one (400) or take it for the POST it is and publish.
          "POST with an upgrade",
          request(`POST ${path} HTTP/1.1`, ["Host: x", ...up, key, "Sec-WebSocket-Version: 13", "Content-Length: 0"]),
          responses([[200, 400]], "any"),
          { exact: {}, maybe: { bad_upgrade: 1 } },
        ],
        [
          "bad key",
          request(`GET ${path} HTTP/1.1`, ["Host: x", ...up, "Sec-WebSocket-Key: x", "Sec-WebSocket-Version: 13"]),
          responses([[400]], "any"),
          { exact: { bad_upgrade: 1 } },
        ],
        [
          "Upgrade: h2c",
          request(`GET ${path} HTTP/1.1`, ["Host: x", "Upgrade: h2c", "Connection: Upgrade"]),
          responses([[200]], "open", [html]),
          { exact: {} },
        ],
      ];
      const [description, bytes, expect, refusals] = table[v] ??
        table[0] ?? ["", Buffer.alloc(0), { kind: "dropped" }, none];
      return { description, bytes, methods: [description.startsWith("POST") ? "POST" : "GET"], expect, refusals };
    },
  },
  {
    name: "pipelined valid requests",
    weight: 5,
    variants: 1,
    build(rng, path, _v, max) {
      const reqs = Array.from({ length: rng.int(2, 6) }, () => validRequest(rng, path, max));
      const refusals = emptyTally();
      for (const r of reqs) for (const [k, n] of Object.entries(r.refusals)) refusals[k as RefusalReason] += n;
      return {
        description: `${reqs.length} pipelined: ${reqs.map((r) => `${r.method}→${r.status}`).join(", ")}`,
        bytes: Buffer.concat(reqs.map((r) => r.bytes)),
        methods: reqs.map((r) => r.method),
        expect: responses(
          reqs.map((r) => [r.status]),
          "any",
          reqs.map((r) => r.check),
        ),
        refusals: { exact: refusals },
      };
    },
  },
  {
    name: "Expect: 100-continue",
    weight: 2,
    variants: 1,
    build(_rng, path) {
      return {
        description: "POST with Expect: 100-continue",
        bytes: request(`POST ${path} HTTP/1.1`, ["Host: x", "Content-Length: 4", "Expect: 100-continue"], "body"),
        methods: ["POST"],
        expect: responses([[200]], "open", [okText]),
        refusals: none,
      };
    },
  },
  {
    name: "dropped without a byte",
    weight: 5,
    variants: 3,
    build(rng, path, v) {
      const bytes =
        [Buffer.alloc(0), Buffer.from(`GET ${path}`), Buffer.from(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Le`)][
          v
        ] ?? Buffer.alloc(0);
      return {
        description:
          ["opened and dropped without a byte", "dropped in the request line", "dropped in the headers"][v] ??
          "dropped",
        bytes,
        methods: [],
        expect: { kind: "dropped" },
        refusals: none,
        leave: rng.pick(["end", "destroy"] as const),
      };
    },
  },
];

export function buildHttpCase(
  rng: Rng,
  path: string,
  max: number,
  pick?: { category: number; variant: number },
): HttpCase {
  const category =
    pick === undefined
      ? rng.weighted(HTTP_CATEGORIES.map((c) => [c.weight, c] as const))
      : HTTP_CATEGORIES[pick.category];
  if (category === undefined) throw new Error(`no HTTP category ${pick?.category}`);
  const variant = pick?.variant ?? rng.int(0, category.variants - 1);
  const built = category.build(rng, path, variant, max);
  // A slow drip, bounded: the same request in pieces, a few milliseconds apart; the answer must not change.
  const dripMs = built.expect.kind !== "dropped" && built.bytes.length < 4096 && rng.chance(0.15) ? rng.int(1, 15) : 0;
  return {
    ...built,
    description: `${category.name}: ${built.description}${dripMs ? ` (dripped, ${dripMs} ms)` : ""}`,
    dripMs,
  };
}

export function classicHttpCases(): Array<{ category: number; variant: number }> {
  return HTTP_CATEGORIES.flatMap((c, category) =>
    Array.from({ length: c.variants }, (_, variant) => ({ category, variant })),
  );
}

/**
 * A slowloris: a request head trickled a byte at a time, or a POST whose head comes at once and whose body
 * trickles; the server must close it within its own timeout (Bun's 10 s for a request).
 */
export function slowlorisCase(path: string, durationMs: number, body: boolean): HttpCase {
  const head = body
    ? request(`POST ${path} HTTP/1.1`, ["Host: x", "Content-Length: 1000"])
    : request(`GET ${path} HTTP/1.1`, ["Host: x", ...Array.from({ length: 200 }, (_, i) => `X-Slow-${i}: ${i}`)]);
  return {
    description: `slowloris: ${body ? "a body" : "a head"} trickled for up to ${durationMs} ms`,
    bytes: body ? Buffer.concat([head, Buffer.alloc(1000, 0x62)]) : head,
    methods: [body ? "POST" : "GET"],
    expect: { kind: "dropped" },
    refusals: none,
    dripMs: 250,
    slowlorisMs: durationMs,
    atOnce: body ? head.length : 0,
  };
}

/** Runs one HTTP case; returns what went wrong, or undefined. */
export async function runHttpCase(rng: Rng, c: HttpCase, ctx: CaseContext): Promise<string | undefined> {
  const http = await RawHttp.open(ctx.port, c.methods);
  try {
    if (c.slowlorisMs !== undefined) {
      const started = performance.now();
      const atOnce = c.atOnce ?? 0;
      if (atOnce > 0) http.write(c.bytes.subarray(0, atOnce));
      for (let i = atOnce; i < c.bytes.length && !http.closed && performance.now() - started < c.slowlorisMs; i++) {
        http.write(c.bytes.subarray(i, i + 1));
        await http.until(() => http.closed, c.dripMs);
      }
      const took = performance.now() - started;
      count(ctx, http.closed ? "slowloris closed by the server" : "slowloris outlived");
      return http.closed ? undefined : `a slowloris was still connected after ${Math.round(took)} ms`;
    }
    if (c.dripMs > 0) {
      // At most 20 pieces: a drip is bounded.
      const size = Math.max(1, Math.ceil(c.bytes.length / rng.int(2, 20)));
      for (let at = 0; at < c.bytes.length; at += size) {
        http.write(c.bytes.subarray(at, at + size));
        await Bun.sleep(c.dripMs);
      }
    } else if (c.bytes.length > 0) await writeAll(rng, http, c.bytes, 0);

    const expect = c.expect;
    if (expect.kind === "dropped") return undefined;
    if (expect.kind === "refused") {
      if (!(await http.until(() => http.closed, ctx.timeoutMs))) {
        return `not closed within ${ctx.timeoutMs} ms; answers: ${http.responses.map((r) => r.status).join(", ")}`;
      }
      const statuses = http.responses.map((r) => r.status);
      for (const s of statuses) count(ctx, `HTTP ${s}`);
      if (statuses.length === 0) count(ctx, "HTTP closed without an answer");
      const rest = expect.firstOk ? statuses.slice(1) : statuses;
      if (expect.firstOk && statuses[0] !== 200) return `first answer ${statuses[0]}, expected 200`;
      if (rest.length > 1 || rest.some((s) => !REFUSED_STATUSES.includes(s)))
        return `answered ${statuses.join(", ")}, expected a refusal`;
      return undefined;
    }
    const done = () => http.responses.length >= expect.statuses.length && (expect.after !== "closed" || http.closed);
    if (!(await http.until(() => done() || http.closed, ctx.timeoutMs))) {
      return `${http.responses.length} of ${expect.statuses.length} answers within ${ctx.timeoutMs} ms`;
    }
    for (const r of http.responses) count(ctx, `HTTP ${r.status}`);
    if (http.responses.length < expect.statuses.length) {
      return `closed after ${http.responses.length} of ${expect.statuses.length} answers (${http.responses.map((r) => r.status).join(", ")})`;
    }
    for (const [i, allowed] of expect.statuses.entries()) {
      const r = http.responses[i];
      if (r === undefined || !allowed.includes(r.status))
        return `answer ${i + 1} is ${r?.status}, expected ${allowed.join(" or ")}`;
      const problem = expect.checks?.[i]?.(r);
      if (problem !== undefined) return `answer ${i + 1} (${r.status}): ${problem}`;
    }
    if (expect.after === "open" && http.closed) return "the server closed a connection it should have kept";
    return undefined;
  } finally {
    if (!http.closed) {
      if (c.leave === "destroy" || rng.chance(0.3)) http.destroy();
      else http.end();
    }
  }
}
