// The churn and soak run: `bun scripts/soak.ts` (5,000 subscribers over 500 channels for 60 s), or smaller with
// `--subscribers 500 --channels 50 --seconds 5`. Starts its own pinghub, connects every subscriber at once (the
// connect storm), publishes at a steady rate while clients join, leave cleanly and vanish without a close and
// some subscribers stop reading, then reports deliveries, losses, order, slow subscribers cut off, RSS over
// time and the gauges at the end. Exits 1 if anything was lost, reordered or left behind.

import { parseArgs } from "node:util";
import { type ChurnOptions, runChurn } from "../test/support/churn.ts";
import { parseSeed } from "../test/support/fuzz.ts";
import { mib } from "../test/support/process-stats.ts";

const { values } = parseArgs({
  options: {
    seconds: { type: "string", default: "60" },
    subscribers: { type: "string", default: "5000" },
    channels: { type: "string", default: "500" },
    workers: { type: "string", default: "4" },
    rate: { type: "string", default: "1000" },
    "message-size": { type: "string", default: "100" },
    churn: { type: "string", default: "100" },
    "churn-pool": { type: "string" },
    "ws-publisher-every": { type: "string", default: "5" },
    "ws-rate": { type: "string", default: "1" },
    "hot-channels": { type: "string", default: "5" },
    "hot-rate": { type: "string", default: "100" },
    "hot-size": { type: "string", default: "4096" },
    stalled: { type: "string", default: "4" },
    "max-backlog": { type: "string", default: String(256 * 1024) },
    seed: { type: "string" },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log(`usage: bun scripts/soak.ts [--seconds 60] [--subscribers 5000] [--channels 500] [--workers 4]
  [--rate 1000 (POST messages/s over all ordinary channels)] [--message-size 100] [--churn 100 (ops/s)]
  [--churn-pool N (default subscribers/10)] [--ws-publisher-every 5] [--ws-rate 1] [--hot-channels 5]
  [--hot-rate 100] [--hot-size 4096] [--stalled 4 (per hot channel)] [--max-backlog 262144] [--seed N]`);
  process.exit(0);
}
const n = (name: keyof typeof values) => Number(values[name]);
const seed = parseSeed(values.seed, "--seed");
const subscribers = n("subscribers");
const options: ChurnOptions = {
  seed,
  subscribers,
  channels: n("channels"),
  durationMs: n("seconds") * 1000,
  workers: n("workers"),
  rate: n("rate"),
  messageSize: n("message-size"),
  churnPool: values["churn-pool"] === undefined ? Math.round(subscribers / 10) : n("churn-pool"),
  churnPerSecond: n("churn"),
  wsPublisherEvery: n("ws-publisher-every"),
  wsRate: n("ws-rate"),
  hot: { channels: n("hot-channels"), rate: n("hot-rate"), size: n("hot-size"), readers: 2, stalled: n("stalled") },
  maxBacklog: n("max-backlog"),
  sampleMs: 1000,
  log: (line) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${line}`),
};
console.log(`soak seed ${seed}: ${JSON.stringify({ ...options, log: undefined })}`);

const r = await runChurn(options);

const problems: string[] = [];
if (r.storm.failed > 0) problems.push(`${r.storm.failed} upgrades of the connect storm failed`);
if (r.lost > 0) problems.push(`${r.lost} messages lost by subscribers that kept reading`);
if (r.reordered > 0) problems.push(`${r.reordered} messages out of order`);
if (r.orderMismatches > 0)
  problems.push(`${r.orderMismatches} channels whose full-run subscribers disagree on the order`);
if (r.unexpectedCloses > 0) problems.push(`${r.unexpectedCloses} reading subscribers closed by the server`);
if (r.published.failedPosts > 0) problems.push(`${r.published.failedPosts} POSTs failed`);
if (r.churn.failedJoins > 0) problems.push(`${r.churn.failedJoins} joins failed`);
if (r.gaugesAtEnd.websockets !== 0 || r.gaugesAtEnd.channels !== 0) {
  problems.push(`gauges at the end: ${r.gaugesAtEnd.websockets} websockets, ${r.gaugesAtEnd.channels} channels`);
}
if (r.slowSubscribersTotal !== r.stalledCutOff) {
  problems.push(
    `pinghub_slow_subscribers_total is ${r.slowSubscribersTotal}, but ${r.stalledCutOff} stalled subscribers were cut off`,
  );
}
problems.push(...r.canary.violations);

const seconds = r.published.seconds;
const samples = r.rss.samples;
const first = samples[0]?.at ?? 0;
const warm = samples.filter((s) => s.at >= first + ((samples.at(-1)?.at ?? 0) - first) * 0.25);
const warmRss = warm.map((s) => s.rss);
console.log(`
== soak, seed ${seed}, ${(r.elapsedMs / 1000).toFixed(1)} s in all
connect storm: ${r.storm.subscribers} subscribers connected at once in ${r.storm.ms} ms, ${r.storm.failed} failed
published: ${r.published.post} by POST (${(r.published.post / seconds).toFixed(0)}/s), ${r.published.websocket} by websocket, ${r.published.failedPosts} POSTs failed, ${r.published.postsBehind} times a channel's publisher fell a whole interval behind
deliveries: ${r.deliveries} received by subscribers (${(r.deliveries / seconds).toFixed(0)}/s); pinghub counted ${r.serverDeliveries} sent (the canary's and what stalled and vanishing subscribers never read included)
lost by subscribers that kept reading: ${r.lost}
out of order: ${r.reordered}; channels whose full-run subscribers disagree: ${r.orderMismatches}
reading subscribers closed by the server: ${r.unexpectedCloses}
stalled subscribers: ${r.stalled}, cut off by the server: ${r.stalledCutOff}; pinghub_slow_subscribers_total ${r.slowSubscribersTotal}; "slow subscriber cut off" log lines ${r.slowSubscriberLogLines}
churn: ${r.churn.joins} joins, ${r.churn.cleanLeaves} clean leaves, ${r.churn.vanished} vanished without a close, ${r.churn.failedJoins} failed joins
slowest client event loop: ${r.maxWorkerLagMs} ms late
canary: ${r.canary.sent} messages, ${r.canary.violations.length} violations, slowest ${r.canary.maxLatencyMs} ms
server fds: ${r.fds.start} at start, peak ${r.fds.peak}, ${r.fds.end} at the end
gauges at the end: pinghub_websockets ${r.gaugesAtEnd.websockets}, pinghub_channels ${r.gaugesAtEnd.channels}
server RSS: peak ${mib(r.rss.peak)} MiB; after warm-up (last 75%) ${mib(Math.min(...warmRss))} to ${mib(Math.max(...warmRss))} MiB
RSS and gauges over time:`);
for (const s of samples) {
  const near = r.gauges.filter((x) => Math.abs(x.at - s.at) < options.sampleMs / 2);
  const g = near.sort((a, b) => Math.abs(a.at - s.at) - Math.abs(b.at - s.at))[0];
  console.log(
    `  ${(s.at / 1000).toFixed(0).padStart(4)} s  ${mib(s.rss).padStart(6)} MiB  ${g ? `${g.websockets} websockets, ${g.channels} channels` : ""}`,
  );
}
if (r.examples.length > 0) console.log(`examples:\n  ${r.examples.join("\n  ")}`);
if (problems.length > 0) {
  console.log(`\n${problems.length} problem(s):\n- ${problems.join("\n- ")}`);
  process.exit(1);
}
console.log("\nno problems");
