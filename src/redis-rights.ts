// Whether the node's Redis user may do what pinghub needs, asked of Redis itself each time the node connects:
// PUBLISH (or, with --history, the scripts that store and resume), and SUBSCRIBE; SPUBLISH and SSUBSCRIBE on a
// Redis Cluster. A right it lacks is named in one line, so that an operator reads "NOPERM ... 'publish' command" at
// start-up and in /healthz, not a 503 later.
//
// The questions use a name under the prefix that no channel has (a channel's name starts with "/"), so that no
// subscriber anywhere hears them. A user kept from that name (ACL key or channel patterns narrower than the
// prefix) is not refused outright: its channels are tried one by one as they come, and refused with Redis's
// reason when they must be.
//
// Not asked here: SET on the settings key (redis-settings.ts), which only serves a warning; its refusal is said
// there, in one line, and the node serves without it.

import type Redis from "ioredis";
import { ReplyError } from "ioredis";
import type { RedisHistory } from "./redis-history.ts";

/** While the user lacks a right pinghub needs, Redis is asked again this often: fixing the ACL is enough. */
const RIGHTS_RECHECK_MS = 10_000;

/**
 * What the node knows of its user's rights: asked at each connection (`check`), again every RIGHTS_RECHECK_MS
 * while one is missing; each change said once in the log.
 */
export class RedisRights {
  /** Why the node refuses while its user lacks a command, in one line; undefined when it lacks none. */
  problem: string | undefined;
  /** Names under the prefix the user may not use: the node serves, and says so in /healthz. */
  warning: string | undefined;
  /** Settles once the first answer is in. */
  readonly known: Promise<void>;
  private answered: () => void;
  private last: Rights = { missing: undefined, narrowed: undefined };
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly ask: () => Promise<Rights>,
    /** The Redis URL as it may be shown, and the prefix, for the lines said. */
    private readonly display: string,
    private readonly prefix: string,
    private readonly warn: (line: string) => void,
  ) {
    const known = Promise.withResolvers<void>();
    this.known = known.promise;
    this.answered = known.resolve;
  }

  async check(): Promise<void> {
    clearTimeout(this.timer);
    const rights = await this.ask();
    const prefix = JSON.stringify(this.prefix);
    if (rights.missing !== undefined && rights.missing !== this.last.missing) {
      this.warn(`cluster: the redis user lacks rights pinghub needs: ${rights.missing}`);
    } else if (rights.missing === undefined && this.last.missing !== undefined) {
      this.warn("cluster: the redis user now has the rights pinghub needs");
    }
    if (rights.narrowed !== undefined && rights.narrowed !== this.last.narrowed) {
      this.warn(
        `cluster: the redis user may not use every name under ${prefix} (${rights.narrowed}); ` +
          "channels it may not use are refused",
      );
    }
    this.last = rights;
    this.problem =
      rights.missing === undefined
        ? undefined
        : `redis at ${this.display} refuses pinghub's commands: ${rights.missing}`;
    this.warning =
      rights.narrowed === undefined
        ? undefined
        : `the redis user may not use every name under ${prefix}: ${rights.narrowed}`;
    this.answered();
    if (rights.missing !== undefined) this.timer = setTimeout(() => void this.check(), RIGHTS_RECHECK_MS);
  }

  close(): void {
    clearTimeout(this.timer);
  }
}

export interface Rights {
  /** The commands the user may not run, with Redis's reason, in one line; undefined when it may run them all. */
  missing: string | undefined;
  /** Names under the prefix the user may not use, in one line; undefined when it may use them. */
  narrowed: string | undefined;
}

/**
 * The two questions about pub/sub, on the node's own connections: PUBLISH and SUBSCRIBE on one Redis, SPUBLISH and
 * SSUBSCRIBE (then SUNSUBSCRIBE) on a Redis Cluster. Each is named as the line says it.
 */
export interface PubSubQuestions {
  publishing: string;
  publish(name: string): Promise<unknown>;
  subscribing: string;
  /** Subscribes to `name`, then unsubscribes. */
  subscribe(name: string): Promise<unknown>;
}

/** The questions on one Redis (or one found through Sentinel): the broker's two connections. */
export function redisQuestions(publisher: Redis, subscriber: Redis): PubSubQuestions {
  return {
    publishing: "PUBLISH",
    publish: (name) => publisher.publish(name, "[]"),
    subscribing: "SUBSCRIBE",
    subscribe: (name) => subscriber.subscribe(name).then(() => subscriber.unsubscribe(name)),
  };
}

/** Asks Redis, on the node's own connections, whether its user may run what pinghub runs. */
export async function checkRights(
  pubsub: PubSubQuestions,
  prefix: string,
  stored: RedisHistory | undefined,
): Promise<Rights> {
  // Two names: a node asking SUBSCRIBE must not hear another node asking PUBLISH.
  const published = `${prefix}!rights-publish`;
  const subscribed = `${prefix}!rights-subscribe`;
  const questions: Array<[string, () => Promise<unknown>]> = [
    stored === undefined
      ? [pubsub.publishing, () => pubsub.publish(published)]
      : ["the history script", () => stored.publish(published, [])],
    [pubsub.subscribing, () => pubsub.subscribe(subscribed)],
  ];
  // The resume scripts make an empty stream for an absent key (a position for a quiet channel): this one, under
  // the prefix, expires with --history-ttl like any other.
  if (stored !== undefined) {
    questions.push(["the resume script", () => stored.since(published, "1-0")]);
    questions.push(["the newest-messages script", () => stored.latest(published, 1)]);
  }
  const missing: string[] = [];
  const narrowed: string[] = [];
  for (const [what, ask] of questions) {
    const refusal = await ask().then(
      () => undefined,
      (error: Error) => permissionError(error),
    );
    if (refusal === undefined) continue;
    (refusal.kind === "command" ? missing : narrowed).push(`${what}: ${refusal.reason}`);
  }
  return {
    missing: missing.length === 0 ? undefined : missing.join("; "),
    narrowed: narrowed.length === 0 ? undefined : narrowed.join("; "),
  };
}

/**
 * Redis's refusal for lack of rights, told apart from every other failure (a lost connection, out of memory:
 * those say nothing about rights). NOPERM in a reply, or the script's "can't run"/"can't access" from inside it.
 */
export function permissionError(error: Error): { kind: "command" | "name"; reason: string } | undefined {
  if (!(error instanceof ReplyError)) return undefined;
  const reason = redisReason(error.message);
  if (/^NOPERM .*to run the|can't run this command/.test(reason)) return { kind: "command", reason };
  if (/^NOPERM|can't access/.test(reason)) return { kind: "name", reason };
  return undefined;
}

/** Redis's reply error as one line, without the script's hash and line that follow it. */
export function redisReason(message: string): string {
  const line = message.split("\n", 1)[0] ?? "";
  return line.replace(/\.? script: [0-9a-f]{40}.*$/, "").replace(/\.$/, "");
}
