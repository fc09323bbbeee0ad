// Access by asking the application (--auth-url): before each subscribe and each POST, pinghub sends a GET to the
// application with the client's Cookie and Authorization and what it wants, and does what the answer says. For
// applications that already know their users by a session, as nginx's auth_request and Traefik's forwardAuth do.
//
// The application answers 2xx to allow (with `X-Pinghub-Publish: yes` a websocket may publish too), 401 or 403
// to refuse, and its one-line body goes to the client. Anything else, a timeout or no answer is 503: a broken
// auth service never lets anyone in. An allowed answer with `Cache-Control: max-age=N` is kept N seconds for the
// same (Cookie, Authorization, channel, action); a refusal is never kept.

import type { Access, Action, Decision } from "./access.ts";
import { forbidden, unavailable } from "./access-answers.ts";
import { plainText } from "./plain-text.ts";

/** Answers kept at most; past this the oldest are forgotten. */
export const MAX_CACHED_ANSWERS = 10_000;
/** Longest body of a refusal passed on to the client, in characters: one line, not a page. */
export const MAX_REASON_LENGTH = 200;
/** The answer header that lets a websocket publish on the channel it subscribes to. */
export const PUBLISH_HEADER = "x-pinghub-publish";

/** How a call to the application ended, for pinghub_auth_requests_total{result}. */
export const AUTH_RESULTS = ["allowed", "unauthorized", "forbidden", "error", "timeout", "unreachable"] as const;
export type AuthResult = (typeof AUTH_RESULTS)[number];

export interface ForwardAuthSettings {
  url: string;
  /** Seconds the application has to answer. */
  timeout: number;
  /** The address of a request's connection itself, for X-Forwarded-For. */
  peer: (req: Request) => string;
}

export interface ForwardAuthHooks {
  /** One call to the application ended, after this many seconds. */
  answered?(result: AuthResult, seconds: number): void;
  /** A check answered from the cache, without a call. */
  cacheHit?(): void;
  /** The application did not answer yes or no: why, in one line for the operator (never a client's headers). */
  trouble?(line: string): void;
}

interface CachedAnswer {
  untilMs: number;
  publish: boolean;
}

export function forwardAuth(settings: ForwardAuthSettings, hooks: ForwardAuthHooks = {}): Access {
  const cache = new Map<string, CachedAnswer>();
  const timeoutMs = settings.timeout * 1000;

  function remember(key: string, answer: CachedAnswer): void {
    if (cache.size >= MAX_CACHED_ANSWERS) {
      const oldest = cache.keys().next().value;
      if (oldest !== undefined) cache.delete(oldest);
    }
    cache.set(key, answer);
  }

  async function ask(req: Request, channel: string, action: Action, key: string): Promise<Decision> {
    const headers = new Headers({
      // Header values are bytes: the name goes as its UTF-8 bytes, which Headers takes as a Latin-1 string.
      "X-Pinghub-Channel": Buffer.from(channel).toString("latin1"),
      "X-Pinghub-Action": action,
      "X-Original-URI": originalUri(req.url),
      "X-Original-Method": req.method,
      "X-Forwarded-For": forwardedFor(req.headers.get("x-forwarded-for"), settings.peer(req)),
    });
    const cookie = req.headers.get("cookie");
    if (cookie !== null) headers.set("Cookie", cookie);
    const authorization = req.headers.get("authorization");
    if (authorization !== null) headers.set("Authorization", authorization);

    const started = performance.now();
    const done = (result: AuthResult) => hooks.answered?.(result, (performance.now() - started) / 1000);
    let answer: Response;
    let body: string;
    try {
      // The timeout covers the body too: an application that sends headers and then stalls is as good as down.
      answer = await fetch(settings.url, { headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) });
      body = await answer.text();
    } catch (error) {
      if ((error as Error).name === "TimeoutError") {
        done("timeout");
        hooks.trouble?.(`no answer within ${settings.timeout} s`);
        return unavailable(`the auth service did not answer within ${settings.timeout} s`);
      }
      done("unreachable");
      hooks.trouble?.(`cannot reach it: ${(error as Error).message}`);
      return unavailable("the auth service cannot be reached");
    }
    const status = answer.status;
    if (status >= 200 && status < 300) {
      done("allowed");
      const publish = action === "publish" || answer.headers.get(PUBLISH_HEADER)?.toLowerCase() === "yes";
      const maxAge = maxAgeSeconds(answer.headers.get("cache-control"));
      if (maxAge > 0) remember(key, { untilMs: Date.now() + maxAge * 1000, publish });
      return { allowed: true, publish, expiresAtMs: undefined };
    }
    if (status === 401 || status === 403) {
      const result = status === 401 ? "unauthorized" : "forbidden";
      done(result);
      const extra: Record<string, string> = {};
      const challenge = answer.headers.get("www-authenticate");
      if (challenge !== null) extra["WWW-Authenticate"] = challenge;
      return { allowed: false, reason: result, response: plainText(`${oneLine(body, result)}\n`, status, extra) };
    }
    done("error");
    hooks.trouble?.(`it answered ${status} (expected 2xx, 401 or 403)`);
    return unavailable(`the auth service answered ${status}`);
  }

  return {
    check(req, channel, action) {
      // A name with a control character cannot go in a header (it could split it): no application can be asked.
      // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is looked for
      if (/[\u0000-\u001f\u007f]/.test(channel)) {
        return forbidden("a channel name with control characters cannot be authorized");
      }
      // Cookie and Authorization cannot hold a line feed (Bun refuses such a header), so with the channel last
      // the key is unambiguous.
      const key = `${action}\n${req.headers.get("cookie") ?? ""}\n${req.headers.get("authorization") ?? ""}\n${channel}`;
      const cached = cache.get(key);
      if (cached !== undefined) {
        if (cached.untilMs > Date.now()) {
          hooks.cacheHit?.();
          return { allowed: true, publish: cached.publish, expiresAtMs: undefined };
        }
        cache.delete(key);
      }
      return ask(req, channel, action, key);
    },
  };
}

/** The request's URI as received: path and query, without scheme and host. */
function originalUri(url: string): string {
  const start = url.indexOf("/", url.indexOf("//") + 2);
  return start < 0 ? "/" : url.slice(start);
}

/** The proxies' list so far, and the client's own address after it, as nginx's $proxy_add_x_forwarded_for. */
function forwardedFor(previous: string | null, peer: string): string {
  return previous === null || previous === "" ? peer : `${previous}, ${peer}`;
}

/** `max-age=N` of a Cache-Control header, 0 when absent or when the answer may not be stored. `private` is
 * no bar: the cache is keyed by the client's own Cookie and Authorization. */
export function maxAgeSeconds(header: string | null): number {
  if (header === null || /(?:^|,)\s*(?:no-store|no-cache)\b/i.test(header)) return 0;
  const match = /(?:^|,)\s*max-age\s*=\s*"?(\d+)"?/i.exec(header);
  return match?.[1] === undefined ? 0 : Number(match[1]);
}

/** The application's first line, within MAX_REASON_LENGTH; its status word when it said nothing. */
function oneLine(body: string, fallback: string): string {
  const line = body.trim().split(/\r?\n/, 1)[0]?.trim() ?? "";
  return line === "" ? fallback : line.slice(0, MAX_REASON_LENGTH);
}
