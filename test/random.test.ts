// A port of the original Go pinghub's randomized test: N clients on one channel, each randomly a websocket
// subscriber-publisher or a POST publisher, each sending random Unicode messages, empty ones included. Every
// websocket client must receive exactly the non-empty messages, all in one order, each publisher's in the order
// it sent them, plus an empty echo of each empty message it sent itself, and nothing else.
//
// The run is reproducible: the seed is printed, and `PINGHUB_SEED=123 bun test test/random.test.ts` replays it.
//
// The same test runs on one node and on three cluster nodes sharing a real Redis, each client on a node of its
// own choosing: the one order must hold across nodes.

import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { NODES_HEADER, SUBSCRIBERS_HEADER } from "../src/post.ts";
import { post, type Subscriber, subscribe } from "./support/clients.ts";
import { Rng } from "./support/fuzz-core.ts";
import { numsub, type RedisServer, skipWithoutRedis, startRedis } from "./support/redis.ts";
import { type PinghubProcess, spawnServing, startServer, type TestServer } from "./support/server.ts";
import { until } from "./support/until.ts";

const CLIENT_COUNTS = [1, 10, 100];
/** At most this many messages per client; each sends at least one. */
const MAX_MESSAGES_PER_CLIENT = 10;
/** A message is empty (a keepalive) this often. */
const EMPTY_MESSAGE_CHANCE = 0.2;
const MAX_MESSAGE_CODE_POINTS = 20;
const MAX_PATH_CODE_POINTS = 40;

const SEED = readSeed();

/** The seeded generator the fuzzer uses too (mulberry32), as a function. */
function mulberry32(seed: number): () => number {
  const rng = new Rng(seed);
  return () => rng.next();
}

function readSeed(): number {
  const given = process.env.PINGHUB_SEED;
  if (given === undefined || given === "") return crypto.getRandomValues(new Uint32Array(1))[0] ?? 0;
  if (!/^\d+$/.test(given) || Number(given) > 0xffffffff) {
    throw new Error(`PINGHUB_SEED must be a whole number from 0 to 4294967295, not "${given}"`);
  }
  return Number(given);
}

type Random = () => number;

const randomInt = (random: Random, min: number, max: number) => min + Math.floor(random() * (max - min + 1));

/**
 * A Unicode scalar value: ASCII (controls included), the rest of the BMP, or a supplementary plane, so that
 * one-, two-, three- and four-byte UTF-8 and UTF-16 surrogate pairs all appear. Never a lone surrogate, which
 * is not text.
 */
function randomCodePoint(random: Random): number {
  const kind = random();
  if (kind < 0.3) return randomInt(random, 0, 0x7f);
  if (kind < 0.65) {
    // 0x80..0xFFFF without the 2048 surrogates.
    const n = randomInt(random, 0x80, 0xffff - 0x800);
    return n < 0xd800 ? n : n + 0x800;
  }
  return randomInt(random, 0x10000, 0x10ffff);
}

function randomText(random: Random, minCodePoints: number, maxCodePoints: number, allow = (_: number) => true) {
  const codePoints: number[] = [];
  const length = randomInt(random, minCodePoints, maxCodePoints);
  while (codePoints.length < length) {
    const c = randomCodePoint(random);
    if (allow(c)) codePoints.push(c);
  }
  return String.fromCodePoint(...codePoints);
}

/**
 * A random channel path of 1 to MAX_PATH_CODE_POINTS code points in one or more segments, each percent-encoded
 * as a browser would. U+FFFD is left out (the server takes it for bytes that were not UTF-8), and so are the
 * segments `.` and `..`, which URL parsing would remove before the request is sent.
 */
function randomChannel(random: Random): { path: string; channel: string } {
  const segments: string[] = [];
  let remaining = randomInt(random, 1, MAX_PATH_CODE_POINTS);
  while (remaining > 0) {
    const length = randomInt(random, 1, Math.min(remaining, 12));
    const segment = randomText(random, length, length, (c) => c !== 0xfffd);
    if (segment === "." || segment === "..") continue;
    segments.push(segment);
    remaining -= length;
  }
  return { path: `/${segments.map(encodeURIComponent).join("/")}`, channel: `/${segments.join("/")}` };
}

interface Client {
  id: number;
  kind: "websocket" | "post";
  /** What it sends, in order; "" is a keepalive. */
  messages: string[];
  /** For a websocket client: whether it lets the others run after sending each message. */
  yields: boolean[];
  subscriber?: Subscriber;
}

/** Clients and their messages; non-empty messages are all different, so each can be traced to its sender. */
function randomClients(random: Random, count: number, sentinel: string): Client[] {
  const used = new Set<string>([sentinel]);
  const clients: Client[] = [];
  for (let id = 0; id < count; id++) {
    const messages: string[] = [];
    const messageCount = randomInt(random, 1, MAX_MESSAGES_PER_CLIENT);
    while (messages.length < messageCount) {
      if (random() < EMPTY_MESSAGE_CHANCE) {
        messages.push("");
        continue;
      }
      const message = randomText(random, 1, MAX_MESSAGE_CODE_POINTS);
      if (used.has(message)) continue;
      used.add(message);
      messages.push(message);
    }
    const kind = random() < 0.5 ? "websocket" : "post";
    clients.push({ id, kind, messages, yields: messages.map(() => random() < 0.5) });
  }
  return clients;
}

/** Lets other clients' sends and the server run, so publishers interleave; not a wait for anything. */
const yieldToOthers = () => new Promise<void>((resolve) => setImmediate(resolve));

beforeAll(() => {
  console.log(`random test seed: ${SEED} (replay with PINGHUB_SEED=${SEED} bun test test/random.test.ts)`);
});

/** Where a case runs: one in-process server, or several cluster nodes. */
interface Target {
  /** The base URL (`http://127.0.0.1:PORT`) of each node. */
  nodes: string[];
  /** The answer header a POST carries, and its expected value for a message reaching `nodesWithSubscribers`. */
  header: string;
  expectedCount(subscribers: number, nodesWithSubscribers: number): number;
  /** Checks the channel is gone once its last subscriber left. */
  forgotten(channel: string): Promise<void>;
  /** Checks the server's own count of subscribers and channels, where it can be asked directly. */
  counts?(channel: string, subscribers: number): void;
}

let open: Subscriber[] = [];

afterEach(() => {
  for (const subscriber of open) subscriber.close();
  open = [];
});

async function runRandomTest(target: Target, caseNumber: number, clientCount: number, unicodePath: boolean) {
  const random = mulberry32((SEED + Math.imul(caseNumber, 0x9e3779b9)) >>> 0);
  const { path, channel } = unicodePath ? randomChannel(random) : { path: "/random", channel: "/random" };
  const sentinel = `end of random test ${SEED}/${caseNumber}`;
  const clients = randomClients(random, clientCount, sentinel);
  const websocketClients = clients.filter((c) => c.kind === "websocket");
  const nonEmpty = clients.flatMap((c) => c.messages.filter((m) => m !== ""));
  // Each client talks to a node of its own, drawn from the same seed.
  const nodeOf = new Map(clients.map((c) => [c.id, target.nodes[randomInt(random, 0, target.nodes.length - 1)] ?? ""]));
  const nodesWithSubscribers = new Set(websocketClients.map((c) => nodeOf.get(c.id))).size;
  const expectedHeader = String(target.expectedCount(websocketClients.length, nodesWithSubscribers));

  // Everyone subscribes first: each websocket client must then receive every non-empty message.
  await Promise.all(
    websocketClients.map(async (client) => {
      client.subscriber = await subscribe(`${nodeOf.get(client.id)?.replace(/^http/, "ws")}${path}`);
      open.push(client.subscriber);
    }),
  );
  target.counts?.(channel, websocketClients.length);

  // Then everyone publishes at once: websocket clients send and yield at random, POST clients await each answer.
  await Promise.all(
    clients.map(async (client) => {
      for (const [i, message] of client.messages.entries()) {
        if (client.subscriber !== undefined) {
          client.subscriber.send(message);
          if (client.yields[i]) await yieldToOthers();
          continue;
        }
        const response = await post(`${nodeOf.get(client.id)}${path}`, message);
        expect(response.status).toBe(200);
        expect(response.text).toBe("OK\n");
        // An empty body is dropped: it reaches nobody.
        expect(response.headers.get(target.header)).toBe(message === "" ? "0" : expectedHeader);
      }
    }),
  );

  const expectedCount = (client: Client) => nonEmpty.length + client.messages.filter((m) => m === "").length;
  await Promise.all(websocketClients.map((c) => c.subscriber?.received(expectedCount(c))));
  // A last message after everything else: had anything extra arrived, it would not be where it is expected.
  if (websocketClients.length > 0) {
    const last = await post(`${target.nodes[0]}${path}`, sentinel);
    expect(last.headers.get(target.header)).toBe(expectedHeader);
  }
  await Promise.all(websocketClients.map((c) => c.subscriber?.received(expectedCount(c) + 1)));

  let order: string[] | undefined;
  for (const client of websocketClients) {
    const received = client.subscriber?.messages ?? [];
    expect(received.length).toBe(expectedCount(client) + 1);
    expect(received.at(-1)).toBe(sentinel);
    const published = received.slice(0, -1).filter((m) => m !== "");
    // One order for every subscriber, and it holds every non-empty message exactly once.
    if (order === undefined) {
      order = published;
      expect(order.toSorted()).toEqual(nonEmpty.toSorted());
    } else
      expect(published, `client ${client.id}: another order than client ${websocketClients[0]?.id}`).toEqual(order);
    checkEchoes(client, received.slice(0, -1), target.nodes.length === 1);
  }

  // Each publisher's messages appear in the order it sent them.
  if (order !== undefined) {
    const position = new Map(order.map((m, i) => [m, i]));
    for (const client of clients) {
      const positions = client.messages.filter((m) => m !== "").map((m) => position.get(m) ?? -1);
      expect(positions, `client ${client.id} (${client.kind}): its messages out of order`).toEqual(
        positions.toSorted((a, b) => a - b),
      );
    }
  }

  // The channel is forgotten with its last subscriber.
  for (const client of websocketClients) client.subscriber?.close();
  await target.forgotten(channel);
}

/**
 * A client's empty messages come back to it alone, each after the messages it published before it and before
 * the ones it published after it: the server answers a connection's messages in the order they came.
 */
function checkEchoes(client: Client, received: string[], singleNode: boolean): void {
  const own = new Set(client.messages.filter((m) => m !== ""));
  // What the client sent, and what came back of it, as the same kind of sequence: its own messages and "".
  const sent = client.messages;
  const back = received.filter((m) => m === "" || own.has(m));
  if (singleNode) {
    expect(back, `client ${client.id}: its own messages and empty echoes`).toEqual(sent);
    return;
  }
  // In cluster mode a keepalive is answered by the node at once, while a message comes back only after its
  // trip through Redis: the echoes are all there, but may come before the client's own earlier messages.
  expect(back.filter((m) => m === "").length, `client ${client.id}: empty echoes`).toBe(
    sent.filter((m) => m === "").length,
  );
  expect(
    back.filter((m) => m !== ""),
    `client ${client.id}: its own messages`,
  ).toEqual(sent.filter((m) => m !== ""));
}

/** Declares every case against the target that `target()` gives once its beforeAll has run. */
function declareCases(target: () => Target): void {
  let caseNumber = 0;
  for (const clientCount of CLIENT_COUNTS) {
    for (const unicodePath of [false, true]) {
      const thisCase = caseNumber++;
      test(`${clientCount} random client${clientCount === 1 ? "" : "s"} on ${unicodePath ? "a random Unicode" : "a fixed"} path`, async () => {
        try {
          await runRandomTest(target(), thisCase, clientCount, unicodePath);
        } catch (error) {
          console.log(`failed with seed ${SEED} (case ${thisCase}): replay with PINGHUB_SEED=${SEED}`);
          throw error;
        }
      });
    }
  }
}

describe("one node", () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startServer();
  });
  afterAll(() => server.stop());
  declareCases(() => ({
    nodes: [server.http("")],
    header: SUBSCRIBERS_HEADER,
    expectedCount: (subscribers) => subscribers,
    counts(channel, subscribers) {
      expect(server.hub.subscriberCount(channel)).toBe(subscribers);
      expect(server.hub.channelCount).toBe(subscribers === 0 ? 0 : 1);
    },
    async forgotten(channel) {
      await until(() => server.hub.channelCount === 0, "the channel is forgotten");
      expect(server.hub.subscriberCount(channel)).toBe(0);
    },
  }));
});

describe.skipIf(skipWithoutRedis())("three cluster nodes on one Redis", () => {
  let redis: RedisServer;
  const nodes: Array<PinghubProcess & { url: string }> = [];
  beforeAll(async () => {
    redis = await startRedis();
    for (let i = 0; i < 3; i++) nodes.push(await spawnServing(["--redis", redis.url]));
  });
  afterAll(async () => {
    for (const node of nodes) node.proc.kill("SIGTERM");
    await Promise.all(nodes.map((node) => node.exited));
    await redis.stop();
  });
  declareCases(() => ({
    nodes: nodes.map((node) => node.url),
    header: NODES_HEADER,
    expectedCount: (_, nodesWithSubscribers) => nodesWithSubscribers,
    async forgotten(channel) {
      // Every node unsubscribes from the channel's Redis channel once its last subscriber has gone.
      const client = redis.client();
      await until(
        async () => (await numsub(client, [`pinghub:${channel}`]))[0] === 0,
        `PUBSUB NUMSUB for ${channel} is 0`,
      );
    },
  }));
});
