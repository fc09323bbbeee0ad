// Serving on a UNIX socket, as behind nginx: permissions, publishing and subscribing over it, a stale socket
// replaced, a live one left alone, and the file removed at the end.

import { afterEach, expect, test } from "bun:test";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { inScratch } from "./support/scratch.ts";
import { spawnPinghub, startServer } from "./support/server.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

test("subscribe and publish over the socket, created with --socket-mode, removed on stop", () =>
  inScratch("socket", async (dir) => {
    const path = join(dir, "pinghub.sock");
    const server = await startServer({ listen: { kind: "unix", path }, socketMode: 0o660 });
    expect(server.url).toBe(`unix:${path}`);
    expect(statSync(path).mode & 0o777).toBe(0o660);

    const subscriber = await RawWebSocket.connect({ unix: path }, "/over/unix");
    expect(subscriber.status).toBe(101);
    const response = await fetch("http://localhost/over/unix", { method: "POST", body: "via socket", unix: path });
    expect(await response.text()).toBe("OK\n");
    expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
    await subscriber.until(() => subscriber.texts().length === 1);
    expect(subscriber.texts()).toEqual(["via socket"]);

    await server.stop();
    expect(existsSync(path)).toBe(false);
  }));

test("another --socket-mode is applied from the start", () =>
  inScratch("socket", async (dir) => {
    const path = join(dir, "pinghub.sock");
    const server = await startServer({ listen: { kind: "unix", path }, socketMode: 0o600 });
    cleanups.push(() => server.stop());
    expect(statSync(path).mode & 0o777).toBe(0o600);
  }));

test("a stale socket left by a killed server is replaced", () =>
  inScratch("socket", async (dir) => {
    const path = join(dir, "pinghub.sock");
    const first = spawnPinghub(["--addr", path, "--mport", "0"]);
    await first.waitForStderr(/serving/);
    first.proc.kill("SIGKILL");
    await first.exited;
    expect(existsSync(path)).toBe(true);

    const second = spawnPinghub(["--addr", path, "--mport", "0"]);
    cleanups.push(() => second.proc.kill("SIGKILL"));
    await second.waitForStderr(/serving unix:/);
    const response = await fetch("http://localhost/stale", { method: "POST", body: "x", unix: path });
    expect(response.status).toBe(200);
  }));

test("a live socket is left alone: the second server exits 1 saying the address is in use", () =>
  inScratch("socket", async (dir) => {
    const path = join(dir, "pinghub.sock");
    const running = spawnPinghub(["--addr", path, "--mport", "0"]);
    cleanups.push(() => running.proc.kill("SIGKILL"));
    await running.waitForStderr(/serving/);
    const subscriber = await RawWebSocket.connect({ unix: path }, "/live");

    const second = spawnPinghub(["--addr", path, "--mport", "0"]);
    expect(await second.exited).toBe(1);
    expect(second.stderr()).toContain(`address in use: a server is listening on ${path}`);

    // The running server still serves, its subscriber included.
    const response = await fetch("http://localhost/live", { method: "POST", body: "still here", unix: path });
    expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
    await subscriber.until(() => subscriber.texts().length === 1);
    expect(subscriber.texts()).toEqual(["still here"]);
  }));

test("a socket in a directory that does not exist: exit 1 with one clear line", () =>
  inScratch("socket", async (dir) => {
    const path = join(dir, "missing", "pinghub.sock");
    const pinghub = spawnPinghub(["--addr", path, "--mport", "0"]);
    expect(await pinghub.exited).toBe(1);
    expect(pinghub.stderr()).toContain(`cannot serve on unix:${path}`);
  }));
