// An internal auth service, for either of two askers. nginx (examples/nginx-auth.conf) asks it, for every request
// under /pinghub/, whether to let it through (204), refuse it (403), or send it to another channel (204 with
// X-Rewrite). pinghub itself (`pinghub --auth-url http://127.0.0.1:8089/internal-auth`) asks it before each
// subscribe and each POST, naming the channel and the action (X-Pinghub-Channel, X-Pinghub-Action); it cannot
// rewrite a channel, so there /me/ channels are refused and clients name /user/ID/ themselves. A small example to
// start from, not a product.
//
//   bun examples/internal-auth.ts --port 8089     (or INTERNAL_AUTH_PORT=8089; it listens on 127.0.0.1 only)
//
// The toy scheme. A client names itself with a token: `Authorization: Bearer TOKEN`, or for a browser, whose
// websockets cannot carry headers, a cookie `pinghub_token=TOKEN`. TOKENS below says whose each token is: a user
// (by id) or the application server. The rules, on the path nginx will route by (X-Pinghub-Path):
//   /pinghub/.pinghub/pinghub.js  GET, HEAD: anyone (the browser client library)
//   /pinghub/me/CHAN              a user: 204 with X-Rewrite /pinghub/user/ID/CHAN, their own channel
//   /pinghub/user/ID/CHAN         user ID: subscribe, GET the page, publish; the application server: POST only
//   anything else                 403
// Asked by pinghub, the same rules on the channel name, and: no known token is 401; a user's subscription may
// publish too (X-Pinghub-Publish: yes), and answers are kept a little while (Cache-Control: max-age).
// For real use, replace TOKENS with your own session check (your login cookie, a signed token) and keep the rest.
// A browser may send the cookie with a websocket that a page of another site opens, so also run pinghub with
// --origin (nginx passes the Origin header on): such a page is then refused before it can read a user's channel.

import { parseArgs } from "node:util";

/** Who a token belongs to. Static, and for the example only. */
export const TOKENS: ReadonlyMap<string, { user: string } | { app: true }> = new Map([
  ["alice-secret", { user: "157" }],
  ["bob-secret", { user: "158" }],
  ["app-server-secret", { app: true }],
]);

export const DEFAULT_PORT = 8089;

const LIBRARY = "/pinghub/.pinghub/pinghub.js";

/** Seconds pinghub may keep a yes: a revoked token keeps working this long at most. */
const ANSWER_MAX_AGE_SECONDS = 10;

/** nginx's question, answered: 204 (with X-Rewrite perhaps) or 403; or pinghub's. Never throws. */
export function authorize(request: Request): Response {
  const action = request.headers.get("x-pinghub-action");
  if (action !== null) return authorizeForPinghub(request, action);
  const allow = (rewrite?: string) =>
    new Response(null, { status: 204, headers: rewrite === undefined ? {} : { "X-Rewrite": rewrite } });
  const refuse = () => new Response(null, { status: 403 });

  const method = request.headers.get("x-original-method") ?? "";
  let path: string;
  try {
    // nginx sends its decoded, normalized path percent-encoded once more; not UTF-8 is refused (so would pinghub).
    path = decodeURIComponent(request.headers.get("x-pinghub-path") ?? "");
  } catch {
    return refuse();
  }
  if (path === LIBRARY) return method === "GET" || method === "HEAD" ? allow() : refuse();

  const who = TOKENS.get(token(request.headers) ?? "");
  if (who === undefined) return refuse();

  if (path.startsWith("/pinghub/me/")) {
    if (!("user" in who)) return refuse();
    // Percent-encoded, so any channel name fits in a header; nginx decodes it.
    const channel = path.slice("/pinghub/me/".length).split("/").map(encodeURIComponent).join("/");
    return allow(`/pinghub/user/${encodeURIComponent(who.user)}/${channel}`);
  }
  const owner = /^\/pinghub\/user\/([^/]+)\//.exec(path)?.[1];
  if (owner === undefined) return refuse();
  if ("user" in who) return who.user === owner && ["GET", "HEAD", "POST"].includes(method) ? allow() : refuse();
  return method === "POST" ? allow() : refuse();
}

/** pinghub's question (--auth-url): may this client `action` (subscribe or publish) on the decoded channel? */
function authorizeForPinghub(request: Request, action: string): Response {
  // Header values are bytes: pinghub sends the name's UTF-8 bytes, which Bun gives us as Latin-1 characters.
  const channel = Buffer.from(request.headers.get("x-pinghub-channel") ?? "", "latin1").toString("utf8");
  const who = TOKENS.get(token(request.headers) ?? "");
  if (who === undefined) return new Response("unauthorized: log in first\n", { status: 401 });
  const refuse = () => new Response("forbidden: not your channel\n", { status: 403 });
  const yes = (publish: boolean) =>
    new Response(null, {
      status: 204,
      headers: {
        "Cache-Control": `private, max-age=${ANSWER_MAX_AGE_SECONDS}`,
        ...(publish ? { "X-Pinghub-Publish": "yes" } : {}),
      },
    });
  const owner = /^\/user\/([^/]+)\//.exec(channel)?.[1];
  if (owner === undefined) return refuse();
  if ("user" in who) return who.user === owner ? yes(true) : refuse();
  return action === "publish" ? yes(true) : refuse();
}

function token(headers: Headers): string | undefined {
  const bearer = /^Bearer\s+(\S+)$/i.exec(headers.get("authorization") ?? "")?.[1];
  return bearer ?? new Bun.CookieMap(headers.get("cookie") ?? "").get("pinghub_token") ?? undefined;
}

if (import.meta.main) {
  let port: number;
  try {
    const { values } = parseArgs({ options: { port: { type: "string" } } });
    const value = values.port ?? process.env.INTERNAL_AUTH_PORT ?? String(DEFAULT_PORT);
    if (!/^\d{1,5}$/.test(value) || Number(value) > 65535) throw new Error(`bad port "${value}": expected 0 to 65535`);
    port = Number(value);
  } catch (error) {
    process.stderr.write(`internal-auth: ${(error as Error).message}\n`);
    process.exit(2);
  }
  const server = Bun.serve({ hostname: "127.0.0.1", port, fetch: authorize });
  process.stderr.write(`internal-auth listening on http://127.0.0.1:${server.port}\n`);
}
