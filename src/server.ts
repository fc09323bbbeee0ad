// Bun.serve wiring: one fetch handler decides, per request, between a websocket upgrade and the Hono app,
// after checking the channel name once for both. Also listening on TCP or a UNIX socket, and stopping.

import type { Server } from "bun";
import { createApp, type RefusalReason } from "./app.ts";
import { channelFromUrl } from "./channel-path.ts";
import type { Config } from "./config.ts";
import { Hub, type Subscriber } from "./hub.ts";
import { originAllowed } from "./origin.ts";
import { prepareUnixSocket, removeUnixSocket, withSocketMode } from "./unix-socket.ts";
import { websocketHandler } from "./websocket.ts";

export interface ServerEvents {
  /** A request refused before it reached a channel, by reason. */
  refused?: (reason: RefusalReason) => void;
  /** A subscriber cut off because its backlog passed --max-backlog. */
  slowSubscriber?: (channel: string) => void;
}

export interface ChannelServer {
  hub: Hub;
  server: Server<Subscriber>;
  /** Where it listens, as a URL for clients: `http://127.0.0.1:8081` or `unix:/run/pinghub/pinghub.sock`. */
  url: string;
  /** Stops accepting, closes every websocket with 1001 (going away), and removes a UNIX socket file. */
  stop(): Promise<void>;
}

export async function startChannelServer(config: Config, events: ServerEvents = {}): Promise<ChannelServer> {
  const refused = events.refused ?? (() => {});
  const hub = new Hub(config.maxBacklog, (ws) => events.slowSubscriber?.(ws.data.channel));
  const app = createApp(hub, config, refused);
  const listen = config.listen;
  if (listen.kind === "unix") await prepareUnixSocket(listen.path);

  const serveOptions = {
    fetch(req: Request, server: Server<Subscriber>) {
      const { channel, error } = channelFromUrl(req.url);
      if (error !== undefined) {
        refused("bad_path");
        return new Response(`${error}\n`, { status: 400 });
      }
      if (req.headers.get("upgrade")?.toLowerCase() !== "websocket") return app.fetch(req, { channel });
      if (!originAllowed(config.origin, req.headers.get("origin"))) {
        refused("origin");
        return new Response(`forbidden: Origin is not ${config.origin}\n`, { status: 403 });
      }
      if (server.upgrade(req, { data: { channel, slow: false } })) return undefined;
      refused("bad_upgrade");
      return new Response("bad websocket upgrade: expected GET with Sec-WebSocket-Key and Version 13\n", {
        status: 400,
      });
    },
    websocket: websocketHandler(hub, config),
    // Bun's own limit on request bodies; the app enforces --max-message-size itself with a clear answer.
    maxRequestBodySize: Math.max(config.maxMessageSize + 1, 1024 * 1024),
  };
  const server =
    listen.kind === "unix"
      ? withSocketMode(config.socketMode, () => Bun.serve({ ...serveOptions, unix: listen.path }))
      : Bun.serve({ ...serveOptions, hostname: listen.hostname, port: listen.port });
  hub.attach(server);

  const url =
    listen.kind === "unix"
      ? `unix:${listen.path}`
      : `http://${listen.hostname.includes(":") ? `[${listen.hostname}]` : listen.hostname}:${server.port}`;

  return {
    hub,
    server,
    url,
    async stop() {
      // stop(true) closes every websocket with 1001 "going away" so clients reconnect elsewhere.
      await server.stop(true);
      if (listen.kind === "unix") removeUnixSocket(listen.path);
    },
  };
}
