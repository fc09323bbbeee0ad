// The HTTP side of a channel, for requests that are not websocket upgrades: GET and HEAD serve the channel
// page, POST publishes its body (chunked ones: the others take the shorter way in post.ts), anything else is
// 405. The channel name arrives already checked, as a binding.

import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "./config.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { CHANNEL_PAGE_HEADERS, CLIENT_LIBRARY_PATH, channelPage, clientLibraryResponse } from "./page.ts";
import { plainText } from "./plain-text.ts";
import type { PostPublisher } from "./post.ts";
import type { Refuse } from "./refusal.ts";

export interface ChannelBindings {
  channel: string;
}

export const ALLOWED_METHODS = "GET, HEAD, POST";

export interface AppHooks {
  /** Runs around every request the app handles: the HTTP request metrics. */
  middleware?: MiddlewareHandler;
  /** An error thrown by a handler, such as a client that vanished while sending its body. */
  error?: (error: Error) => void;
}

export function createApp(config: Config, post: PostPublisher, refused: Refuse, hooks: AppHooks = {}) {
  const app = new Hono<{ Bindings: ChannelBindings }>();
  if (hooks.middleware) app.use(hooks.middleware);
  app.onError((error, c) => {
    // A body cut short or not parsable as chunked is the client's doing: neither a server error nor worth a line.
    if (c.req.raw.signal.aborted) return plainText("bad request: the body was cut short or malformed\n", 400);
    hooks.error?.(error);
    return plainText("internal error\n", 500);
  });

  // The browser client library at its one reserved path (see page.ts). GET and HEAD only: a websocket or a POST
  // to this path still reaches the channel of that name. Registered first, so it wins over the channel page.
  app.get(CLIENT_LIBRARY_PATH, (c) => clientLibraryResponse(c.req.raw));

  app.get("*", (c) => {
    const page = channelPage(c.env.channel);
    // Written out so that HEAD, which Hono answers with this response less its body, gives GET's length too.
    return c.html(page, 200, { ...CHANNEL_PAGE_HEADERS, "Content-Length": String(Buffer.byteLength(page)) });
  });

  // Only chunked bodies get here (see post.ts): bodyLimit counts their bytes and stops reading at the limit.
  app.post(
    "*",
    bodyLimit({ maxSize: config.maxMessageSize, onError: (c) => post.tooLarge(c.env.channel, c.req.raw) }),
    async (c) => post.publishBody(c.env.channel, await c.req.arrayBuffer(), c.req.raw),
  );

  // A browser's CORS preflight, for an EventSource or fetch from another origin that sends Last-Event-ID or a
  // Content-Type: allowed for the --origin site (any site without --origin), refused for others.
  app.options("*", (c) => {
    const origin = c.req.header("origin");
    if (origin === undefined || c.req.header("access-control-request-method") === undefined) {
      return notAllowed();
    }
    if (!originAllowed(config.origin, origin)) {
      // Counted and logged as the GET or POST it stands for would be: the browser sends nothing after it.
      refused("bad_origin", c.env.channel, c.req.raw);
      return forbiddenOrigin(config.origin);
    }
    return c.body(null, 204, {
      "Access-Control-Allow-Origin": origin,
      "Access-Control-Allow-Methods": "GET, POST",
      // Authorization (a bearer token for --jwt-key or --auth-url) only for the sites --origin names: a token in
      // the query (?token=) needs no preflight and works from any site the token was given to.
      "Access-Control-Allow-Headers":
        config.origin === undefined ? "Last-Event-ID, Content-Type" : "Last-Event-ID, Content-Type, Authorization",
      "Access-Control-Max-Age": "86400",
      // As for the stream itself (sse.ts): cookies only for the sites --origin names.
      ...(config.origin === undefined ? {} : { "Access-Control-Allow-Credentials": "true" }),
      Vary: "Origin",
    });
  });

  app.all("*", notAllowed);

  return app;
}

const notAllowed = () => plainText(`method not allowed: use ${ALLOWED_METHODS}\n`, 405, { Allow: ALLOWED_METHODS });
