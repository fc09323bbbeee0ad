// The fuzzer: seeded random hostile traffic against a running pinghub, shared by test/fuzz.test.ts (a few
// seconds) and scripts/fuzz.ts (as long as you like).
//
// Three kinds of case, each on a connection of its own:
// - websocket: a raw client sends a valid prefix (random Unicode messages, fragmented at random byte offsets,
//   pings and pongs in between, random masks, non-minimal lengths, written in random pieces) and must get every
//   message back, in order, with a pong per ping; then something hostile (a reserved opcode, reserved bits, an
//   unmasked frame, a control frame over 125 bytes, a close with an invalid code, a binary or non-UTF-8 or
//   oversized message, a lying length, garbage...) and, where RFC 6455 or pinghub defines the answer, gets
//   exactly that close code, with nothing of the hostile part published;
// - HTTP over raw TCP: odd and unknown methods, absolute-form and `*` targets, conflicting or negative
//   Content-Length, broken chunked bodies, huge headers, garbage, slow drips, pipelining, and connections dropped
//   without a byte, each with the status Bun or pinghub answers (or "refused": a 4xx/505, or closed);
// - paths: random Unicode channel names of every length from 0 to 300 characters, written in the request line
//   as raw UTF-8 or percent-encoded (either case of hex), with queries, and broken on purpose (bad `%`, bytes
//   that are not UTF-8, U+FFFD, too long): 400, or the channel they name, checked by POSTing to its canonical
//   encoding and seeing the message arrive.
//
// Every case draws from its own generator, seeded from (seed, lane, index), so a failure names the seed and the
// case and `bun scripts/fuzz.ts --seed S --case LANE:INDEX` replays that one case alone.

import type { RefusalReason } from "../../src/refusal.ts";
import { type CaseContext, caseSeed, emptyTally, hex, type RefusalExpectation, Rng, type Tally } from "./fuzz-core.ts";
import { buildHttpCase, classicHttpCases, runHttpCase, slowlorisCase } from "./fuzz-http.ts";
import { buildPathCase, pathRefusals, runPathCase } from "./fuzz-paths.ts";
import { buildWsCase, classicWsCases, runWsCase } from "./fuzz-ws.ts";

export { parseSeed } from "./fuzz-core.ts";
export { RawHttp } from "./fuzz-http.ts";

// ---------------------------------------------------------------------------------------------------------
// The run

export interface FuzzOptions {
  port: number;
  seed: number;
  /** Stops starting new cases after this long; 0 with `only` or `classicsOnly` runs just those. */
  durationMs: number;
  /** Cases running at once, each on its own connection. */
  lanes: number;
  /** The server's --max-message-size. */
  maxMessageSize: number;
  /** Runs every classic case (each variant of each category) once, spread over the lanes, before random ones. */
  classics: boolean;
  /** Slowloris connections to hold open alongside, each trickling for up to `durationMs`. */
  slowloris?: { count: number; durationMs: number };
  /** Replays one case: "LANE:INDEX" for a random one, "c:N" for classic N. */
  only?: string;
  caseTimeoutMs?: number;
  log?: (line: string) => void;
  /** Stops early after this many failures. */
  maxFailures?: number;
}

export interface FuzzReport {
  cases: number;
  byKind: Record<string, number>;
  failures: string[];
  /** The least and the most each refusal counter must have grown by. */
  refusals: { min: Tally; max: Tally };
  /** Statuses and close codes seen, and how often. */
  seen: Record<string, number>;
}

const WS_REASONS: RefusalReason[] = ["binary", "not_utf8", "too_large"];

type CaseId = { kind: "random"; lane: number; index: number } | { kind: "classic"; n: number };

const caseName = (id: CaseId) => (id.kind === "random" ? `${id.lane}:${id.index}` : `c:${id.n}`);

function parseCaseId(text: string): CaseId {
  const classic = text.match(/^c:(\d+)$/);
  if (classic) return { kind: "classic", n: Number(classic[1]) };
  const random = text.match(/^(\d+):(\d+)$/);
  if (random) return { kind: "random", lane: Number(random[1]), index: Number(random[2]) };
  throw new Error(`a case is LANE:INDEX or c:N, not "${text}"`);
}

export async function runFuzz(options: FuzzOptions): Promise<FuzzReport> {
  const { port, seed } = options;
  const base = `http://127.0.0.1:${port}`;
  const log = options.log ?? (() => {});
  const maxFailures = options.maxFailures ?? 20;
  const ctx: CaseContext = {
    port,
    maxMessageSize: options.maxMessageSize,
    timeoutMs: options.caseTimeoutMs ?? 10_000,
    seen: new Map(),
  };
  const report: FuzzReport = {
    cases: 0,
    byKind: {},
    failures: [],
    refusals: { min: emptyTally(), max: emptyTally() },
    seen: {},
  };
  const classics = [
    ...classicWsCases().map((pick) => ({ kind: "ws" as const, pick })),
    ...classicHttpCases().map((pick) => ({ kind: "http" as const, pick })),
  ];
  const expectRefusals = (r: RefusalExpectation) => {
    for (const [reason, n] of Object.entries(r.exact) as Array<[RefusalReason, number]>) {
      report.refusals.min[reason] += n;
      report.refusals.max[reason] += n;
    }
    for (const [reason, n] of Object.entries(r.maybe ?? {}) as Array<[RefusalReason, number]>)
      report.refusals.max[reason] += n;
    for (const reason of WS_REASONS) report.refusals.max[reason] += r.any ?? 0;
  };

  const runCase = async (id: CaseId): Promise<void> => {
    const name = caseName(id);
    const rng = new Rng(id.kind === "random" ? caseSeed(seed, id.lane, id.index) : caseSeed(seed, 1_000_000, id.n));
    const tag = `${seed.toString(36)}-${name.replace(":", "-")}`;
    const classic = id.kind === "classic" ? classics[id.n] : undefined;
    const kind =
      classic?.kind ??
      rng.weighted([
        [45, "ws"],
        [30, "http"],
        [25, "path"],
      ] as const);
    let description: string = kind;
    let problem: string | undefined;
    try {
      if (kind === "ws") {
        const c = buildWsCase(rng, options.maxMessageSize, classic?.kind === "ws" ? classic.pick : undefined);
        description = `websocket ${c.description}`;
        expectRefusals(c.refusals);
        problem = await runWsCase(rng, c, `/fuzz/ws/${tag}`, ctx);
        if (problem !== undefined) problem += `\n    prefix ${hex(c.prefix)}\n    then   ${hex(c.tail)}`;
      } else if (kind === "http") {
        const c = buildHttpCase(
          rng,
          `/fuzz/http/${tag}`,
          options.maxMessageSize,
          classic?.kind === "http" ? classic.pick : undefined,
        );
        description = `HTTP ${c.description}`;
        expectRefusals(c.refusals);
        problem = await runHttpCase(rng, c, ctx);
        if (problem !== undefined)
          problem += `\n    sent ${JSON.stringify(c.bytes.subarray(0, 300).toString("latin1"))}`;
      } else {
        const c = buildPathCase(rng);
        description = c.description;
        expectRefusals(pathRefusals(c));
        problem = await runPathCase(rng, c, ctx, base);
        if (problem !== undefined) problem += `\n    target ${hex(c.target, 400)}`;
      }
    } catch (error) {
      problem = `threw ${(error as Error).stack ?? error}`;
    }
    report.cases++;
    report.byKind[kind] = (report.byKind[kind] ?? 0) + 1;
    if (problem !== undefined) {
      const line = `case ${name} (${description}): ${problem}\n    replay: bun scripts/fuzz.ts --seed ${seed} --case ${name}`;
      if (report.failures.length < 100) report.failures.push(line);
      log(`FAIL ${line}`);
    }
  };

  if (options.only !== undefined) {
    await runCase(parseCaseId(options.only));
  } else {
    const deadline = performance.now() + options.durationMs;
    let nextClassic = options.classics ? 0 : classics.length;
    const slowloris = Array.from({ length: options.slowloris?.count ?? 0 }, async (_, i) => {
      const rng = new Rng(caseSeed(seed, 2_000_000, i));
      const c = slowlorisCase(`/fuzz/slow/${i}`, options.slowloris?.durationMs ?? 0, i % 2 === 1);
      const problem = await runHttpCase(rng, c, { ...ctx, timeoutMs: options.slowloris?.durationMs ?? 0 }).catch(
        (e: Error) => e.message,
      );
      report.cases++;
      report.byKind.slowloris = (report.byKind.slowloris ?? 0) + 1;
      if (problem !== undefined) report.failures.push(`slowloris ${i}: ${problem}`);
    });
    const lanes = Array.from({ length: options.lanes }, async (_, lane) => {
      let index = 0;
      while (report.failures.length < maxFailures) {
        if (nextClassic < classics.length) {
          await runCase({ kind: "classic", n: nextClassic++ });
          continue;
        }
        if (performance.now() >= deadline) break;
        await runCase({ kind: "random", lane, index: index++ });
      }
    });
    await Promise.all([...lanes, ...slowloris]);
  }
  report.seen = Object.fromEntries([...ctx.seen.entries()].sort(([a], [b]) => a.localeCompare(b)));
  return report;
}

/** The refusal counters of a metrics scrape. */
export function refusalCounts(scrape: string): Tally {
  const tally = emptyTally();
  for (const reason of Object.keys(tally) as RefusalReason[]) {
    const line = scrape.split("\n").find((l) => l.startsWith(`pinghub_refused_total{reason="${reason}"} `));
    tally[reason] = Number(line?.split(" ")[1] ?? Number.NaN);
  }
  return tally;
}

/** Refusal counters that moved outside what the cases allow, as lines; empty when all is well. */
export function refusalMismatches(before: Tally, after: Tally, expected: FuzzReport["refusals"]): string[] {
  const problems: string[] = [];
  for (const reason of Object.keys(before) as RefusalReason[]) {
    const moved = after[reason] - before[reason];
    if (moved < expected.min[reason] || moved > expected.max[reason]) {
      problems.push(
        `pinghub_refused_total{reason="${reason}"} grew by ${moved}, expected ${expected.min[reason]} to ${expected.max[reason]}`,
      );
    }
  }
  return problems;
}
