// The channel page, what a browser gets for a GET without an upgrade, and the browser client library.
//
// Everything is read from public/ once, at startup. The page is one self-contained response: public/channel.css
// and public/pinghub.js with public/channel.js (the page's code) are inlined into public/channel.html, so the
// page makes no second request, needs no path of its own, and works unchanged behind a proxy's path prefix. A
// strict Content-Security-Policy allows exactly those inline blocks, by hash, and websockets to its own host.
// The channel name is the only thing put into the page per request, HTML-escaped: no markup is ever reflected.
//
// Other pages load the library from one reserved path, CLIENT_LIBRARY_PATH, for GET and HEAD only: a websocket
// or a POST to that path still reaches the channel of that name, only its page is given up.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";

/** Where GET serves public/pinghub.js; the README documents it. */
export const CLIENT_LIBRARY_PATH = "/.pinghub/pinghub.js";

const read = (name: string) => readFileSync(new URL(`../public/${name}`, import.meta.url), "utf8");

const library = read("pinghub.js");
const libraryLength = Buffer.byteLength(library);
const pageScript = inlinePageScript(library, read("channel.js"));
const pageStyle = read("channel.css");
if (/<\/style/i.test(pageStyle)) throw new Error("public/channel.css must not contain </style");

const sha256 = (text: string) => createHash("sha256").update(text, "utf8");

/** The page's policy: only its own inline script and style run, and it connects to its own host alone. */
export const CHANNEL_PAGE_CSP = [
  "default-src 'none'",
  `script-src 'sha256-${sha256(pageScript).digest("base64")}'`,
  `style-src 'sha256-${sha256(pageStyle).digest("base64")}'`,
  // 'self' covers ws: and wss: to the page's own host and port: the channel's websocket.
  "connect-src 'self'",
  // The icon is a data: URL, so the browser asks for no /favicon.ico (which would be a channel page).
  "img-src data:",
  "base-uri 'none'",
  "form-action 'none'",
  // No code of the page writes HTML from strings; with Trusted Types such a sink would throw, not run.
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join("; ");

/**
 * Headers sent with the page. The policy in a header also takes frame-ancestors, which a <meta> policy cannot:
 * no other site can frame the page and trick a visitor into sending.
 */
export const CHANNEL_PAGE_HEADERS = {
  "Content-Security-Policy": `${CHANNEL_PAGE_CSP}; frame-ancestors 'none'`,
  "X-Content-Type-Options": "nosniff",
  "Referrer-Policy": "no-referrer",
  // A GET that accepts text/event-stream gets the channel's events instead (sse.ts): caches must tell them apart.
  Vary: "Accept",
};

const CHANNEL = "{{channel}}";

/** The page split where the channel name goes, everything else filled in already. */
const pageParts = read("channel.html")
  .split(CHANNEL)
  .map((part) => fill(fill(fill(part, "{{csp}}", CHANNEL_PAGE_CSP), "{{style}}", pageStyle), "{{script}}", pageScript));
if (pageParts.length < 2) throw new Error(`public/channel.html has no ${CHANNEL}`);
for (const placeholder of ["{{csp}}", "{{style}}", "{{script}}"]) {
  if (pageParts.some((part) => part.includes(placeholder))) {
    throw new Error(`public/channel.html: ${placeholder} more than once`);
  }
}

export function channelPage(channel: string): string {
  return pageParts.join(Bun.escapeHTML(channel));
}

const libraryTag = `"${sha256(library).digest("base64url").slice(0, 22)}"`;

/** public/pinghub.js, for other pages to import: any origin may load it (module scripts are fetched with CORS). */
export function clientLibraryResponse(request: Request): Response {
  const headers = {
    "Content-Type": "text/javascript; charset=utf-8",
    "Cache-Control": "no-cache",
    ETag: libraryTag,
    "Access-Control-Allow-Origin": "*",
    "X-Content-Type-Options": "nosniff",
  };
  if (request.headers.get("if-none-match") === libraryTag) return new Response(null, { status: 304, headers });
  // Written out so that HEAD, which Hono answers with this response less its body, gives GET's length too.
  return new Response(library, { headers: { ...headers, "Content-Length": String(libraryLength) } });
}

/**
 * The library and the page's code as one inline module: the page's `import ... from "./pinghub.js"` line goes,
 * and its code goes in a block so that its names cannot clash with the library's.
 */
function inlinePageScript(library: string, page: string): string {
  const importLine = /^import\s*\{[^}]*\}\s*from\s*"\.\/pinghub\.js";?[ \t]*\n/m;
  if (!importLine.test(page)) throw new Error('public/channel.js must import from "./pinghub.js"');
  const script = `${library}\n{\n${page.replace(importLine, "")}}\n`;
  // Either would end or confuse the inline <script> element early.
  if (/<\/script|<!--/i.test(script)) throw new Error("public/*.js must not contain </script or <!--");
  return script;
}

/** Replaces the one `placeholder` in `part`, if there; a function replacement, so `$` in `value` is literal. */
function fill(part: string, placeholder: string, value: string): string {
  return part.replace(placeholder, () => value);
}
