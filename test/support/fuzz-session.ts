// A whole fuzzing session against a real pinghub process: start it with its metrics server, start the canary
// and the RSS monitor, fuzz, then check that the canary lost nothing, that every websocket and channel is gone,
// that file descriptors went back, that the refusal counters moved by what the cases allow, and that the
// server still answers. Shared by test/fuzz.test.ts and scripts/fuzz.ts, which only differ in how long.

import { Canary, type CanaryReport } from "./canary.ts";
import { type FuzzReport, refusalCounts, refusalMismatches, runFuzz } from "./fuzz.ts";
import { freePort } from "./ports.ts";
import { cpuSeconds, openFds, RssMonitor } from "./process-stats.ts";
import { sample, spawnServing } from "./server.ts";
import { settled } from "./until.ts";

/** Keep-alive connections fetch may still hold to the server when the fuzzing stops. */
const FETCH_POOL = 8;

export interface SessionOptions {
  seed: number;
  durationMs: number;
  lanes: number;
  classics: boolean;
  only?: string;
  slowloris?: { count: number; durationMs: number };
  /** RSS sampling interval. */
  sampleMs: number;
  log?: (line: string) => void;
  maxMessageSize?: number;
}

export interface SessionReport {
  seed: number;
  fuzz: FuzzReport;
  canary: CanaryReport;
  /** Everything else that went wrong: gauges, descriptors, counters, liveness. */
  problems: string[];
  rss: { start: number; peak: number; end: number; samples: Array<{ at: number; rss: number }> };
  fds: { start: number; peak: number; end: number };
  serverCpuSeconds: number;
  elapsedMs: number;
  /** Lines the server logged at warn or error, grouped by text, with counts. */
  logLines: Array<[string, number]>;
}

export async function fuzzSession(options: SessionOptions): Promise<SessionReport> {
  const maxMessageSize = options.maxMessageSize ?? 4096;
  const mport = freePort();
  const pinghub = await spawnServing([
    "--mport",
    String(mport),
    "--max-message-size",
    String(maxMessageSize),
    "--max-backlog",
    String(256 * 1024),
  ]);
  const pid = pinghub.proc.pid;
  const port = Number(new URL(pinghub.url).port);
  const metrics = `http://127.0.0.1:${mport}/metrics`;
  const scrape = async () => (await fetch(metrics)).text();
  const problems: string[] = [];
  const started = performance.now();
  try {
    const fdsStart = openFds(pid);
    let fdsPeak = fdsStart;
    const monitor = new RssMonitor(pid, options.sampleMs);
    const fdTimer = setInterval(() => {
      try {
        fdsPeak = Math.max(fdsPeak, openFds(pid));
      } catch {}
    }, options.sampleMs);
    const cpuStart = cpuSeconds(pid);
    const refusalsBefore = refusalCounts(await scrape());
    const canary = await Canary.start(pinghub.url, `/canary/${options.seed}`);

    const fuzz = await runFuzz({
      port,
      seed: options.seed,
      durationMs: options.durationMs,
      lanes: options.lanes,
      maxMessageSize,
      classics: options.classics,
      only: options.only,
      slowloris: options.slowloris,
      log: options.log,
    });
    const canaryReport = await canary.stop();
    clearInterval(fdTimer);

    // Every connection the fuzzer opened is closed on its side; the server must let go of all of them.
    const gauges = async () => {
      const text = await scrape();
      return { websockets: sample(text, "pinghub_websockets"), channels: sample(text, "pinghub_channels") };
    };
    let last = await gauges();
    await settled(async () => {
      last = await gauges();
      return last.websockets === 0 && last.channels === 0;
    }, 10_000);
    if (last.websockets !== 0 || last.channels !== 0) {
      problems.push(`gauges did not return to 0: ${last.websockets} websockets, ${last.channels} channels`);
    }
    // Descriptors too: what is open at the end is what was open at the start, give or take a few keep-alive
    // connections of fetch's pool (the canary's POSTs, the metrics scrapes), which pinghub closes when idle.
    let fdsEnd = openFds(pid);
    await settled(() => {
      fdsEnd = openFds(pid);
      return fdsEnd <= fdsStart + FETCH_POOL;
    }, 15_000);
    if (fdsEnd > fdsStart + FETCH_POOL)
      problems.push(`file descriptors: ${fdsStart} at the start, ${fdsEnd} at the end`);

    problems.push(...refusalMismatches(refusalsBefore, refusalCounts(await scrape()), fuzz.refusals));
    const health = await fetch(`http://127.0.0.1:${mport}/healthz`);
    if (health.status !== 200) problems.push(`/healthz answered ${health.status}`);
    if (pinghub.proc.exitCode !== null) problems.push(`pinghub exited with ${pinghub.proc.exitCode}`);
    const serverCpuSeconds = cpuSeconds(pid) - cpuStart;
    monitor.stop();

    const counts = new Map<string, number>();
    for (const line of pinghub.stderr().split("\n")) {
      const m = line.match(/^\S+ (warn|error) (.*)$/) ?? line.match(/^(warn|error): (.*)$/);
      if (m) counts.set(`${m[1]} ${m[2]}`, (counts.get(`${m[1]} ${m[2]}`) ?? 0) + 1);
    }
    return {
      seed: options.seed,
      fuzz,
      canary: canaryReport,
      problems,
      rss: {
        start: monitor.samples[0]?.rss ?? 0,
        peak: monitor.peak,
        end: monitor.samples.at(-1)?.rss ?? 0,
        samples: monitor.samples,
      },
      fds: { start: fdsStart, peak: fdsPeak, end: fdsEnd },
      serverCpuSeconds,
      elapsedMs: performance.now() - started,
      logLines: [...counts.entries()].sort((a, b) => b[1] - a[1]),
    };
  } finally {
    pinghub.proc.kill("SIGTERM");
    await pinghub.exited;
  }
}
