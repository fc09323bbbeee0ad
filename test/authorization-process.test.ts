// Authorization in real pinghub processes: its flags' bad values (exit 2, one line, nothing bound), the debug log
// that names refusals but never a token or a cookie, the metrics, two cluster nodes deciding alike on one token,
// and examples/internal-auth.ts answering pinghub's own question (--auth-url).

import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type JWTPayload, SignJWT } from "jose";
import { post, subscribe } from "./support/clients.ts";
import { freePort } from "./support/ports.ts";
import { skipWithoutRedis, startRedis } from "./support/redis.ts";
import { type PinghubProcess, ROOT, sample, spawnPinghub, spawnServing } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";

const dir = mkdtempSync(join(tmpdir(), "pinghub-auth-process-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const SECRET = "a-process-test-secret-longer-than-32-bytes";
const secretFile = join(dir, "secret");
writeFileSync(secretFile, SECRET);

function token(claims: JWTPayload): Promise<string> {
  return new SignJWT(claims).setProtectedHeader({ alg: "HS256" }).sign(new TextEncoder().encode(SECRET));
}

const stop = async (p: PinghubProcess) => {
  p.proc.kill("SIGTERM");
  return p.exited;
};

describe("bad authorization flags exit 2 with one line, before anything is bound", () => {
  const brokenPem = join(dir, "broken.pem");
  writeFileSync(brokenPem, "-----BEGIN PUBLIC KEY-----\nnot base64 at all\n-----END PUBLIC KEY-----\n");
  const shortSecret = join(dir, "short");
  writeFileSync(shortSecret, "short\n");
  const cases: Array<[string[], RegExp]> = [
    [["--jwt-key", brokenPem], /^pinghub: bad --jwt-key ".*broken\.pem": it looks like PEM but is not a public key/],
    [["--jwt-key", shortSecret], /^pinghub: bad --jwt-key ".*short": an HMAC secret must be at least 32 bytes/],
    [["--jwt-key", join(dir, "missing")], /^pinghub: bad --jwt-key ".*missing": cannot read it: ENOENT/],
    [["--jwt-key", secretFile, "--auth-url", "http://127.0.0.1:1/"], /^pinghub: --jwt-key and --auth-url cannot/],
    [["--jwt-audience", "x"], /^pinghub: --jwt-audience and --jwt-issuer need --jwt-key/],
    [["--websocket-publish", "maybe"], /^pinghub: bad --websocket-publish "maybe": expected yes or no/],
    [["--auth-url", "ftp://x/"], /^pinghub: bad --auth-url "ftp:\/\/x\/": expected an http:\/\/ or https:\/\/ URL/],
    [["--auth-url", "http://x/", "--auth-timeout", "0"], /^pinghub: bad --auth-timeout "0": expected seconds/],
  ];
  cases.forEach(([args, says], i) => {
    test(args.join(" "), async () => {
      const socket = join(dir, `bad-${i}.sock`);
      const pinghub = spawnPinghub(["--addr", socket, "--mport", "0", ...args]);
      expect(await pinghub.exited).toBe(2);
      const stderr = pinghub.stderr();
      expect(stderr).toMatch(says);
      expect(stderr.trimEnd().split("\n")).toHaveLength(1);
      expect(existsSync(socket)).toBe(false);
    });
  });
});

test("--log-level debug: one line per refusal with reason, channel and client, never a token or a cookie", async () => {
  const mport = freePort();
  const pinghub = await spawnServing(["--jwt-key", secretFile, "--log-level", "debug", "--mport", String(mport)]);
  const secrets: string[] = [];
  const forged = await new SignJWT({ pinghub: { subscribe: ["*"] } })
    .setProtectedHeader({ alg: "HS256" })
    .sign(new TextEncoder().encode("not-the-secret-not-the-secret-not-the-secret"));
  const expired = await token({ pinghub: { subscribe: ["*"] }, exp: Math.floor(Date.now() / 1000) - 60 });
  const readOnly = await token({ pinghub: { subscribe: ["/d/x"] } });
  secrets.push(forged, expired, readOnly, "cookie-value-9f3a");
  const http = (path: string) => `${pinghub.url}${path}`;
  await post(http(`/d/x?token=${forged}`), "m", { Cookie: "session=cookie-value-9f3a" });
  await post(http("/d/x"), "m", { Authorization: `Bearer ${expired}` });
  await post(http("/d/x"), "m", { Authorization: `Bearer ${readOnly}` });
  const stream = await openEvents(http(`/d/x?token=${forged}`));
  expect(stream.status).toBe(401);
  const ws = await subscribe(`${http(`/d/x?token=${readOnly}`).replace("http:", "ws:")}`);
  ws.send("not allowed");
  await ws.closed;
  const scrape = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  expect(await stop(pinghub)).toBe(0);

  const log = pinghub.stderr();
  expect(log).toContain("authorizing by JWT: tokens checked with an HMAC secret");
  const refusals = log.split("\n").filter((line) => line.includes(" refused "));
  expect(refusals.map((line) => line.replace(/^\S+ debug /, ""))).toEqual([
    'refused unauthorized: channel "/d/x" from 127.0.0.1',
    'refused token_expired: channel "/d/x" from 127.0.0.1',
    'refused forbidden: channel "/d/x" from 127.0.0.1',
    'refused unauthorized: channel "/d/x" from 127.0.0.1',
    'refused forbidden: channel "/d/x" from 127.0.0.1',
  ]);
  for (const secret of secrets) expect(log).not.toContain(secret);
  for (const secret of secrets) expect(scrape).not.toContain(secret);
  expect(sample(scrape, 'pinghub_refused_total{reason="unauthorized"}')).toBe(2);
  expect(sample(scrape, 'pinghub_refused_total{reason="token_expired"}')).toBe(1);
  expect(sample(scrape, 'pinghub_refused_total{reason="forbidden"}')).toBe(2);
  expect(sample(scrape, 'pinghub_refused_total{reason="websocket_publish_off"}')).toBe(0);
});

test("--auth-url metrics: calls by result, their latency, cache hits; --websocket-publish no counted", async () => {
  const app = Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: (req) =>
      req.headers.get("x-pinghub-channel") === "/m/yes"
        ? new Response(null, { status: 204, headers: { "Cache-Control": "max-age=60" } })
        : new Response("no\n", { status: 403 }),
  });
  const mport = freePort();
  const pinghub = await spawnServing([
    "--auth-url",
    `http://127.0.0.1:${app.port}/`,
    // The original's single-dash form, as every flag takes it.
    "-websocket-publish=no",
    "--mport",
    String(mport),
  ]);
  try {
    for (let i = 0; i < 3; i++) expect((await post(`${pinghub.url}/m/yes`, "m")).status).toBe(200);
    expect((await post(`${pinghub.url}/m/no`, "m")).status).toBe(403);
    const ws = await subscribe(`${pinghub.url.replace("http:", "ws:")}/m/yes`);
    ws.send("x");
    expect((await ws.closed).reason).toBe("publishing by websocket is off");
    const scrape = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    expect(sample(scrape, 'pinghub_auth_requests_total{result="allowed"}')).toBe(2);
    expect(sample(scrape, 'pinghub_auth_requests_total{result="forbidden"}')).toBe(1);
    expect(sample(scrape, 'pinghub_auth_requests_total{result="timeout"}')).toBe(0);
    expect(sample(scrape, "pinghub_auth_request_duration_seconds_count")).toBe(3);
    expect(sample(scrape, "pinghub_auth_cache_hits_total")).toBe(2);
    expect(sample(scrape, 'pinghub_refused_total{reason="forbidden"}')).toBe(1);
    expect(sample(scrape, 'pinghub_refused_total{reason="websocket_publish_off"}')).toBe(1);
  } finally {
    expect(await stop(pinghub)).toBe(0);
    await app.stop(true);
  }
});

describe.skipIf(skipWithoutRedis())("cluster mode", () => {
  test("two nodes on one Redis decide alike on one token: subscribe on one, publish on the other", async () => {
    const redis = await startRedis();
    const flags = ["--jwt-key", secretFile, "--redis", redis.url];
    const [a, b] = await Promise.all([spawnServing(flags), spawnServing(flags)]);
    try {
      const both = await token({ pinghub: { subscribe: ["/c/*"], publish: ["/c/*"] } });
      const ws = await subscribe(`${a.url.replace("http:", "ws:")}/c/room?token=${both}`);
      expect((await post(`${b.url}/c/room`, "no token")).status).toBe(401);
      expect((await post(`${b.url}/c/room`, "across", { Authorization: `Bearer ${both}` })).status).toBe(200);
      expect(await ws.received(1)).toEqual(["across"]);
      ws.close();
    } finally {
      await Promise.all([stop(a), stop(b)]);
      await redis.stop();
    }
  });
});

test("examples/internal-auth.ts answers pinghub's --auth-url as it answers nginx", async () => {
  const auth = Bun.spawn([process.execPath, "examples/internal-auth.ts", "--port", "0"], {
    cwd: ROOT,
    stdin: "ignore",
    stdout: "ignore",
    stderr: "pipe",
  });
  let said = "";
  const decoder = new TextDecoder();
  for await (const chunk of auth.stderr) {
    said += decoder.decode(chunk, { stream: true });
    if (said.includes("\n")) break;
  }
  const authUrl = /listening on (\S+)/.exec(said)?.[1];
  if (authUrl === undefined) throw new Error(`examples/internal-auth.ts did not start: ${said}`);
  const pinghub = await spawnServing(["--auth-url", `${authUrl}/internal-auth`]);
  const ws = (path: string) => `${pinghub.url.replace("http:", "ws:")}${path}`;
  try {
    // Alice's browser, by cookie, on her own channel: she may subscribe and publish (X-Pinghub-Publish).
    const alice = await subscribe(ws("/user/157/inbox"), { headers: { Cookie: "pinghub_token=alice-secret" } });
    const app = { Authorization: "Bearer app-server-secret" };
    expect((await post(`${pinghub.url}/user/157/inbox`, "from the app", app)).status).toBe(200);
    expect(await alice.received(1)).toEqual(["from the app"]);
    alice.send("from alice");
    expect(await alice.received(2)).toEqual(["from the app", "from alice"]);
    // Bob may not read Alice's channel; nobody unknown may; the application server may not subscribe.
    const bob = { Cookie: "pinghub_token=bob-secret" };
    expect((await openEvents(`${pinghub.url}/user/157/inbox`, bob)).status).toBe(403);
    expect((await post(`${pinghub.url}/user/157/inbox`, "x")).status).toBe(401);
    expect((await openEvents(`${pinghub.url}/user/157/inbox`, app)).status).toBe(403);
    // /me/ is nginx's rewrite; pinghub cannot rewrite a channel, so the example refuses it there.
    expect((await post(`${pinghub.url}/me/inbox`, "x", { Cookie: "pinghub_token=alice-secret" })).status).toBe(403);
    alice.close();
  } finally {
    await stop(pinghub);
    auth.kill("SIGTERM");
    await auth.exited;
  }
});

describe("the command-line client with --token", () => {
  async function run(args: string[], env: Record<string, string> = {}) {
    const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
      cwd: ROOT,
      env: { ...process.env, NO_COLOR: "1", ...env },
      stdin: "ignore",
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

  test("publish --token and watch with PINGHUB_TOKEN reach a --jwt-key server; no token prints its 401", async () => {
    const pinghub = await spawnServing(["--jwt-key", secretFile]);
    try {
      const both = await token({ pinghub: { subscribe: ["/t/*"], publish: ["/t/*"] } });
      const watch = Bun.spawn([process.execPath, "src/main.ts", "watch", `${pinghub.url}/t/cli`], {
        cwd: ROOT,
        env: { ...process.env, NO_COLOR: "1", PINGHUB_TOKEN: both },
        stdin: "ignore",
        stdout: "pipe",
        stderr: "pipe",
      });
      const stderr = watch.stderr.getReader();
      const said = new TextDecoder().decode((await stderr.read()).value);
      expect(said).toBe(`watching ${pinghub.url.replace("http:", "ws:")}/t/cli\n`);
      const published = await run(["publish", `${pinghub.url}/t/cli`, "with a token", "--token", both]);
      expect(published).toEqual({ status: 0, stdout: "published to 1 subscriber\n", stderr: "" });
      const refused = await run(["publish", `${pinghub.url}/t/cli`, "without"]);
      expect(refused).toEqual({
        status: 1,
        stdout: "",
        stderr: "pinghub publish: 401 unauthorized: a bearer token is needed to publish\n",
      });
      const line = new TextDecoder().decode((await watch.stdout.getReader().read()).value);
      expect(line).toBe("with a token\n");
      watch.kill("SIGTERM");
      await watch.exited;
    } finally {
      await stop(pinghub);
    }
  });
});

test("PINGHUB_JWT_KEY_FILE names the key file; a bad one is named as the variable", async () => {
  const pinghub = await spawnServing([], { PINGHUB_JWT_KEY_FILE: secretFile });
  try {
    expect((await post(`${pinghub.url}/e/x`, "m")).status).toBe(401);
  } finally {
    await stop(pinghub);
  }
  const bad = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0"], { PINGHUB_JWT_KEY_FILE: join(dir, "nothing") });
  expect(await bad.exited).toBe(2);
  expect(bad.stderr()).toMatch(/^pinghub: bad PINGHUB_JWT_KEY_FILE ".*nothing": cannot read it: ENOENT\n$/);
});

test("--auth-url down: 503 to clients, and one warning for the operator, not one per client", async () => {
  const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response() });
  const port = gone.port;
  const url = `http://user:secret-pw@127.0.0.1:${port}/check?key=secret-q`;
  await gone.stop(true);
  const pinghub = await spawnServing(["--auth-url", url]);
  try {
    for (let i = 0; i < 3; i++) expect((await post(`${pinghub.url}/w/x`, "m")).status).toBe(503);
    await pinghub.waitForStderr(/forward auth: /);
  } finally {
    await stop(pinghub);
  }
  const warnings = pinghub
    .stderr()
    .split("\n")
    .filter((line) => line.includes(" warn "));
  expect(warnings).toHaveLength(1);
  expect(warnings[0]).toMatch(
    new RegExp(`warn forward auth: http://127\\.0\\.0\\.1:${port}/check: cannot reach it: .*; refusing with 503$`),
  );
  expect(pinghub.stderr()).not.toContain("secret");
});
