// The command line: --help, bad values (exit 2, one line on stderr, nothing bound), the Go-style single-dash
// forms, environment variables and their precedence, listen addresses, and stopping on a signal. Real
// `bun src/main.ts` processes where the process matters, parseCommandLine as a function where it does not.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, lstatSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { TCPSocketListener } from "bun";
import pkg from "../package.json" with { type: "json" };
import { parseCommandLine } from "../src/cli.ts";
import { type Config, envName, FLAG_NAMES, SETTINGS, type Setting } from "../src/config.ts";
import { subscribe } from "./support/clients.ts";
import { type PinghubProcess, ROOT, spawnPinghub, spawnServing } from "./support/server.ts";

/**
 * Some of the defaults, as values: what the defaults in config.ts's table must parse to. The table itself gives
 * --help's defaults, so a new setting needs no line here.
 */
const SOME_DEFAULTS: Partial<Config> = {
  listen: { kind: "tcp", hostname: "127.0.0.1", port: 8081 },
  metrics: { kind: "tcp", hostname: "127.0.0.1", port: 8082 },
  origin: undefined,
  logFile: undefined,
  logLevel: "info",
  maxMessageSize: 65536,
  maxBacklog: 1048576,
  idleTimeout: 30,
  socketMode: 0o660,
  shutdownTimeout: 10,
  redis: undefined,
  redisPrefix: "pinghub:",
  redisCa: undefined,
  redisCert: undefined,
  redisKey: undefined,
  history: 0,
  historyTtl: 300,
  historyMemory: 67108864,
  workers: 1,
};

// ---- helpers

const running: PinghubProcess[] = [];

/** spawnPinghub, remembered so that a failing test does not leave a server behind. */
function spawn(args: string[], env: Record<string, string> = {}): PinghubProcess {
  const pinghub = spawnPinghub(args, env);
  running.push(pinghub);
  return pinghub;
}

async function serving(args: string[] = [], env: Record<string, string> = {}) {
  const pinghub = await spawnServing(args, env);
  running.push(pinghub);
  return pinghub;
}

afterEach(() => {
  for (const pinghub of running.splice(0)) if (pinghub.proc.exitCode === null) pinghub.proc.kill("SIGKILL");
});

/**
 * Runs a pinghub that is expected to exit by itself (as spawnPinghub does, but reading stdout and stderr to
 * their end, so "exactly one line" is checked on all of stderr). Killed if it is still running after 10 s.
 */
async function runToExit(args: string[], env: Record<string, string> = {}) {
  const proc = Bun.spawn([process.execPath, "src/main.ts", ...args], {
    cwd: ROOT,
    env: { ...process.env, NO_COLOR: "1", ...env },
    stdin: "ignore",
    stdout: "pipe",
    stderr: "pipe",
  });
  const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
  const [status, stdout, stderr] = await Promise.all([
    proc.exited,
    new Response(proc.stdout).text(),
    new Response(proc.stderr).text(),
  ]);
  clearTimeout(timer);
  return { status, stdout, stderr };
}

/** A listener of our own on a free loopback port: pinghub cannot bind the port while we hold it. */
function holdPort(): TCPSocketListener {
  return Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
}

async function parseOk(argv: string[], env: Record<string, string | undefined> = {}): Promise<Config> {
  const result = await parseCommandLine(argv, env);
  if (result.kind !== "run") throw new Error(`expected a config, got ${JSON.stringify(result)}`);
  return result.config;
}

/** The URL in pinghub's "started … serving URL, metrics …" line. */
async function servingUrl(pinghub: PinghubProcess): Promise<string> {
  const [, url = ""] = await pinghub.waitForStderr(/serving ([^\s,]+)/);
  return url;
}

/** Stops pinghub with a signal and expects exit 0. */
async function stopWithSignal(pinghub: PinghubProcess, signal: "SIGTERM" | "SIGINT" = "SIGTERM") {
  pinghub.proc.kill(signal);
  expect(await pinghub.exited).toBe(0);
}

const portOf = (url: string) => Number(new URL(url).port);

/** The URL in pinghub's start line after "metrics": `http://HOST:PORT`, or "off". */
async function metricsUrl(pinghub: PinghubProcess): Promise<string> {
  const [, url = ""] = await pinghub.waitForStderr(/started: .*, metrics (\S+)$/m);
  return url;
}

/** The TCP ports a process listens on, read from its descriptors and the kernel's socket tables. */
function listeningPorts(pid: number): number[] {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // A descriptor closed while the directory was read.
    }
  }
  const ports: number[] = [];
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    for (const line of readFileSync(table, "utf8").trim().split("\n").slice(1)) {
      // sl local_address rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode
      const [, local = "", , state, , , , , , inode = ""] = line.trim().split(/\s+/);
      if (state === "0A" && inodes.has(inode)) ports.push(Number.parseInt(local.split(":")[1] ?? "", 16));
    }
  }
  return ports.sort((a, b) => a - b);
}

let tempDir = "";
beforeAll(() => {
  tempDir = mkdtempSync(join(tmpdir(), "pinghub-cli-"));
});
afterAll(() => {
  rmSync(tempDir, { recursive: true, force: true });
});

// ---- --help and --version

describe("the table of settings", () => {
  test("every setting has a key of its own, a default its parser takes, and a flag name in lower case", () => {
    const keys = FLAG_NAMES.map((flag) => SETTINGS[flag].key);
    expect(new Set(keys).size).toBe(keys.length);
    for (const flag of FLAG_NAMES) {
      const setting: Setting = SETTINGS[flag];
      expect(flag).toMatch(/^[a-z][a-z-]*[a-z]$/);
      if (setting.default !== undefined) expect(() => setting.parse(setting.default ?? "", `--${flag}`)).not.toThrow();
    }
  });
});

describe("--help", () => {
  test("lists every flag with its environment variable and default, on stdout, and exits 0", async () => {
    const { status, stdout, stderr } = await runToExit(["--help"]);
    expect(status).toBe(0);
    expect(stderr).toBe("");
    expect(stdout).not.toContain("\x1b"); // NO_COLOR is honoured
    const lines = stdout.split("\n");
    // Readable in a 100-column terminal: no line wraps.
    for (const line of lines) expect(line.length, line).toBeLessThanOrEqual(100);
    for (const flag of FLAG_NAMES) {
      const setting: Setting = SETTINGS[flag];
      const line = lines.find((l) => l.includes(`--${flag}=`));
      expect(line, `--${flag} is missing from --help`).toBeDefined();
      // A row may name its own variable (--jwt-key's PINGHUB_JWT_KEY_FILE, which holds a path, not the key).
      expect(line).toContain(`[env ${setting.env ?? `PINGHUB_${flag.toUpperCase().replaceAll("-", "_")}`}]`);
      if (setting.default === undefined) expect(line).not.toContain("(default");
      else expect(line).toContain(`(default: ${setting.default})`);
    }
    // The usage names the three commands.
    for (const command of [
      "pinghub [serve] [FLAGS]",
      "pinghub watch URL [--reconnect]",
      "pinghub publish URL [MESSAGE]",
    ]) {
      expect(stdout).toContain(command);
    }
  });

  test("into a pipe, with NO_COLOR unset or set to any value, --help is plain text", async () => {
    // CI and TEST also turn citty's colours off, so they are cleared to see what a user's pipe gets.
    const quiet = { CI: "", TEST: "", TERM: "xterm-256color" };
    for (const noColor of ["", "true"]) {
      const { status, stdout } = await runToExit(["--help"], { ...quiet, NO_COLOR: noColor });
      expect(status).toBe(0);
      expect(stdout).toContain("--redis=");
      expect(stdout).not.toContain("\x1b");
    }
  });

  test("-h and the single-dash -help print the same", async () => {
    const long = await runToExit(["--help"]);
    for (const form of ["-h", "-help"]) {
      const { status, stdout } = await runToExit([form]);
      expect(status).toBe(0);
      expect(stdout).toBe(long.stdout);
    }
  });

  test("--version prints the package version and exits 0", async () => {
    const { status, stdout, stderr } = await runToExit(["--version"]);
    expect(status).toBe(0);
    expect(stdout).toBe(`${pkg.version}\n`);
    expect(stderr).toBe("");
  });

  // Found by this suite: "-version" was once read by citty as the short flags -v -e -r -s -i -o -n and the
  // process started serving instead of printing the version.
  test("the single-dash -version prints the version, as -help prints the help", async () => {
    expect(await parseCommandLine(["-version"], {})).toEqual({ kind: "exit", status: 0, stdout: `${pkg.version}\n` });
    const help = await parseCommandLine(["-help"], {});
    expect(help.kind === "exit" && help.stdout).toContain("--max-message-size");
  });
});

// ---- bad values

interface BadCase {
  args: string[];
  env?: Record<string, string>;
  /** The stderr line must match this. */
  says: RegExp;
}

const BAD_ADDR: BadCase[] = [
  { args: ["--addr", "nonsense"], says: /--addr "nonsense"/ },
  { args: ["--addr", "host:99999"], says: /--addr "host:99999".*port/ },
  { args: ["--addr", "::1:80"], says: /--addr "::1:80".*brackets/ },
  { args: ["--addr", "127.0.0.1:65536"], says: /--addr "127.0.0.1:65536".*port/ },
  { args: ["--addr", "127.0.0.1:-1"], says: /--addr "127.0.0.1:-1"/ },
  { args: ["--addr", "127.0.0.1:http"], says: /--addr "127.0.0.1:http"/ },
  { args: ["--addr", "[::1]"], says: /--addr "\[::1\]"/ },
  { args: ["--addr", "[nothex]:80"], says: /--addr "\[nothex\]:80"/ },
  { args: ["--addr", "relative/pinghub.sock"], says: /--addr "relative\/pinghub.sock"/ },
  { args: ["--addr"], says: /--addr needs a value/ },
  { args: ["-addr", "nonsense"], says: /--addr "nonsense"/ },
  { args: ["-addr=host:99999"], says: /--addr "host:99999"/ },
  { args: [], env: { PINGHUB_ADDR: "nonsense" }, says: /PINGHUB_ADDR "nonsense"/ },
];

const BAD_OTHER: BadCase[] = [
  { args: ["--mport", "65536"], says: /--mport "65536".*port/ },
  { args: ["--mport", "metrics"], says: /--mport "metrics": expected a port, host:port.* or off/ },
  { args: ["--mport", "OFF"], says: /--mport "OFF"/ },
  { args: ["--mport", "-1"], says: /--mport "-1"/ },
  { args: ["--mport", "127.0.0.1:99999"], says: /--mport "127.0.0.1:99999".*port/ },
  { args: ["--mport", "127.0.0.1:"], says: /--mport "127.0.0.1:".*port/ },
  { args: ["--mport", "::1:8082"], says: /--mport "::1:8082".*brackets/ },
  { args: ["--mport", "[nothex]:8082"], says: /--mport "\[nothex\]:8082"/ },
  { args: ["--mport", "/run/pinghub/metrics.sock"], says: /--mport "\/run\/pinghub\/metrics.sock"/ },
  { args: ["--mport"], says: /--mport needs a value/ },
  { args: ["-mport=of"], says: /--mport "of"/ },
  { args: [], env: { PINGHUB_MPORT: "0.0.0.0" }, says: /^pinghub: bad PINGHUB_MPORT "0.0.0.0": expected/ },
  { args: ["--log", "pinghub.log"], says: /--log "pinghub.log".*absolute/ },
  { args: ["--log", "./pinghub.log"], says: /--log "\.\/pinghub.log".*absolute/ },
  { args: ["--origin", "https://x.com/path"], says: /--origin "https:\/\/x.com\/path".*scheme:\/\/host\[:port\]/ },
  { args: ["--origin", "example.com"], says: /--origin "example.com".*scheme:\/\/host\[:port\]/ },
  { args: ["--origin", "https://x.com?q=1"], says: /--origin "https:\/\/x.com\?q=1"/ },
  { args: ["--origin", "https://user@x.com"], says: /--origin "https:\/\/user@x.com"/ },
  { args: ["--log-level", "loud"], says: /--log-level "loud"/ },
  { args: ["--max-message-size", "0"], says: /--max-message-size "0".*whole number/ },
  { args: ["--max-message-size", "-5"], says: /--max-message-size "-5".*whole number/ },
  { args: ["--max-message-size=-5"], says: /--max-message-size "-5".*whole number/ },
  { args: ["--max-message-size", "1.5"], says: /--max-message-size "1.5".*whole number/ },
  { args: ["--max-message-size", "abc"], says: /--max-message-size "abc".*whole number/ },
  { args: ["--max-message-size", "1e3"], says: /--max-message-size "1e3".*whole number/ },
  { args: ["--max-message-size"], says: /--max-message-size needs a value/ },
  { args: ["-max-message-size=0"], says: /--max-message-size "0"/ },
  { args: ["--max-backlog", "0"], says: /--max-backlog "0".*whole number/ },
  { args: ["--idle-timeout", "0"], says: /--idle-timeout "0".*whole number/ },
  { args: ["--idle-timeout", "961"], says: /--idle-timeout "961"/ },
  { args: ["--socket-mode", "999"], says: /--socket-mode "999".*octal/ },
  { args: ["--shutdown-timeout", "0"], says: /--shutdown-timeout "0".*whole number/ },
  { args: ["--nope"], says: /unknown flag --nope/ },
  { args: ["--nope=1"], says: /unknown flag --nope\b/ },
  { args: ["-nope"], says: /unknown flag -nope/ },
  { args: ["--Addr", "127.0.0.1:0"], says: /unknown flag --Addr/ },
  { args: ["serve", "extra"], says: /unexpected argument "extra" \(the commands are serve, watch, publish\)/ },
  { args: ["nonsense"], says: /unexpected argument "nonsense"/ },
  { args: ["constructor"], says: /unexpected argument "constructor"/ },
  { args: ["--toString"], says: /unknown flag --toString/ },
  { args: ["serve", "--reconnect"], says: /--reconnect is for pinghub watch/ },
  { args: [], env: { PINGHUB_MAX_MESSAGE_SIZE: "0" }, says: /PINGHUB_MAX_MESSAGE_SIZE "0"/ },
  { args: [], env: { PINGHUB_ORIGIN: "example.com" }, says: /PINGHUB_ORIGIN "example.com"/ },
  { args: [], env: { PINGHUB_MPORT: "abc" }, says: /^pinghub: bad PINGHUB_MPORT "abc": expected a port,/ },
  { args: ["--origin", "https://*example.com"], says: /--origin "https:\/\/\*example.com"/ },
  { args: ["--origin", "https://*.com"], says: /--origin "https:\/\/\*.com"/ },
  { args: ["--origin", "https://a.*.example.com"], says: /--origin "https:\/\/a.\*.example.com"/ },
  { args: ["--origin", ","], says: /--origin ",": no origin in it/ },
  { args: ["--addr", "unix:relative.sock"], says: /--addr "unix:relative.sock"/ },
  { args: ["--reconnect"], says: /--reconnect is for pinghub watch/ },
  { args: ["--redis", "localhost:6379"], says: /--redis: not a URL/ },
  { args: ["--redis", "http://localhost:6379"], says: /--redis: unknown scheme "http"/ },
  { args: ["--redis", "redis://"], says: /--redis: (no host|the URL does not parse)/ },
  { args: ["--redis", "redis://localhost:99999"], says: /--redis: the URL does not parse/ },
  { args: ["--redis", "redis://localhost/abc"], says: /--redis: the path must be a database number/ },
  { args: ["--redis", "redis://localhost/0?x=1"], says: /--redis: no query/ },
  { args: ["--redis", "relative/redis.sock"], says: /--redis: not a URL/ },
  { args: ["-redis", "nonsense"], says: /--redis: not a URL/ },
  { args: ["--redis"], says: /--redis needs a value/ },
  { args: [], env: { PINGHUB_REDIS: "tcp://x" }, says: /PINGHUB_REDIS: unknown scheme "tcp"/ },
  { args: ["--history", "-1"], says: /--history "-1".*0 or more/ },
  { args: ["--history", "ten"], says: /--history "ten"/ },
  { args: ["--history-ttl", "0"], says: /--history-ttl "0".*whole number/ },
  { args: ["--history-memory", "1.5"], says: /--history-memory "1.5".*whole number/ },
];

/** Bad --redis values that hold a password: the line names the problem, never the password. */
const BAD_REDIS_WITH_PASSWORD: BadCase[] = [
  { args: ["--redis", "redis://:hunter2secret@localhost:6379/x"], says: /--redis: the path must be a database/ },
  { args: ["--redis", "redis://u:hunter2secret@localhost:6379/1?db=2"], says: /--redis: no query/ },
  { args: [], env: { PINGHUB_REDIS: "redis://:hunter2secret@[::1:6379" }, says: /PINGHUB_REDIS: the URL does not/ },
  { args: [], env: { PINGHUB_HISTORY: "5", PINGHUB_HISTORY_TTL: "x" }, says: /PINGHUB_HISTORY_TTL "x"/ },
];

function expectUsageError(result: { status: number; stdout: string; stderr: string }, says: RegExp) {
  expect(result.status).toBe(2);
  expect(result.stdout).toBe("");
  // Exactly one line.
  expect(result.stderr).toMatch(/^[^\n]+\n$/);
  expect(result.stderr).toMatch(says);
}

describe("a bad value exits 2 with one line on stderr, before anything is bound", () => {
  // Ports we hold: had pinghub tried to bind one before checking all its values, that would fail with exit 1
  // ("cannot serve") rather than report the bad value with exit 2.
  let addrPort: TCPSocketListener;
  let metricsPort: TCPSocketListener;
  beforeAll(() => {
    addrPort = holdPort();
    metricsPort = holdPort();
  });
  afterAll(() => {
    addrPort.stop(true);
    metricsPort.stop(true);
  });

  const mentions = (c: BadCase, flag: string) =>
    c.args.some((a) => a.replace(/^--?/, "").split("=")[0] === flag) || c.env?.[envName(flag)] !== undefined;
  const named = (c: BadCase) =>
    [...c.args, ...Object.entries(c.env ?? {}).map(([k, v]) => `${k}=${v}`)].map((a) => JSON.stringify(a)).join(" ");

  /**
   * The case's own flags go last (a flag missing its value must be the last argument), after a metrics port
   * we hold and an address that would show if bound: a UNIX socket, which leaves a file behind.
   */
  function badRun(c: BadCase, socket: string) {
    const before = [
      ...(mentions(c, "addr") ? [] : ["--addr", socket]),
      ...(mentions(c, "mport") ? [] : ["--mport", String(metricsPort.port)]),
    ];
    return runToExit([...before, ...c.args], c.env);
  }

  [...BAD_ADDR, ...BAD_OTHER].forEach((c, i) => {
    test(named(c), async () => {
      const socket = join(tempDir, `bad-${i}.sock`);
      expectUsageError(await badRun(c, socket), c.says);
      expect(existsSync(socket)).toBe(false);
    });
  });

  BAD_REDIS_WITH_PASSWORD.forEach((c, i) => {
    test(`a bad --redis with a password: ${c.says}, and the password is not shown`, async () => {
      const socket = join(tempDir, `bad-redis-${i}.sock`);
      const result = await badRun(c, socket);
      expectUsageError(result, c.says);
      expect(result.stderr).not.toContain("hunter2secret");
      expect(existsSync(socket)).toBe(false);
    });
  });

  test("the controls: good values do bind, so the held ports and the socket file above mean something", async () => {
    const addr = `127.0.0.1:${addrPort.port}`;
    const heldAddr = await runToExit(["--addr", addr, "--mport", "0"]);
    expect(heldAddr.status).toBe(1);
    expect(heldAddr.stderr).toContain(`cannot serve on ${addr}`);
    const heldMetrics = await runToExit(["--addr", "127.0.0.1:0", "--mport", String(metricsPort.port)]);
    expect(heldMetrics.status).toBe(1);
    expect(heldMetrics.stderr).toContain(String(metricsPort.port));
    // And with a bad value as well, the port is never tried: a usage error, not a failure to bind.
    expectUsageError(
      await runToExit(["--addr", addr, "--mport", String(metricsPort.port), "--max-message-size", "0"]),
      /--max-message-size "0"/,
    );
  });

  test("the control: good values on a UNIX socket bind it, and SIGTERM removes it", async () => {
    const socket = join(tempDir, "good.sock");
    const pinghub = spawn(["--addr", socket, "--mport", "0", "--socket-mode", "0600"]);
    expect(await servingUrl(pinghub)).toBe(`unix:${socket}`);
    expect(lstatSync(socket).isSocket()).toBe(true);
    expect(lstatSync(socket).mode & 0o777).toBe(0o600);
    expect((await fetch("http://localhost/control", { unix: socket })).status).toBe(200);
    await stopWithSignal(pinghub);
    expect(existsSync(socket)).toBe(false);
  });

  test("every bad value fails the same way through parseCommandLine", async () => {
    for (const c of [...BAD_ADDR, ...BAD_OTHER]) {
      const result = await parseCommandLine(c.args, c.env ?? {});
      expect(result.kind).toBe("exit");
      if (result.kind !== "exit") continue;
      expect(result.status).toBe(2);
      expect(result.stdout).toBeUndefined();
      expect(result.stderr).toMatch(/^[^\n]+\n$/);
      expect(result.stderr).toMatch(c.says);
    }
  });
});

// ---- flags, environment variables and defaults, as a function

describe("parseCommandLine", () => {
  test("no flags and no environment: the defaults", async () => {
    expect(await parseOk([], {})).toMatchObject(SOME_DEFAULTS);
  });

  test("serve is the default command: with or without its name, the same settings", async () => {
    const argv = ["--addr", "127.0.0.1:0", "--max-backlog", "7"];
    expect(await parseOk(["serve", ...argv])).toEqual(await parseOk(argv));
    expect(await parseOk([...argv, "serve"])).toEqual(await parseOk(argv));
  });

  const env = {
    PINGHUB_ADDR: "[::1]:9000",
    PINGHUB_MPORT: "9001",
    PINGHUB_ORIGIN: "https://example.com",
    PINGHUB_LOG: "/var/log/pinghub-env.log",
    PINGHUB_LOG_LEVEL: "debug",
    PINGHUB_MAX_MESSAGE_SIZE: "100",
    PINGHUB_MAX_BACKLOG: "2000",
    PINGHUB_IDLE_TIMEOUT: "60",
    PINGHUB_SOCKET_MODE: "0600",
    PINGHUB_SHUTDOWN_TIMEOUT: "20",
    PINGHUB_REDIS: "redis://:env-secret@10.0.0.1:6380/2",
    PINGHUB_REDIS_PREFIX: "env:",
    PINGHUB_HISTORY: "10",
    PINGHUB_HISTORY_TTL: "60",
    PINGHUB_HISTORY_MEMORY: "1000000",
  };
  // Partial: a setting added to the table needs no line here (though a test of its own).
  const fromEnv: Partial<Config> = {
    listen: { kind: "tcp", hostname: "::1", port: 9000 },
    metrics: { kind: "tcp", hostname: "127.0.0.1", port: 9001 },
    origin: ["https://example.com"],
    logFile: "/var/log/pinghub-env.log",
    logLevel: "debug",
    maxMessageSize: 100,
    maxBacklog: 2000,
    idleTimeout: 60,
    socketMode: 0o600,
    shutdownTimeout: 20,
    redis: {
      kind: "tcp",
      host: "10.0.0.1",
      port: 6380,
      username: undefined,
      password: "env-secret",
      db: 2,
      tls: false,
      display: "redis://:***@10.0.0.1:6380/2",
    },
    redisPrefix: "env:",
    history: 10,
    historyTtl: 60,
    historyMemory: 1000000,
    workers: 1,
  };
  const flags: Record<string, string> = {
    addr: "/run/pinghub/pinghub.sock",
    mport: "off",
    origin: "http://localhost:3000",
    log: "/var/log/pinghub-flag.log",
    "log-level": "warn",
    "max-message-size": "200",
    "max-backlog": "4000",
    "idle-timeout": "90",
    "socket-mode": "0666",
    "shutdown-timeout": "5",
    redis: "/run/redis/redis-server.sock",
    "redis-prefix": "flag:",
    history: "100",
    "history-ttl": "30",
    "history-memory": "2000000",
  };
  const fromFlags: Partial<Config> = {
    listen: { kind: "unix", path: "/run/pinghub/pinghub.sock" },
    metrics: undefined,
    origin: ["http://localhost:3000"],
    logFile: "/var/log/pinghub-flag.log",
    logLevel: "warn",
    maxMessageSize: 200,
    maxBacklog: 4000,
    idleTimeout: 90,
    socketMode: 0o666,
    shutdownTimeout: 5,
    redis: { kind: "unix", path: "/run/redis/redis-server.sock", display: "/run/redis/redis-server.sock" },
    redisPrefix: "flag:",
    history: 100,
    historyTtl: 30,
    historyMemory: 2000000,
    workers: 1,
  };

  test("every PINGHUB_ variable is used", async () => {
    expect(await parseOk([], env)).toMatchObject(fromEnv);
  });

  const forms: Record<string, (name: string, value: string) => string[]> = {
    "--flag value": (name, value) => [`--${name}`, value],
    "--flag=value": (name, value) => [`--${name}=${value}`],
    "-flag value": (name, value) => [`-${name}`, value],
    "-flag=value": (name, value) => [`-${name}=${value}`],
  };
  for (const [form, write] of Object.entries(forms)) {
    test(`every flag, written ${form}, beats its variable`, async () => {
      const argv = Object.entries(flags).flatMap(([name, value]) => write(name, value));
      expect(await parseOk(argv, env)).toMatchObject(fromFlags);
    });
  }

  test("a flag beats its variable one at a time, and the other variables still apply", async () => {
    expect(await parseOk(["--max-message-size", "7"], env)).toMatchObject({ ...fromEnv, maxMessageSize: 7 });
    expect(await parseOk(["-addr", "127.0.0.1:1"], env)).toMatchObject({
      ...fromEnv,
      listen: { kind: "tcp", hostname: "127.0.0.1", port: 1 },
    });
  });

  test("a flag hides a bad variable: the variable is not even checked", async () => {
    const config = await parseOk(["--addr", "127.0.0.1:0", "--max-message-size", "10"], {
      PINGHUB_ADDR: "nonsense",
      PINGHUB_MAX_MESSAGE_SIZE: "0",
    });
    expect(config.listen).toEqual({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
    expect(config.maxMessageSize).toBe(10);
  });

  test("address forms", async () => {
    const listen = async (addr: string) => (await parseOk(["--addr", addr])).listen;
    expect(await listen(":8081")).toEqual({ kind: "tcp", hostname: "::", port: 8081 });
    expect(await listen("[::1]:0")).toEqual({ kind: "tcp", hostname: "::1", port: 0 });
    expect(await listen("localhost:80")).toEqual({ kind: "tcp", hostname: "localhost", port: 80 });
    expect(await listen("10.0.0.1:65535")).toEqual({ kind: "tcp", hostname: "10.0.0.1", port: 65535 });
    expect(await listen("/tmp/pinghub.sock")).toEqual({ kind: "unix", path: "/tmp/pinghub.sock" });
  });

  test("metrics address forms: a port on 127.0.0.1, 0 for any free one, host:port, [ipv6]:port, or off", async () => {
    const metrics = async (mport: string) => (await parseOk(["--mport", mport])).metrics;
    expect(await metrics("9100")).toEqual({ kind: "tcp", hostname: "127.0.0.1", port: 9100 });
    expect(await metrics("0")).toEqual({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
    expect(await metrics("0.0.0.0:8082")).toEqual({ kind: "tcp", hostname: "0.0.0.0", port: 8082 });
    expect(await metrics("127.0.0.1:0")).toEqual({ kind: "tcp", hostname: "127.0.0.1", port: 0 });
    expect(await metrics("[::1]:9100")).toEqual({ kind: "tcp", hostname: "::1", port: 9100 });
    expect(await metrics(":9100")).toEqual({ kind: "tcp", hostname: "::", port: 9100 });
    expect(await metrics("metrics.internal:9100")).toEqual({ kind: "tcp", hostname: "metrics.internal", port: 9100 });
    expect(await metrics("off")).toBeUndefined();
    expect((await parseOk([], { PINGHUB_MPORT: "off" })).metrics).toBeUndefined();
    expect((await parseOk(["-mport=off"], { PINGHUB_MPORT: "9100" })).metrics).toBeUndefined();
  });

  test("an origin is kept in the form browsers send it", async () => {
    expect((await parseOk(["--origin", "HTTPS://Example.COM:443"])).origin).toEqual(["https://example.com"]);
    expect((await parseOk(["--origin", "http://localhost:3000/"])).origin).toEqual(["http://localhost:3000"]);
  });

  test("several origins: the flag repeated, commas in one value, or commas in PINGHUB_ORIGIN", async () => {
    const both = ["https://example.com", "https://www.example.com"];
    expect((await parseOk(["--origin", both[0] ?? "", "--origin", both[1] ?? ""])).origin).toEqual(both);
    expect((await parseOk([`--origin=${both.join(", ")}`])).origin).toEqual(both);
    expect((await parseOk([], { PINGHUB_ORIGIN: both.join(",") })).origin).toEqual(both);
    // Flags replace the variable rather than add to it, as for every other setting.
    expect((await parseOk(["-origin", "https://a.example"], { PINGHUB_ORIGIN: both.join(",") })).origin).toEqual([
      "https://a.example",
    ]);
  });

  test("a subdomain pattern is kept as written, lower-cased", async () => {
    expect((await parseOk(["--origin", "HTTPS://*.Example.com"])).origin).toEqual(["https://*.example.com"]);
    expect((await parseOk(["--origin", "https://*.example.com:8443"])).origin).toEqual(["https://*.example.com:8443"]);
  });

  test("--addr unix:/path, the form pinghub prints in its start line, is a UNIX socket", async () => {
    expect((await parseOk(["--addr", "unix:/run/pinghub/pinghub.sock"])).listen).toEqual({
      kind: "unix",
      path: "/run/pinghub/pinghub.sock",
    });
  });

  test("watch and publish refuse what they cannot use, with exit 2 and one line", async () => {
    const cases: Array<[string[], RegExp]> = [
      [["watch"], /pinghub watch needs a channel URL/],
      [["watch", "http://h/x", "extra"], /unexpected argument "extra"/],
      [["publish", "http://h/x", "a", "b"], /unexpected argument "b": quote a message/],
      [["watch", "http://h/x", "--mport", "1"], /--mport is a server flag/],
      [["publish", "http://h/x", "m", "--reconnect"], /--reconnect is for pinghub watch/],
      [["publish", "http://h/x", "m", "--sse"], /--sse is for pinghub watch/],
      [["publish", "http://h/x", "m", "--last", "2"], /--last is for pinghub watch/],
      [["--ids"], /--ids is for pinghub watch/],
      [["watch", "http://h/x", "--ids"], /--ids needs --sse/],
      [["watch", "http://h/x", "--last", "2", "--reconnect"], /--last with --reconnect needs --sse/],
      [["watch", "http://h/x", "--last", "-1"], /bad --last "-1": expected a whole number/],
      [["watch", "http://h/x", "--last=2.5", "--sse"], /bad --last "2.5": expected a whole number/],
      [["watch", "http://h/x", "--last"], /bad --last "": expected a whole number/],
    ];
    for (const [argv, says] of cases) {
      const result = await parseCommandLine(argv, {});
      expect(result.kind === "exit" && result.status).toBe(2);
      expect(result.kind === "exit" && result.stderr).toMatch(says);
    }
  });

  test("watch and publish are client commands, with their URL and message", async () => {
    const plain = { reconnect: false, sse: false, ids: false, last: 0, token: undefined };
    expect(await parseCommandLine(["watch", "http://127.0.0.1:8081/x"], {})).toEqual({
      kind: "watch",
      url: "http://127.0.0.1:8081/x",
      ...plain,
    });
    expect(await parseCommandLine(["watch", "ws://h/x", "--reconnect"], {})).toEqual({
      kind: "watch",
      url: "ws://h/x",
      ...plain,
      reconnect: true,
    });
    expect(await parseCommandLine(["watch", "http://h/x", "--sse", "--ids", "--reconnect", "--last", "5"], {})).toEqual(
      {
        kind: "watch",
        url: "http://h/x",
        reconnect: true,
        sse: true,
        ids: true,
        last: 5,
        token: undefined,
      },
    );
    expect(await parseCommandLine(["watch", "http://h/x", "--last=3"], {})).toEqual({
      kind: "watch",
      url: "http://h/x",
      ...plain,
      last: 3,
    });
    expect(await parseCommandLine(["publish", "http://h/x", "hello there"], {})).toEqual({
      kind: "publish",
      url: "http://h/x",
      message: "hello there",
      token: undefined,
    });
    expect(await parseCommandLine(["publish", "http://h/x"], {})).toEqual({
      kind: "publish",
      url: "http://h/x",
      message: undefined,
      token: undefined,
    });
  });

  test("--token, or PINGHUB_TOKEN, for watch and publish only", async () => {
    expect(await parseCommandLine(["watch", "http://h/x", "--token", "t1"], { PINGHUB_TOKEN: "t2" })).toEqual({
      kind: "watch",
      url: "http://h/x",
      reconnect: false,
      sse: false,
      ids: false,
      last: 0,
      token: "t1",
    });
    expect(await parseCommandLine(["publish", "http://h/x", "m"], { PINGHUB_TOKEN: "t2" })).toEqual({
      kind: "publish",
      url: "http://h/x",
      message: "m",
      token: "t2",
    });
    for (const [argv, says] of [
      [["--token", "t"], /--token is for pinghub watch and publish/],
      [["watch", "http://h/x", "--token"], /flag --token needs a value/],
    ] as const) {
      const result = await parseCommandLine([...argv], {});
      expect(result.kind === "exit" && result.status).toBe(2);
      expect(result.kind === "exit" && result.stderr).toMatch(says);
    }
  });
});

// ---- real processes

describe("a running pinghub", () => {
  for (const [form, args] of [
    ["-addr 127.0.0.1:0", ["-addr", "127.0.0.1:0", "-mport", "0"]],
    ["-addr=127.0.0.1:0", ["-addr=127.0.0.1:0", "-mport=0"]],
  ] as const) {
    test(`single-dash ${form} serves`, async () => {
      const pinghub = spawn([...args]);
      const url = await servingUrl(pinghub);
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      const response = await fetch(`${url}/single-dash`);
      expect(response.status).toBe(200);
      expect(response.headers.get("content-type")).toContain("text/html");
      await stopWithSignal(pinghub);
    });
  }

  test("PINGHUB_ADDR and PINGHUB_MAX_MESSAGE_SIZE are used", async () => {
    const pinghub = spawn(["--mport", "0"], { PINGHUB_ADDR: "127.0.0.1:0", PINGHUB_MAX_MESSAGE_SIZE: "5" });
    const url = await servingUrl(pinghub);
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${url}/env`, { method: "POST", body: "12345" })).status).toBe(200);
    expect((await fetch(`${url}/env`, { method: "POST", body: "123456" })).status).toBe(413);
    await stopWithSignal(pinghub);
  });

  test("flags beat PINGHUB_ADDR and PINGHUB_MAX_MESSAGE_SIZE", async () => {
    const pinghub = await serving(["--max-message-size", "10"], {
      PINGHUB_ADDR: "nonsense",
      PINGHUB_MAX_MESSAGE_SIZE: "5",
    });
    expect(pinghub.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect((await fetch(`${pinghub.url}/flag`, { method: "POST", body: "1234567890" })).status).toBe(200);
    expect((await fetch(`${pinghub.url}/flag`, { method: "POST", body: "12345678901" })).status).toBe(413);
    await stopWithSignal(pinghub);
  });

  test(":0 listens on all interfaces: one server reached by 127.0.0.1 and by [::1]", async () => {
    const pinghub = spawn(["--addr", ":0", "--mport", "0"]);
    const url = await servingUrl(pinghub);
    const port = portOf(url);
    expect(port).toBeGreaterThan(0);
    for (const host of ["127.0.0.1", "[::1]"]) {
      expect((await fetch(`http://${host}:${port}/all`)).status).toBe(200);
    }
    // The same server and channel by both: subscribe over IPv4, publish over IPv6 and the other way round.
    const v4 = await subscribe(`ws://127.0.0.1:${port}/both`);
    const v6 = await subscribe(`ws://[::1]:${port}/both`);
    const answer = await fetch(`http://[::1]:${port}/both`, { method: "POST", body: "over v6" });
    expect(answer.headers.get("X-Pinghub-Subscribers")).toBe("2");
    await fetch(`http://127.0.0.1:${port}/both`, { method: "POST", body: "over v4" });
    expect(await v4.received(2)).toEqual(["over v6", "over v4"]);
    expect(await v6.received(2)).toEqual(["over v6", "over v4"]);
    await stopWithSignal(pinghub);
  });

  test("[::1]:0 serves on the IPv6 loopback", async () => {
    const pinghub = spawn(["--addr", "[::1]:0", "--mport", "0"]);
    const url = await servingUrl(pinghub);
    expect(url).toMatch(/^http:\/\/\[::1\]:\d+$/);
    const subscriber = await subscribe(`ws://[::1]:${portOf(url)}/six`);
    expect((await fetch(`${url}/six`, { method: "POST", body: "hello" })).status).toBe(200);
    expect(await subscriber.received(1)).toEqual(["hello"]);
    await stopWithSignal(pinghub);
  });

  test("--mport 0: the metrics server on a free port of 127.0.0.1, named in the start line", async () => {
    const pinghub = spawn(["--addr", "127.0.0.1:0", "--mport", "0"]);
    const metrics = await metricsUrl(pinghub);
    expect(metrics).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(portOf(metrics)).toBeGreaterThan(0);
    const scrape = await fetch(`${metrics}/metrics`);
    expect(scrape.status).toBe(200);
    expect(await scrape.text()).toContain("pinghub_websockets 0");
    expect(await (await fetch(`${metrics}/healthz`)).text()).toBe("ok\n");
    const channels = portOf(await servingUrl(pinghub));
    expect(listeningPorts(pinghub.proc.pid)).toEqual([channels, portOf(metrics)].sort((a, b) => a - b));
    await stopWithSignal(pinghub);
  });

  test("--mport off: no metrics server, only the channels' port is listened on", async () => {
    for (const [args, env] of [
      [["--mport", "off"], {}],
      [["-mport=off"], {}],
      [[], { PINGHUB_MPORT: "off" }],
    ] as const) {
      const pinghub = spawn(["--addr", "127.0.0.1:0", ...args], env);
      expect(await metricsUrl(pinghub)).toBe("off");
      const channels = portOf(await servingUrl(pinghub));
      expect(listeningPorts(pinghub.proc.pid)).toEqual([channels]);
      await stopWithSignal(pinghub);
    }
  });

  test("--mport HOST:PORT: 127.0.0.1:0, [::1]:0 and 0.0.0.0:0 serve /metrics and /healthz there", async () => {
    const cases = [
      ["127.0.0.1:0", /^http:\/\/127\.0\.0\.1:\d+$/, "127.0.0.1"],
      ["[::1]:0", /^http:\/\/\[::1\]:\d+$/, "[::1]"],
      ["0.0.0.0:0", /^http:\/\/0\.0\.0\.0:\d+$/, "127.0.0.1"],
    ] as const;
    for (const [mport, shown, reach] of cases) {
      const pinghub = spawn(["--addr", "127.0.0.1:0", "--mport", mport]);
      const metrics = await metricsUrl(pinghub);
      expect(metrics).toMatch(shown);
      const port = portOf(metrics);
      expect((await fetch(`http://${reach}:${port}/metrics`)).status).toBe(200);
      expect((await fetch(`http://${reach}:${port}/healthz`)).status).toBe(200);
      await stopWithSignal(pinghub);
    }
  });

  test("--mport [::1]:PORT listens on the IPv6 loopback only, at that port", async () => {
    // A port free on [::1] a moment ago. Were another process to take it in between, pinghub would exit 1
    // ("cannot serve metrics") and the test fail loudly, never pass falsely.
    const held = Bun.listen({ hostname: "::1", port: 0, socket: { data() {} } });
    const port = held.port;
    held.stop(true);
    const pinghub = spawn(["--addr", "127.0.0.1:0", "--mport", `[::1]:${port}`]);
    expect(await metricsUrl(pinghub)).toBe(`http://[::1]:${port}`);
    expect((await fetch(`http://[::1]:${port}/healthz`)).status).toBe(200);
    await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow();
    await stopWithSignal(pinghub);
  });

  test("a metrics address that cannot be bound: exit 1, one line naming it", async () => {
    const held = holdPort();
    try {
      const result = await runToExit(["--addr", "127.0.0.1:0", "--mport", `127.0.0.1:${held.port}`]);
      expect(result.status).toBe(1);
      expect(result.stderr).toMatch(/^[^\n]+\n$/);
      expect(result.stderr).toContain(`pinghub: cannot serve metrics on 127.0.0.1:${held.port}: `);
    } finally {
      held.stop(true);
    }
  });

  test("SIGTERM closes the websockets with 1001 and exits 0", async () => {
    const pinghub = await serving();
    const subscriber = await subscribe(`${pinghub.url.replace("http", "ws")}/bye`);
    pinghub.proc.kill("SIGTERM");
    expect((await subscriber.closed).code).toBe(1001);
    expect(await pinghub.exited).toBe(0);
    await pinghub.waitForStderr(/stopping on SIGTERM/);
  });

  test("a SIGTERM sent the moment pinghub says it is serving still stops it in order", async () => {
    // The handlers must be in place before the "serving" line: a supervisor may signal as soon as it sees it.
    for (let i = 0; i < 3; i++) {
      const pinghub = await serving();
      await stopWithSignal(pinghub);
      await pinghub.waitForStderr(/pinghub stopped/);
    }
  });

  test("SIGINT exits 0 too", async () => {
    const pinghub = await serving();
    expect((await fetch(`${pinghub.url}/interrupt`)).status).toBe(200);
    await stopWithSignal(pinghub, "SIGINT");
  });
});
