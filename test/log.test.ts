// The log of a real process: start and stop lines, a file that SIGHUP reopens after logrotate renames it,
// warnings without a line per message, and fatal errors on stderr even when the log is a file.

import { expect, test } from "bun:test";
import { existsSync, readFileSync, renameSync } from "node:fs";
import { join } from "node:path";
import { post } from "./support/clients.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { inScratch } from "./support/scratch.ts";
import { freePort, spawnPinghub } from "./support/server.ts";
import { until } from "./support/until.ts";

const read = (path: string) => (existsSync(path) ? readFileSync(path, "utf8") : "");

async function waitForLine(path: string, text: string): Promise<void> {
  await until(
    () => read(path).includes(text),
    () => `${path} holds "${text}"; it holds:\n${read(path)}`,
  );
}

test("--log: start line with pid, version and addresses; renamed, SIGHUP, and new lines go to the new file", () =>
  inScratch("log", async (dir) => {
    const path = join(dir, "pinghub.log");
    const pinghub = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "off", "--log", path]);
    await waitForLine(path, "started");
    expect(read(path)).toMatch(
      new RegExp(
        `info pinghub \\d+\\.\\d+\\.\\d+ started: pid ${pinghub.proc.pid}, serving http://127\\.0\\.0\\.1:\\d+, metrics off`,
      ),
    );
    expect(pinghub.stderr()).toBe("");

    renameSync(path, `${path}.1`);
    pinghub.proc.kill("SIGHUP");
    await waitForLine(path, "log file reopened");
    pinghub.proc.kill("SIGTERM");
    expect(await pinghub.exited).toBe(0);

    const old = read(`${path}.1`);
    const fresh = read(path);
    expect(old.trimEnd().split("\n")).toHaveLength(1);
    expect(fresh).toContain("stopping on SIGTERM");
    expect(fresh).toContain("pinghub stopped");
  }));

test("info level logs events, never a line per message; warn level hides the start line", () =>
  inScratch("log", async (dir) => {
    const path = join(dir, "pinghub.log");
    const pinghub = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0", "--log", path, "--max-backlog", "65536"]);
    await waitForLine(path, "started");
    const [, port] = read(path).match(/127\.0\.0\.1:(\d+)/) ?? [];
    const stalled = await RawWebSocket.connect({ port: Number(port) }, "/log/slow");
    stalled.pause();
    const message = "x".repeat(60_000);
    // Up to 40 MB: far more than the kernel buffers plus the 64 KiB backlog, so the stalled reader is cut off.
    for (let i = 0; i < 700 && !read(path).includes("slow subscriber"); i++) {
      await post(`http://127.0.0.1:${port}/log/slow`, message);
    }
    await waitForLine(path, 'slow subscriber cut off: over 65536 bytes behind on "/log/slow"');
    // Hundreds of messages, a handful of lines: start, the warning.
    expect(read(path).trimEnd().split("\n")).toHaveLength(2);
    pinghub.proc.kill("SIGTERM");
    await pinghub.exited;

    const quiet = join(dir, "quiet.log");
    const addr = `127.0.0.1:${freePort()}`;
    const warnOnly = spawnPinghub(["--addr", addr, "--mport", "0", "--log", quiet, "--log-level", "warn"]);
    await until(
      () =>
        fetch(`http://${addr}/`).then(
          (r) => r.ok,
          () => false,
        ),
      `pinghub serves on ${addr}`,
    );
    warnOnly.proc.kill("SIGTERM");
    expect(await warnOnly.exited).toBe(0);
    expect(read(quiet)).toBe("");
  }));

test("a fatal start-up error goes to stderr as one line, exit 1, even with --log", () =>
  inScratch("log", async (dir) => {
    const path = join(dir, "pinghub.log");
    const socket = join(path, "..", "no-such-dir", "pinghub.sock");
    const pinghub = spawnPinghub(["--addr", socket, "--mport", "0", "--log", path]);
    expect(await pinghub.exited).toBe(1);
    const line = `pinghub: cannot serve on unix:${socket}`;
    expect(pinghub.stderr().trimEnd().split("\n")).toHaveLength(1);
    expect(pinghub.stderr()).toStartWith(line);
    expect(read(path)).toContain(line);
  }));

test("debug level: one line per refusal with channel and client, one per websocket opened and closed", async () => {
  const pinghub = spawnPinghub([
    ...["--addr", "127.0.0.1:0", "--mport", "0", "--log-level", "debug"],
    ...["--origin", "https://app.example", "--max-message-size", "10"],
  ]);
  const [, url = ""] = await pinghub.waitForStderr(/serving (http:\/\/[^\s,]+)/);
  const port = Number(new URL(url).port);
  // A foreign page, through a proxy that says who the client is.
  const foreign = await RawWebSocket.connect({ port }, "/dbg/origin", {
    Origin: "https://evil.example",
    "X-Forwarded-For": "203.0.113.7, 10.0.0.1",
  });
  expect(foreign.status).toBe(403);
  await pinghub.waitForStderr(
    /debug refused bad_origin: channel "\/dbg\/origin" from 203\.0\.113\.7, origin "https:\/\/evil\.example"\n/,
  );
  expect((await post(`${url}/dbg/big`, "far too long for ten", { "X-Real-IP": "198.51.100.2" })).status).toBe(413);
  await pinghub.waitForStderr(/debug refused too_large: channel "\/dbg\/big" from 198\.51\.100\.2\n/);
  const ws = await RawWebSocket.connect({ port }, "/dbg/ws");
  await pinghub.waitForStderr(/debug websocket opened: channel "\/dbg\/ws" from 127\.0\.0\.1\n/);
  ws.sendText("a secret message over the limit");
  expect((await ws.closeFrame()).code).toBe(1009);
  await pinghub.waitForStderr(/debug refused too_large: channel "\/dbg\/ws" from 127\.0\.0\.1\n/);
  await pinghub.waitForStderr(/debug websocket closed: channel "\/dbg\/ws" from 127\.0\.0\.1, code 1009\n/);
  // Message contents never reach the log.
  expect(pinghub.stderr()).not.toContain("secret");
  expect(pinghub.stderr()).not.toContain("far too long");
  pinghub.proc.kill("SIGTERM");
  expect(await pinghub.exited).toBe(0);
});

test("info level keeps quiet about refusals and websockets; SIGHUP without --log says there is no file", async () => {
  const pinghub = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0", "--origin", "https://app.example"]);
  const [, url = ""] = await pinghub.waitForStderr(/serving (http:\/\/[^\s,]+)/);
  const foreign = await RawWebSocket.connect({ port: Number(new URL(url).port) }, "/quiet", {
    Origin: "https://evil.example",
  });
  expect(foreign.status).toBe(403);
  pinghub.proc.kill("SIGHUP");
  await pinghub.waitForStderr(/SIGHUP: logging to stderr, there is no log file to reopen/);
  pinghub.proc.kill("SIGTERM");
  expect(await pinghub.exited).toBe(0);
  expect(pinghub.stderr()).not.toMatch(/refused|websocket opened|log file reopened/);
});
