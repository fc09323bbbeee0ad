// The floor: the least Bun code that does pinghub's job, to measure pinghub against. A websocket subscribes to
// the channel named by its path; a text message from it, or a POST body, is published to that channel. No
// validation, no metrics, no routing, no logging.
//
// Every websocket setting that changes the cost of a connection or a message is pinghub's default, so the
// difference measured is pinghub's own code: the same backlog limit and what happens past it, no compression,
// the same idle pings, the same largest message.
//
//   bun bench/floor.ts PORT     (listens on 127.0.0.1:PORT)

import type { Server } from "bun";
import { floorWebsocket } from "./floor-websocket.ts";

const port = Number(process.argv[2]);

const server: Server<string> = Bun.serve<string>({
  hostname: "127.0.0.1",
  port,
  fetch(req, server) {
    // The path, query and all: the channel name, undecoded. "http://" is 7 characters, so the first "/" at or
    // after index 7 ends the host.
    const url = req.url;
    const channel = url.slice(url.indexOf("/", 7));
    if (server.upgrade(req, { data: channel })) return undefined;
    return req.text().then((message) => {
      server.publish(channel, message);
      return new Response("OK\n");
    });
  },
  websocket: floorWebsocket(() => server),
});

// The benchmark waits for this line before it connects.
console.log(`floor listening on 127.0.0.1:${server.port}`);
