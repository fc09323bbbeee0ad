// TLS to Redis as operators run it (issue 16): Debian's redis-server on --tls-port with certificates this test
// makes with openssl (a private CA, a server certificate for localhost and 127.0.0.1, a client certificate, and a
// second CA that signed none of them). rediss:// by name and by IP address, --redis-ca, --redis-cert and
// --redis-key, a wrong CA refused with one clear line, a client certificate required and given; and
// rediss+cluster://, a Redis Cluster of three masters on TLS ports only (`tls-cluster yes`).

import { afterAll, afterEach, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import calculateSlot from "cluster-key-slot";
import { post } from "./support/clients.ts";
import { type ClusterNode, clusterBed } from "./support/cluster-node.ts";
import { freePort, listening } from "./support/ports.ts";
import { skipWithoutRedis } from "./support/redis.ts";
import { REDIS_CLI } from "./support/redis-cluster.ts";
import { redisServerCommand } from "./support/redis-server.ts";
import { spawnPinghub } from "./support/server.ts";
import { until } from "./support/until.ts";

const OPENSSL = "/usr/bin/openssl";
const skip = skipWithoutRedis();
// A node that cannot reach Redis waits 3 s before it serves; two tests start such nodes.
setDefaultTimeout(20_000);

let dir = "";
let redis: Subprocess | undefined;
let tlsPort = 0;
const bed = clusterBed();
const pool = { open: bed.open };
const file = (name: string) => join(dir, name);

function openssl(...args: string[]): void {
  const run = Bun.spawnSync([OPENSSL, ...args], { cwd: dir, stdout: "ignore", stderr: "pipe" });
  if (run.exitCode !== 0) throw new Error(`openssl ${args[0]} failed: ${run.stderr.toString()}`);
}

/** Two CAs; the first signs Redis's certificate (for localhost and 127.0.0.1) and pinghub's client one. */
function makeCertificates(): void {
  for (const ca of ["ca", "wrong-ca"]) {
    openssl(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-days",
      "2",
      "-subj",
      `/CN=pinghub test ${ca}`,
      "-keyout",
      `${ca}.key`,
      "-out",
      `${ca}.pem`,
    );
  }
  const sign = (name: string, subject: string, san: string | undefined) => {
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", subject, "-keyout", `${name}.key`, "-out", `${name}.csr`);
    const extension = san === undefined ? [] : ["-extfile", `${name}.ext`];
    if (san !== undefined) writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\n`);
    openssl(
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-days",
      "2",
      "-out",
      `${name}.pem`,
      ...extension,
    );
  };
  sign("server", "/CN=localhost", "DNS:localhost,IP:127.0.0.1");
  sign("client", "/CN=pinghub", undefined);
}

/** redis-server with TLS only, requiring a client certificate signed by the CA (Redis's default). */
async function startTlsRedis(): Promise<void> {
  tlsPort = freePort();
  const certificates = ["--tls-cert-file", file("server.pem"), "--tls-key-file", file("server.key")];
  // Port 0: no plain TCP port at all, so that nothing reaches this Redis but through TLS.
  const command = redisServerCommand(0, [
    ...["--tls-port", String(tlsPort), ...certificates],
    ...["--tls-ca-cert-file", file("ca.pem")],
  ]);
  redis = Bun.spawn(command, { stdin: "ignore", stdout: "ignore", stderr: "ignore" });
  await listening(redis, tlsPort, "redis-server on its TLS port");
}

function node(host: string, args: string[]): Promise<ClusterNode> {
  return bed.node(`rediss://${host}:${tlsPort}`, args);
}

const withClientCertificate = () => ["--redis-cert", file("client.pem"), "--redis-key", file("client.key")];

beforeAll(async () => {
  if (skip) return;
  dir = mkdtempSync(join(tmpdir(), "pinghub-tls-"));
  makeCertificates();
  await startTlsRedis();
});

afterEach(() => bed.stopAll());

afterAll(async () => {
  redis?.kill("SIGKILL");
  await redis?.exited;
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe.skipIf(skip)("rediss:// with --redis-ca and a client certificate", () => {
  for (const host of ["localhost", "127.0.0.1"]) {
    test(`to ${host}: connects, checks the certificate, and carries messages between nodes`, async () => {
      const args = ["--redis-ca", file("ca.pem"), ...withClientCertificate()];
      const [a, b] = [await node(host, args), await node(host, args)];
      for (const n of [a, b]) expect(await n.health()).toEqual({ status: 200, text: "ok\n" });
      const s = await pool.open(b.ws("/tls"));
      const response = await post(`${a.url}/tls`, "over TLS");
      expect([response.status, response.headers.get("x-pinghub-nodes")]).toEqual([200, "1"]);
      expect(await s.received(1)).toEqual(["over TLS"]);
    });
  }

  test("a CA that did not sign Redis's certificate: refused, in one clear line", async () => {
    const n = await node("localhost", ["--redis-ca", file("wrong-ca.pem"), ...withClientCertificate()]);
    const health = await n.health();
    expect(health.status).toBe(503);
    expect(health.text).toMatch(/^redis at rediss:\/\/localhost:\d+\/0 unreachable: .*certificate.*\n$/);
    expect(health.text.split("\n").length).toBe(2);
    expect(n.lines(/warn cluster: redis at .* unreachable: .*certificate/)).toBe(1);
  });

  test("no client certificate where Redis requires one: refused", async () => {
    const n = await node("localhost", ["--redis-ca", file("ca.pem")]);
    expect((await n.health()).status).toBe(503);
    expect(n.lines(/warn cluster: redis at rediss:\/\/localhost:\d+\/0 unreachable/)).toBe(1);
  });

  test("rediss+cluster://: a Redis Cluster on TLS ports only carries messages between nodes, on every shard", async () => {
    const certificates = ["--tls-cert-file", file("server.pem"), "--tls-key-file", file("server.key")];
    const ports = [freePort(), freePort(), freePort()];
    const masters = ports.map((port) =>
      Bun.spawn(
        redisServerCommand(0, [
          ...["--tls-port", String(port), ...certificates, "--tls-ca-cert-file", file("ca.pem")],
          // The cluster bus and CLUSTER SLOTS on TLS too: the ports the cluster gives clients are its TLS ones.
          ...["--tls-cluster", "yes", "--cluster-enabled", "yes", "--dir", dir],
          ...["--cluster-config-file", file(`nodes-${port}.conf`)],
          // The bus on a free port of its own, not the port plus 10,000, which may be taken (redis-cluster.ts).
          ...["--cluster-port", String(freePort())],
        ]),
        { stdin: "ignore", stdout: "ignore", stderr: "ignore" },
      ),
    );
    try {
      await Promise.all(masters.map((m, i) => listening(m, ports[i] as number, "redis-server on its TLS port")));
      const cli = [REDIS_CLI, "--tls", "--cacert", file("ca.pem"), "--cert", file("client.pem")];
      const create = Bun.spawnSync(
        [...cli, "--key", file("client.key"), "--cluster", "create", ...ports.map((p) => `127.0.0.1:${p}`)].concat(
          "--cluster-yes",
        ),
        { stdout: "pipe", stderr: "pipe" },
      );
      expect(create.exitCode).toBe(0);
      // Every master agrees the cluster is whole before it is used.
      const clusterOk = (port: number) =>
        Bun.spawnSync([...cli, "--key", file("client.key"), "-p", String(port), "cluster", "info"], { stdout: "pipe" })
          .stdout.toString()
          .includes("cluster_state:ok");
      await until(() => ports.every(clusterOk), "cluster_state:ok on every master", 15_000);
      const url = `rediss+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(",")}`;
      const args = ["--redis-ca", file("ca.pem"), ...withClientCertificate()];
      const [a, b] = [await bed.node(url, args), await bed.node(url, args)];
      for (const n of [a, b]) {
        await until(async () => (await n.health()).status === 200, "the node reaches the TLS cluster", 15_000);
      }
      // Enough channels to land on each of the three masters' slots (redis-cli splits them in three even ranges).
      const channels = Array.from({ length: 12 }, (_, i) => `/tls-${i}`);
      const thirds = channels.map((c) => Math.min(2, Math.floor(calculateSlot(`pinghub:{${c}}`) / 5461)));
      expect(new Set(thirds).size).toBe(3);
      const subscribers = await Promise.all(channels.map((c) => pool.open(b.ws(c))));
      for (const [i, channel] of channels.entries()) {
        const response = await post(`${a.url}${channel}`, `over TLS ${i}`);
        expect([response.status, response.headers.get("x-pinghub-nodes")]).toEqual([200, "1"]);
        expect(await subscribers[i]?.received(1)).toEqual([`over TLS ${i}`]);
      }
    } finally {
      for (const m of masters) m.kill("SIGKILL");
      await Promise.all(masters.map((m) => m.exited));
    }
  });

  test("bad TLS flags are usage errors: one line, exit 2", async () => {
    const cases: Array<{ args: string[]; env: Record<string, string>; says: RegExp }> = [
      {
        args: ["--redis-ca", file("ca.pem")],
        env: { PINGHUB_REDIS: `redis://127.0.0.1:${tlsPort}` },
        says: /^pinghub: --redis-ca needs a rediss:\/\/ or rediss\+cluster:\/\/ --redis: it is for TLS to Redis/,
      },
      {
        args: ["--redis-cert", file("client.pem")],
        env: { PINGHUB_REDIS: `rediss://127.0.0.1:${tlsPort}` },
        says: /^pinghub: --redis-cert and --redis-key go together/,
      },
      {
        args: ["--redis-ca", file("missing.pem")],
        env: { PINGHUB_REDIS: `rediss://127.0.0.1:${tlsPort}` },
        says: /^pinghub: cannot read --redis-ca .*missing\.pem: ENOENT/,
      },
      {
        args: ["--redis-ca", file("server.ext")],
        env: { PINGHUB_REDIS: `rediss://127.0.0.1:${tlsPort}` },
        says: /^pinghub: bad --redis-ca .*server\.ext: not a PEM file/,
      },
    ];
    for (const { args, env, says } of cases) {
      const run = spawnPinghub(["--addr", "127.0.0.1:0", "--mport", "0", ...args], env);
      expect(await run.exited).toBe(2);
      const stderr = run.stderr();
      expect(stderr).toMatch(says);
      expect(stderr.trim().split("\n").length).toBe(1);
    }
  });
});
