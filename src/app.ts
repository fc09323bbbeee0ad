// The HTTP side of a channel, for requests that are not websocket upgrades: GET and HEAD serve the channel
// page, POST publishes its body, anything else is 405. The channel name arrives already checked, as a binding.

import { Hono, type MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Config } from "./config.ts";
import type { Hub } from "./hub.ts";
import type { RefusalReason } from "./metrics.ts";
import { originAllowed } from "./origin.ts";
import { CHANNEL_PAGE_HEADERS, CLIENT_LIBRARY_PATH, channelPage, clientLibraryResponse } from "./page.ts";

export interface ChannelBindings {
  channel: string;
}

export const ALLOWED_METHODS = "GET, HEAD, POST";
export const SUBSCRIBERS_HEADER = "X-Pinghub-Subscribers";

const strictUtf8 = new TextDecoder("utf-8", { fatal: true });

export interface AppHooks {
  refused(reason: RefusalReason): void;
  /** Runs around every request the app handles: the HTTP request metrics. */
  middleware?: MiddlewareHandler;
  /** An error thrown by a handler, such as a client that vanished while sending its body. */
  error?: (error: Error) => void;
}

export function createApp(hub: Hub, config: Config, hooks: AppHooks) {
  const app = new Hono<{ Bindings: ChannelBindings }>();
  const refuse = hooks.refused;
  if (hooks.middleware) app.use(hooks.middleware);
  app.onError((error, c) => {
    hooks.error?.(error);
    return c.text("internal error\n", 500);
  });

  // The browser client library at its one reserved path (see page.ts). GET and HEAD only: a websocket or a POST
  // to this path still reaches the channel of that name. Registered first, so it wins over the channel page.
  app.get(CLIENT_LIBRARY_PATH, (c) => clientLibraryResponse(c.req.raw));

  app.get("*", (c) => {
    const page = channelPage(c.env.channel);
    // Written out so that HEAD, which Hono answers with this response less its body, gives GET's length too.
    return c.html(page, 200, { ...CHANNEL_PAGE_HEADERS, "Content-Length": String(Buffer.byteLength(page)) });
  });

  app.post(
    "*",
    (c, next) => {
      // Checked before the body is read: a page on another site must not publish through a visitor's browser.
      if (originAllowed(config.origin, c.req.header("origin") ?? null)) return next();
      refuse("bad_origin");
      return Promise.resolve(c.text(`forbidden: Origin is not ${config.origin}\n`, 403));
    },
    // Counts the bytes of chunked bodies too, and stops reading at the limit.
    bodyLimit({
      maxSize: config.maxMessageSize,
      onError: (c) => {
        refuse("too_large");
        return c.text(`message too large: the limit is ${config.maxMessageSize} bytes\n`, 413);
      },
    }),
    async (c) => {
      let message: string;
      try {
        message = strictUtf8.decode(await c.req.arrayBuffer());
      } catch {
        refuse("not_utf8");
        return c.text("message is not valid UTF-8\n", 400);
      }
      // An empty body is accepted and dropped, as the original did: there is nothing to deliver.
      const delivered = message.length === 0 ? 0 : hub.publishPost(c.env.channel, message);
      return c.text("OK\n", 200, { [SUBSCRIBERS_HEADER]: String(delivered) });
    },
  );

  app.all("*", (c) => c.text(`method not allowed: use ${ALLOWED_METHODS}\n`, 405, { Allow: ALLOWED_METHODS }));

  return app;
}
