// Bun.serve wiring: one fetch handler decides, per request, between a websocket upgrade and the Hono app,
// after checking the channel name once for both. Also listening on TCP or a UNIX socket, and stopping.

import type { Server } from "bun";
import type { MiddlewareHandler } from "hono";
import { type Access, createAccess, type Decision } from "./access.ts";
import { createApp } from "./app.ts";
import { channelFromUrl } from "./channel-path.ts";
import type { Config } from "./config.ts";
import type { ForwardAuthHooks } from "./forward-auth.ts";
import type { Hub } from "./hub.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { createPostPublisher } from "./post.ts";
import { createRefuse, type RefusalReason } from "./refusal.ts";
import { createSseSubscribers, wantsEventStream } from "./sse.ts";
import { prepareUnixSocket, removeUnixSocket, withSocketMode } from "./unix-socket.ts";
import { createWebsockets, type Subscriber } from "./websocket.ts";

export interface ServerHooks {
  /** A request or websocket refused, by reason. */
  refused?: (reason: RefusalReason) => void;
  /** Set at --log-level debug: takes one line per refusal and per websocket or SSE stream opened and closed. */
  debug?: (line: string) => void;
  /** Runs around every request the Hono app handles. */
  httpMiddleware?: MiddlewareHandler;
  /** An error thrown while handling a request; the client gets 500. */
  error?: (error: Error) => void;
  /** The calls to --auth-url, for the metrics and the log. */
  forwardAuth?: ForwardAuthHooks;
}

/** Close code and reason for every websocket when the server stops: clients should reconnect elsewhere. */
export const GOING_AWAY = { code: 1001, reason: "server shutting down" } as const;

export interface ChannelServer {
  hub: Hub;
  server: Server<Subscriber>;
  /** Where it listens, as a URL for clients: `http://127.0.0.1:8081` or `unix:/run/pinghub/pinghub.sock`. */
  url: string;
  /**
   * Stops accepting, closes every websocket with 1001 (going away) and ends every SSE stream, lets requests in
   * flight finish, and removes a UNIX socket file.
   */
  stop(): Promise<void>;
}

/** Serves the channels of `hub` (main.ts makes it, with its broker) where the config says; resolves once listening. */
export async function startChannelServer(config: Config, hub: Hub, hooks: ServerHooks = {}): Promise<ChannelServer> {
  let listening: Server<Subscriber> | undefined;
  const refused = createRefuse(
    hooks.refused ?? (() => {}),
    hooks.debug,
    () => listening as Server<unknown> | undefined,
  );
  const debug = hooks.debug;
  // Who may subscribe and publish: every door's first question; undefined when everyone may (no flag given).
  const access: Access | undefined = createAccess(
    config,
    // The connection's own address, for X-Forwarded-For: looked up only by forward auth.
    (req) => listening?.requestIP(req)?.address ?? "unix socket",
    hooks.forwardAuth,
  );
  const doors = { refused, debug, access };
  const post = createPostPublisher(hub, config, refused);
  // Each door admits its subscribers through the hub (admission.ts); a later transport is one more of these.
  const websockets = createWebsockets(hub, config, doors);
  const sse = createSseSubscribers(hub, config, doors);
  const app = createApp(config, post, refused, { middleware: hooks.httpMiddleware, error: hooks.error });
  const listen = config.listen;
  if (listen.kind === "unix") await prepareUnixSocket(listen.path);

  const serveOptions = {
    fetch(req: Request, server: Server<Subscriber>) {
      const { channel, error } = channelFromUrl(req.url);
      if (error !== undefined) {
        refused("bad_path", undefined, req);
        return new Response(`${error}\n`, { status: 400 });
      }
      if (req.method === "POST") {
        if (access === undefined) return post.publish(req, channel) ?? app.fetch(req, { channel });
        // The Origin first: a page of another site gets its 403 without the application being asked.
        if (!originAllowed(config.origin, req.headers.get("origin"))) {
          refused("bad_origin", channel, req);
          return forbiddenOrigin(config.origin);
        }
        // A publisher's remembered token or cached answer is decided at once: no promise, no closure per POST.
        const decision = access.check(req, channel, "publish");
        if (!(decision instanceof Promise)) return publishIfAllowed(decision, req, channel);
        return decision.then((d) => publishIfAllowed(d, req, channel));
      }
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        if (req.method === "GET" && wantsEventStream(req)) return sse.subscribe(req, server, channel);
        return app.fetch(req, { channel });
      }
      return websockets.subscribe(req, server, channel);
    },
    websocket: websockets.handler,
    error(error: Error) {
      hooks.error?.(error);
      return new Response("internal error\n", { status: 500 });
    },
    // No ceiling of Bun's own: pinghub refuses a body over --max-message-size itself, with its reason and its
    // count, from the Content-Length before reading, or as a chunked body's bytes arrive.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  };
  /** A POST that access has answered: published (the common case, before the Hono app) or refused. */
  function publishIfAllowed(decision: Decision, req: Request, channel: string) {
    if (!decision.allowed) {
      refused(decision.reason, channel, req);
      return decision.response;
    }
    return post.publish(req, channel) ?? app.fetch(req, { channel });
  }

  const server =
    listen.kind === "unix"
      ? withSocketMode(config.socketMode, () => Bun.serve({ ...serveOptions, unix: listen.path }))
      : // Bun's default for HTTP requests, written out: a request not done in 10 s is cut (websockets have their
        // own timeout), and Bun no longer prints its own warning to stderr, outside pinghub's log. Bun's types
        // take this option for TCP only.
        // Under --workers every worker binds the same port with SO_REUSEPORT, and the kernel spreads new
        // connections over them; otherwise a second pinghub on a port in use fails, as it should.
        Bun.serve({
          ...serveOptions,
          hostname: listen.hostname,
          port: listen.port,
          idleTimeout: 10,
          reusePort: config.workers > 1,
        });
  websockets.attach(server);
  listening = server;

  const url =
    listen.kind === "unix"
      ? `unix:${listen.path}`
      : `http://${listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname}:${server.port}`;

  return {
    hub,
    server,
    url,
    async stop() {
      // Stop listening first, so no new client arrives while the others are told to go.
      const drained = server.stop(false);
      if (listen.kind === "unix") removeUnixSocket(listen.path);
      hub.closeAll(GOING_AWAY.code, GOING_AWAY.reason);
      sse.stop();
      // A request that drips its body could hold the stop for ever: past the grace period, cut what is left.
      const cut = setTimeout(() => server.stop(true), config.shutdownTimeout * 1000);
      await drained;
      clearTimeout(cut);
      await hub.close();
    },
  };
}
