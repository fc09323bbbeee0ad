// Cluster mode on a Redis Cluster with sharded pub/sub, against real processes: three masters with a replica
// each (Debian's redis-server, joined by `redis-cli --cluster create`), two pinghub nodes, channels on every
// shard, POSTs running throughout. A master is SIGKILLed and its replica promoted, then a slot is moved to
// another master while messages flow; subscribers never reconnect, and nothing answered 200 may be lost.

import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import calculateSlot from "cluster-key-slot";
import { Cluster } from "ioredis";
import { post, type Subscriber } from "./support/clients.ts";
import { killAll, type ServingNode, startServingNode, subscriberPool } from "./support/cluster-node.ts";
import { skipWithoutRedis } from "./support/redis.ts";
import { type RedisClusterSetup, startRedisCluster } from "./support/redis-cluster.ts";
import { inScratch } from "./support/scratch.ts";
import { sample } from "./support/server.ts";
import { until } from "./support/until.ts";

type Node = ServingNode;

const running: Node[] = [];
const pool = subscriberPool();
const open = pool.open;
let cluster: RedisClusterSetup | undefined;

async function startNode(redisUrl: string, args: string[] = []): Promise<Node> {
  const started = await startServingNode(["--redis", redisUrl, ...args]);
  running.push(started);
  return started;
}

/** Waits until every node's stderr matches `pattern`; returns when. */
async function bothSay(nodes: Node[], pattern: RegExp): Promise<number> {
  await Promise.all(nodes.map((node) => node.waitForStderr(pattern, 20_000)));
  return Date.now();
}

/** The slot of a channel's shard channel, `pinghub:{/x}`. */
const slotOf = (channel: string) => calculateSlot(`pinghub:{${channel}}`);

const skip = skipWithoutRedis();
setDefaultTimeout(90_000);

afterEach(async () => {
  pool.closeAll();
  await killAll(running);
  await cluster?.stop();
  cluster = undefined;
});

describe.skipIf(skip)("Redis Cluster", () => {
  test("a master killed, then a slot moved, under POSTs: refusals only on the lost shard, recovery, nothing answered 200 lost on its own node, nor on the other but in the stated window", async () => {
    await inScratch("redis-cluster", async (dir) => {
      cluster = await startRedisCluster(dir);
      const setup = cluster;
      const nodes = [await startNode(setup.url), await startNode(setup.url)];
      // Two channels on each of the three shards.
      const owner = new Map<string, number>();
      for (let i = 0; owner.size < 6; i++) {
        const port = await setup.ownerOf(slotOf(`/c${i}`));
        if ([...owner.values()].filter((p) => p === port).length < 2) owner.set(`/c${i}`, port);
      }
      const channels = [...owner.keys()];
      expect(new Set(owner.values()).size).toBe(3);
      // A subscriber of every channel on each node, connected throughout.
      const audience = new Map<string, Subscriber[]>();
      for (const channel of channels) {
        audience.set(channel, await Promise.all(nodes.map((node) => open(node.ws(channel)))));
      }

      const accepted: Array<{ channel: string; message: string; at: number; node: number }> = [];
      const refusals: Array<{ channel: string; at: number; text: string }> = [];
      let posting = true;
      const load = (async () => {
        for (let i = 0; posting; i++) {
          const channel = channels[i % channels.length] as string;
          const message = `m ${i}`;
          const response = await post(`${nodes[i % 2]?.url}${channel}`, message);
          if (response.status === 200) accepted.push({ channel, message, at: Date.now(), node: i % 2 });
          else refusals.push({ channel, at: Date.now(), text: `${response.status} ${response.text}` });
          await Bun.sleep(5);
        }
      })();
      const acceptedSince = (channel: string, since: number) =>
        accepted.filter((a) => a.channel === channel && a.at > since).length;

      // 1. The master of the first two channels' shard is SIGKILLed; its replica takes over.
      await until(() => accepted.length > 30, "POSTs flow", 10_000);
      const lost = [channels[0], channels[1]] as string[];
      const victim = owner.get(lost[0] as string) as number;
      const killedAt = Date.now();
      await setup.nodes.find((n) => n.port === victim)?.kill();
      await until(
        async () => (await setup.ownerOf(slotOf(lost[0] as string)).catch(() => victim)) !== victim,
        "the replica is promoted",
        20_000,
      );
      // Every node delivers the lost shard's channels again within 20 s of the kill.
      await until(() => lost.every((c) => acceptedSince(c, killedAt) >= 4), "the lost shard's channels again", 20_000);
      const recovered = Date.now();
      expect(recovered - killedAt).toBeLessThan(20_000);
      // Each node says once that it lost the master, and once that it hears every channel again.
      const bothBack = await bothSay(nodes, /lost the master 127\.0\.0\.1:\d+; 2 channels not heard[\s\S]* is back;/);
      // Only the lost shard's channels were refused; the others carried on through the failover.
      expect(refusals.length).toBeGreaterThan(0);
      for (const refusal of refusals) {
        expect(lost).toContain(refusal.channel);
        expect(refusal.text).toMatch(/^503 unavailable: /);
      }
      for (const channel of channels.slice(2)) {
        expect(accepted.some((a) => a.channel === channel && a.at > killedAt && a.at < recovered)).toBe(true);
      }

      // 2. A slot of a live shard is moved to another live master while messages flow.
      const moved = channels[2] as string;
      const from = await setup.ownerOf(slotOf(moved));
      const live = new Set<number>();
      for (const channel of channels) live.add(await setup.ownerOf(slotOf(channel)));
      const to = [...live].find((p) => p !== from) as number;
      const movedAt = Date.now();
      await setup.migrateSlot(slotOf(moved), to);
      expect(await setup.ownerOf(slotOf(moved))).toBe(to);
      await until(() => acceptedSince(moved, movedAt) >= 4, "the moved channel again", 10_000);
      const bothMoved = await bothSay(nodes, /"\/c\d+" moved to another shard; re-subscribing[\s\S]* is back;/);
      expect(bothMoved - movedAt).toBeLessThan(10_000);
      await Bun.sleep(500);
      posting = false;
      await load;

      // Every POST answered 200 reaches every subscriber of its channel on the node that accepted it, the moved
      // channel's included (a publish redirected to the new owner waits until the node hears the channel there),
      // and, outside the moments when the nodes re-subscribe one after the other (the window the README states for
      // a cluster without --history), on every node; each subscriber hears its channel in one order.
      const last = Object.fromEntries(
        await Promise.all(channels.map(async (c) => [c, await post(`${nodes[0]?.url}${c}`, `last ${c}`)] as const)),
      );
      for (const channel of channels) expect(last[channel]?.status).toBe(200);
      const inMove = (at: number) => at > movedAt && at < bothMoved;
      const inWindow = (at: number) => (at > killedAt && at < bothBack) || inMove(at);
      for (const channel of channels) {
        const sent = accepted.filter((a) => a.channel === channel);
        for (const [i, s] of (audience.get(channel) ?? []).entries()) {
          await until(() => s.messages.includes(`last ${channel}`), `last on ${channel}`, 10_000);
          expect(s.ws.readyState).toBe(WebSocket.OPEN);
          const heard = s.messages.filter((m) => m.startsWith("m "));
          const order = sent.map((a) => a.message);
          expect(heard).toEqual(order.filter((m) => heard.includes(m)));
          const owed = sent.filter((a) => !inWindow(a.at) || a.node === i).map((a) => a.message);
          expect(owed.filter((m) => !heard.includes(m))).toEqual([]);
        }
      }
      for (const node of nodes) {
        expect(node.stderr().match(/lost the master 127\.0\.0\.1:\d+; 2 channels not heard/g)?.length).toBe(1);
        const metrics = await (await fetch(`${node.metrics}/metrics`)).text();
        expect(sample(metrics, "pinghub_redis_up")).toBe(1);
        expect(sample(metrics, "pinghub_redis_reconnects_total")).toBeGreaterThanOrEqual(1);
        expect(sample(metrics, "pinghub_redis_subscriptions")).toBe(6);
      }
    });
  });

  test("a slot moved under a flood of POSTs to its channel: the publishing node's own subscribers miss none answered 200", async () => {
    await inScratch("redis-cluster-move", async (dir) => {
      cluster = await startRedisCluster(dir);
      const setup = cluster;
      const node = await startNode(setup.url);
      // A second node, with no subscriber of the channel: its publishes need no subscription to move first.
      const other = await startNode(setup.url);
      const channel = "/moving";
      const s = await open(node.ws(channel));
      // Several POSTs in flight at once, so that some reach the old owner after the slot has left it: Redis
      // answers those MOVED, and the node must hear the channel on the new owner before it publishes them there.
      const accepted: string[] = [];
      const refused: string[] = [];
      let posting = true;
      const poster = async (lane: number) => {
        for (let i = 0; posting; i++) {
          const message = `${lane} ${i}`;
          const response = await post(`${node.url}${channel}`, message);
          if (response.status === 200) accepted.push(message);
          else refused.push(`${response.status} ${response.text}`);
        }
      };
      const lanes = [0, 1, 2, 3].map(poster);
      const fromOther: number[] = [];
      const otherLane = (async () => {
        for (let i = 0; posting; i++) fromOther.push((await post(`${other.url}${channel}`, `other ${i}`)).status);
      })();
      await until(() => accepted.length > 50, "POSTs flow", 10_000);
      const from = await setup.ownerOf(slotOf(channel));
      const to = setup.nodes.slice(0, 3).find((n) => n.port !== from)?.port as number;
      const before = accepted.length;
      await setup.migrateSlot(slotOf(channel), to);
      await until(() => accepted.length > before + 200, "POSTs flow after the move", 20_000);
      posting = false;
      await Promise.all([...lanes, otherLane]);
      const last = accepted.at(-1) as string;
      await until(() => s.messages.includes(last), "the last message accepted", 10_000);
      const heard = new Set(s.messages);
      expect(accepted.filter((m) => !heard.has(m))).toEqual([]);
      // A refusal, if any (the node re-subscribing), is a 503 that says why.
      expect(refused.filter((text) => !/^503 unavailable: redis cluster: /.test(text))).toEqual([]);
      expect(s.messages.length).toBe(heard.size);
      // The node says the move, however it learned of it first (here, mostly a publish answered MOVED), and then
      // that the channel is back, as the README says.
      await node.waitForStderr(/"\/moving" moved to another shard; re-subscribing[\s\S]* is back;/, 10_000);
      // The other node carried on through the move, and is up.
      expect(fromOther.slice(-20).every((status) => status === 200)).toBe(true);
      expect(sample(await (await fetch(`${other.metrics}/metrics`)).text(), "pinghub_redis_up")).toBe(1);
    });
  });

  test("a burst of websocket publishes just after start: every one delivered, the publisher never refused", async () => {
    await inScratch("redis-cluster-burst", async (dir) => {
      cluster = await startRedisCluster(dir);
      const node = await startNode(cluster.url);
      const s = await open(node.ws("/burst"));
      const publisher = await open(node.ws("/burst"));
      let closed: CloseEvent | undefined;
      void publisher.closed.then((event) => {
        closed = event;
      });
      // ioredis replaces a master's connection as its first slot maps come in: a publish meeting the one just
      // closed is sent again, as ioredis itself would, not refused (it was, and closed the publisher with 1013).
      const count = 2000;
      for (let i = 0; i < count; i++) publisher.send(`b ${i}`);
      const heard = await s.received(count, 20_000);
      expect(heard).toEqual(Array.from({ length: count }, (_, i) => `b ${i}`));
      expect(closed).toBeUndefined();
    });
  });

  test("a Redis user without SPUBLISH: the node says so in one line and refuses, as on one Redis", async () => {
    await inScratch("redis-cluster-rights", async (dir) => {
      cluster = await startRedisCluster(dir);
      const setup = cluster;
      // The user on every node of the cluster, as an operator's ACL file would have it.
      for (const n of setup.nodes) {
        const admin = n.client();
        await admin.call("ACL", "SETUSER", "nospublish", "on", ">pw", "~*", "&*", "+@all", "-spublish");
        admin.disconnect();
      }
      const url = setup.url.replace("redis+cluster://", "redis+cluster://nospublish:pw@");
      const node = await startNode(url);
      await node.waitForStderr(/warn cluster: the redis user lacks rights pinghub needs: SPUBLISH: NOPERM /, 10_000);
      const health = await fetch(`${node.metrics}/healthz`);
      expect(health.status).toBe(503);
      expect(await health.text()).toMatch(
        /^redis at redis\+cluster:\/\/nospublish:\*\*\*@127\.0\.0\.1:\d+.* refuses pinghub's commands: SPUBLISH: NOPERM [^\n]*'spublish' command\n$/,
      );
      const response = await post(`${node.url}/x`, "refused");
      expect(response.status).toBe(503);
      expect(response.text).toMatch(/refuses pinghub's commands: SPUBLISH/);
    });
  });

  test("with --history: the stream and the publishes share the channel's slot, pinghub:{/x}, and SSE resumes", async () => {
    await inScratch("redis-cluster-history", async (dir) => {
      cluster = await startRedisCluster(dir);
      const setup = cluster;
      const [a, b] = [await startNode(setup.url, ["--history", "10"]), await startNode(setup.url, ["--history", "10"])];
      const s = await open(b?.ws("/h") ?? "");
      for (let i = 0; i < 3; i++) expect((await post(`${a?.url}/h`, `h ${i}`)).status).toBe(200);
      expect(await s.received(3)).toEqual(["h 0", "h 1", "h 2"]);
      const client = new Cluster(setup.nodes.slice(0, 3).map((n) => ({ host: "127.0.0.1", port: n.port })));
      try {
        expect(await client.xlen("pinghub:{/h}")).toBe(3);
        // The settings key (redis-settings.ts) is one plain key, written through the cluster like any other.
        expect(await client.get("pinghub:!settings")).toBe("--history 10 --history-ttl 300");
        const firstId = (await client.xrange("pinghub:{/h}", "-", "+", "COUNT", 1))[0]?.[0] ?? "";
        // An SSE subscriber that saw the first message resumes on the other node with the two after it.
        const response = await fetch(`${a?.url}/h`, {
          headers: { Accept: "text/event-stream", "Last-Event-ID": firstId },
        });
        const reader = response.body?.getReader();
        let text = "";
        while (!text.includes("h 2")) {
          const chunk = await reader?.read();
          if (chunk === undefined || chunk.done) break;
          text += new TextDecoder().decode(chunk.value);
        }
        await reader?.cancel();
        expect(text).toContain("data: h 1\n");
        expect(text).toContain("data: h 2\n");
        expect(text).not.toContain("data: h 0\n");
      } finally {
        client.disconnect();
      }
    });
  });
});
