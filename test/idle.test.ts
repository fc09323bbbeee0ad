// Idle websockets: Bun pings one that has been silent for most of --idle-timeout and closes it when the whole
// timeout passes with nothing from it; a client that answers pings (every browser does) stays.

import { afterAll, beforeAll, expect, test } from "bun:test";
import { OPCODE, RawWebSocket } from "./support/raw-websocket.ts";
import { startServer, type TestServer } from "./support/server.ts";

// Bun's idle timers tick every 4 s: a timeout of 8 s pings a silent websocket at the first tick after 4 s of
// silence (so 0 to 4 s after it connected, depending on where in the tick it did) and closes it one tick later.
const IDLE_SECONDS = 8;
const TICK_MS = 4000;
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
      while (answered < 3) {
        await answering.until(() => answering.frames.filter((f) => f.opcode === OPCODE.ping).length > answered, 15_000);
        answered++;
        answering.sendFrame(OPCODE.pong, "");
      }
    })();

    await silent.until(() => silent.frames.some((f) => f.opcode === OPCODE.ping), 15_000);
    const pingedAfter = Date.now() - started;
    await silent.ended;
    const closedAfter = Date.now() - started;
    // Pinged within the first tick, closed a tick after the unanswered ping, within the timeout. Timers may
    // run late on a loaded machine, never early: the upper bounds allow a whole tick late.
    expect(pingedAfter).toBeLessThan(2 * TICK_MS);
    expect(closedAfter - pingedAfter).toBeGreaterThanOrEqual(TICK_MS - 1000);
    expect(closedAfter).toBeLessThan(IDLE_SECONDS * 1000 + TICK_MS);
    expect(answering.closed).toBe(false);

    // The answering client, silent but for its pongs, outlived the silent one: each pong counted as a sign of
    // life, and it was pinged again (three times in all, a tick apart) rather than closed.
    await answerPings;
    expect(answering.closed).toBe(false);
    expect(server.hub.subscriberCount("/idle")).toBe(1);
    answering.end();
  },
  { timeout: 30_000 },
);
