// Cluster mode through Redis Sentinel, against real processes: a master, a replica and three sentinels (Debian's
// redis-server and redis-sentinel), two pinghub nodes given the sentinels' URL, and the master SIGKILLed while
// POSTs and a websocket publisher run. The nodes must refuse meanwhile, follow the promoted replica within
// 10 s, and deliver again to subscribers that never reconnected; nothing answered 200 may be lost.

import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { post, type Subscriber } from "./support/clients.ts";
import { killAll, type ServingNode, startServingNode, subscriberPool } from "./support/cluster-node.ts";
import { skipWithoutRedis } from "./support/redis.ts";
import { inScratch } from "./support/scratch.ts";
import { type SentinelSetup, skipWithoutSentinel, startSentinels } from "./support/sentinel.ts";
import { sample } from "./support/server.ts";
import { until } from "./support/until.ts";

type Node = ServingNode;

const running: Node[] = [];
const pool = subscriberPool();
const open = pool.open;
let setup: SentinelSetup | undefined;

async function startNode(redisUrl: string): Promise<Node> {
  const started = await startServingNode(["--redis", redisUrl]);
  running.push(started);
  return started;
}

const skip = skipWithoutRedis() || skipWithoutSentinel();
setDefaultTimeout(60_000);

afterEach(async () => {
  pool.closeAll();
  await killAll(running);
  await setup?.stop();
  setup = undefined;
});

/** True when `part`'s messages come in the same order as in `whole` (each subscriber sees one order). */
function inOrder(part: string[], whole: Map<string, number>): boolean {
  const positions = part.map((m) => whole.get(m) ?? -1);
  return positions.every((p, i) => p >= 0 && (i === 0 || p > (positions[i - 1] ?? -1)));
}

describe.skipIf(skip)("Redis Sentinel", () => {
  test("the master SIGKILLed under load: refusals meanwhile, the new master followed within 10 s, nothing answered 200 lost", async () => {
    await inScratch("sentinel", async (dir) => {
      setup = await startSentinels(dir);
      const sentinels = setup;
      const nodes = [await startNode(sentinels.url), await startNode(sentinels.url)];
      // Subscribers that stay connected throughout, three on each node.
      const audience = await Promise.all(nodes.flatMap((node) => [1, 2, 3].map(() => open(node.ws("/ha")))));
      const onNode = (i: number) => audience.slice(i * 3, i * 3 + 3);
      expect((await post(`${nodes[0]?.url}/ha`, "before")).status).toBe(200);

      /** Every POST answered 200, by the node that answered. */
      const accepted: Array<{ node: number; message: string; at: number }> = [];
      const refusals: string[] = [];
      let running = true;
      const posting = (async () => {
        for (let i = 0; running; i++) {
          const node = i % 2;
          const message = `post ${i}`;
          const response = await post(`${nodes[node]?.url}/ha`, message);
          if (response.status === 200) accepted.push({ node, message, at: Date.now() });
          else refusals.push(`${response.status} ${response.text}`);
          await Bun.sleep(10);
        }
      })();
      // A websocket publisher on the second node, sending until refused (1013), then reconnecting as a client would.
      const wsSent: string[] = [];
      const wsCodes: number[] = [];
      const publishing = (async () => {
        for (let j = 0; running; ) {
          let publisher: Subscriber;
          try {
            publisher = await open(nodes[1]?.ws("/ha") ?? "");
          } catch {
            await Bun.sleep(100); // refused with 503 while Redis is away: try again, as pinghub.js would
            continue;
          }
          while (running && publisher.ws.readyState === WebSocket.OPEN) {
            const message = `ws ${j++}`;
            publisher.send(message);
            wsSent.push(message);
            await Bun.sleep(20);
          }
          publisher.close();
          wsCodes.push((await publisher.closed).code);
        }
      })();

      await Bun.sleep(500);
      const killedAt = Date.now();
      await sentinels.master.kill();
      // Both nodes say once that Redis went, and once that it is back; within 10 s.
      const back = await Promise.all(
        nodes.map(async (node) => {
          await node.waitForStderr(/redis at .* is back; re-subscribed 1 channel/, 10_000);
          return Date.now();
        }),
      );
      const bothBack = Math.max(...back);
      expect(bothBack - killedAt).toBeLessThan(10_000);
      await Bun.sleep(1000);
      running = false;
      await Promise.all([posting, publishing]);
      const last = await post(`${nodes[0]?.url}/ha`, "after");
      expect(last.status).toBe(200);

      expect(await sentinels.masterPort()).toBe(sentinels.replica.port);
      expect(refusals.length).toBeGreaterThan(0);
      // A refusal names the Redis it waits for, or (a publish in flight as the master died) says it was not taken.
      for (const refusal of refusals) {
        expect(refusal).toMatch(
          /^503 unavailable: (redis at redis\+sentinel:\/\/\S+ |redis did not take the message; try again)/,
        );
      }
      expect(refusals.some((r) => r.includes("redis+sentinel://"))).toBe(true);
      expect(wsCodes).toContain(1013);
      for (const node of nodes) {
        // Said once, whatever the first reason seen (the master unreachable, or a node re-subscribing).
        const said = node.stderr().match(/warn cluster: .*; refusing publishes and new subscribers until it is back/g);
        if (said?.length !== 1) console.error(node.stderr());
        expect(said?.length).toBe(1);
        const metrics = await (await fetch(`${node.metrics}/metrics`)).text();
        expect(sample(metrics, "pinghub_redis_reconnects_total")).toBe(1);
        expect(sample(metrics, "pinghub_redis_up")).toBe(1);
      }

      // Every subscriber got "after", so everything before it that reached it has arrived.
      await Promise.all(audience.map((s) => until(() => s.messages.includes("after"), "after arrives")));
      for (const s of audience) expect(s.ws.readyState).toBe(WebSocket.OPEN);
      const order = new Map((audience[0]?.messages ?? []).map((m, i) => [m, i]));
      for (const [i, node] of nodes.entries()) {
        for (const s of onNode(i)) {
          // A node answers 200 only once it hears the channel again: its own subscribers get every such POST.
          for (const { message } of accepted.filter((a) => a.node === i)) expect(s.messages).toContain(message);
          // After both nodes are back, every POST reaches every subscriber (the window before is in the README).
          for (const { message } of accepted.filter((a) => a.at > bothBack)) expect(s.messages).toContain(message);
          expect(new Set(s.messages).size).toBe(s.messages.length);
          expect(s.messages.every((m) => m === "before" || m === "after" || /^(post|ws) \d+$/.test(m))).toBe(true);
        }
        expect(node.proc.exitCode).toBeNull();
      }
      // One order: the messages two subscribers share come to both in the same order.
      for (const s of audience) {
        const shared = s.messages.filter((m) => order.has(m));
        expect(inOrder(shared, order)).toBe(true);
      }
      // Websocket messages sent after both nodes came back arrived (the publisher reconnected after its 1013).
      expect(audience[0]?.messages.filter((m) => m.startsWith("ws ")).length).toBeGreaterThan(0);
      expect(wsSent.length).toBeGreaterThan(0);
    });
  });
});
