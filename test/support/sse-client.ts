// A Server-Sent Events client for the tests: fetch, and a parser that follows the event-stream format as
// EventSource does (lines end at CR, LF or CRLF; `data:` lines joined with LF; comments kept apart for the
// tests that look for them), so that a test can wait for events without sleeping.

export interface ServerEvent {
  /** The `event:` field; "message" when there was none, as EventSource says. */
  type: string;
  data: string;
  /** The `id:` field of this event, if it had one. */
  id: string | undefined;
}

export interface EventStreamClient {
  status: number;
  headers: Headers;
  events: ServerEvent[];
  /** Comment lines, without the colon and one space. */
  comments: string[];
  /** The `retry:` value, if one came. */
  retry: number | undefined;
  /**
   * What EventSource would send back as Last-Event-ID now: the last `id:` field of a finished block, whether or
   * not the block was an event ("" until one came).
   */
  lastEventId: string;
  /** Resolves once `count` events have arrived in all. */
  received(count: number, timeoutMs?: number): Promise<ServerEvent[]>;
  /** Resolves once a comment matching `pattern` has arrived. */
  comment(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Resolves when the server ends the stream (true) or cuts it (false). */
  ended: Promise<boolean>;
  close(): void;
}

export async function openEvents(url: string, headers: Record<string, string> = {}): Promise<EventStreamClient> {
  const abort = new AbortController();
  const response = await fetch(url, { headers: { Accept: "text/event-stream", ...headers }, signal: abort.signal });
  const events: ServerEvent[] = [];
  const comments: string[] = [];
  const waiters = new Set<() => void>();
  const wake = () => {
    for (const w of [...waiters]) w();
  };
  let done = false;
  const client: EventStreamClient = {
    status: response.status,
    headers: response.headers,
    events,
    comments,
    retry: undefined,
    lastEventId: "",
    received: (count, timeoutMs = 10_000) =>
      waitFor(
        () => (events.length >= count ? events.slice() : undefined),
        () => `got ${events.length} of ${count} events: ${JSON.stringify(events).slice(0, 300)}`,
        timeoutMs,
      ),
    comment: (pattern, timeoutMs = 10_000) =>
      waitFor(
        () => comments.find((c) => pattern.test(c)),
        () => `no comment matched ${pattern}: ${JSON.stringify(comments)}`,
        timeoutMs,
      ),
    ended: Promise.resolve(true),
    close: () => abort.abort(),
  };

  function waitFor<T>(check: () => T | undefined, failure: () => string, timeoutMs: number): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(test);
        reject(new Error(failure()));
      }, timeoutMs);
      const test = () => {
        const value = check();
        if (value !== undefined) {
          clearTimeout(timer);
          waiters.delete(test);
          resolve(value);
        } else if (done) {
          clearTimeout(timer);
          waiters.delete(test);
          reject(new Error(`the stream ended: ${failure()}`));
        }
      };
      waiters.add(test);
      test();
    });
  }

  let data: string[] = [];
  let type = "";
  let id: string | undefined;
  let idBuffer = "";
  const line = (text: string) => {
    if (text === "") {
      client.lastEventId = idBuffer;
      if (data.length > 0 || type !== "") events.push({ type: type || "message", data: data.join("\n"), id });
      data = [];
      type = "";
      id = undefined;
      return;
    }
    if (text.startsWith(":")) {
      comments.push(text.slice(1).replace(/^ /, ""));
      return;
    }
    const colon = text.indexOf(":");
    const field = colon < 0 ? text : text.slice(0, colon);
    const value = colon < 0 ? "" : text.slice(colon + 1).replace(/^ /, "");
    if (field === "data") data.push(value);
    else if (field === "event") type = value;
    else if (field === "id") {
      id = value;
      idBuffer = value;
    } else if (field === "retry") client.retry = Number(value);
  };

  client.ended = (async () => {
    if (response.body === null) return true;
    const decoder = new TextDecoder();
    let buffer = "";
    let cleanly = true;
    try {
      for await (const chunk of response.body) {
        buffer += decoder.decode(chunk, { stream: true });
        // A CR at the very end may be the first half of a CRLF: keep it for the next chunk.
        for (;;) {
          const match = /\r\n|\r(?!$)|\n/.exec(buffer);
          if (match === null) break;
          line(buffer.slice(0, match.index));
          buffer = buffer.slice(match.index + match[0].length);
        }
        wake();
      }
    } catch {
      cleanly = false;
    }
    done = true;
    wake();
    return cleanly;
  })();
  return client;
}
