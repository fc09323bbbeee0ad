// Bun.serve wiring: one fetch handler decides, per request, between a websocket upgrade and the Hono app,
// after checking the channel name once for both. Also listening on TCP or a UNIX socket, and stopping.

import type { Server } from "bun";
import type { MiddlewareHandler } from "hono";
import { type Access, type Allowed, createAccess, type Refused, whenAllowed } from "./access.ts";
import { createApp } from "./app.ts";
import { localBroker } from "./broker.ts";
import { channelFromUrl } from "./channel-path.ts";
import type { Config } from "./config.ts";
import { ExpiryWheel } from "./expiry.ts";
import type { ForwardAuthHooks } from "./forward-auth.ts";
import { historySettings } from "./history.ts";
import { Hub, type PublishRefusal, type Subscriber } from "./hub.ts";
import type { RefusalReason } from "./metrics.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { createPostPublisher } from "./post.ts";
import { clientAddress, createRefuse } from "./refusal.ts";
import { createSseSubscribers, wantsEventStream } from "./sse.ts";
import { tryAgainLater } from "./try-again.ts";
import { prepareUnixSocket, removeUnixSocket, withSocketMode } from "./unix-socket.ts";
import { NOT_ALLOWED_TO_PUBLISH, PUBLISHING_OFF, websocketHandler } from "./websocket.ts";

export interface ServerHooks {
  /** A request or websocket refused, by reason. */
  refused?: (reason: RefusalReason) => void;
  /** Set at --log-level debug: takes one line per refusal and per websocket opened and closed. */
  debug?: (line: string) => void;
  /** Runs around every request the Hono app handles. */
  httpMiddleware?: MiddlewareHandler;
  /** An error thrown while handling a request; the client gets 500. */
  error?: (error: Error) => void;
  /** The calls to --auth-url, for the metrics. */
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
   * Stops accepting, closes every websocket with 1001 (going away), lets requests in flight finish, and
   * removes a UNIX socket file.
   */
  stop(): Promise<void>;
}

/** Serves the channels of `hub` where the config says; resolves once listening. */
export async function startChannelServer(
  config: Config,
  hub: Hub = new Hub(config.maxBacklog, undefined, localBroker(historySettings(config))),
  hooks: ServerHooks = {},
): Promise<ChannelServer> {
  let listening: Server<Subscriber> | undefined;
  const refused = createRefuse(
    hooks.refused ?? (() => {}),
    hooks.debug,
    () => listening as Server<unknown> | undefined,
  );
  const debug = hooks.debug;
  // Who may subscribe and publish: asked first at every door; undefined when everyone may (no flag given).
  const access: Access | undefined = createAccess(
    config,
    // The connection's own address, for X-Forwarded-For: looked up only by forward auth.
    (req) => listening?.requestIP(req)?.address ?? "unix socket",
    hooks.forwardAuth,
  );
  const expiries = new ExpiryWheel();
  /** The refusal's answer, counted and logged (never with the token) like every other refusal. */
  const refuseAccess = (refusal: Refused, channel: string, req: Request): Response => {
    refused(refusal.reason, channel, req);
    return refusal.response;
  };
  // Without access, a websocket's right to publish is --websocket-publish alone.
  const everyone: Allowed = { allowed: true, publish: true, expiresAtMs: undefined };
  const post = createPostPublisher(hub, config, refused);
  const sse = createSseSubscribers(hub, config, refused, access, expiries);
  const app = createApp(config, post, { middleware: hooks.httpMiddleware, error: hooks.error });
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
        return whenAllowed(
          access.check(req, channel, "publish"),
          () => post.publish(req, channel) ?? app.fetch(req, { channel }),
          (refusal) => refuseAccess(refusal, channel, req),
        );
      }
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") {
        if (req.method === "GET" && wantsEventStream(req)) return sse.subscribe(req, server, channel);
        return app.fetch(req, { channel });
      }
      if (!originAllowed(config.origin, req.headers.get("origin"))) {
        refused("bad_origin", channel, req);
        return forbiddenOrigin(config.origin);
      }
      if (access === undefined) return subscribeWebsocket(req, server, channel, everyone);
      return whenAllowed(
        access.check(req, channel, "subscribe"),
        (rights) => subscribeWebsocket(req, server, channel, rights),
        (refusal) => refuseAccess(refusal, channel, req),
      );
    },
    websocket: websocketHandler(hub, config, refused, debug, expiries),
    error(error: Error) {
      hooks.error?.(error);
      return new Response("internal error\n", { status: 500 });
    },
    // No ceiling of Bun's own: pinghub refuses a body over --max-message-size itself, with its reason and its
    // count, from the Content-Length before reading, or as a chunked body's bytes arrive.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  };
  /** A websocket allowed in: admitted to the hub, then upgraded with its rights. */
  function subscribeWebsocket(
    req: Request,
    server: Server<Subscriber>,
    channel: string,
    rights: Allowed,
  ): Response | undefined | Promise<Response | undefined> {
    // Cluster mode with Redis away: a new subscriber could not be promised the channel's messages.
    const unavailable = hub.unavailable;
    if (unavailable !== undefined) {
      refused("redis_down", channel, req);
      return tryAgainLater(unavailable);
    }
    // Open means subscribed: the first subscriber of a channel on a cluster node waits for Redis to confirm.
    const ready = hub.prepare(channel);
    if (ready === undefined) return upgrade(req, server, channel, rights);
    return ready.then(
      () => upgrade(req, server, channel, rights),
      (error: Error) => {
        hub.prepared(channel);
        refused("redis_down", channel, req);
        return tryAgainLater(error.message);
      },
    );
  }
  /** Upgrades the request to a websocket subscribed to `channel`, or answers why it cannot. */
  function upgrade(req: Request, server: Server<Subscriber>, channel: string, rights: Allowed): Response | undefined {
    // Bun runs the websocket's open, and so hub.join, inside upgrade.
    const client = debug === undefined ? "" : clientAddress(req, server as Server<unknown>);
    const publishRefused: PublishRefusal | undefined = !config.websocketPublish
      ? PUBLISHING_OFF
      : rights.publish
        ? undefined
        : NOT_ALLOWED_TO_PUBLISH;
    const data: Subscriber =
      publishRefused === undefined && rights.expiresAtMs === undefined
        ? { channel, slow: false, client }
        : { channel, slow: false, client, publishRefused, expiresAtMs: rights.expiresAtMs, expiry: undefined };
    const upgraded = server.upgrade(req, { data });
    hub.prepared(channel);
    if (upgraded) return undefined;
    refused("bad_upgrade", channel, req);
    return new Response("bad websocket upgrade: expected GET with Sec-WebSocket-Key and Version 13\n", {
      status: 400,
    });
  }

  const server =
    listen.kind === "unix"
      ? withSocketMode(config.socketMode, () => Bun.serve({ ...serveOptions, unix: listen.path }))
      : // Bun's default for HTTP requests, written out: a request not done in 10 s is cut (websockets have their
        // own timeout), and Bun no longer prints its own warning to stderr, outside pinghub's log. Bun's types
        // take this option for TCP only.
        Bun.serve({ ...serveOptions, hostname: listen.hostname, port: listen.port, idleTimeout: 10 });
  hub.attach(server);
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
      expiries.stop();
      // A request that drips its body could hold the stop for ever: past the grace period, cut what is left.
      const cut = setTimeout(() => server.stop(true), config.shutdownTimeout * 1000);
      await drained;
      clearTimeout(cut);
      await hub.close();
    },
  };
}
