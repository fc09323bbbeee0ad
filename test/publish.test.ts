// Publishing: by POST and by websocket, keepalives, the subscriber count, order, and bursts without loss.

import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { post, subscribe } from "./support/clients.ts";
import { startServer, type TestServer } from "./support/server.ts";
import { until } from "./support/until.ts";

let server: TestServer;
beforeAll(async () => {
  server = await startServer();
});
afterAll(() => server.stop());

describe("POST", () => {
  test("answers 200 text/plain OK with the subscriber count, and delivers the body", async () => {
    const a = await subscribe(server.ws("/post/basic"));
    const b = await subscribe(server.ws("/post/basic"));
    const response = await post(server.http("/post/basic"), "hello");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toStartWith("text/plain");
    expect(response.text).toBe("OK\n");
    expect(response.headers.get("x-pinghub-subscribers")).toBe("2");
    expect(await a.received(1)).toEqual(["hello"]);
    expect(await b.received(1)).toEqual(["hello"]);
    a.close();
    b.close();
  });

  test("to a channel nobody subscribes: OK, 0 subscribers, and the message is dropped", async () => {
    const response = await post(server.http("/post/nobody"), "into the void");
    expect([response.status, response.text]).toEqual([200, "OK\n"]);
    expect(response.headers.get("x-pinghub-subscribers")).toBe("0");
    expect(server.hub.counters.droppedMessages).toBeGreaterThan(0);
  });

  test("no history: a subscriber that joins later does not get earlier messages", async () => {
    await post(server.http("/post/history"), "before");
    const late = await subscribe(server.ws("/post/history"));
    await post(server.http("/post/history"), "after");
    expect(await late.received(1)).toEqual(["after"]);
    late.close();
  });

  test("an empty body is OK but delivers nothing", async () => {
    const s = await subscribe(server.ws("/post/empty"));
    const response = await post(server.http("/post/empty"), "");
    expect([response.status, response.text]).toEqual([200, "OK\n"]);
    expect(response.headers.get("x-pinghub-subscribers")).toBe("0");
    // A marker sent after the empty POST is the first thing the subscriber sees.
    await post(server.http("/post/empty"), "marker");
    expect(await s.received(1)).toEqual(["marker"]);
    s.close();
  });

  test("the query string is not part of the channel name", async () => {
    const s = await subscribe(server.ws("/post/query?token=abc"));
    const response = await post(server.http("/post/query?other=1"), "q");
    expect(response.headers.get("x-pinghub-subscribers")).toBe("1");
    expect(await s.received(1)).toEqual(["q"]);
    s.close();
  });

  test("percent-encoded and plain forms of a name are one channel; case and trailing slash matter", async () => {
    const cafe = await subscribe(server.ws("/caf%C3%A9"));
    const upper = await subscribe(server.ws("/Caf%C3%A9"));
    const slash = await subscribe(server.ws("/caf%C3%A9/"));
    // %61 is "a": a needlessly encoded ASCII letter names the same channel.
    expect((await post(server.http("/c%61f%c3%a9"), "one")).headers.get("x-pinghub-subscribers")).toBe("1");
    expect(await cafe.received(1)).toEqual(["one"]);
    expect(upper.messages).toEqual([]);
    expect(slash.messages).toEqual([]);
    for (const s of [cafe, upper, slash]) s.close();
  });

  test("100 concurrent POSTs to one channel: every subscriber gets all 100, in one order", async () => {
    const subscribers = await Promise.all(Array.from({ length: 5 }, () => subscribe(server.ws("/post/burst"))));
    const sent = Array.from({ length: 100 }, (_, i) => `burst ${i}`);
    const responses = await Promise.all(sent.map((m) => post(server.http("/post/burst"), m)));
    expect(responses.every((r) => r.status === 200 && r.headers.get("x-pinghub-subscribers") === "5")).toBe(true);
    const received = await Promise.all(subscribers.map((s) => s.received(100)));
    expect(received[0]?.toSorted()).toEqual(sent.toSorted());
    for (const r of received) expect(r).toEqual(received[0] as string[]);
    for (const s of subscribers) s.close();
  });

  test("concurrent POSTs to channels of different sizes: each answer carries its own channel's count", async () => {
    // post.ts clones one answer made per count: no answer may carry another count, nor a clone change its answer.
    const sizes = [0, 1, 2, 3];
    const subscribers = await Promise.all(
      sizes.flatMap((n) => Array.from({ length: n }, () => subscribe(server.ws(`/post/counts/${n}`)))),
    );
    const posts = Array.from({ length: 200 }, (_, i) => sizes[i % sizes.length] as number);
    const answers = await Promise.all(posts.map((n) => post(server.http(`/post/counts/${n}`), `to ${n}`)));
    expect(answers.map((a) => a.headers.get("x-pinghub-subscribers"))).toEqual(posts.map(String));
    for (const s of subscribers) s.close();
  });
});

describe("websocket", () => {
  test("a message goes to every subscriber of the channel, the sender included", async () => {
    const sender = await subscribe(server.ws("/ws/all"));
    const other = await subscribe(server.ws("/ws/all"));
    const elsewhere = await subscribe(server.ws("/ws/elsewhere"));
    sender.send("hi all");
    expect(await sender.received(1)).toEqual(["hi all"]);
    expect(await other.received(1)).toEqual(["hi all"]);
    // The other channel saw nothing: a marker POSTed there arrives first.
    await post(server.http("/ws/elsewhere"), "marker");
    expect(await elsewhere.received(1)).toEqual(["marker"]);
    for (const s of [sender, other, elsewhere]) s.close();
  });

  test("an empty message is a keepalive: echoed empty to its sender only", async () => {
    const sender = await subscribe(server.ws("/ws/keepalive"));
    const other = await subscribe(server.ws("/ws/keepalive"));
    const before = server.hub.counters.websocketMessages;
    sender.send("");
    expect(await sender.received(1)).toEqual([""]);
    sender.send("after");
    expect(await other.received(1)).toEqual(["after"]);
    expect(server.hub.counters.websocketMessages).toBe(before + 1);
    sender.close();
    other.close();
  });

  test("POST and websocket publishers mixed: all subscribers see one order", async () => {
    const subscribers = await Promise.all(Array.from({ length: 4 }, () => subscribe(server.ws("/ws/mixed"))));
    const sent: string[] = [];
    const posts: Promise<unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      const viaWs = `ws ${i}`;
      const viaPost = `post ${i}`;
      sent.push(viaWs, viaPost);
      subscribers[i % 4]?.send(viaWs);
      posts.push(post(server.http("/ws/mixed"), viaPost));
    }
    await Promise.all(posts);
    const received = await Promise.all(subscribers.map((s) => s.received(100)));
    expect(received[0]?.toSorted()).toEqual(sent.toSorted());
    for (const r of received) expect(r).toEqual(received[0] as string[]);
    // Each websocket publisher's own messages keep their order.
    for (let sender = 0; sender < 4; sender++) {
      const own = (received[0] ?? []).filter((m) => m.startsWith("ws ") && Number(m.slice(3)) % 4 === sender);
      expect(own).toEqual(sent.filter((m) => own.includes(m)));
    }
    for (const s of subscribers) s.close();
  });

  test("a channel exists from its first subscriber to its last", async () => {
    // The earlier tests' subscribers have closed; let the server see every close before counting.
    await waitFor(() => server.hub.websockets === 0);
    const channels = server.hub.channelCount;
    expect(channels).toBe(0);
    const a = await subscribe(server.ws("/ws/lifetime"));
    const b = await subscribe(server.ws("/ws/lifetime"));
    expect(server.hub.channelCount).toBe(channels + 1);
    expect(server.hub.subscriberCount("/ws/lifetime")).toBe(2);
    a.close();
    await a.closed;
    await waitFor(() => server.hub.subscriberCount("/ws/lifetime") === 1);
    b.close();
    await b.closed;
    await waitFor(() => server.hub.channelCount === channels);
    expect(server.hub.subscriberCount("/ws/lifetime")).toBe(0);
  });
});

/** Waits for the server to see a close that the client has already seen; both run in this one process. */
async function waitFor(condition: () => boolean): Promise<void> {
  await until(condition, "the server sees the close");
}
