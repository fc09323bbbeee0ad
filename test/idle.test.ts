// Idle websockets: Bun pings one that has been silent for most of --idle-timeout and closes it when the whole
// timeout passes with nothing from it; a client that answers pings (every browser does) stays.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { OPCODE, RawWebSocket } from "./support/raw-websocket.ts";
import { startServer, type TestServer } from "./support/server.ts";

// Bun's idle timer counts in steps of 4 s and pings one step before the end: 8 s is the shortest timeout
// with a ping before the close.
const IDLE_SECONDS = 8;
let server: TestServer;
beforeAll(async () => {
  server = await startServer({ idleTimeout: IDLE_SECONDS });
});
afterAll(() => server.stop());

test(
  "a silent websocket is pinged, then closed; one that answers pings stays open",
  async () => {
    const silent = await RawWebSocket.connect({ port: server.port }, "/idle");
    const answering = await RawWebSocket.connect({ port: server.port }, "/idle");
    const started = Date.now();
    let answered = 0;
    const answerPings = (async () => {
      while (answered < 2) {
        await answering.until(() => answering.frames.filter((f) => f.opcode === OPCODE.ping).length > answered, 15_000);
        answered++;
        answering.sendFrame(OPCODE.pong, "");
      }
    })();

    await silent.until(() => silent.frames.some((f) => f.opcode === OPCODE.ping), 15_000);
    const pingedAfter = Date.now() - started;
    await silent.ended;
    const closedAfter = Date.now() - started;
    // Pinged before the timeout, closed at about its end.
    expect(pingedAfter).toBeLessThan(IDLE_SECONDS * 1000 - 1000);
    expect(closedAfter).toBeGreaterThanOrEqual(IDLE_SECONDS * 1000 - 500);
    expect(closedAfter).toBeLessThan(IDLE_SECONDS * 1000 + 2000);

    // The answering client was silent but for its pongs and is pinged again: the pong counted as a sign of life.
    await answerPings;
    expect(Date.now() - started).toBeGreaterThanOrEqual(IDLE_SECONDS * 1000 - 500);
    expect(server.hub.subscriberCount("/idle")).toBe(1);
    answering.end();
  },
  { timeout: 30_000 },
);
