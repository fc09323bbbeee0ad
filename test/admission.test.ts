// The hub's one way in (admission.ts), at unit level against a real Redis: the broker's subscribe on a
// channel's first subscriber, and the release whatever the door did (opened, failed, threw), after which a
// channel nobody joined is unsubscribed from Redis. The doors here are the smallest real ones: a group of
// plain objects as the transport, no HTTP.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type Redis from "ioredis";
import type { Door } from "../src/admission.ts";
import { localBroker } from "../src/broker.ts";
import { Hub } from "../src/hub.ts";
import { redisBroker } from "../src/redis-broker.ts";
import { parseRedisUrl } from "../src/redis-url.ts";
import type { SubscriberGroup } from "../src/subscribers.ts";
import { numsub, type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";

const PREFIX = "admission-test:";

interface Member {
  got: string[];
}

/** A transport of plain objects: it keeps what it is given. */
function memberGroup(hub: Hub): SubscriberGroup<Member> {
  return hub.group<Member>("member", {
    fanOut(_channel, members, message) {
      for (const member of members) member.got.push(message);
      return members.size;
    },
    end: () => {},
    slow: () => false,
  });
}

/** A door whose open joins `member` (or, without one, fails as a refused upgrade does), answering what happened. */
function door(group: SubscriberGroup<Member>, channel: string, member?: Member): Door<string> {
  return {
    open: () => (member !== undefined && group.join(channel, member) ? "joined" : "failed"),
    unavailable: (reason) => `unavailable: ${reason}`,
  };
}

const LIMITS = { maxBacklog: 1 << 20, maxBacklogTotal: 1 << 26 };

async function until(check: () => Promise<boolean> | boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await Bun.sleep(20);
  }
}

test("single node: admission is synchronous, no promise, and the door opens at once", () => {
  const hub = new Hub(LIMITS, undefined, localBroker());
  const group = memberGroup(hub);
  const member: Member = { got: [] };
  expect(hub.admit("/now", door(group, "/now", member))).toBe("joined");
  expect(hub.broker.publish("/now", "hello")).toBe(1);
  expect(member.got).toEqual(["hello"]);
  expect(hub.admit("/failed", door(group, "/failed"))).toBe("failed");
  expect(hub.channelCount).toBe(1);
});

describe.skipIf(skipWithoutRedis())("cluster mode, with a real Redis", () => {
  let redis: RedisServer;
  let admin: Redis;
  let hub: Hub;
  let group: SubscriberGroup<Member>;
  const subscribers = async (channel: string) => (await numsub(admin, [`${PREFIX}${channel}`]))[0];

  beforeAll(async () => {
    redis = await startRedis();
    admin = redis.client();
    hub = new Hub(
      LIMITS,
      undefined,
      redisBroker({
        target: parseRedisUrl(redis.url),
        prefix: PREFIX,
        history: undefined,
        maxMessageBytes: 1 << 16,
        warn: () => {},
        onDown: () => {},
        onUp: () => {},
      }),
    );
    group = memberGroup(hub);
    await hub.broker.ready;
  });

  afterAll(async () => {
    await hub.close();
    await redis.stop();
  });

  test("a door that joins is subscribed in Redis before it opens, and stays while its subscriber is there", async () => {
    const member: Member = { got: [] };
    const seenAtOpen: number[] = [];
    const answer = hub.admit("/kept", {
      open: () => {
        // Open means subscribed: Redis already counts this node as a subscriber when the door opens.
        seenAtOpen.push(hub.broker.cluster?.subscriptions ?? -1);
        return group.join("/kept", member) ? "joined" : "failed";
      },
      unavailable: (reason) => `unavailable: ${reason}`,
    });
    expect(answer).toBeInstanceOf(Promise);
    expect(await answer).toBe("joined");
    expect(seenAtOpen).toEqual([1]);
    expect(await subscribers("/kept")).toBe(1);
    expect(await hub.broker.publish("/kept", "through redis")).toBe(1);
    await until(() => member.got.length === 1, "the message came through Redis");
    expect(member.got).toEqual(["through redis"]);

    // A failed door on a channel released after /kept: once its delayed unsubscribe has run, /kept's would have
    // too, had it been started. /kept must still be subscribed.
    expect(await hub.admit("/probe", door(group, "/probe"))).toBe("failed");
    await until(async () => (await subscribers("/probe")) === 0, "the failed door's channel was unsubscribed");
    expect(await subscribers("/kept")).toBe(1);

    // Its subscriber leaves: unsubscribed after the delay.
    expect(group.leave("/kept", member)).toBe(true);
    await until(async () => (await subscribers("/kept")) === 0, "the emptied channel was unsubscribed");
  });

  test("a door that fails (an upgrade refused) is released: the channel nobody joined is unsubscribed", async () => {
    const answer = hub.admit("/failed", door(group, "/failed"));
    expect(await answer).toBe("failed");
    expect(hub.subscriberCount("/failed")).toBe(0);
    await until(async () => (await subscribers("/failed")) === 0, "the failed door's channel was unsubscribed");
    expect(hub.broker.cluster?.subscriptions).toBe(0);
  });

  test("a door that throws is released too, and the error reaches the caller", async () => {
    const answer = hub.admit("/threw", {
      open: () => {
        throw new Error("the door broke");
      },
      unavailable: (reason) => reason,
    });
    await expect(answer).rejects.toThrow("the door broke");
    await until(async () => (await subscribers("/threw")) === 0, "the thrown door's channel was unsubscribed");
  });

  test("a failed door beside one that joins the same channel: the channel stays for the one that joined", async () => {
    const member: Member = { got: [] };
    const [failed, joined] = await Promise.all([
      hub.admit("/shared", door(group, "/shared")),
      hub.admit("/shared", door(group, "/shared", member)),
    ]);
    expect([failed, joined]).toEqual(["failed", "joined"]);
    expect(await hub.admit("/probe2", door(group, "/probe2"))).toBe("failed");
    await until(async () => (await subscribers("/probe2")) === 0, "the probe channel was unsubscribed");
    expect(await subscribers("/shared")).toBe(1);
    group.leave("/shared", member);
    await until(async () => (await subscribers("/shared")) === 0, "the emptied channel was unsubscribed");
  });

  test("a subscriber joining within the delay keeps the channel: no UNSUBSCRIBE, no new SUBSCRIBE", async () => {
    const first: Member = { got: [] };
    expect(await hub.admit("/back", door(group, "/back", first))).toBe("joined");
    group.leave("/back", first);
    // In the same tick, well within UNSUBSCRIBE_DELAY_MS: the channel is still carried, so admission answers at once.
    const again = hub.admit("/back", door(group, "/back", { got: [] }));
    expect(again).toBe("joined");
    expect(await hub.admit("/probe3", door(group, "/probe3"))).toBe("failed");
    await until(async () => (await subscribers("/probe3")) === 0, "the probe channel was unsubscribed");
    expect(await subscribers("/back")).toBe(1);
  });

  test("Redis away: the door answers unavailable with the broker's reason and never opens", async () => {
    await redis.kill();
    await until(() => hub.unavailable !== undefined, "the broker noticed Redis was gone");
    let opened = false;
    const answer = hub.admit("/away", {
      open: () => {
        opened = true;
        return "joined";
      },
      unavailable: (reason) => `unavailable: ${reason}`,
    });
    expect(answer).toBe(`unavailable: ${hub.unavailable}`);
    expect(opened).toBe(false);
    await redis.restart();
  });
});
