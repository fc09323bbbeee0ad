// The command line: flags, their environment variables and defaults, --help, and turning them into a Config;
// and the two client commands, `watch` and `publish` (client.ts). Every flag also works in the original Go
// server's single-dash form (-addr :8081, -addr=:8081), so existing service files keep working.

import { type ArgsDef, parseArgs } from "citty";
import pkg from "../package.json" with { type: "json" };
import { type Config, ConfigError, DEFAULTS, LOG_LEVELS, type RawSettings, toConfig } from "./config.ts";

interface Flag {
  /** Key in RawSettings. */
  key: keyof RawSettings;
  valueHint: string;
  description: string;
  default?: string;
  /** The environment variable, where it is not PINGHUB_<NAME>. */
  env?: string;
}

/** The flags by name; each is also read from PINGHUB_<NAME> (upper case, dashes as underscores). */
const FLAGS: Record<string, Flag> = {
  addr: {
    key: "addr",
    valueHint: "address",
    description:
      "where to serve channels: host:port, :port (all interfaces), [::1]:port, or a UNIX socket as an absolute " +
      "path or unix:/path",
    default: DEFAULTS.addr,
  },
  mport: {
    key: "mport",
    valueHint: "port",
    description: "port of the metrics server on 127.0.0.1 (/metrics, /healthz); 0 turns it off",
    default: DEFAULTS.mport,
  },
  origin: {
    key: "origin",
    valueHint: "origin",
    description:
      "refuse websockets, streams and POSTs from pages of other sites: scheme://host[:port] or " +
      "scheme://*.host[:port] for its subdomains; repeat the flag or separate origins by commas (off when unset)",
  },
  log: {
    key: "log",
    valueHint: "/absolute/path",
    description: "append the log to this file instead of stderr; SIGHUP reopens it",
  },
  "log-level": {
    key: "logLevel",
    valueHint: "level",
    description: `how much to log: ${LOG_LEVELS.join(", ")}`,
    default: DEFAULTS.logLevel,
  },
  "max-message-size": {
    key: "maxMessageSize",
    valueHint: "bytes",
    description: "largest message; larger ones get 413 (POST) or close 1009 (websocket)",
    default: DEFAULTS.maxMessageSize,
  },
  "max-backlog": {
    key: "maxBacklog",
    valueHint: "bytes",
    description: "bytes queued for a subscriber that is not reading before it is disconnected",
    default: DEFAULTS.maxBacklog,
  },
  "idle-timeout": {
    key: "idleTimeout",
    valueHint: "seconds",
    description: "close a websocket silent this long; it is pinged a few seconds before",
    default: DEFAULTS.idleTimeout,
  },
  "shutdown-timeout": {
    key: "shutdownTimeout",
    valueHint: "seconds",
    description: "at SIGTERM, how long requests in flight may take to finish before they are cut",
    default: DEFAULTS.shutdownTimeout,
  },
  redis: {
    key: "redis",
    valueHint: "url",
    description:
      "cluster mode: share channels with every node on this Redis, redis://[[user]:password@]host[:port][/db], " +
      "rediss://… or a socket path (pass a password through the environment, not the command line)",
  },
  "redis-prefix": {
    key: "redisPrefix",
    valueHint: "prefix",
    description: "put before each channel name to make its Redis channel",
    default: DEFAULTS.redisPrefix,
  },
  history: {
    key: "history",
    valueHint: "messages",
    description: "keep this many recent messages per channel, so that SSE subscribers resume without a gap",
    default: DEFAULTS.history,
  },
  "history-ttl": {
    key: "historyTtl",
    valueHint: "seconds",
    description: "keep a channel's history this long after its last message",
    default: DEFAULTS.historyTtl,
  },
  "history-memory": {
    key: "historyMemory",
    valueHint: "bytes",
    description: "most memory all histories may use on a single node; the least recently published go first",
    default: DEFAULTS.historyMemory,
  },
  "websocket-publish": {
    key: "websocketPublish",
    valueHint: "yes|no",
    description:
      "whether websockets may publish by sending messages; with no, a message closes the websocket with 1008 " +
      "(POST still publishes)",
    default: DEFAULTS.websocketPublish,
  },
  "jwt-key": {
    key: "jwtKey",
    // The variable names a file, as the _FILE variables of container images do: the key itself never goes in
    // the environment.
    env: "PINGHUB_JWT_KEY_FILE",
    valueHint: "file",
    description:
      "every subscribe and publish needs a JSON Web Token granting it (claim pinghub), checked with this " +
      "file: an HMAC secret (HS256/384/512) or a PEM public key (RS, PS, ES, EdDSA)",
  },
  "jwt-audience": {
    key: "jwtAudience",
    valueHint: "audience",
    description: "with --jwt-key: a token's aud must include this",
  },
  "jwt-issuer": {
    key: "jwtIssuer",
    valueHint: "issuer",
    description: "with --jwt-key: a token's iss must be this",
  },
  "auth-url": {
    key: "authUrl",
    valueHint: "url",
    description:
      "before each subscribe and POST, ask this URL of your application with the client's Cookie and " +
      "Authorization: 2xx allows, 401/403 refuses, anything else is 503",
  },
  "auth-timeout": {
    key: "authTimeout",
    valueHint: "seconds",
    description: "how long --auth-url has to answer before the client gets 503",
    default: DEFAULTS.authTimeout,
  },
  "socket-mode": {
    key: "socketMode",
    valueHint: "octal",
    description: "permissions of a UNIX socket",
    default: DEFAULTS.socketMode,
  },
};

export const envName = (flag: string) => FLAGS[flag]?.env ?? `PINGHUB_${flag.toUpperCase().replaceAll("-", "_")}`;

const args: ArgsDef = {
  ...Object.fromEntries(Object.keys(FLAGS).map((name) => [name, { type: "string" }])),
  help: { type: "boolean", alias: "h" },
  version: { type: "boolean" },
  reconnect: { type: "boolean" },
  token: { type: "string" },
};

/** The client commands, run instead of the server: `pinghub watch URL`, `pinghub publish URL [MESSAGE]`. */
export type ClientCommand =
  | { kind: "watch"; url: string; reconnect: boolean; token: string | undefined }
  | { kind: "publish"; url: string; message: string | undefined; token: string | undefined };

/** The client commands' token (for a server with --jwt-key), when --token is not given. */
export const TOKEN_VARIABLE = "PINGHUB_TOKEN";

export type CliResult =
  | { kind: "run"; config: Config }
  | ClientCommand
  | { kind: "exit"; status: number; stdout?: string; stderr?: string };

const usageError = (line: string): CliResult => ({ kind: "exit", status: 2, stderr: `${line}: see pinghub --help\n` });

/** Reads flags, then the environment, then defaults; never exits itself, so it can be tested as a function. */
export async function parseCommandLine(argv: string[], env: Record<string, string | undefined>): Promise<CliResult> {
  const normalised = argv.map(singleDashToDouble);
  const unknown = normalised.find((a) => /^--?[a-z]/i.test(a) && !isKnownFlag(a));
  if (unknown !== undefined) return usageError(`unknown flag ${unknown.split("=")[0]}`);
  const parsed = parseArgs(normalised, args);
  if (parsed.help) return { kind: "exit", status: 0, stdout: helpText() };
  if (parsed.version) return { kind: "exit", status: 0, stdout: `${pkg.version}\n` };
  const [command, ...operands] = parsed._.map(String);
  if (command === "watch" || command === "publish") return clientCommand(command, operands, parsed, normalised, env);
  if (command !== undefined) return usageError(`unexpected argument "${command}"`);
  if (parsed.reconnect) return usageError("--reconnect is for pinghub watch");
  if (flagValues(normalised, "token").length > 0) return usageError("--token is for pinghub watch and publish");
  const raw: Partial<RawSettings> = {};
  const fromEnv: string[] = [];
  for (const [name, flag] of Object.entries(FLAGS)) {
    const given = flagValues(normalised, name);
    if (given.includes("")) return usageError(`flag --${name} needs a value`);
    // A variable set but empty counts as unset, as in most shells' and systemd's use.
    const variable = env[envName(name)] || undefined;
    if (given.length === 0 && variable !== undefined) fromEnv.push(name);
    // Only --origin may be given more than once; for the others the last one counts, as before.
    raw[flag.key] = (name === "origin" ? given.join(",") : given.at(-1)) || variable || flag.default;
  }
  try {
    return { kind: "run", config: toConfig(raw as RawSettings) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    // A bad value from the environment is named as the operator wrote it: PINGHUB_MPORT, not --mport.
    const flag = fromEnv.find((name) => new RegExp(`^bad --${name}(?![\\w-])`).test(error.message));
    const message = flag === undefined ? error.message : error.message.replace(`--${flag}`, envName(flag));
    return { kind: "exit", status: 2, stderr: `pinghub: ${message}\n` };
  }
}

function clientCommand(
  command: "watch" | "publish",
  operands: string[],
  parsed: Record<string, unknown>,
  normalised: string[],
  env: Record<string, string | undefined>,
): CliResult {
  const serverFlag = Object.keys(FLAGS).find((name) => flagValues(normalised, name).length > 0);
  if (serverFlag !== undefined) return usageError(`--${serverFlag} is a server flag, not one for pinghub ${command}`);
  const tokens = flagValues(normalised, "token");
  if (tokens.includes("")) return usageError("flag --token needs a value");
  // On the command line a token shows in `ps`: PINGHUB_TOKEN keeps it out of sight.
  const token = tokens.at(-1) ?? (env[TOKEN_VARIABLE] || undefined);
  const [url, message, extra] = operands;
  if (url === undefined) return usageError(`pinghub ${command} needs a channel URL`);
  if (command === "watch") {
    if (message !== undefined) return usageError(`unexpected argument "${message}" after the URL`);
    return { kind: "watch", url, reconnect: parsed.reconnect === true, token };
  }
  if (parsed.reconnect) return usageError("--reconnect is for pinghub watch");
  if (extra !== undefined) return usageError(`unexpected argument "${extra}": quote a message with spaces`);
  return { kind: "publish", url, message, token };
}

/** Every value given for a flag, in order: `--name VALUE` and `--name=VALUE` ("" for a flag with none). */
function flagValues(argv: string[], name: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] ?? "";
    if (arg.startsWith(`--${name}=`)) values.push(arg.slice(name.length + 3));
    else if (arg === `--${name}`) {
      const next = argv[i + 1];
      values.push(next === undefined || next.startsWith("--") ? "" : next);
      if (next !== undefined && !next.startsWith("--")) i++;
    }
  }
  return values;
}

/** The help: plain text (no colours, whatever the terminal), every line within 100 columns. */
function helpText(): string {
  const lines = [
    `pinghub ${pkg.version}: a publish/subscribe message bus for websocket clients`,
    "",
    "Usage:",
    "  pinghub [FLAGS]                      serve channels (the flags below)",
    "  pinghub watch URL [--reconnect]      print each message of a channel as it arrives",
    "  pinghub publish URL [MESSAGE]        publish MESSAGE, or standard input, to a channel",
    "  (both take --token TOKEN, or PINGHUB_TOKEN, for a server with --jwt-key)",
    "",
    "watch prints one message per line, with a line feed inside a message written as \\n, a carriage",
    "return as \\r and a backslash as \\\\. On a close it prints the code and reason to stderr and exits 1;",
    "--reconnect connects again instead, with pinghub.js's backoff. publish prints the subscribers (or",
    "cluster nodes) the message reached, or the server's reason for refusing it and exits 1.",
    "",
    "Flags (each also read from the environment variable shown):",
  ];
  for (const [name, flag] of Object.entries(FLAGS)) {
    const fallback = flag.default === undefined ? "" : ` (default: ${flag.default})`;
    lines.push(`  --${name}=<${flag.valueHint}>  [env ${envName(name)}]${fallback}`);
    lines.push(...wrap(flag.description, 6, HELP_WIDTH));
  }
  lines.push("  -h, --help  show this help", "  --version  print the version", "");
  return lines.join("\n");
}

const HELP_WIDTH = 100;

function wrap(text: string, indent: number, width: number): string[] {
  const lines: string[] = [];
  let line = "";
  for (const word of text.split(" ")) {
    if (line !== "" && indent + line.length + 1 + word.length > width) {
      lines.push(" ".repeat(indent) + line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") lines.push(" ".repeat(indent) + line);
  return lines;
}

/** `-addr` and `-addr=:8081`, the Go flag package's forms, become `--addr` and `--addr=:8081`. */
function singleDashToDouble(arg: string): string {
  const match = /^-([a-z][a-z-]+)(=.*)?$/.exec(arg);
  return match?.[1] !== undefined && isKnownFlag(match[1]) ? `-${arg}` : arg;
}

function isKnownFlag(arg: string): boolean {
  const name = arg.replace(/^--?/, "").split("=")[0] ?? "";
  return name in FLAGS || ["h", "help", "version", "reconnect", "token"].includes(name);
}
