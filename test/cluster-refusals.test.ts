// Cluster mode when Redis refuses: ACL users with too few rights, and a Redis out of memory. Real redis-server
// processes and real pinghub nodes. Issue 16's defects 1 and 3: a refused SUBSCRIBE leaves the channel as if
// never asked (no upgrade or SSE GET hangs after it), a refused publish is answered with Redis's own reason and
// logged once a minute, and a user lacking a command pinghub needs is named at start-up and in /healthz.

import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { NODES_HEADER } from "../src/post.ts";
import { post } from "./support/clients.ts";
import { type ClusterNode, clusterBed } from "./support/cluster-node.ts";
import { RawWebSocket } from "./support/raw-websocket.ts";
import { type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { ROOT } from "./support/server.ts";
import { openEvents } from "./support/sse-client.ts";
import { until } from "./support/until.ts";

const skip = skipWithoutRedis();
// One test waits for the node to ask Redis about its rights again (every 10 s).
setDefaultTimeout(30_000);

const bed = clusterBed();
const node = bed.node;
afterEach(bed.stopAll);

/** Starts Redis and gives it an ACL user `name` with password `pw` and these rules. */
async function redisWithUser(name: string, rules: string[]): Promise<{ r: RedisServer; url: string }> {
  const r = await startRedis();
  bed.redis = r;
  await r.client().call("ACL", "SETUSER", name, "on", ">pw", ...rules);
  return { r, url: `redis://${name}:pw@127.0.0.1:${r.port}` };
}

/** The status of a websocket upgrade, and the connection closed. */
async function upgradeStatus(n: ClusterNode, path: string): Promise<number> {
  const upgrade = await RawWebSocket.connect({ port: n.port }, path);
  upgrade.destroy();
  return upgrade.status;
}

describe.skipIf(skip)("a refused SUBSCRIBE", () => {
  test("leaves the channel as if never asked: every later upgrade and SSE GET is answered, the others unharmed", async () => {
    // The user may use only pinghub's channels under /ok: SUBSCRIBE pinghub:/w1 is refused with NOPERM.
    const { url } = await redisWithUser("limited", ["~*", "resetchannels", "&pinghub:/ok*", "+@all"]);
    const n = await node(url);
    // The node's own question about rights, on a name under the prefix, was refused too: said, and serving.
    expect(n.lines(/warn cluster: the redis user may not use every name under "pinghub:"/)).toBe(1);
    const health = await n.health();
    expect(health.status).toBe(200);
    expect(health.text).toMatch(/^ok; warning: the redis user may not use every name under "pinghub:": .*NOPERM/);

    for (let i = 0; i < 3; i++) expect(await upgradeStatus(n, "/w1")).toBe(503);
    const events = await openEvents(`${n.url}/w1`);
    expect(events.status).toBe(200);
    expect(await events.comment(/^unavailable: redis refused to subscribe: NOPERM/)).toMatch(/channels/);
    events.close();
    // Three more upgrades at once, and another channel's in the same turn: each answered on its own.
    const [ok, ...refused] = await Promise.all([
      upgradeStatus(n, "/ok1"),
      upgradeStatus(n, "/w1"),
      upgradeStatus(n, "/w1"),
      upgradeStatus(n, "/w2"),
    ]);
    expect([ok, ...refused]).toEqual([101, 503, 503, 503]);
    const s = await bed.open(n.ws("/ok2"));
    expect((await post(`${n.url}/ok2`, "still works")).headers.get(NODES_HEADER)).toBe("1");
    expect(await s.received(1)).toEqual(["still works"]);
    // Only the channels Redis gave count: /ok2, and /ok1 until its delay runs out.
    await until(async () => (await n.sample("pinghub_redis_subscriptions")) === 1, "only /ok2 subscribed");
  });

  test("a refused publish says Redis's reason, never the password, and the log says it once", async () => {
    const { url } = await redisWithUser("limited", ["~*", "resetchannels", "&pinghub:/ok*", "+@all"]);
    const n = await node(url);
    for (let i = 0; i < 3; i++) {
      const refused = await post(`${n.url}/w1`, "no");
      expect(refused.status).toBe(503);
      expect(refused.text).toBe(
        "unavailable: redis: NOPERM this user has no permissions to access one of the channels used as arguments\n",
      );
    }
    expect(n.lines(/warn cluster: redis refused a publish: NOPERM/)).toBe(1);
    expect(n.stderr()).not.toContain(":pw@");
  });
});

describe.skipIf(skip)("a Redis user lacking a command pinghub needs", () => {
  test("is named at start-up in one line and in /healthz; refusals say it; granted, the node serves", async () => {
    const { r, url } = await redisWithUser("nopublish", ["~*", "&*", "+@all", "-publish"]);
    const n = await node(url);
    expect(
      n.lines(
        /warn cluster: the redis user lacks rights pinghub needs: PUBLISH: NOPERM this user has no permissions to run the 'publish' command$/,
      ),
    ).toBe(1);
    const health = await n.health();
    expect(health.status).toBe(503);
    expect(health.text).toMatch(
      /^redis at redis:\/\/nopublish:\*\*\*@127\.0\.0\.1:\d+\/0 refuses pinghub's commands: /,
    );
    const refused = await post(`${n.url}/x`, "no");
    expect(refused.status).toBe(503);
    expect(refused.text).toContain("'publish' command");
    expect(await upgradeStatus(n, "/x")).toBe(503);

    await r.client().call("ACL", "SETUSER", "nopublish", "+publish");
    await until(async () => (await n.health()).status === 200, "healthz 200 once PUBLISH is granted", 20_000);
    expect(n.lines(/warn cluster: the redis user now has the rights pinghub needs/)).toBe(1);
    const s = await bed.open(n.ws("/x"));
    expect((await post(`${n.url}/x`, "granted")).status).toBe(200);
    expect(await s.received(1)).toEqual(["granted"]);
  });

  test("with --history, the scripts are what it must be allowed", async () => {
    const { url } = await redisWithUser("noscripts", ["~*", "&*", "+@all", "-@scripting"]);
    const n = await node(url, ["--history", "10"]);
    expect(
      n.lines(
        /warn cluster: the redis user lacks rights pinghub needs: the history script: NOPERM .*'eval(sha)?' command; the resume script: /,
      ),
    ).toBe(1);
    expect((await n.health()).status).toBe(503);
  });
});

describe.skipIf(skip)("Redis out of memory (maxmemory, noeviction)", () => {
  test("a POST with --history is refused with Redis's OOM reason, logged once; memory back, it is taken", async () => {
    const r = await startRedis(undefined, ["--maxmemory-policy", "noeviction"]);
    bed.redis = r;
    const n = await node(r.url, ["--history", "10"]);
    const admin = r.client();
    await admin.config("SET", "maxmemory", "1");
    for (let i = 0; i < 3; i++) {
      const refused = await post(`${n.url}/x`, `message ${i}`);
      expect(refused.status).toBe(503);
      expect(refused.text).toBe("unavailable: redis: OOM command not allowed when used memory > 'maxmemory'\n");
    }
    expect(n.lines(/warn cluster: redis refused a publish: OOM command not allowed/)).toBe(1);
    // The node itself is still up: the refusal is the message's, not the connection's.
    expect((await n.health()).status).toBe(200);
    await admin.config("SET", "maxmemory", "0");
    expect((await post(`${n.url}/x`, "after")).status).toBe(200);
  });
});

describe.skipIf(skip)("the README's ACL user for pinghub", () => {
  test("with only the rights the README lists, a node with --history serves, publishes, resumes", async () => {
    // The line given in the README's "Redis for pinghub", read from it: every word after the password.
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const rules = /^ACL SETUSER pinghub on >PASSWORD (.+)$/m.exec(readme)?.[1] ?? "";
    expect(rules).toContain("+publish");
    const { url } = await redisWithUser("pinghub", rules.split(" "));
    const n = await node(url, ["--history", "10"]);
    expect((await n.health()).text).toBe("ok\n");
    expect(n.lines(/warn/)).toBe(0);
    const s = await bed.open(n.ws("/acl"));
    const first = await openEvents(`${n.url}/acl`);
    expect((await post(`${n.url}/acl`, "first")).status).toBe(200);
    expect(await s.received(1)).toEqual(["first"]);
    const [event] = await first.received(1);
    first.close();
    expect((await post(`${n.url}/acl`, "second")).status).toBe(200);
    // Resuming runs the other script, which reads the stream.
    const resumed = await openEvents(`${n.url}/acl`, { "Last-Event-ID": event?.id ?? "" });
    expect((await resumed.received(1)).map((e) => e.data)).toEqual(["second"]);
    resumed.close();
  });
});

describe.skipIf(skip)("a Redis user without SET", () => {
  test("a node with --history says once that it could not compare its settings, and serves", async () => {
    const readme = readFileSync(join(ROOT, "README.md"), "utf8");
    const rules = (/^ACL SETUSER pinghub on >PASSWORD (.+)$/m.exec(readme)?.[1] ?? "").split(" ");
    expect(rules).toContain("+set");
    const { url } = await redisWithUser("noset", [...rules.filter((rule) => rule !== "+set"), "-set"]);
    const n = await node(url, ["--history", "10"]);
    expect(
      n.lines(
        /warn cluster: could not compare this node's --history with the other nodes': redis refused SET "pinghub:!settings": NOPERM/,
      ),
    ).toBe(1);
    expect(n.lines(/warn/)).toBe(1);
    expect((await n.health()).text).toBe("ok\n");
    const s = await bed.open(n.ws("/noset"));
    expect((await post(`${n.url}/noset`, "hi")).status).toBe(200);
    expect(await s.received(1)).toEqual(["hi"]);
  });
});
