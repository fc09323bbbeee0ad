// What reading a batch from Redis costs a cluster node, before and after issue 16: the old path (JSON.parse,
// then deliver each item as it came) against the new one (redis-wire.ts's strict reading, then, with --history,
// redis-catch-up.ts's receive, which remembers the batch's last id). In process, no Redis: only the JavaScript
// per batch differs, so only it is measured. Alternating rounds, the ratio per pair, the median of the ratios.
//
//   bun bench/receive.ts [--rounds N]

import { parseArgs } from "node:util";
import { CatchUp } from "../src/redis-catch-up.ts";
import { readMessages, readPairs } from "../src/redis-wire.ts";

const { values } = parseArgs({ args: Bun.argv.slice(2), options: { rounds: { type: "string", default: "15" } } });
const ROUNDS = Number(values.rounds);
const BATCHES_PER_ROUND = 200_000;
const MAX_MESSAGE_BYTES = 65_536;

let sink = 0;
const deliver = (_channel: string, message: string, id: string | undefined) => {
  sink += message.length + (id === undefined ? 0 : 1);
  return 1;
};

function payloads(size: number, history: boolean): string[] {
  // 64-byte messages, as the fan-out benchmark sends; a few distinct payloads so no result is cached.
  return Array.from({ length: 16 }, (_, k) => {
    const messages = Array.from({ length: size }, (_, i) => `${k}:${i}:`.padEnd(64, "x"));
    return JSON.stringify(history ? messages.map((m, i) => [`1796074511099106-${k * size + i}`, m]) : messages);
  });
}

type Reader = (channel: string, payload: string) => void;

const before = (history: boolean): Reader =>
  history
    ? (channel, payload) => {
        for (const [id, message] of JSON.parse(payload) as Array<[string, string]>) deliver(channel, message, id);
      }
    : (channel, payload) => {
        for (const message of JSON.parse(payload) as string[]) deliver(channel, message, undefined);
      };

function after(history: boolean): Reader {
  const catchUp = new CatchUp({
    deliver,
    gap: () => 0,
    position: () => Promise.resolve(""),
    read: () => Promise.resolve({ status: "ok", messages: [] }),
    ttlMs: 300_000,
  });
  catchUp.follow("/bench");
  // As redis-broker.ts reads a payload: one reader per kind of node, chosen once.
  return history
    ? (channel, payload) => {
        const pairs = readPairs(payload, MAX_MESSAGE_BYTES);
        if (!Array.isArray(pairs)) throw new Error(pairs.reason);
        catchUp.receive(channel, pairs);
      }
    : (channel, payload) => {
        const messages = readMessages(payload, MAX_MESSAGE_BYTES);
        if (!Array.isArray(messages)) throw new Error(messages.reason);
        for (const message of messages) deliver(channel, message, undefined);
      };
}

function time(read: Reader, list: string[]): number {
  const start = Bun.nanoseconds();
  for (let i = 0; i < BATCHES_PER_ROUND; i++) read("/bench", list[i & 15] as string);
  return (Bun.nanoseconds() - start) / BATCHES_PER_ROUND;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

console.log("| batch | history | before, ns/batch | after, ns/batch | after / before (median of pairs) |");
console.log("| --- | --- | --- | --- | --- |");
for (const history of [false, true]) {
  for (const size of [1, 20]) {
    const list = payloads(size, history);
    const [old, now] = [before(history), after(history)];
    // Warm both, so that the JIT has compiled each before it is timed.
    time(old, list);
    time(now, list);
    const olds: number[] = [];
    const nows: number[] = [];
    const ratios: number[] = [];
    for (let r = 0; r < ROUNDS; r++) {
      const first = r % 2 === 0;
      const a = first ? time(old, list) : 0;
      const b = time(now, list);
      const c = first ? a : time(old, list);
      olds.push(c);
      nows.push(b);
      ratios.push(b / c);
    }
    console.log(
      `| ${size} × 64 B | ${history ? "on" : "off"} | ${median(olds).toFixed(0)} | ${median(nows).toFixed(0)} | ${median(ratios).toFixed(2)} |`,
    );
  }
}
if (sink === 0) console.log("");
