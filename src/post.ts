// Publishing by POST: the door application servers use, and the one hot path that is HTTP. It runs before the
// Hono app because Hono's routing, context and middleware cost more per request than the publish itself; the
// common case, a body with a Content-Length within the limit, goes from the request to server.publish here.
// A chunked body, rarer, goes on to the app, whose bodyLimit middleware counts its bytes as they arrive.

import type { Config } from "./config.ts";
import type { Hub } from "./hub.ts";
import { forbiddenOrigin, originAllowed } from "./origin.ts";
import { plainText } from "./plain-text.ts";
import type { Refuse } from "./refusal.ts";
import { tryAgainLater } from "./try-again.ts";

export const SUBSCRIBERS_HEADER = "X-Pinghub-Subscribers";
/** Cluster mode's answer: no node knows the whole cluster's subscribers, Redis knows the nodes that had some. */
export const NODES_HEADER = "X-Pinghub-Nodes";
const strictUtf8 = new TextDecoder("utf-8", { fatal: true });
/** Counts (subscribers, or nodes in cluster mode) whose answer is made once and cloned: at most this many kept. */
const CACHED_ANSWERS = 1024;

export interface PostPublisher {
  /** Answers a POST to `channel`, or returns undefined for a chunked body, which the app must read. */
  publish(req: Request, channel: string): Response | Promise<Response> | undefined;
  /** Publishes a body already read, checked against the size limit, and answers for it. */
  publishBody(channel: string, body: Uint8Array | ArrayBuffer, req: Request): Response | Promise<Response>;
  /** The answer to a body over the size limit. */
  tooLarge(channel: string, req: Request): Response;
}

export function createPostPublisher(hub: Hub, config: Config, refused: Refuse): PostPublisher {
  const limit = config.maxMessageSize;
  const tooLarge = (channel: string, req: Request) => {
    refused("too_large", channel, req);
    return plainText(`message too large: the limit is ${limit} bytes\n`, 413);
  };

  const countHeader = hub.broker.cluster === undefined ? SUBSCRIBERS_HEADER : NODES_HEADER;
  // Bun gives a string body its text/plain Content-Type itself; one header less to build per message. Bun sends
  // a Response only once ("body already used"), but cloning one is cheaper than making one with a header: the
  // answer for each count is made on its first use, a clone of it kept, and the clone cloned for every later POST
  // that reaches that many (in-process: a clone 165-235 ns, against 270-290 ns for a reused Headers object and
  // 320-330 ns for an object literal; issue 20's POST profile). Counts past the cache are made each time.
  const answers: Response[] = [];
  const accepted = (count: number) => {
    const cached = answers[count];
    if (cached !== undefined) return cached.clone();
    const answer = new Response("OK\n", { headers: { [countHeader]: String(count) } });
    if (count < CACHED_ANSWERS) answers[count] = answer.clone();
    return answer;
  };
  function publishBody(channel: string, body: Uint8Array | ArrayBuffer, req: Request): Response | Promise<Response> {
    let message: string;
    try {
      message = strictUtf8.decode(body);
    } catch {
      refused("not_utf8", channel, req);
      return plainText("message is not valid UTF-8\n", 400);
    }
    // An empty body is accepted and dropped, as the original did: there is nothing to deliver.
    if (message.length === 0) return accepted(0);
    const published = hub.publishPost(channel, message);
    // A number on a single node; in cluster mode, answered once Redis has taken the message, or refused.
    if (typeof published === "number") return accepted(published);
    return published.then(accepted, (error: unknown) => {
      refused("redis_down", channel, req);
      return tryAgainLater(hub.refusedBecause(error));
    });
  }

  return {
    publishBody,
    tooLarge,
    publish(req, channel) {
      const headers = req.headers;
      // Checked before the body is read: a page on another site must not publish through a visitor's browser.
      // Without --origin every origin may publish, and the header is not even looked up.
      if (config.origin !== undefined && !originAllowed(config.origin, headers.get("origin"))) {
        refused("bad_origin", channel, req);
        return forbiddenOrigin(config.origin);
      }
      // Bun itself refuses a request with both Content-Length and Transfer-Encoding, so no length means chunked.
      const length = headers.get("content-length");
      if (length === null) return undefined;
      if (Number(length) > limit) return tooLarge(channel, req);
      // Bytes, not req.text(), though text() costs 0.4-1.0 µs less per POST under wrk (issue 20): the bytes'
      // ArrayBuffer roughly doubles each young-generation GC pause (BUN_JSC_logGC=1). text() turns bytes that
      // are not UTF-8 into U+FFFD (WHATWG), so a text without U+FFFD was valid; but a text with one cannot be
      // checked after the fact: three bytes of a cut-off four-byte sequence become one U+FFFD of three bytes,
      // the same length as a real U+FFFD, and the bytes are gone. A Blob (one read, text and bytes both from it,
      // Bun.peek on blob.text() is synchronous) costs what bytes() does.
      return req.bytes().then((body) => publishBody(channel, body, req));
    },
  };
}
