// Churn and soak: thousands of subscribers over hundreds of channels, steady publishers, clients joining,
// leaving cleanly and vanishing without a close, some subscribers that stop reading, against a real pinghub
// process. The subscribers and the POST publisher run in worker processes (test/support/churn-worker.ts), so
// that no single client process is the bottleneck; each worker reports how late its event loop ever was.
// Shared by test/churn.test.ts (a short version) and scripts/soak.ts (the full one, with its report).

import type { Subprocess } from "bun";
import { Canary, type CanaryReport } from "./canary.ts";
import type { Finals, InitialSubscriber, SubscriberReport, WorkerCommand } from "./churn-worker.ts";
import { freePort } from "./ports.ts";
import { openFds, RssMonitor, type RssSample } from "./process-stats.ts";
import { sample, spawnServing } from "./server.ts";
import { settled } from "./until.ts";

export interface ChurnOptions {
  seed: number;
  subscribers: number;
  channels: number;
  durationMs: number;
  /** Subscriber worker processes. */
  workers: number;
  /** POST messages per second over all ordinary channels. */
  rate: number;
  /** Padding of an ordinary message, in bytes. */
  messageSize: number;
  /** Of the subscribers, how many churn (join and leave) rather than stay for the whole run. */
  churnPool: number;
  /** Join, leave and vanish operations per second, over all workers. */
  churnPerSecond: number;
  /** One websocket publisher per this many ordinary channels (0: none). */
  wsPublisherEvery: number;
  /** Messages per second of each websocket publisher. */
  wsRate: number;
  /** Hot channels: big messages at a high rate, with stalled subscribers on them beside readers. */
  hot: { channels: number; rate: number; size: number; readers: number; stalled: number };
  /** The server's --max-backlog. */
  maxBacklog: number;
  sampleMs: number;
  log?: (line: string) => void;
}

export interface ChurnReport {
  options: ChurnOptions;
  storm: { subscribers: number; failed: number; ms: number };
  published: { post: number; websocket: number; failedPosts: number; postsBehind: number; seconds: number };
  /** Data messages received by all subscribers. */
  deliveries: number;
  /** pinghub's own count of deliveries, pinghub_sent_messages_total. */
  serverDeliveries: number;
  lost: number;
  reordered: number;
  /** Full-run subscribers of one channel that did not receive the same sequence. */
  orderMismatches: number;
  unexpectedCloses: number;
  stalled: number;
  /** Stalled subscribers that found their connection closed by the server when they read again. */
  stalledCutOff: number;
  /** pinghub_slow_subscribers_total. */
  slowSubscribersTotal: number;
  /** Lines pinghub logged about slow subscribers. */
  slowSubscriberLogLines: number;
  churn: { joins: number; cleanLeaves: number; vanished: number; failedJoins: number };
  maxWorkerLagMs: number;
  gaugesAtEnd: { websockets: number | undefined; channels: number | undefined };
  rss: { samples: RssSample[]; peak: number };
  fds: { start: number; peak: number; end: number };
  canary: CanaryReport;
  examples: string[];
  /** Gauges while running, sampled with the RSS, at milliseconds since the first RSS sample. */
  gauges: Array<{ at: number; websockets: number; channels: number }>;
  elapsedMs: number;
}

const WORKER = new URL("./churn-worker.ts", import.meta.url).pathname;

interface Worker {
  proc: Subprocess;
  next(evt: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  send(command: WorkerCommand | { cmd: "stop-publishing" }): void;
}

function startWorker(): Worker {
  const inbox: Array<Record<string, unknown>> = [];
  const waiters: Array<() => void> = [];
  const proc = Bun.spawn([process.execPath, WORKER], {
    stdio: ["ignore", "inherit", "inherit"],
    ipc(message) {
      inbox.push(message as Record<string, unknown>);
      for (const wake of waiters.splice(0)) wake();
    },
  });
  return {
    proc,
    send(command) {
      proc.send(command);
    },
    async next(evt, timeoutMs = 120_000) {
      const deadline = performance.now() + timeoutMs;
      for (;;) {
        const i = inbox.findIndex((m) => m.evt === evt);
        if (i >= 0) return inbox.splice(i, 1)[0] as Record<string, unknown>;
        if (proc.exitCode !== null) throw new Error(`churn worker exited with ${proc.exitCode} before "${evt}"`);
        const left = deadline - performance.now();
        if (left <= 0) throw new Error(`churn worker never said "${evt}"`);
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, Math.min(left, 1000));
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
    },
  };
}

/** Deals the subscribers out: readers and stalled ones on the hot channels, the rest round the others. */
function plan(o: ChurnOptions): { initial: InitialSubscriber[]; hot: number[]; ordinary: number[] } {
  const hot = Array.from({ length: o.hot.channels }, (_, i) => i);
  const ordinary = Array.from({ length: o.channels - o.hot.channels }, (_, i) => i + o.hot.channels);
  const initial: InitialSubscriber[] = [];
  let id = 0;
  for (const channel of hot) {
    for (let i = 0; i < o.hot.readers; i++) initial.push({ id: id++, channel, stalled: false, publisher: false });
    for (let i = 0; i < o.hot.stalled; i++) initial.push({ id: id++, channel, stalled: true, publisher: false });
  }
  const rest = o.subscribers - o.churnPool - initial.length;
  for (let i = 0; i < rest; i++) {
    const channel = ordinary[i % ordinary.length] ?? 0;
    // The first subscriber of every wsPublisherEvery-th channel publishes too.
    const publisher = o.wsPublisherEvery > 0 && i < ordinary.length && i % o.wsPublisherEvery === 0;
    initial.push({ id: id++, channel, stalled: false, publisher });
  }
  return { initial, hot, ordinary };
}

export async function runChurn(options: ChurnOptions): Promise<ChurnReport> {
  const log = options.log ?? (() => {});
  const started = performance.now();
  const mport = freePort();
  const pinghub = await spawnServing([
    "--mport",
    String(mport),
    "--max-backlog",
    String(options.maxBacklog),
    "--max-message-size",
    String(Math.max(65536, options.hot.size + 64)),
  ]);
  const pid = pinghub.proc.pid;
  const port = Number(new URL(pinghub.url).port);
  const scrape = async () => (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
  const workers = Array.from({ length: options.workers }, startWorker);
  const publisher = startWorker();
  try {
    await Promise.all([...workers, publisher].map((w) => w.next("alive")));
    const { initial, hot, ordinary } = plan(options);
    const perWorker = (w: number) => initial.filter((_, i) => i % options.workers === w);
    for (const [i, w] of workers.entries()) {
      w.send({
        cmd: "init",
        port,
        worker: i,
        seed: (options.seed + i * 7919) >>> 0,
        initial: perWorker(i),
        churnChannels: ordinary,
        churnPool: Math.round(options.churnPool / options.workers),
        churnPerSecond: options.churnPerSecond / options.workers,
        wsRate: options.wsRate,
      });
    }
    await Promise.all(workers.map((w) => w.next("ready")));

    const fdsStart = openFds(pid);
    const monitorStart = performance.now();
    const monitor = new RssMonitor(pid, options.sampleMs);
    const gauges: ChurnReport["gauges"] = [];
    let fdsPeak = fdsStart;
    const gaugeTimer = setInterval(async () => {
      try {
        fdsPeak = Math.max(fdsPeak, openFds(pid));
        const text = await scrape();
        gauges.push({
          at: Math.round(performance.now() - monitorStart),
          websockets: sample(text, "pinghub_websockets") ?? -1,
          channels: sample(text, "pinghub_channels") ?? -1,
        });
      } catch {}
    }, options.sampleMs);
    const canary = await Canary.start(pinghub.url, `/canary/${options.seed}`, 20);

    // The connect storm: every worker opens all its subscribers at once.
    log(`connect storm: ${initial.length} upgrades at once from ${options.workers} workers`);
    const stormStart = performance.now();
    for (const w of workers) w.send({ cmd: "connect" });
    const connected = await Promise.all(workers.map((w) => w.next("connected")));
    const storm = {
      subscribers: connected.reduce((n, c) => n + Number(c.ok), 0),
      failed: connected.reduce((n, c) => n + Number(c.failed), 0),
      ms: Math.round(performance.now() - stormStart),
    };
    log(`connect storm: ${storm.subscribers} connected, ${storm.failed} failed, in ${storm.ms} ms`);

    for (const w of workers) w.send({ cmd: "run" });
    await Promise.all(workers.map((w) => w.next("running")));
    const sentBefore = sample(await scrape(), "pinghub_sent_messages_total") ?? 0;
    const perChannel = options.rate / Math.max(1, ordinary.length);
    publisher.send({
      cmd: "publish",
      port,
      channels: [
        ...hot.map((channel) => ({ channel, rate: options.hot.rate, size: options.hot.size })),
        ...ordinary.map((channel) => ({ channel, rate: perChannel, size: options.messageSize })),
      ],
    });
    log(`publishing ${options.rate} messages/s over ${ordinary.length} channels for ${options.durationMs / 1000} s`);
    await Bun.sleep(options.durationMs);

    publisher.send({ cmd: "stop-publishing" });
    for (const w of workers) w.send({ cmd: "stop" });
    const [published, ...stopped] = await Promise.all([
      publisher.next("published"),
      ...workers.map((w) => w.next("stopped")),
    ]);
    const finals: Finals = {};
    for (const part of [published.finals, ...stopped.map((s) => s.finals)] as Finals[]) {
      for (const [channel, pubs] of Object.entries(part)) finals[channel] = { ...finals[channel], ...pubs };
    }
    // The publisher's keep-alive connections go with it; pinghub would otherwise hold them until they idle out.
    publisher.proc.kill();
    log(`published ${published.sent} by POST; draining`);
    for (const w of workers) w.send({ cmd: "drain", finals, timeoutMs: 15_000 });
    const drained = await Promise.all(workers.map((w) => w.next("drained")));
    const sentAfter = sample(await scrape(), "pinghub_sent_messages_total") ?? 0;

    // One order for everyone: full-run subscribers of a channel received the same sequence.
    const byChannel = new Map<number, Set<string>>();
    for (const d of drained) {
      for (const f of d.fullRun as Array<{ channel: number; count: number; hash: number }>) {
        const set = byChannel.get(f.channel) ?? new Set();
        set.add(`${f.count}/${f.hash}`);
        byChannel.set(f.channel, set);
      }
    }
    const orderMismatches = [...byChannel.values()].filter((s) => s.size > 1).length;

    for (const w of workers) w.send({ cmd: "finish" });
    const finished = (await Promise.all(workers.map((w) => w.next("finished")))).map(
      (f) => f.report as SubscriberReport,
    );
    const canaryReport = await canary.stop();
    clearInterval(gaugeTimer);

    // Everyone has left, one way or another: the server must have let go of every websocket and channel.
    let end = { websockets: undefined as number | undefined, channels: undefined as number | undefined };
    await settled(async () => {
      const text = await scrape();
      end = { websockets: sample(text, "pinghub_websockets"), channels: sample(text, "pinghub_channels") };
      return end.websockets === 0 && end.channels === 0;
    }, 15_000);
    gauges.push({
      at: Math.round(performance.now() - monitorStart),
      websockets: end.websockets ?? -1,
      channels: end.channels ?? -1,
    });
    let fdsEnd = openFds(pid);
    await settled(() => {
      fdsEnd = openFds(pid);
      return fdsEnd <= fdsStart + 8;
    }, 15_000);
    monitor.stop();
    const final = await scrape();
    const sum = (f: (r: SubscriberReport) => number) => finished.reduce((n, r) => n + f(r), 0);
    return {
      options,
      storm,
      published: {
        post: Number(published.sent),
        websocket: sum((r) => r.wsPublished),
        failedPosts: Number(published.failed),
        postsBehind: Number(published.behind),
        seconds: Number(published.seconds),
      },
      deliveries: sum((r) => r.received),
      serverDeliveries: sentAfter - sentBefore,
      lost: sum((r) => r.lost),
      reordered: sum((r) => r.reordered),
      orderMismatches,
      unexpectedCloses: sum((r) => r.unexpectedCloses),
      stalled: sum((r) => r.stalled),
      stalledCutOff: sum((r) => r.stalledCutOff),
      slowSubscribersTotal: sample(final, "pinghub_slow_subscribers_total") ?? -1,
      slowSubscriberLogLines: pinghub
        .stderr()
        .split("\n")
        .filter((l) => l.includes("slow subscriber cut off")).length,
      churn: {
        joins: sum((r) => r.joins),
        cleanLeaves: sum((r) => r.cleanLeaves),
        vanished: sum((r) => r.vanished),
        failedJoins: sum((r) => r.failedJoins),
      },
      maxWorkerLagMs: Math.max(Number(published.maxLagMs), ...finished.map((r) => r.maxLagMs)),
      gaugesAtEnd: end,
      rss: { samples: monitor.samples, peak: monitor.peak },
      fds: { start: fdsStart, peak: fdsPeak, end: fdsEnd },
      canary: canaryReport,
      examples: [...finished.flatMap((r) => r.examples), ...((published.failures as string[]) ?? [])].slice(0, 20),
      gauges,
      elapsedMs: performance.now() - started,
    };
  } finally {
    for (const w of [...workers, publisher]) w.proc.kill();
    pinghub.proc.kill("SIGTERM");
    await pinghub.exited;
  }
}
