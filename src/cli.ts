// The command line: pinghub's commands, `serve` (the default), and `watch` and `publish`, the client of
// client.ts; the server's flags, which come from config.ts's table of settings; and --help.
//
// citty defines the commands (their names, descriptions, positional arguments and booleans) and reads the
// positionals and booleans out of argv. Three parts are pinghub's own, because citty's do not fit:
// - flag values: citty (node:util's parseArgs) reads `-addr` as the short flags -a -d -d -r, keeps only the last
//   of a repeated --origin, and takes `--addr --mport` for an address "--mport". Every flag must also work in the
//   original Go pinghub's single-dash form (`-addr :8081`, `-addr=:8081`), so existing service files keep working.
// - usage errors: citty's runMain prints its usage and exits 1; here a usage error is one line and exit status 2,
//   and parseCommandLine never exits, so it can be tested as a function.
// - --help: citty's renderUsage has no place for environment variables, does not wrap to 100 columns, and decides
//   on colours when it is imported, from NO_COLOR=1 only (colours must never reach a pipe).

import { type ArgDef, type ArgsDef, type CommandDef, parseArgs } from "citty";
import pkg from "../package.json" with { type: "json" };
import {
  type Config,
  ConfigError,
  envName,
  FLAG_NAMES,
  type FlagName,
  SETTINGS,
  type Setting,
  toConfig,
} from "./config.ts";

/** The server's flags, as citty arguments: strings, so that citty never takes a flag's value for a positional. */
const serverArgs: ArgsDef = Object.fromEntries(
  FLAG_NAMES.map((flag) => {
    const { hint, help } = SETTINGS[flag];
    return [flag, { type: "string", valueHint: hint, description: help }];
  }),
);

/** The clients' token, for a server with --jwt-key: a flag of watch and publish, or TOKEN_VARIABLE. */
const TOKEN_ARG: ArgDef = {
  type: "string",
  valueHint: "TOKEN",
  description: "a token for a server with --jwt-key (or PINGHUB_TOKEN, which other users cannot read)",
};
export const TOKEN_VARIABLE = "PINGHUB_TOKEN";

const COMMANDS = {
  serve: {
    meta: { name: "serve", description: "serve channels (the flags below)" },
    args: serverArgs,
  },
  watch: {
    meta: { name: "watch", description: "print each message of a channel as it arrives" },
    args: {
      url: { type: "positional", required: true, description: "the channel, http(s):// or ws(s)://" },
      reconnect: { type: "boolean", description: "connect again after a close, with pinghub.js's backoff" },
      sse: { type: "boolean", description: "subscribe by Server-Sent Events instead of a websocket" },
      ids: { type: "boolean", description: "with --sse: print each message's id and a space before it" },
      last: { type: "string", valueHint: "N", description: "first the newest N messages the history keeps" },
      token: TOKEN_ARG,
    },
  },
  publish: {
    meta: { name: "publish", description: "publish MESSAGE, or standard input, to a channel" },
    args: {
      url: { type: "positional", required: true, description: "the channel, http(s)://" },
      message: { type: "positional", required: false, description: "the message; standard input without it" },
      token: TOKEN_ARG,
    },
  },
} satisfies Record<string, CommandDef>;
type CommandName = keyof typeof COMMANDS;
const DEFAULT_COMMAND: CommandName = "serve";

/** The commands' booleans (--reconnect), by name, with the command that takes each. */
const BOOLEANS = new Map(
  Object.entries(COMMANDS).flatMap(([command, def]) =>
    Object.entries<ArgDef>(def.args)
      .filter(([, arg]) => arg.type === "boolean")
      .map(([name]) => [name, command as CommandName] as const),
  ),
);

/** The client commands' flags with a value (--last N, --token), by name, with the commands that take each. */
const OPTIONS = new Map<string, CommandName[]>();
for (const [command, def] of Object.entries(COMMANDS)) {
  if (command === "serve") continue;
  for (const [name, arg] of Object.entries<ArgDef>(def.args)) {
    if (arg.type === "string") OPTIONS.set(name, [...(OPTIONS.get(name) ?? []), command as CommandName]);
  }
}

/** Everything argv may hold before a command is chosen: every flag and boolean, and --help and --version. */
const everyArg: ArgsDef = {
  ...serverArgs,
  ...Object.fromEntries([...BOOLEANS.keys()].map((name) => [name, { type: "boolean" }])),
  ...Object.fromEntries([...OPTIONS.keys()].map((name) => [name, { type: "string" }])),
  help: { type: "boolean", alias: "h" },
  version: { type: "boolean" },
};

/** The client commands, run instead of the server: `pinghub watch URL`, `pinghub publish URL [MESSAGE]`. */
export type ClientCommand =
  | {
      kind: "watch";
      url: string;
      reconnect: boolean;
      sse: boolean;
      ids: boolean;
      last: number;
      token: string | undefined;
    }
  | { kind: "publish"; url: string; message: string | undefined; token: string | undefined };

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
  const parsed = parseArgs(normalised, everyArg);
  if (parsed.help) return { kind: "exit", status: 0, stdout: helpText() };
  if (parsed.version) return { kind: "exit", status: 0, stdout: `${pkg.version}\n` };
  const positionals = parsed._.map(String);
  const named = positionals[0] !== undefined && Object.hasOwn(COMMANDS, positionals[0]);
  const command = named ? (positionals[0] as CommandName) : DEFAULT_COMMAND;
  const operands = named ? positionals.slice(1) : positionals;
  for (const [name, owner] of BOOLEANS) {
    if (parsed[name] === true && owner !== command) return usageError(`--${name} is for pinghub ${owner}`);
  }
  for (const [name, owners] of OPTIONS) {
    if (!owners.includes(command) && flagValues(normalised, name).length > 0) {
      return usageError(`--${name} is for pinghub ${owners.join(" and ")}`);
    }
  }
  if (command !== "serve") return clientCommand(command, operands, parsed, normalised, env);
  if (operands[0] !== undefined) {
    return usageError(`unexpected argument "${operands[0]}" (the commands are ${Object.keys(COMMANDS).join(", ")})`);
  }
  const flags: Partial<Record<FlagName, string>> = {};
  for (const flag of FLAG_NAMES) {
    const given = flagValues(normalised, flag);
    if (given.includes("")) return usageError(`flag --${flag} needs a value`);
    if (given.length === 0) continue;
    // A repeatable flag's values are joined as its variable holds them; for the others the last one counts.
    const setting: Setting = SETTINGS[flag];
    flags[flag] = setting.repeatable ? given.join(",") : given.at(-1);
  }
  try {
    return { kind: "run", config: toConfig(flags, env) };
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    return { kind: "exit", status: 2, stderr: `pinghub: ${error.message}\n` };
  }
}

function clientCommand(
  command: Exclude<CommandName, "serve">,
  operands: string[],
  parsed: Record<string, unknown>,
  normalised: string[],
  env: Record<string, string | undefined>,
): CliResult {
  const serverFlag = FLAG_NAMES.find((name) => flagValues(normalised, name).length > 0);
  if (serverFlag !== undefined) return usageError(`--${serverFlag} is a server flag, not one for pinghub ${command}`);
  const tokens = flagValues(normalised, "token");
  if (tokens.includes("")) return usageError("flag --token needs a value");
  // On the command line a token shows in `ps`: PINGHUB_TOKEN keeps it out of sight.
  const token = tokens.at(-1) ?? (env[TOKEN_VARIABLE] || undefined);
  const [url, message, extra] = operands;
  if (url === undefined) return usageError(`pinghub ${command} needs a channel URL`);
  if (command === "watch") {
    if (message !== undefined) return usageError(`unexpected argument "${message}" after the URL`);
    return watchCommand(url, parsed, normalised, token);
  }
  if (extra !== undefined) return usageError(`unexpected argument "${extra}": quote a message with spaces`);
  return { kind: "publish", url, message, token };
}

function watchCommand(
  url: string,
  parsed: Record<string, unknown>,
  normalised: string[],
  token: string | undefined,
): CliResult {
  const [sse, ids, reconnect] = [parsed.sse === true, parsed.ids === true, parsed.reconnect === true];
  const value = flagValues(normalised, "last").at(-1);
  if (value !== undefined && !/^\d+$/.test(value)) {
    return usageError(`bad --last ${JSON.stringify(value)}: expected a whole number of messages, 0 or more`);
  }
  const last = value === undefined ? 0 : Math.min(Number(value), Number.MAX_SAFE_INTEGER);
  if (ids && !sse) return usageError("--ids needs --sse: a websocket's messages carry no id");
  // A websocket has no id to come back with: every reconnection would be given the same messages again.
  if (last > 0 && reconnect && !sse) return usageError("--last with --reconnect needs --sse");
  return { kind: "watch", url, reconnect, sse, ids, last, token };
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

const HELP_WIDTH = 100;
/** Where the commands' descriptions start in --help's usage lines. */
const USAGE_COLUMN = 39;

/** The help: plain text (no colours, whatever the terminal), every line within 100 columns. */
function helpText(): string {
  const lines = [`pinghub ${pkg.version}: a publish/subscribe message bus for websocket clients`, "", "Usage:"];
  for (const [name, def] of Object.entries(COMMANDS)) {
    const usage = `  pinghub ${name === DEFAULT_COMMAND ? `[${name}]` : name} ${argsUsage(def.args)}`;
    // A usage too long for the column has its description on a line of its own.
    if (usage.length < USAGE_COLUMN) lines.push(`${usage.padEnd(USAGE_COLUMN - 1)} ${def.meta.description}`);
    else lines.push(usage, `${" ".repeat(USAGE_COLUMN)}${def.meta.description}`);
  }
  lines.push(
    "",
    "watch prints one message per line, with a line feed inside a message written as \\n, a carriage",
    "return as \\r and a backslash as \\\\. On a close it prints the code and reason to stderr and exits 1;",
    "--reconnect connects again instead, with pinghub.js's backoff. --sse subscribes by Server-Sent",
    "Events: --ids prints each message's id and a space before it, a gap the server reports goes to",
    "stderr, and --reconnect comes back with the last id seen, so that with --history nothing is missed.",
    "--last N asks for the newest N messages the history keeps first. publish prints the subscribers (or",
    "cluster nodes) the message reached, or the server's reason for refusing it and exits 1. Against a",
    "server with --jwt-key, both take --token TOKEN, or the variable PINGHUB_TOKEN.",
    "",
    "Flags of serve (each also written -flag, as the original did, and read from the variable shown):",
  );
  for (const flag of FLAG_NAMES) {
    const setting = SETTINGS[flag];
    const fallback = "default" in setting ? ` (default: ${setting.default})` : "";
    lines.push(`  --${flag}=<${setting.hint}>  [env ${envName(flag)}]${fallback}`);
    lines.push(...wrap(setting.help, 6, HELP_WIDTH));
  }
  lines.push("  -h, --help  show this help", "  --version  print the version", "");
  return lines.join("\n");
}

/** `URL [MESSAGE]`, `URL [--reconnect] [--last N]` or `[FLAGS]`, from a command's citty arguments. */
function argsUsage(args: ArgsDef): string {
  // The server's flags are listed below the usage lines, each with its variable and default.
  if (args === serverArgs) return "[FLAGS]";
  const parts: string[] = [];
  for (const [name, arg] of Object.entries(args)) {
    if (arg.type === "positional") parts.push(arg.required ? name.toUpperCase() : `[${name.toUpperCase()}]`);
    else if (arg.type === "boolean") parts.push(`[--${name}]`);
    else if (arg.type === "string") parts.push(`[--${name} ${arg.valueHint ?? "VALUE"}]`);
  }
  return parts.join(" ");
}

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
  return (
    Object.hasOwn(SETTINGS, name) || BOOLEANS.has(name) || OPTIONS.has(name) || ["h", "help", "version"].includes(name)
  );
}
