// What the auth scenario's servers need around them: the HMAC secret a "jwt" server checks tokens with, tokens
// signed with it, and the application a "forward" server asks, which allows everything with a max-age so that
// pinghub answers from its cache. The application runs in the benchmark's own process, on the load generator's
// core: it is the client's side of the comparison, not the server's.

import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { SignJWT } from "jose";

const SECRET = new TextEncoder().encode("the-benchmark-secret-for-hs256-tokens-only");

let keyFile: string | undefined;

/** The secret's file, written once per run. */
export async function jwtKeyFile(): Promise<string> {
  if (keyFile === undefined) {
    keyFile = join(mkdtempSync(join(tmpdir(), "pinghub-bench-jwt-")), "secret");
    writeFileSync(keyFile, SECRET);
  }
  return keyFile;
}

/** A token granting subscribe and publish on `channels` (patterns), as an application would sign one. */
export function benchToken(channels: string[]): Promise<string> {
  return new SignJWT({ pinghub: { subscribe: channels, publish: channels } })
    .setProtectedHeader({ alg: "HS256" })
    .setExpirationTime("2h")
    .sign(SECRET);
}

/** `?token=` with one token for every channel under /bench/: what the fan-out and POST loads send. */
export const WIDE_TOKEN_QUERY: Promise<string> = benchToken(["/bench/*"]).then((token) => `?token=${token}`);

let application: ReturnType<typeof Bun.serve> | undefined;

/** The URL of an application that allows everything, with an answer pinghub may keep for an hour. */
export function forwardAuthUrl(): string {
  application ??= Bun.serve({
    hostname: "127.0.0.1",
    port: 0,
    fetch: () => new Response(null, { status: 204, headers: { "Cache-Control": "max-age=3600" } }),
  });
  return `http://127.0.0.1:${application.port}/auth`;
}
