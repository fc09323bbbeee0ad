// The command-line client against a real server, as a newcomer runs it: `pinghub watch URL` prints what is
// published, `pinghub publish URL [MESSAGE]` publishes and says whom it reached, refusals exit non-zero.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { Subprocess } from "bun";
import { messageLine } from "../src/client.ts";
import { subscribe } from "./support/clients.ts";
import { startRelay } from "./support/relay.ts";
import { freePort, ROOT, spawnPinghub, startServer, type TestServer } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";
import { until as waitUntil } from "./support/until.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer({ maxMessageSize: 100 });
});
afterAll(() => server.stop());

/** Runs `bun src/main.ts ARGS` with `stdin` and returns its exit status and output. */
async function run(args: string[], stdin?: string) {
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1" },
    stdin: stdin === undefined ? "ignore" : new TextEncoder().encode(stdin),
    stdout: "pipe",
    stderr: "pipe",
  });
  const [status, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  return { status, stdout, stderr };
}

/** A running `pinghub watch`, with its output so far. */
function startWatch(args: string[]) {
  const proc: Subprocess<"ignore", "pipe", "pipe"> = Bun.spawn([process.execPath, "src/main.ts", "watch", ...args], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const output = { stdout: "", stderr: "" };
  const pump = async (stream: ReadableStream<Uint8Array>, key: "stdout" | "stderr") => {
    const decoder = new TextDecoder();
    for await (const chunk of stream) output[key] += decoder.decode(chunk, { stream: true });
  };
  const done = Promise.all([pump(proc.stdout, "stdout"), pump(proc.stderr, "stderr")]);
  const until = (check: () => boolean, what: string) => waitUntil(check, () => `${what}: ${JSON.stringify(output)}`);
  return { proc, output, done, until };
}

describe("pinghub publish", () => {
  test("publishes its argument and says how many subscribers it reached", async () => {
    const s = await subscribe(server.ws("/cli/publish"));
    const result = await run(["publish", server.http("/cli/publish"), "hello from the terminal"]);
    expect(result).toEqual({ status: 0, stdout: "published to 1 subscriber\n", stderr: "" });
    expect(await s.received(1)).toEqual(["hello from the terminal"]);
    s.close();
  });

  test("publishes standard input when no message is given, line breaks and all; takes a ws:// URL too", async () => {
    const s = await subscribe(server.ws("/cli/stdin"));
    const result = await run(["publish", server.ws("/cli/stdin")], "line one\nline two\n");
    expect([result.status, result.stdout]).toEqual([0, "published to 1 subscriber\n"]);
    expect(await s.received(1)).toEqual(["line one\nline two\n"]);
    s.close();
  });

  test("a refusal prints the server's one-line reason and exits 1", async () => {
    const result = await run(["publish", server.http("/cli/big"), "x".repeat(101)]);
    expect(result).toEqual({
      status: 1,
      stdout: "",
      stderr: "pinghub publish: 413 message too large: the limit is 100 bytes\n",
    });
  });

  test("a server that is not there: one line and exit 1", async () => {
    const result = await run(["publish", `http://127.0.0.1:${freePort()}/x`, "m"]);
    expect(result.status).toBe(1);
    expect(result.stderr).toMatch(/^pinghub publish: cannot reach http:\/\/127\.0\.0\.1:\d+\/x: .*\n$/);
  });

  test("a URL that is not http(s) or ws(s) exits 2", async () => {
    const result = await run(["publish", "ftp://h/x", "m"]);
    expect([result.status, result.stderr]).toEqual([
      2,
      'pinghub publish: "ftp://h/x" is not an http, https, ws or wss URL\n',
    ]);
  });
});

describe("pinghub watch", () => {
  test("prints each message on its own line, line breaks escaped, keepalives not shown", async () => {
    const watching = startWatch([server.http("/cli/watch")]);
    await watching.until(() => watching.output.stderr.includes("watching ws://"), "the watch to start");
    for (const m of ["first", "two\nlines", "back\\slash and\r\nCRLF"]) {
      await fetch(server.http("/cli/watch"), { method: "POST", body: m });
    }
    // An empty message is a keepalive: echoed to its sender only, so another client's never shows.
    const keepalive = await subscribe(server.ws("/cli/watch"));
    keepalive.send("");
    await keepalive.received(1);
    await fetch(server.http("/cli/watch"), { method: "POST", body: "last" });
    await watching.until(() => watching.output.stdout.includes("last\n"), "the last message");
    expect(watching.output.stdout).toBe("first\ntwo\\nlines\nback\\\\slash and\\r\\nCRLF\nlast\n");
    keepalive.close();
    watching.proc.kill();
    await watching.done;
  });

  test("a close prints the code and reason on stderr and exits 1", async () => {
    const own = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0"]);
    const [, url = ""] = await own.waitForStderr(/serving (http:\/\/[^\s,]+)/);
    const watching = startWatch([`${url}/cli/close`]);
    await watching.until(() => watching.output.stderr.includes("watching"), "the watch to start");
    own.proc.kill("SIGTERM");
    expect(await watching.proc.exited).toBe(1);
    await watching.done;
    expect(watching.output.stderr).toContain("closed: 1001 server shutting down\n");
    await own.exited;
  });

  test("a refused upgrade prints the server's status and one-line reason, and exits 1", async () => {
    const result = await run(["watch", server.http("/cli/%zz")]);
    expect(result).toEqual({
      status: 1,
      stdout: "",
      stderr:
        `pinghub watch: cannot subscribe to ${server.ws("/cli/%zz")}: ` +
        '400 bad channel path: "%" must be followed by two hex digits\n',
    });
  });

  test("a cluster node that cannot reach Redis: its 503 and reason, with --reconnect too", async () => {
    // No Redis on this port: the node waits for it, starts anyway, and refuses subscribers with 503.
    const redisPort = freePort();
    const node = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0"], {
      PINGHUB_REDIS: `redis://127.0.0.1:${redisPort}`,
    });
    try {
      const [, url = ""] = await node.waitForStderr(/serving (http:\/\/[^\s,]+)/);
      const result = await run(["watch", `${url}/cli/outage`]);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(
        new RegExp(
          `^pinghub watch: cannot subscribe to ws://[^/]+/cli/outage: 503 unavailable: redis at redis://127\\.0\\.0\\.1:${redisPort}/0 unreachable: .+\n$`,
        ),
      );
      const watching = startWatch([`${url}/cli/outage`, "--reconnect"]);
      try {
        await watching.until(() => watching.output.stderr.includes("reconnecting in"), "a failed attempt");
        expect(watching.output.stderr).toMatch(
          /^cannot subscribe to ws:\/\/[^/]+\/cli\/outage: 503 unavailable: redis at .+ unreachable: .+; reconnecting in \d+ ms\n/,
        );
      } finally {
        watching.proc.kill();
        await watching.done;
      }
    } finally {
      node.proc.kill("SIGTERM");
      await node.exited;
    }
  }, 20_000);

  test("no server listening: connection refused, exit 1", async () => {
    const url = `http://127.0.0.1:${freePort()}/cli/nobody`;
    const result = await run(["watch", url]);
    expect(result).toEqual({
      status: 1,
      stdout: "",
      stderr: `pinghub watch: cannot subscribe to ${url.replace("http:", "ws:")}: connection refused\n`,
    });
    const published = await run(["publish", url, "m"]);
    expect(published.stderr).toBe(`pinghub publish: cannot reach ${url}: connection refused\n`);
  });

  test("--reconnect connects again after the server comes back, and goes on printing", async () => {
    const port = freePort();
    const args = ["--addr", `127.0.0.1:${port}`, "--mport", "0"];
    const first = spawnPinghub(args);
    await first.waitForStderr(/serving/);
    const watching = startWatch([`http://127.0.0.1:${port}/cli/again`, "--reconnect"]);
    await watching.until(() => watching.output.stderr.includes("watching"), "the watch to start");
    first.proc.kill("SIGTERM");
    await first.exited;
    await watching.until(() => watching.output.stderr.includes("closed: 1001"), "the close to be reported");
    const second = spawnPinghub(args);
    await second.waitForStderr(/serving/);
    await watching.until(() => watching.output.stderr.split("watching").length === 3, "the watch to reconnect");
    await fetch(`http://127.0.0.1:${port}/cli/again`, { method: "POST", body: "after the restart" });
    await watching.until(() => watching.output.stdout === "after the restart\n", "the message after the restart");
    expect(watching.proc.exitCode).toBeNull();
    watching.proc.kill();
    await watching.done;
    second.proc.kill("SIGTERM");
    await second.exited;
  }, 20_000);
});

describe("pinghub watch --sse", () => {
  let kept: TestServer;
  beforeAll(async () => {
    kept = await startServer({ history: 3 });
  });
  afterAll(() => kept.stop());

  test("--last N prints the newest N kept first; --ids puts each message's id before it, as SSE gives it", async () => {
    const live = await openEvents(kept.http("/cli/sse"));
    for (const m of ["1", "2", "3 and\na line"]) await fetch(kept.http("/cli/sse"), { method: "POST", body: m });
    const given = await live.received(3);
    const withIds = startWatch([kept.http("/cli/sse"), "--sse", "--ids", "--last", "2"]);
    const plain = startWatch([kept.http("/cli/sse"), "--sse", "--last=1"]);
    const websocket = startWatch([kept.http("/cli/sse"), "--last", "2"]);
    for (const w of [withIds, plain]) await w.until(() => w.output.stderr.includes("watching http://"), "the watch");
    await websocket.until(() => websocket.output.stderr.includes("watching ws://"), "the websocket watch");
    await fetch(kept.http("/cli/sse"), { method: "POST", body: "4" });
    const [four] = (await live.received(4)).slice(3);
    await withIds.until(() => withIds.output.stdout.endsWith(" 4\n"), "the live message");
    expect(withIds.output.stdout).toBe(`${given[1]?.id} 2\n${given[2]?.id} 3 and\\na line\n${four?.id} 4\n`);
    await plain.until(() => plain.output.stdout.endsWith("4\n"), "the live message");
    expect(plain.output.stdout).toBe("3 and\\na line\n4\n");
    // A websocket, asked with ?last too, has no ids: the messages alone.
    await websocket.until(() => websocket.output.stdout.endsWith("4\n"), "the live message");
    expect(websocket.output.stdout).toBe("2\n3 and\\na line\n4\n");
    for (const w of [withIds, plain, websocket]) {
      w.proc.kill();
      await w.done;
    }
    live.close();
  });

  test("--reconnect comes back with the last id it saw: nothing missed on a quiet channel; a gap said on stderr", async () => {
    const relay = startRelay(kept.port);
    const url = `http://127.0.0.1:${relay.port}/cli/resume`;
    const watching = startWatch([url, "--sse", "--reconnect"]);
    // The stream's first bytes, its position, reached the watch: the channel is quiet, no message came yet.
    await watching.until(() => relay.toClients.includes(": pinghub channel /cli/resume\n\n"), "the stream");
    relay.dropAll();
    for (const m of ["c", "d"]) await fetch(kept.http("/cli/resume"), { method: "POST", body: m });
    await watching.until(() => watching.output.stdout === "c\nd\n", "what was missed");
    expect(watching.output.stderr).toMatch(/closed: [^\n]+; reconnecting in 1000 ms from id \S+\n/);
    expect(watching.output.stderr).toMatch(/watching http:\/\/[^\n]+ \(SSE\) from id \S+\n/);
    // More missed than the history keeps (3): the gap on stderr, in the server's words, then what is kept.
    relay.dropAll();
    for (const m of ["e", "f", "g", "h", "i"]) await fetch(kept.http("/cli/resume"), { method: "POST", body: m });
    await watching.until(() => watching.output.stdout.endsWith("i\n"), "the messages still kept");
    expect(watching.output.stdout).toBe("c\nd\ng\nh\ni\n");
    expect(watching.output.stderr).toContain("gap: messages dropped\n");
    expect(watching.proc.exitCode).toBeNull();
    watching.proc.kill();
    await watching.done;
    relay.stop();
  });

  test("without --reconnect the end of the stream exits 1, saying so; a refusal says the server's reason", async () => {
    const own = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0"]);
    const [, url = ""] = await own.waitForStderr(/serving (http:\/\/[^\s,]+)/);
    const refused = await run(["watch", `${url}/cli/refused?last=x`, "--sse"]);
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/^pinghub watch: cannot subscribe to [^\n]+: 400 bad \?last="x": [^\n]+\n$/);
    const nobody = await run(["watch", `http://127.0.0.1:${freePort()}/cli/nobody`, "--sse"]);
    expect([nobody.status, nobody.stderr]).toEqual([1, expect.stringMatching(/: connection refused\n$/)]);
    const watching = startWatch([`${url}/cli/ended`, "--sse"]);
    await watching.until(() => watching.output.stderr.includes("watching"), "the watch to start");
    own.proc.kill("SIGTERM");
    expect(await watching.proc.exited).toBe(1);
    await watching.done;
    expect(watching.output.stderr).toContain("closed: the server ended the stream\n");
    await own.exited;
  });
});

test("messageLine: one line per message, and the text can be read back", () => {
  for (const message of ["plain", "a\nb", "c\r\nd", "\\n is not a line feed", "\\", "\n"]) {
    const line = messageLine(message);
    expect(line.slice(0, -1)).not.toMatch(/[\r\n]/);
    const back = line.slice(0, -1).replace(/\\(.)/g, (_, c: string) => (c === "n" ? "\n" : c === "r" ? "\r" : c));
    expect(back).toBe(message);
  }
});
