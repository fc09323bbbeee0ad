// A churn worker: a separate Bun process, driven over IPC by test/support/churn.ts, that plays either
// - a share of the subscribers: a lean websocket client per subscriber (no frame kept, every message checked
//   on arrival), some of which also publish on their socket, some of which stop reading; plus churn: clients
//   that join, leave cleanly, or vanish without a close; or
// - the POST publisher: numbered messages to every channel at a steady rate, one at a time per channel, so
//   that each channel's order is defined.
//
// A message is `PUB:SEQ:padding`, where PUB is `p` for the POST publisher or `wN` for websocket publisher N,
// and SEQ counts from 0 per channel and publisher. A subscriber that keeps reading must see, for each
// publisher, consecutive numbers: a gap is a lost message, a number not above the last is an order violation.
// Subscribers present from the start must see every number from 0; at the end, every subscriber still there
// must reach each publisher's last number.

import type { Socket } from "bun";
import { Rng } from "./fuzz-core.ts";
import { OPCODE, RawWebSocket } from "./raw-websocket.ts";
import { settled } from "./until.ts";

export type WorkerCommand =
  | {
      cmd: "init";
      port: number;
      worker: number;
      seed: number;
      /** The subscribers this worker connects at once (the connect storm) and keeps for the whole run. */
      initial: InitialSubscriber[];
      /** Channels that churned subscribers join. */
      churnChannels: number[];
      /** Churned subscribers this worker keeps around, joining and leaving. */
      churnPool: number;
      churnPerSecond: number;
      /** Messages per second of each websocket publisher. */
      wsRate: number;
    }
  | { cmd: "connect" }
  | { cmd: "run" }
  | { cmd: "stop" }
  | { cmd: "drain"; finals: Finals; timeoutMs: number }
  | { cmd: "finish" }
  | {
      cmd: "publish";
      port: number;
      /** Messages per second and padding bytes, per channel. */
      channels: Array<{ channel: number; rate: number; size: number }>;
    };

export interface InitialSubscriber {
  id: number;
  channel: number;
  /** Stops reading once publishing starts. */
  stalled: boolean;
  /** Publishes on its own socket too, as `w<id>`. */
  publisher: boolean;
}

/** The last number each publisher sent, per channel: `finals[channel][pub]`. */
export type Finals = Record<string, Record<string, number>>;

export interface SubscriberReport {
  worker: number;
  /** Data messages received by every subscriber, stalled ones included. */
  received: number;
  /** Messages missing in the sequence of a subscriber that kept reading. */
  lost: number;
  /** Numbers that came out of order (not above the last one from the same publisher). */
  reordered: number;
  /** Reading subscribers the server closed without being asked. */
  unexpectedCloses: number;
  /** Detail of the first problems, for the report. */
  examples: string[];
  /** Subscribers present for the whole run, still there at the end, and the hash of all they received. */
  fullRun: Array<{ channel: number; count: number; hash: number }>;
  stalled: number;
  /** Stalled subscribers the server had cut off, as they found on reading again. */
  stalledCutOff: number;
  joins: number;
  cleanLeaves: number;
  vanished: number;
  /** Upgrades that failed. */
  failedJoins: number;
  /** Longest the worker's event loop was late: above a second, it, not the server, was the bottleneck. */
  maxLagMs: number;
  wsPublished: number;
}

const KEY = "dGhlIHNhbXBsZSBub25jZQ==";

/** One subscriber's connection: handshake, frames, checks. */
class Sub {
  socket: Socket<undefined> | undefined;
  state: "connecting" | "open" | "leaving" | "closed" = "connecting";
  private buffer: Buffer = Buffer.alloc(0);
  private upgraded = false;
  readonly last = new Map<string, number>();
  received = 0;
  hash = 0x811c9dc5;
  closedByServer = false;
  pongs = 0;
  publishSeq = 0;
  /** Set when the connection is open (101) or failed. */
  readonly opened: Promise<boolean>;
  private resolveOpened!: (ok: boolean) => void;
  readonly closed: Promise<void>;
  private resolveClosed!: () => void;

  constructor(
    readonly id: number,
    readonly channel: number,
    readonly initial: boolean,
    readonly stalled: boolean,
    readonly pubId: string | undefined,
    private readonly stats: Stats,
  ) {
    this.opened = new Promise((resolve) => {
      this.resolveOpened = resolve;
    });
    this.closed = new Promise((resolve) => {
      this.resolveClosed = resolve;
    });
  }

  async connect(port: number): Promise<boolean> {
    const onEnd = () => this.onEnd();
    try {
      this.socket = await Bun.connect({
        hostname: "127.0.0.1",
        port,
        socket: { data: (_s, data: Buffer) => this.onData(data), close: onEnd, end: onEnd, error: onEnd },
      });
    } catch {
      this.onEnd();
      return false;
    }
    this.socket.write(
      `GET /soak/${this.channel} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
        `Sec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    return this.opened;
  }

  send(opcode: number, payload: string | Uint8Array): void {
    this.socket?.write(
      RawWebSocket.encodeFrame(opcode, payload, { maskKey: crypto.getRandomValues(new Uint8Array(4)) }),
    );
  }

  publish(): void {
    if (this.state !== "open" || this.pubId === undefined) return;
    this.send(OPCODE.text, `${this.pubId}:${this.publishSeq++}:`);
    this.stats.wsPublished++;
  }

  /** A clean leave: a close frame, the server's answer, then the end. */
  async leave(): Promise<void> {
    if (this.state !== "open") return;
    this.state = "leaving";
    this.send(OPCODE.close, Buffer.from([0x03, 0xe8]));
    await Promise.race([this.closed, Bun.sleep(5_000)]);
    if ((this.state as Sub["state"]) !== "closed") this.socket?.end();
  }

  /** Gone without a close frame: a FIN, or a reset. */
  vanish(reset: boolean): void {
    if (this.state === "closed") return;
    this.state = "leaving";
    if (reset) this.socket?.terminate();
    else this.socket?.end();
  }

  private onData(data: Buffer): void {
    this.buffer = this.buffer.length === 0 ? data : Buffer.concat([this.buffer, data]);
    if (!this.upgraded) {
      const end = this.buffer.indexOf("\r\n\r\n");
      if (end < 0) return;
      const ok = this.buffer.subarray(0, 12).toString() === "HTTP/1.1 101";
      this.buffer = this.buffer.subarray(end + 4);
      this.upgraded = true;
      if (!ok) {
        this.socket?.end();
        this.resolveOpened(false);
        return;
      }
      this.state = "open";
      this.resolveOpened(true);
    }
    this.parse();
  }

  private parse(): void {
    let b = this.buffer;
    for (;;) {
      if (b.length < 2) break;
      let length = (b[1] ?? 0) & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (b.length < 4) break;
        length = b.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (b.length < 10) break;
        length = Number(b.readBigUInt64BE(2));
        offset = 10;
      }
      if (b.length < offset + length) break;
      const opcode = (b[0] ?? 0) & 0x0f;
      const payload = b.subarray(offset, offset + length);
      b = b.subarray(offset + length);
      if (opcode === OPCODE.text) this.onMessage(payload.toString("latin1"));
      else if (opcode === OPCODE.ping) this.send(OPCODE.pong, payload);
      else if (opcode === OPCODE.pong) this.pongs++;
      else if (opcode === OPCODE.close) {
        if (this.state !== "leaving") this.closedByServer = true;
        else this.socket?.end();
      }
    }
    this.buffer = b.length === 0 ? Buffer.alloc(0) : Buffer.from(b);
  }

  private onMessage(text: string): void {
    const first = text.indexOf(":");
    const second = text.indexOf(":", first + 1);
    const pub = text.slice(0, first);
    const seq = Number(text.slice(first + 1, second));
    this.received++;
    this.stats.received++;
    // FNV-1a over "pub:seq;": equal hashes, equal sequences.
    for (let i = 0; i < second; i++) this.hash = Math.imul(this.hash ^ text.charCodeAt(i), 16777619) >>> 0;
    this.hash = Math.imul(this.hash ^ 0x3b, 16777619) >>> 0;
    const last = this.last.get(pub);
    if (last === undefined) {
      // Present from the start: every publisher's first message is number 0.
      if (this.initial && seq > 0 && !this.stalled) this.stats.loss(this, seq, `${pub} started at ${seq}`);
    } else if (seq > last + 1) {
      if (!this.stalled) this.stats.loss(this, seq - last - 1, `${pub} jumped from ${last} to ${seq}`);
    } else if (seq <= last) {
      this.stats.reorder(this, `${pub} ${seq} after ${last}`);
      return;
    }
    this.last.set(pub, seq);
  }

  private onEnd(): void {
    if (this.state === "closed") return;
    if (this.state !== "leaving") this.closedByServer = true;
    const wasConnecting = this.state === "connecting";
    this.state = "closed";
    if (wasConnecting) this.resolveOpened(false);
    this.resolveClosed();
  }
}

class Stats implements Omit<SubscriberReport, "fullRun" | "maxLagMs" | "stalled" | "stalledCutOff"> {
  received = 0;
  lost = 0;
  reordered = 0;
  unexpectedCloses = 0;
  examples: string[] = [];
  joins = 0;
  cleanLeaves = 0;
  vanished = 0;
  failedJoins = 0;
  wsPublished = 0;

  constructor(readonly worker: number) {}

  loss(sub: Sub, n: number, what: string): void {
    this.lost += n;
    this.example(`subscriber ${sub.id} on /soak/${sub.channel}: lost ${n} (${what})`);
  }

  reorder(sub: Sub, what: string): void {
    this.reordered++;
    this.example(`subscriber ${sub.id} on /soak/${sub.channel}: out of order (${what})`);
  }

  example(line: string): void {
    if (this.examples.length < 10) this.examples.push(line);
  }
}

// ---------------------------------------------------------------------------------------------------------

function send(message: unknown): void {
  process.send?.(message);
}

let port = 0;
let stats = new Stats(0);
let initial: Sub[] = [];
const churned = new Set<Sub>();
let config: Extract<WorkerCommand, { cmd: "init" }> | undefined;
let timers: Array<ReturnType<typeof setInterval>> = [];
let maxLagMs = 0;
let random = Math.random;

/** The seeded generator the fuzzer uses too (mulberry32), as a function. */
function mulberry32(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

// The event loop's lateness, sampled all along: a worker that falls behind is a client bottleneck.
let lagCheck = performance.now();
setInterval(() => {
  const now = performance.now();
  maxLagMs = Math.max(maxLagMs, now - lagCheck - 100);
  lagCheck = now;
}, 100);

async function join(): Promise<void> {
  if (config === undefined) return;
  const channel = config.churnChannels[Math.floor(random() * config.churnChannels.length)] ?? 0;
  const sub = new Sub(1_000_000 * (config.worker + 1) + stats.joins, channel, false, false, undefined, stats);
  stats.joins++;
  churned.add(sub);
  if (!(await sub.connect(port))) {
    stats.failedJoins++;
    churned.delete(sub);
  }
}

function churnOnce(): void {
  if (config === undefined) return;
  // Around churnPool churned subscribers at any time: below it one joins, above it one leaves, at it either.
  const open = [...churned].filter((s) => s.state === "open");
  const present = [...churned].length;
  if (present < config.churnPool || (present === config.churnPool && random() < 0.5)) {
    void join();
    return;
  }
  const sub = open[Math.floor(random() * open.length)];
  if (sub === undefined) return;
  churned.delete(sub);
  if (random() < 0.5) {
    stats.cleanLeaves++;
    void sub.leave();
  } else {
    stats.vanished++;
    sub.vanish(random() < 0.5);
  }
}

function countUnexpected(): void {
  for (const sub of [...initial, ...churned]) {
    if (sub.closedByServer && !sub.stalled) {
      stats.unexpectedCloses++;
      stats.example(`subscriber ${sub.id} on /soak/${sub.channel} was closed by the server`);
      sub.closedByServer = false;
    }
  }
}

async function onCommand(command: WorkerCommand): Promise<void> {
  switch (command.cmd) {
    case "init": {
      config = command;
      port = command.port;
      stats = new Stats(command.worker);
      random = mulberry32(command.seed);
      initial = command.initial.map(
        (s) => new Sub(s.id, s.channel, true, s.stalled, s.publisher ? `w${s.id}` : undefined, stats),
      );
      send({ evt: "ready" });
      return;
    }
    case "connect": {
      // The connect storm: every upgrade at once.
      const started = performance.now();
      const results = await Promise.all(initial.map((s) => s.connect(port)));
      const failed = results.filter((ok) => !ok).length;
      send({ evt: "connected", ok: results.length - failed, failed, ms: Math.round(performance.now() - started) });
      return;
    }
    case "run": {
      for (const s of initial) if (s.stalled) s.socket?.pause();
      const c = config;
      if (c === undefined) return;
      if (c.churnPerSecond > 0) timers.push(setInterval(churnOnce, 1000 / c.churnPerSecond));
      const publishers = initial.filter((s) => s.pubId !== undefined);
      if (publishers.length > 0 && c.wsRate > 0) {
        // Each publisher sends wsRate messages a second, spread over the second.
        let i = 0;
        timers.push(
          setInterval(
            () => {
              publishers[i++ % publishers.length]?.publish();
            },
            1000 / (c.wsRate * publishers.length),
          ),
        );
      }
      send({ evt: "running" });
      return;
    }
    case "stop": {
      for (const t of timers) clearInterval(t);
      timers = [];
      const finals: Finals = {};
      for (const s of initial) {
        if (s.pubId !== undefined && s.publishSeq > 0) {
          finals[s.channel] ??= {};
          (finals[s.channel] as Record<string, number>)[s.pubId] = s.publishSeq - 1;
        }
      }
      send({ evt: "stopped", finals });
      return;
    }
    case "drain": {
      // Every subscriber still there and reading must reach each publisher's last number.
      const reading = [...initial, ...churned].filter((s) => s.state === "open" && !s.stalled);
      const reached = (s: Sub) =>
        Object.entries(command.finals[s.channel] ?? {}).every(([pub, last]) => {
          const seen = s.last.get(pub);
          // A churned subscriber that never heard from a publisher may have joined after its last message.
          return seen === undefined ? !s.initial : seen >= last;
        });
      await settled(() => reading.every((s) => reached(s) || s.state !== "open"), command.timeoutMs);
      for (const s of reading) {
        for (const [pub, last] of Object.entries(command.finals[s.channel] ?? {})) {
          const seen = s.last.get(pub);
          if (seen === undefined && s.initial) stats.loss(s, last + 1, `nothing from ${pub}`);
          else if (seen !== undefined && seen < last) stats.loss(s, last - seen, `${pub} ended at ${seen} of ${last}`);
        }
      }
      countUnexpected();
      const fullRun = initial
        .filter((s) => s.state === "open" && !s.stalled)
        .map((s) => ({ channel: s.channel, count: s.received, hash: s.hash }));
      send({ evt: "drained", fullRun });
      return;
    }
    case "finish": {
      // Stalled subscribers read again: one the server cut off finds the end of its connection; one it kept
      // finds the answer to a ping after everything queued for it.
      const stalled = initial.filter((s) => s.stalled);
      for (const s of stalled) {
        s.socket?.resume();
        if (s.state === "open") s.send(OPCODE.ping, "still there?");
      }
      await settled(() => stalled.every((s) => s.state === "closed" || s.pongs > 0), 30_000);
      const stalledCutOff = stalled.filter((s) => s.closedByServer || s.state === "closed").length;
      // Everyone leaves: half cleanly, a quarter with a FIN and no close, a quarter with a reset.
      const everyone = [...initial, ...churned].filter((s) => s.state === "open");
      await Promise.all(
        everyone.map(async (s, i) => {
          if (i % 2 === 0) await s.leave();
          else s.vanish(i % 4 === 1);
        }),
      );
      const report: SubscriberReport = {
        ...stats,
        examples: stats.examples,
        fullRun: [],
        stalled: stalled.length,
        stalledCutOff,
        maxLagMs: Math.round(maxLagMs),
      };
      send({ evt: "finished", report });
      return;
    }
    case "publish":
      await publish(command);
      return;
  }
}

// ---------------------------------------------------------------------------------------------------------
// The POST publisher

let publishing = false;

async function publish(command: Extract<WorkerCommand, { cmd: "publish" }>): Promise<void> {
  publishing = true;
  const finals: Finals = {};
  let sent = 0;
  let failed = 0;
  let behind = 0;
  const failures: string[] = [];
  const started = performance.now();
  await Promise.all(
    command.channels.map(async ({ channel, rate, size }) => {
      const url = `http://127.0.0.1:${command.port}/soak/${channel}`;
      const interval = 1000 / rate;
      const padding = "x".repeat(size);
      // Start each channel at a random point of its interval, so the load is even.
      let due = started + Math.random() * interval;
      let seq = 0;
      while (publishing) {
        const wait = due - performance.now();
        if (wait > 0) await Bun.sleep(wait);
        else if (wait < -interval) behind++;
        if (!publishing) break;
        due = Math.max(due + interval, performance.now() - interval);
        const n = seq++;
        try {
          const response = await fetch(url, { method: "POST", body: `p:${n}:${padding}` });
          await response.arrayBuffer();
          if (response.status !== 200) {
            failed++;
            if (failures.length < 5) failures.push(`POST ${n} to /soak/${channel}: ${response.status}`);
          }
        } catch (error) {
          failed++;
          if (failures.length < 5) failures.push(`POST ${n} to /soak/${channel}: ${(error as Error).message}`);
        }
        sent++;
        finals[channel] = { p: n };
      }
    }),
  );
  send({
    evt: "published",
    finals,
    sent,
    failed,
    failures,
    behind,
    seconds: (performance.now() - started) / 1000,
    maxLagMs: Math.round(maxLagMs),
  });
}

process.on("message", (message: WorkerCommand | { cmd: "stop-publishing" }) => {
  if (message.cmd === "stop-publishing") {
    publishing = false;
    return;
  }
  void onCommand(message);
});
send({ evt: "alive" });
