// Several pinghub nodes on one machine, to try cluster mode without systemd: `bun run cluster` starts Redis
// (Debian's redis-server, persistence off), N nodes on UNIX sockets in a temporary directory, and nginx in front
// from examples/nginx-cluster.conf with only its paths, port and node list changed; prints the URLs; restarts a
// node that dies, however it ended, so that the README's "when a node dies" can be tried with `kill -9 PID`;
// and stops everything on Ctrl-C (SIGINT) or SIGTERM, leaving nothing behind.
//
//   bun run cluster [--nodes 3] [--port 8080] [--redis redis://127.0.0.1:6379] [NODE FLAGS, e.g. --history 100]
//
// Every other flag goes to every node as given, except those the script sets for each node itself.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { accepts, freePort } from "../test/support/ports.ts";
import { missingRedisServer, redisServerCommand } from "../test/support/redis-server.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const NGINX = "/usr/sbin/nginx";

/** The flags the script gives each node itself: one given here would fight with them. */
const SET_BY_SCRIPT = ["addr", "socket-mode", "mport", "log"];
/** A node that dies sooner than this after it started died "at once": its restarts back off, and are capped. */
const QUICK_DEATH_MS = 10_000;
/** The first restart after a quick death waits this long, each next one twice as long as the one before. */
const FIRST_BACKOFF_MS = 250;
/** So many quick deaths in a row and the node is broken, not unlucky: everything stops. */
const MAX_QUICK_DEATHS = 5;

const { args, nodeFlags } = splitArgs(process.argv.slice(2));
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
interface Node {
  n: number;
  socket: string;
  mport: number;
  proc: Subprocess;
  startedAt: number;
  /** Deaths in a row, each within QUICK_DEATH_MS of its start. */
  quickDeaths: number;
}
const nodes: Node[] = [];
let nginx: Subprocess | undefined;
let redis: Subprocess | undefined;
let redisUrl = "";
/** Until the URLs are printed, a node that dies is a failure to start, not something to restart. */
let started = false;
let stopping = false;

async function main(): Promise<void> {
  process.on("SIGINT", () => void stop(0));
  process.on("SIGTERM", () => void stop(0));
  redisUrl = args.redis ?? (await startRedis());
  for (let n = 1; n <= nodeCount; n++) {
    const node = await startNode(n);
    nodes.push(node);
    // It died instead of serving: its exit stops everything; start nothing more meanwhile.
    if (!serving(node)) return;
  }
  await startNginx(nodes.map((node) => node.socket));
  started = true;
  const base = `http://127.0.0.1:${port}/pinghub`;
  const lines = [
    `pinghub cluster: ${nodeCount} node${nodeCount === 1 ? "" : "s"} on ${redisUrl}, nginx on ${base}/`,
    ...(nodeFlags.length === 0 ? [] : [`  node flags:        ${nodeFlags.join(" ")}`]),
    `  the channel page:  ${base}/hello`,
    `  subscribe:         bun run pinghub watch ${base}/hello`,
    `  publish:           bun run pinghub publish ${base}/hello "hi"`,
    ...nodes.map(
      (node) =>
        `  node ${node.n}:${" ".repeat(Math.max(1, 13 - String(node.n).length))}${node.socket}, ` +
        `metrics http://127.0.0.1:${node.mport}/metrics, pid ${node.proc.pid}`,
    ),
    `  files and logs:    ${dir}`,
    "A node that dies is restarted (try kill -9 PID). Ctrl-C stops everything.",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
}

async function startRedis(): Promise<string> {
  const redisPort = freePort();
  redis = spawn(redisServerCommand(redisPort), "redis");
  await waitFor(() => accepts(redisPort), "redis-server to listen");
  return `redis://127.0.0.1:${redisPort}`;
}

async function startNode(n: number): Promise<Node> {
  const run = join(dir, `node${n}`);
  mkdirSync(run, { mode: 0o755 });
  const socket = join(run, "pinghub.sock");
  const mport = freePort();
  const node: Node = {
    n,
    socket,
    mport,
    proc: spawnNode(n, socket, mport, (code, signal) => void died(node, code, signal)),
    startedAt: Date.now(),
    quickDeaths: 0,
  };
  await untilServing(node);
  return node;
}

/** The node's process, on its socket, metrics port and log: the same ones each time it is started. */
function spawnNode(
  n: number,
  socket: string,
  mport: number,
  onExit: (code: number | null, signal: number | string | null) => void,
): Subprocess {
  return Bun.spawn(
    [
      ...[process.execPath, join(ROOT, "src/main.ts"), "--addr", socket, "--socket-mode", "0666"],
      ...["--mport", String(mport), "--log", join(dir, `node${n}`, "pinghub.log"), ...nodeFlags],
    ],
    {
      env: { ...process.env, PINGHUB_REDIS: redisUrl },
      stdin: "ignore",
      stdout: "ignore",
      stderr: "inherit",
      onExit: (_, code, signal) => onExit(code, signal),
    },
  );
}

/** Waits until the node answers on its socket, or its process is gone. */
async function untilServing(node: Node): Promise<void> {
  // A killed node leaves its socket file behind, which the new process replaces: the file being there says
  // nothing, an answer on it does.
  const proc = node.proc;
  await waitFor(async () => {
    if (proc.exitCode !== null || proc.signalCode !== null) return true;
    try {
      await (await fetch("http://localhost/", { unix: node.socket })).arrayBuffer();
      return true;
    } catch {
      return false;
    }
  }, `node ${node.n} to serve`);
}

/** Whether the node's process is still there (after runNode: it answered on its socket). */
function serving(node: Node): boolean {
  return node.proc.exitCode === null && node.proc.signalCode === null;
}

async function died(node: Node, code: number | null, signal: number | string | null): Promise<void> {
  if (stopping) return;
  const how = death(code, signal);
  if (!started) {
    process.stderr.write(`cluster: node ${node.n} ${how} while starting; stopping everything\n`);
    return stop(1);
  }
  const lived = Date.now() - node.startedAt;
  node.quickDeaths = lived < QUICK_DEATH_MS ? node.quickDeaths + 1 : 0;
  if (node.quickDeaths >= MAX_QUICK_DEATHS) {
    process.stderr.write(
      `cluster: node ${node.n} ${how}, its ${MAX_QUICK_DEATHS}th death in a row within ` +
        `${QUICK_DEATH_MS / 1000} s of starting; stopping everything\n`,
    );
    return stop(1);
  }
  const delayMs = node.quickDeaths === 0 ? 0 : FIRST_BACKOFF_MS * 2 ** (node.quickDeaths - 1);
  process.stderr.write(`cluster: node ${node.n} ${how}; restarting it in ${delayMs} ms\n`);
  await Bun.sleep(delayMs);
  if (stopping) return;
  node.proc = spawnNode(node.n, node.socket, node.mport, (code, signal) => void died(node, code, signal));
  node.startedAt = Date.now();
  await untilServing(node);
  if (!stopping && serving(node)) {
    process.stderr.write(`cluster: node ${node.n} serves again, pid ${node.proc.pid}\n`);
  }
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
  nginx = spawn([NGINX, "-p", join(dir, "nginx"), "-c", file, "-g", "daemon off;"], "nginx");
  await waitFor(async () => {
    try {
      await fetch(`http://127.0.0.1:${port}/`);
      return true;
    } catch {
      return false;
    }
  }, `nginx to listen on 127.0.0.1:${port}`);
}

/** Redis or nginx: either dying leaves nothing to try, so everything stops. */
function spawn(command: string[], name: string): Subprocess {
  return Bun.spawn(command, {
    stdin: "ignore",
    stdout: "ignore",
    stderr: "inherit",
    onExit(_, code, signal) {
      if (!stopping) {
        process.stderr.write(`cluster: ${name} ${death(code, signal)}; stopping everything\n`);
        void stop(1);
      }
    },
  });
}

/** How a child ended, for the line saying so: its exit status, or the signal by name. */
function death(code: number | null, signal: number | string | null): string {
  if (signal === null) return `exited with status ${code}`;
  const name =
    typeof signal === "string" ? signal : Object.entries(constants.signals).find(([, n]) => n === signal)?.[0];
  return `was killed by ${name ?? `signal ${signal}`}`;
}

async function stop(status: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  // nginx and the nodes first, then Redis, so that no node is left refusing for want of it.
  const children = [nginx, ...nodes.map((node) => node.proc)].filter((child) => child !== undefined);
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

/**
 * The script's own flags (`--nodes N`, `--port N`, `--redis URL`, or `--name=value`), and every other argument,
 * in order, for the nodes.
 */
function splitArgs(argv: string[]): { args: { nodes: string; port: string; redis?: string }; nodeFlags: string[] } {
  const own: Record<string, string> = { nodes: "3", port: "8080" };
  const nodeFlags: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    const match = /^--?(nodes|port|redis)(?:=(.*))?$/s.exec(arg);
    if (match === null) {
      const name = /^--?([a-z-]+)/.exec(arg)?.[1];
      if (name !== undefined && SET_BY_SCRIPT.includes(name)) fail(`--${name} is set by the script for each node`);
      nodeFlags.push(arg);
      continue;
    }
    const [, name = "", inline] = match;
    const value = inline ?? argv[++i];
    if (value === undefined) fail(`--${name} needs a value`);
    own[name] = value;
  }
  return { args: { nodes: own.nodes ?? "3", port: own.port ?? "8080", redis: own.redis }, nodeFlags };
}

function fail(line: string): never {
  process.stderr.write(`cluster: ${line}\n`);
  process.exit(2);
}

await main();
