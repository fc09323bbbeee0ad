// The canary: one channel of its own on a server under attack, with two websocket subscribers and a publisher
// that sends numbered messages without end, alternately by POST and by websocket. Each message is sent only
// once the one before it has been handed over (the POST answered, the websocket message echoed), so the order
// is defined, and both subscribers must receive every number, in order, nothing else, and not be closed.

import { SUBSCRIBERS_HEADER } from "../../src/post.ts";

export interface CanaryReport {
  /** Messages published. */
  sent: number;
  /** Messages each subscriber received; equal to `sent` when all is well. */
  received: [number, number];
  /** Everything that went wrong: a message out of order, a lost one, a subscriber closed, a POST refused. */
  violations: string[];
  /** Longest time from publishing a message to its arrival at both subscribers. */
  maxLatencyMs: number;
}

/** A canary message not received after this long is reported (once) as late; the canary keeps waiting. */
const LATE_MS = 5_000;

export class Canary {
  private sent = 0;
  private readonly received: [number, number] = [0, 0];
  private readonly violations: string[] = [];
  private readonly sentAt = new Map<number, number>();
  private maxLatencyMs = 0;
  private stopping = false;
  private waiters: Array<() => void> = [];
  private loop: Promise<void> = Promise.resolve();

  private constructor(
    private readonly url: string,
    private readonly sockets: [WebSocket, WebSocket],
  ) {}

  /** Subscribes twice on `channel` (a plain ASCII path) of the server at `base` and starts publishing. */
  static async start(base: string, channel: string, intervalMs = 5): Promise<Canary> {
    const wsUrl = `${base.replace(/^http/, "ws")}${channel}`;
    const open = () =>
      new Promise<WebSocket>((resolve, reject) => {
        const ws = new WebSocket(wsUrl);
        ws.onopen = () => resolve(ws);
        ws.onerror = () => reject(new Error(`canary websocket to ${wsUrl} failed to open`));
      });
    const canary = new Canary(`${base}${channel}`, [await open(), await open()]);
    canary.sockets.forEach((ws, i) => {
      ws.onmessage = (event) => canary.onMessage(i as 0 | 1, String(event.data));
      ws.onclose = (event) => {
        if (!canary.stopping) canary.violate(`canary subscriber ${i} closed: ${event.code} ${event.reason}`);
        canary.wake();
      };
    });
    canary.loop = canary.publish(intervalMs);
    return canary;
  }

  /** Problems so far, for a caller that checks while running. */
  get problems(): readonly string[] {
    return this.violations;
  }

  get published(): number {
    return this.sent;
  }

  /** Stops publishing, waits for every message to arrive (or `timeoutMs`), closes, and reports. */
  async stop(timeoutMs = 10_000): Promise<CanaryReport> {
    this.stopping = true;
    this.wake();
    await this.loop;
    const all = () => this.received[0] >= this.sent && this.received[1] >= this.sent;
    const settled = await this.until(all, timeoutMs);
    if (!settled) {
      this.violate(`canary: ${this.sent} sent, received ${this.received[0]} and ${this.received[1]} at the end`);
    }
    for (const ws of this.sockets) ws.close();
    return {
      sent: this.sent,
      received: [this.received[0], this.received[1]],
      violations: this.violations.slice(),
      maxLatencyMs: Math.round(this.maxLatencyMs),
    };
  }

  private async publish(intervalMs: number): Promise<void> {
    const publisher = this.sockets[1];
    // Reports, once each, a message that has not reached both subscribers after LATE_MS; they may still come.
    let reportedLate = -1;
    const watchdog = setInterval(() => {
      const oldest = Math.min(...this.received);
      const at = this.sentAt.get(oldest);
      if (oldest < this.sent && oldest !== reportedLate && at !== undefined && performance.now() - at > LATE_MS) {
        reportedLate = oldest;
        this.violate(`canary message ${oldest} not received after ${LATE_MS} ms`);
      }
    }, 250);
    while (!this.stopping && this.violations.length < 20) {
      const n = this.sent;
      this.sentAt.set(n, performance.now());
      this.sent++;
      if (n % 2 === 0) {
        try {
          const response = await fetch(this.url, { method: "POST", body: String(n) });
          const delivered = response.headers.get(SUBSCRIBERS_HEADER);
          const body = await response.text();
          if (response.status !== 200 || body !== "OK\n" || delivered !== "2") {
            this.violate(`canary POST ${n}: ${response.status} ${JSON.stringify(body)}, ${delivered} subscribers`);
          }
        } catch (error) {
          this.violate(`canary POST ${n} failed: ${(error as Error).message}`);
        }
      } else {
        if (publisher.readyState !== WebSocket.OPEN) break;
        publisher.send(String(n));
        // The next message goes out once this one is back at its own sender: then the order is defined.
        await this.until(() => this.received[1] > n || publisher.readyState !== WebSocket.OPEN, 60_000);
      }
      if (intervalMs > 0) await Bun.sleep(intervalMs);
    }
    clearInterval(watchdog);
  }

  private onMessage(i: 0 | 1, data: string): void {
    const expected = this.received[i];
    if (data !== String(expected)) {
      this.violate(`canary subscriber ${i} expected ${expected}, got ${JSON.stringify(data.slice(0, 80))}`);
      // Resynchronise on a number, so one fault is reported once rather than for every later message.
      if (/^\d+$/.test(data)) this.received[i] = Number(data) + 1;
    } else {
      this.received[i] = expected + 1;
      const at = this.sentAt.get(expected);
      if (at !== undefined) {
        const latency = performance.now() - at;
        if (latency > this.maxLatencyMs) this.maxLatencyMs = latency;
        if ((this.received[i === 0 ? 1 : 0] ?? 0) > expected) this.sentAt.delete(expected);
      }
    }
    this.wake();
  }

  private violate(message: string): void {
    if (this.violations.length < 100) this.violations.push(message);
  }

  private wake(): void {
    for (const wake of this.waiters.splice(0)) wake();
  }

  /** Waits until `condition` holds, woken by every message and close; false after `timeoutMs`. */
  private async until(condition: () => boolean, timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!condition()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return true;
  }
}
