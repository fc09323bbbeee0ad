// The subscription state machine of cluster mode (src/redis-subscriptions.ts), driven directly: it is pure logic
// fed with events (want, unwant, flush, Redis's replies, the connection coming and going) and answering with the
// commands to send, so the test plays Redis's part by choosing which reply comes when. The orders tested here
// (a reply after a later change, a connection lost between a SUBSCRIBE and its reply) are the ones a real Redis
// produces too rarely to test through it; cluster.test.ts runs the same machine against a real redis-server.

import { describe, expect, test } from "bun:test";
import { CHANNELS_PER_COMMAND, type Commands, Subscriptions } from "../src/redis-subscriptions.ts";

type State = "pending" | "resolved" | "rejected";

interface Tracked {
  readonly state: State;
  readonly error: Error | undefined;
}

/** Follows a waiter's promise; undefined (no wait: already subscribed) is reported as such. */
function track(promise: Promise<void> | undefined): Tracked {
  if (promise === undefined) throw new Error("expected a promise, got undefined (already subscribed)");
  const tracked: { state: State; error: Error | undefined } = { state: "pending", error: undefined };
  promise.then(
    () => {
      tracked.state = "resolved";
    },
    (error: Error) => {
      tracked.state = "rejected";
      tracked.error = error;
    },
  );
  return tracked;
}

/** Lets every queued promise reaction run: deterministic, no clock involved. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

function machine() {
  const calls = { flushSoon: 0, ready: 0 };
  const subscriptions = new Subscriptions({
    flushSoon: () => {
      calls.flushSoon++;
    },
    ready: () => {
      calls.ready++;
    },
  });
  return { subscriptions, calls };
}

/** A connected machine with nothing wanted. */
function connected() {
  const m = machine();
  expect(m.subscriptions.connect()).toEqual([]);
  expect(m.calls.ready).toBe(1);
  return m;
}

const channelsOf = (commands: Commands) => ({
  unsubscribe: commands.unsubscribe.map((c) => [...c]),
  subscribe: commands.subscribe.map((c) => [...c.channels]),
});

describe("subscribing", () => {
  test("changes made in one turn go out as one SUBSCRIBE, and its reply answers every waiter", async () => {
    const { subscriptions, calls } = connected();
    const a1 = track(subscriptions.want("/a"));
    const a2 = track(subscriptions.want("/a"));
    const b = track(subscriptions.want("/b"));
    expect(calls.flushSoon).toBe(1);
    const commands = subscriptions.flush();
    expect(channelsOf(commands)).toEqual({ unsubscribe: [], subscribe: [["/a", "/b"]] });
    await settle();
    expect([a1.state, a2.state, b.state]).toEqual(["pending", "pending", "pending"]);
    subscriptions.subscribed(commands.subscribe[0]?.batch ?? -1);
    await settle();
    expect([a1.state, a2.state, b.state]).toEqual(["resolved", "resolved", "resolved"]);
    // Confirmed: a later subscriber of the channel waits for nothing.
    expect(subscriptions.want("/a")).toBeUndefined();
    expect(subscriptions.size).toBe(2);
  });

  test("a waiter that comes while the SUBSCRIBE is in flight is answered by that SUBSCRIBE, none sent twice", async () => {
    const { subscriptions } = connected();
    const first = track(subscriptions.want("/a"));
    const commands = subscriptions.flush();
    const second = track(subscriptions.want("/a"));
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
    subscriptions.subscribed(commands.subscribe[0]?.batch ?? -1);
    await settle();
    expect([first.state, second.state]).toEqual(["resolved", "resolved"]);
  });

  test("thousands of channels go out in commands of at most CHANNELS_PER_COMMAND", () => {
    const { subscriptions } = connected();
    const count = CHANNELS_PER_COMMAND * 2 + 5;
    for (let i = 0; i < count; i++) subscriptions.want(`/c${i}`)?.catch(() => {});
    const sizes = subscriptions.flush().subscribe.map((c) => c.channels.length);
    expect(sizes).toEqual([CHANNELS_PER_COMMAND, CHANNELS_PER_COMMAND, 5]);
  });
});

describe("rapid join and leave", () => {
  test("leave then join again before the flush, on a confirmed channel: nothing sent, nothing waited for", async () => {
    const { subscriptions } = connected();
    const first = track(subscriptions.want("/a"));
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    await settle();
    expect(first.state).toBe("resolved");
    subscriptions.unwant("/a");
    expect(subscriptions.want("/a")).toBeUndefined();
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
    expect(subscriptions.size).toBe(1);
  });

  test("join then leave before the flush: nothing sent, the waiter told it was given up", async () => {
    const { subscriptions } = connected();
    const waiter = track(subscriptions.want("/a"));
    subscriptions.unwant("/a");
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
    await settle();
    expect(waiter.state).toBe("rejected");
    expect(subscriptions.size).toBe(0);
  });

  test("leave and join again while the SUBSCRIBE is in flight, within one turn: that SUBSCRIBE still decides", async () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    const batch = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.unwant("/a");
    const waiter = track(subscriptions.want("/a"));
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
    subscriptions.subscribed(batch);
    await settle();
    expect(waiter.state).toBe("resolved");
  });

  test("many joins and leaves of one channel in a turn end as the last one says", () => {
    const { subscriptions } = connected();
    for (let i = 0; i < 100; i++) {
      subscriptions.want("/a")?.catch(() => {});
      subscriptions.unwant("/a");
    }
    subscriptions.want("/a")?.catch(() => {});
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [["/a"]] });
  });

  test("leave after confirmation sends UNSUBSCRIBE; the channel is no longer counted", () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    subscriptions.unwant("/a");
    expect(subscriptions.size).toBe(0);
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [["/a"]], subscribe: [] });
  });
});

describe("a reply arriving after a later change", () => {
  test("the reply to an earlier SUBSCRIBE does not confirm a channel that was unsubscribed and subscribed again since", async () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    const first = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.unwant("/a");
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [["/a"]], subscribe: [] });
    const waiter = track(subscriptions.want("/a"));
    const commands = subscriptions.flush();
    // Redis sees SUBSCRIBE, UNSUBSCRIBE, SUBSCRIBE: only the last SUBSCRIBE's reply may say the node hears /a.
    expect(channelsOf(commands)).toEqual({ unsubscribe: [], subscribe: [["/a"]] });
    subscriptions.subscribed(first);
    await settle();
    expect(waiter.state).toBe("pending");
    expect(subscriptions.want("/a")).toBeInstanceOf(Promise);
    subscriptions.subscribed(commands.subscribe[0]?.batch ?? -1);
    await settle();
    expect(waiter.state).toBe("resolved");
    expect(subscriptions.want("/a")).toBeUndefined();
  });

  test("the reply to a SUBSCRIBE of a channel since unsubscribed confirms nothing", () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    const batch = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.unwant("/a");
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [["/a"]], subscribe: [] });
    subscriptions.subscribed(batch);
    expect(subscriptions.size).toBe(0);
    // Wanted again: a SUBSCRIBE must go out, the old reply having confirmed nothing.
    subscriptions.want("/a")?.catch(() => {});
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [["/a"]] });
  });

  test("a refusal of an earlier SUBSCRIBE does not undo a later one", async () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    const first = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.unwant("/a");
    subscriptions.flush();
    const waiter = track(subscriptions.want("/a"));
    const second = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.refused(first, new Error("NOPERM"));
    expect(subscriptions.wants("/a")).toBe(true);
    subscriptions.subscribed(second);
    await settle();
    expect(waiter.state).toBe("resolved");
  });
});

describe("a refused SUBSCRIBE", () => {
  test("of one channel: left as if never asked, every waiter answered with Redis's reason, asked again it is sent again", async () => {
    const { subscriptions } = connected();
    const a1 = track(subscriptions.want("/a"));
    const a2 = track(subscriptions.want("/a"));
    const batch = subscriptions.flush().subscribe[0]?.batch ?? -1;
    expect(subscriptions.refused(batch, new Error("NOPERM no permissions"))).toEqual([]);
    await settle();
    expect([a1.state, a2.state]).toEqual(["rejected", "rejected"]);
    expect(a1.error?.message).toBe("NOPERM no permissions");
    expect(subscriptions.size).toBe(0);
    expect(subscriptions.wants("/a")).toBe(false);
    // The hang of issue 16 was a channel marked sent for good: asked again, nothing went out.
    const again = track(subscriptions.want("/a"));
    const commands = subscriptions.flush();
    expect(channelsOf(commands)).toEqual({ unsubscribe: [], subscribe: [["/a"]] });
    subscriptions.subscribed(commands.subscribe[0]?.batch ?? -1);
    await settle();
    expect(again.state).toBe("resolved");
  });

  test("of several channels: each tried again alone, so one forbidden channel costs the others nothing", async () => {
    const { subscriptions } = connected();
    const ok = track(subscriptions.want("/ok"));
    const forbidden = track(subscriptions.want("/forbidden"));
    const batch = subscriptions.flush().subscribe[0]?.batch ?? -1;
    const retries = subscriptions.refused(batch, new Error("NOPERM"));
    expect(retries.map((c) => [...c.channels])).toEqual([["/ok"], ["/forbidden"]]);
    await settle();
    expect([ok.state, forbidden.state]).toEqual(["pending", "pending"]);
    subscriptions.subscribed(retries[0]?.batch ?? -1);
    expect(subscriptions.refused(retries[1]?.batch ?? -1, new Error("NOPERM"))).toEqual([]);
    await settle();
    expect([ok.state, forbidden.state]).toEqual(["resolved", "rejected"]);
    expect(subscriptions.size).toBe(1);
    expect(subscriptions.want("/ok")).toBeUndefined();
  });

  test("while re-subscribing: the node is ready once every channel is confirmed or refused alone", () => {
    const { subscriptions, calls } = connected();
    subscriptions.want("/ok")?.catch(() => {});
    subscriptions.want("/forbidden")?.catch(() => {});
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    subscriptions.disconnect(new Error("gone"));
    const resubscribe = subscriptions.connect();
    const retries = subscriptions.refused(resubscribe[0]?.batch ?? -1, new Error("NOPERM"));
    expect(subscriptions.ready).toBe(false);
    subscriptions.refused(retries[1]?.batch ?? -1, new Error("NOPERM"));
    expect(subscriptions.ready).toBe(false);
    subscriptions.subscribed(retries[0]?.batch ?? -1);
    expect(subscriptions.ready).toBe(true);
    expect(calls.ready).toBe(2);
    expect(subscriptions.size).toBe(1);
  });
});

describe("a reconnect in the middle of a flush", () => {
  test("the connection lost between a SUBSCRIBE and its reply: waiters told, the late reply ignored, the wanted set sent again", async () => {
    const { subscriptions, calls } = connected();
    const a = track(subscriptions.want("/a"));
    const b = track(subscriptions.want("/b"));
    const lost = subscriptions.flush().subscribe[0]?.batch ?? -1;
    subscriptions.disconnect(new Error("redis connection lost"));
    await settle();
    expect([a.state, b.state]).toEqual(["rejected", "rejected"]);
    expect(a.error?.message).toBe("redis connection lost");
    expect(subscriptions.ready).toBe(false);
    subscriptions.subscribed(lost);
    expect(subscriptions.ready).toBe(false);
    // The wanted set is what re-subscribing sends; it stays while the connection is away.
    expect(subscriptions.size).toBe(2);
    const again = subscriptions.connect();
    expect(again.map((c) => [...c.channels])).toEqual([["/a", "/b"]]);
    expect(subscriptions.ready).toBe(false);
    expect(calls.ready).toBe(1);
    subscriptions.subscribed(lost);
    expect(subscriptions.ready).toBe(false);
    subscriptions.subscribed(again[0]?.batch ?? -1);
    expect(subscriptions.ready).toBe(true);
    expect(calls.ready).toBe(2);
    expect(subscriptions.want("/a")).toBeUndefined();
  });

  test("changes made while the connection is away are sent by the re-subscribe, not by a flush", () => {
    const { subscriptions } = connected();
    subscriptions.want("/a")?.catch(() => {});
    subscriptions.want("/b")?.catch(() => {});
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    subscriptions.disconnect(new Error("gone"));
    subscriptions.unwant("/b");
    subscriptions.want("/c")?.catch(() => {});
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
    expect(subscriptions.connect().map((c) => [...c.channels])).toEqual([["/a", "/c"]]);
    // A flush scheduled before the reconnect finds nothing left to send.
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [], subscribe: [] });
  });

  test("a change during re-subscribing is flushed on the new connection; ready waits only for the re-subscribe", () => {
    const { subscriptions, calls } = connected();
    subscriptions.want("/a")?.catch(() => {});
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    subscriptions.disconnect(new Error("gone"));
    const resubscribe = subscriptions.connect();
    subscriptions.unwant("/a");
    expect(channelsOf(subscriptions.flush())).toEqual({ unsubscribe: [["/a"]], subscribe: [] });
    subscriptions.subscribed(resubscribe[0]?.batch ?? -1);
    expect(subscriptions.ready).toBe(true);
    expect(calls.ready).toBe(2);
    expect(subscriptions.size).toBe(0);
  });

  test("a second loss during re-subscribing: the first re-subscribe's reply does not make the node ready", () => {
    const { subscriptions, calls } = connected();
    subscriptions.want("/a")?.catch(() => {});
    subscriptions.subscribed(subscriptions.flush().subscribe[0]?.batch ?? -1);
    subscriptions.disconnect(new Error("gone"));
    const first = subscriptions.connect();
    subscriptions.disconnect(new Error("gone again"));
    subscriptions.subscribed(first[0]?.batch ?? -1);
    expect(subscriptions.ready).toBe(false);
    const second = subscriptions.connect();
    subscriptions.subscribed(second[0]?.batch ?? -1);
    expect(subscriptions.ready).toBe(true);
    expect(calls.ready).toBe(2);
  });

  test("with nothing wanted, a connection is ready at once", () => {
    const { subscriptions, calls } = machine();
    expect(subscriptions.ready).toBe(false);
    expect(subscriptions.connect()).toEqual([]);
    expect(subscriptions.ready).toBe(true);
    expect(calls.ready).toBe(1);
  });
});
