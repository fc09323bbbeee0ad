// The protocol's floor for POST: bench/floor.ts plus only what pinghub's POST must do, and nothing of pinghub's
// own: the size limit read from Content-Length before the body, the body read as bytes and decoded as strict
// UTF-8 (a 400 for bytes that are not), and the answer carrying X-Pinghub-Subscribers, cloned from one made once
// per count as src/post.ts does. What Bun itself allows for this protocol: BENCHMARKS.md, "Looked at a third
// time". Not one of the benchmark's servers; run by hand beside them, each pinned as the benchmark pins:
//
//   taskset -c 0 bun bench/protocol-floor.ts PORT
//   taskset -c 1 wrk -t1 -c50 -d5s -s bench/load/post.lua http://127.0.0.1:PORT/bench/post

import type { Server } from "bun";
import { FLOOR_WEBSOCKET_SETTINGS, floorWebsocket } from "./floor-websocket.ts";

const port = Number(process.argv[2]);
const MAX_MESSAGE_BYTES = FLOOR_WEBSOCKET_SETTINGS.maxPayloadLength;
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
const answers: Response[] = [];

function accepted(subscribers: number): Response {
  const cached = answers[subscribers];
  if (cached !== undefined) return cached.clone();
  const answer = new Response("OK\n", { headers: { "X-Pinghub-Subscribers": String(subscribers) } });
  answers[subscribers] = answer.clone();
  return answer;
}

const server: Server<string> = Bun.serve<string>({
  hostname: "127.0.0.1",
  port,
  maxRequestBodySize: Number.MAX_SAFE_INTEGER,
  fetch(req, server) {
    const url = req.url;
    const channel = url.slice(url.indexOf("/", 7));
    if (server.upgrade(req, { data: channel })) return undefined;
    const length = req.headers.get("content-length");
    if (length === null || Number(length) > MAX_MESSAGE_BYTES) return new Response("too large\n", { status: 413 });
    return req.bytes().then((body) => {
      let message: string;
      try {
        message = strictUtf8.decode(body);
      } catch {
        return new Response("message is not valid UTF-8\n", { status: 400 });
      }
      server.publish(channel, message);
      return accepted(server.subscriberCount(channel));
    });
  },
  websocket: floorWebsocket(() => server),
});

console.log(`protocol floor listening on 127.0.0.1:${server.port}`);
