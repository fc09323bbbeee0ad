// The fan-out load: subscribers on some channels, and every message checked on arrival: its sequence number
// (lost or out of order?) and its time stamp (latency). The subscribers are websockets, one of each channel's
// also its publisher; or Server-Sent Events streams, with one websocket per channel to publish (which gets
// every message back too, as a websocket publisher does, unchecked and not counted as a delivery).
//
// Two paces:
// - rate: a fixed number of messages per second, whatever happens to them (open loop): the latency a client
//   sees at a given load.
// - window: each channel keeps a fixed number of messages in flight, and publishes the next as soon as every
//   subscriber has the oldest (closed loop): as fast as the server and the load generator together can go,
//   without ever queueing enough for the server's backlog limit to cut a subscriber off.

import { treeRssBytes } from "../../test/support/process-stats.ts";
import { type CpuUse, cpuSince, cpuSnapshot, type RedisPids } from "../measure.ts";
import { LatencyHistogram } from "../stats.ts";
import { fillMessage, nowMicros, readSeq, readStamp, writeNumbers } from "./message.ts";
import { closeEventStreams, openEventStreams, type SseConnection } from "./sse-client.ts";
import { closeAll, connectAll, textFrame, type WsConnection } from "./ws-client.ts";

/** How the subscribers subscribe: websockets, or Server-Sent Events (`GET` with `Accept: text/event-stream`). */
export const TRANSPORTS = ["websocket", "sse"] as const;
export type Transport = (typeof TRANSPORTS)[number];

export interface FanoutShape {
  port: number;
  channels: number;
  subscribersPerChannel: number;
  /** Bytes per message, the numbers at its start included. */
  messageSize: number;
  /** Websockets unless given. */
  transport?: Transport;
  /** After every path: `?token=...` for a server that asks for one. */
  query?: string;
}

export type Pace = { kind: "rate"; messagesPerSecond: number } | { kind: "window"; inFlightPerChannel: number };

export interface PhaseResult {
  /** Publishing start to the last delivery. */
  seconds: number;
  published: number;
  /** Messages received, by every subscriber together. */
  deliveries: number;
  deliveriesPerSecond: number;
  /** Deliveries owed (published × subscribers) that never came. */
  lost: number;
  /** Messages that came after one with a higher sequence number. */
  outOfOrder: number;
  /** Subscribers whose connection ended during the phase. */
  disconnected: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  latencyMaxMs: number;
  /** Server CPU time per delivery, in µs. */
  serverCpuMicrosPerDelivery: number;
  /** CPU seconds used over the phase, publishing start to the end of the wait for stragglers. */
  cpu: CpuUse;
  serverRssBytes: number;
}

/** How long, after publishing stops, to wait for deliveries still coming before counting the rest as lost. */
const DRAIN_QUIET_MS = 2_000;

export class FanoutLoad {
  /** Websocket subscribers, one per channel publishing too; none with SSE subscribers. */
  private conns: WsConnection[] = [];
  /** SSE subscribers, when the transport is SSE. */
  private streams: SseConnection[] = [];
  /** Each channel's publisher: its first websocket subscriber, or a websocket of its own beside SSE streams. */
  private publishers: WsConnection[] = [];
  private readonly subscribers: number;
  /** Per channel: the next sequence number, and (window pace) how many are complete at every subscriber. */
  private readonly nextSeq: Float64Array;
  private readonly completed: Float64Array;
  /** Per connection: the sequence number it should receive next. */
  private readonly expected: Float64Array;
  /** Window pace: per channel and slot (seq modulo window), subscribers that have the message so far. */
  private arrivals = new Uint32Array(0);
  private window = 0;
  private readonly frame: Uint8Array;
  private readonly frameAt: number;
  private readonly latency = new LatencyHistogram();
  private publishing = false;
  private closing = false;
  private published = 0;
  private deliveries = 0;
  private outOfOrder = 0;
  private disconnected = 0;
  private lastDeliveryAt = 0;
  /** Time to connect and subscribe every connection, in ms. */
  connectMs = 0;

  private constructor(private readonly shape: FanoutShape) {
    this.subscribers = shape.channels * shape.subscribersPerChannel;
    this.nextSeq = new Float64Array(shape.channels);
    this.completed = new Float64Array(shape.channels);
    this.expected = new Float64Array(this.subscribers);
    const { frame, at } = textFrame(shape.messageSize);
    fillMessage(frame, at, shape.messageSize);
    this.frame = frame;
    this.frameAt = at;
  }

  /** Connects every subscriber (and publisher); resolves when all are subscribed. */
  static async open(shape: FanoutShape): Promise<FanoutLoad> {
    const load = new FanoutLoad(shape);
    const perChannel = shape.subscribersPerChannel;
    const path = (c: number) => `/bench/fanout/${c}${shape.query ?? ""}`;
    const closed = () => {
      if (!load.closing) load.disconnected++;
    };
    const started = performance.now();
    if (shape.transport === "sse") {
      try {
        load.streams = await openEventStreams({
          port: shape.port,
          count: load.subscribers,
          path: (i) => path(Math.floor(i / perChannel)),
          channel: (i) => Math.floor(i / perChannel),
          handlers: { data: (conn, bytes, at, _length, now) => load.onMessage(conn, bytes, at, now), closed },
        });
        load.publishers = await connectAll({
          port: shape.port,
          count: shape.channels,
          path,
          channel: (c) => c,
          handlers: { text() {}, closed },
        });
      } catch (error) {
        await load.close();
        throw error;
      }
    } else {
      load.conns = await connectAll({
        port: shape.port,
        count: load.subscribers,
        path: (i) => path(Math.floor(i / perChannel)),
        channel: (i) => Math.floor(i / perChannel),
        handlers: { text: (conn, bytes, at, _length, now) => load.onMessage(conn, bytes, at, now), closed },
      });
      // The channel's first subscriber is its publisher.
      load.publishers = Array.from({ length: shape.channels }, (_, c) => load.conns[c * perChannel] as WsConnection);
    }
    load.connectMs = performance.now() - started;
    return load;
  }

  /**
   * Publishes at `pace` for `durationMs`, waits for the deliveries still on their way, and measures; a cluster
   * node's redis-server's CPU time (`redisPid`) is counted apart.
   */
  async run(pace: Pace, durationMs: number, serverPid: number, redisPid?: RedisPids): Promise<PhaseResult> {
    this.startPhase(pace);
    const start = cpuSnapshot(serverPid, redisPid);
    const t0 = start.at;
    this.lastDeliveryAt = t0;
    this.publishing = true;
    let timer: Timer | undefined;
    if (pace.kind === "window") {
      for (let c = 0; c < this.shape.channels; c++) this.pump(c);
    } else {
      // Timers fire at best every millisecond; each tick publishes whatever is due by then.
      timer = setInterval(() => {
        const due = Math.floor(((performance.now() - t0) / 1000) * pace.messagesPerSecond);
        while (this.published < due) this.publish(this.published % this.shape.channels);
      }, 1);
    }
    await Bun.sleep(durationMs);
    this.publishing = false;
    clearInterval(timer);
    const owed = () => this.published * this.shape.subscribersPerChannel;
    while (this.deliveries < owed() && performance.now() - this.lastDeliveryAt < DRAIN_QUIET_MS) await Bun.sleep(5);
    const seconds = (this.lastDeliveryAt - t0) / 1000;
    const cpu = cpuSince(start, serverPid);
    return {
      seconds,
      published: this.published,
      deliveries: this.deliveries,
      deliveriesPerSecond: seconds > 0 ? this.deliveries / seconds : 0,
      lost: owed() - this.deliveries,
      outOfOrder: this.outOfOrder,
      disconnected: this.disconnected,
      latencyP50Ms: this.latency.quantileMs(0.5),
      latencyP99Ms: this.latency.quantileMs(0.99),
      latencyMaxMs: this.latency.max / 1000,
      serverCpuMicrosPerDelivery: (cpu.server / this.deliveries) * 1e6,
      cpu,
      serverRssBytes: treeRssBytes(serverPid),
    };
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all([closeAll(this.conns), closeAll(this.publishers), closeEventStreams(this.streams)]);
  }

  private startPhase(pace: Pace): void {
    this.published = 0;
    this.deliveries = 0;
    this.outOfOrder = 0;
    this.disconnected = 0;
    this.latency.reset();
    // Whatever a previous phase left unfinished is not this phase's business: start every count afresh.
    const perChannel = this.shape.subscribersPerChannel;
    for (let i = 0; i < this.subscribers; i++) this.expected[i] = this.nextSeq[Math.floor(i / perChannel)] as number;
    this.completed.set(this.nextSeq);
    this.window = pace.kind === "window" ? pace.inFlightPerChannel : 0;
    this.arrivals = new Uint32Array(this.shape.channels * this.window);
  }

  /** Window pace: publishes on channel `c` until its window is full. */
  private pump(c: number): void {
    while (this.publishing && (this.nextSeq[c] as number) - (this.completed[c] as number) < this.window) {
      this.publish(c);
    }
  }

  private publish(c: number): void {
    const seq = this.nextSeq[c] as number;
    this.nextSeq[c] = seq + 1;
    writeNumbers(this.frame, this.frameAt, seq, nowMicros());
    (this.publishers[c] as WsConnection).send(this.frame);
    this.published++;
  }

  /** Every delivery passes here: keep it to arithmetic on numbers already at hand. */
  private onMessage(conn: WsConnection | SseConnection, bytes: Uint8Array, at: number, now: number): void {
    const seq = readSeq(bytes, at);
    const i = conn.index;
    const expected = this.expected[i] as number;
    if (seq >= expected) this.expected[i] = seq + 1;
    else this.outOfOrder++;
    this.deliveries++;
    this.lastDeliveryAt = now;
    this.latency.record(now * 1000 - readStamp(bytes, at));
    if (this.window === 0) return;
    // A subscriber receives a channel's messages in order, so they complete in order: slot seq % window is
    // free again before seq + window is published.
    const c = conn.channel;
    const slot = c * this.window + (seq % this.window);
    const arrived = (this.arrivals[slot] as number) + 1;
    if (arrived < this.shape.subscribersPerChannel) {
      this.arrivals[slot] = arrived;
      return;
    }
    this.arrivals[slot] = 0;
    this.completed[c] = (this.completed[c] as number) + 1;
    this.pump(c);
  }
}
