// Several pinghub nodes on one machine, to try cluster mode without systemd: `bun run cluster` starts Redis
// (Debian's redis-server, persistence off), N nodes on UNIX sockets in a temporary directory, and nginx in front
// from examples/nginx-cluster.conf with only its paths, port and node list changed; prints the URLs; and stops
// everything on Ctrl-C (SIGINT) or SIGTERM, leaving nothing behind.
//
//   bun run cluster [--nodes 3] [--port 8080] [--redis redis://127.0.0.1:6379]

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { parseArgs } from "citty";
import { accepts, freePort } from "../test/support/ports.ts";
import { missingRedisServer, redisServerCommand } from "../test/support/redis-server.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NGINX = "/usr/sbin/nginx";

const args = parseArgs(process.argv.slice(2), {
  nodes: { type: "string", default: "3" },
  port: { type: "string", default: "8080" },
  redis: { type: "string" },
});
const nodeCount = Number(args.nodes);
const port = Number(args.port);
if (!Number.isInteger(nodeCount) || nodeCount < 1 || nodeCount > 64) fail("--nodes: from 1 to 64");
if (!Number.isInteger(port) || port < 1 || port > 65535) fail("--port: from 1 to 65535");
if (!existsSync(NGINX)) fail(`${NGINX} not found: apt-get install nginx`);
const missingRedis = args.redis === undefined ? missingRedisServer() : undefined;
if (missingRedis !== undefined) fail(missingRedis);

const dir = mkdtempSync(join(tmpdir(), "pinghub-cluster-"));
// nginx's workers run as www-data when started by root: they must reach the nodes' sockets in here.
chmodSync(dir, 0o755);
/** nginx and the nodes; Redis apart, as it stops last. */
const children: Subprocess[] = [];
let redis: Subprocess | undefined;
let stopping = false;

async function main(): Promise<void> {
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  const redisUrl = args.redis ?? (await startRedis());
  const nodes: Array<{ socket: string; metrics: string }> = [];
  for (let n = 1; n <= nodeCount; n++) nodes.push(await startNode(n, redisUrl));
  await startNginx(nodes.map((node) => node.socket));
  const base = `http://127.0.0.1:${port}/pinghub`;
  const lines = [
    `pinghub cluster: ${nodeCount} node${nodeCount === 1 ? "" : "s"} on ${redisUrl}, nginx on ${base}/`,
    `  the channel page:  ${base}/hello`,
    `  subscribe:         bun run pinghub watch ${base}/hello`,
    `  publish:           bun run pinghub publish ${base}/hello "hi"`,
    ...nodes.map((node, i) => `  node ${i + 1}:            ${node.socket}, metrics ${node.metrics}`),
    `  files and logs:    ${dir}`,
    "Ctrl-C stops everything.",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function startRedis(): Promise<string> {
  const redisPort = freePort();
  redis = spawn(redisServerCommand(redisPort), "redis");
  await waitFor(() => accepts(redisPort), "redis-server to listen");
  return `redis://127.0.0.1:${redisPort}`;
}

async function startNode(n: number, redisUrl: string): Promise<{ socket: string; metrics: string }> {
  const run = join(dir, `node${n}`);
  mkdirSync(run, { mode: 0o755 });
  const socket = join(run, "pinghub.sock");
  const mport = freePort();
  spawn(
    [
      ...[process.execPath, join(ROOT, "src/main.ts"), "--addr", socket, "--socket-mode", "0666"],
      ...["--mport", String(mport), "--log", join(run, "pinghub.log")],
    ],
    `node ${n}`,
    { PINGHUB_REDIS: redisUrl },
  );
  await waitFor(() => existsSync(socket), `node ${n} to serve`);
  return { socket, metrics: `http://127.0.0.1:${mport}/metrics` };
}

async function startNginx(sockets: string[]): Promise<void> {
  mkdirSync(join(dir, "nginx", "logs"), { recursive: true });
  mkdirSync(join(dir, "nginx", "var"), { recursive: true });
  let config = readFileSync(join(ROOT, "examples", "nginx-cluster.conf"), "utf8");
  // The example's node list, one line per node here, each keeping the example's server parameters.
  const serverLine = /^(\s*)server unix:\/run\/pinghub\d+\/pinghub\.sock([^;]*);\n/m;
  const first = serverLine.exec(config);
  if (first === null) fail("examples/nginx-cluster.conf has no `server unix:/run/pinghub1/pinghub.sock` line");
  const [, indent = "", parameters = ""] = first;
  const list = sockets.map((socket) => `${indent}server unix:${socket}${parameters};\n`).join("");
  config = config.replace(new RegExp(serverLine.source, "gm"), "").replace(/^(\s*)keepalive /m, `${list}$1keepalive `);
  for (const [from, to] of [
    ["/run/nginx.pid", join(dir, "nginx", "nginx.pid")],
    ["/var/log/nginx/", `${join(dir, "nginx", "logs")}/`],
    ["/var/lib/nginx/", `${join(dir, "nginx", "var")}/`],
    ["listen 80;", `listen 127.0.0.1:${port};`],
  ] as const) {
    if (!config.includes(from)) fail(`examples/nginx-cluster.conf no longer contains ${from}`);
    config = config.replaceAll(from, to);
  }
  const file = join(dir, "nginx", "nginx.conf");
  writeFileSync(file, config);
  spawn([NGINX, "-p", join(dir, "nginx"), "-c", file, "-g", "daemon off;"], "nginx");
  await waitFor(async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return true;
    } catch {
      return false;
    }
  }, `nginx to listen on 127.0.0.1:${port}`);
}

function spawn(command: string[], name: string, env: Record<string, string> = {}): Subprocess {
  const child = Bun.spawn(command, {
    env: { ...process.env, ...env },
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
    onExit(_, code) {
      if (!stopping) {
        process.stderr.write(`cluster: ${name} exited with ${code}; stopping everything\n`);
        void stop(1);
      }
    },
  });
  if (name !== "redis") children.push(child);
  return child;
}

async function stop(status: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // nginx and the nodes first, then Redis, so that no node is left refusing for want of it.
  for (const child of children) child.kill("SIGTERM");
  await Promise.all(children.map((child) => child.exited));
  redis?.kill("SIGTERM");
  await redis?.exited;
  rmSync(dir, { recursive: true, force: true });
  process.exit(status);
}

async function waitFor(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (!(await check())) {
    if (Date.now() > deadline) {
      process.stderr.write(`cluster: timed out waiting for ${what}\n`);
      await stop(1);
    }
    await Bun.sleep(20);
  }
}

function fail(line: string): never {
  process.stderr.write(`cluster: ${line}\n`);
  process.exit(2);
}

await main();
