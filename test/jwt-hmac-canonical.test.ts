// The HMAC verifier's payload must be canonical base64url, and jwt-hmac.ts checks that without a regular
// expression: it relies on Bun's decoder skipping, or stopping at, any character outside the alphabet, so that fewer
// bytes come out than the segment's length gives. Each character here, anywhere in a payload signed as it is, must
// be refused as malformed; and the same payload without it accepted. If a Bun upgrade decodes one of them, this
// fails, where the corpus in jwt-hmac.test.ts might not.

import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { JWT_LEEWAY_SECONDS, tokenRefusal } from "../src/jwt-access.ts";
import { hmacJwtVerifier } from "../src/jwt-hmac.ts";

const SECRET = new TextEncoder().encode("a-test-secret-of-at-least-thirty-two-bytes");
const HEADER = Buffer.from('{"alg":"HS256"}').toString("base64url");
const verify = hmacJwtVerifier({
  secret: SECRET,
  algorithms: ["HS256"],
  audience: undefined,
  issuer: undefined,
  clockToleranceSeconds: JWT_LEEWAY_SECONDS,
});

/** A token of exactly this payload segment, signed over it as it is (node:crypto's HMAC, test side). */
function signed(payload: string): string {
  const input = `${HEADER}.${payload}`;
  return `${input}.${createHmac("sha256", SECRET).update(input).digest("base64url")}`;
}

function verdict(token: string): string {
  try {
    verify(token);
    return "accepted";
  } catch (error) {
    return tokenRefusal(error).why;
  }
}

/** Not in base64url's alphabet: standard base64's own two, padding, whitespace, URL and JWS punctuation, and beyond ASCII. */
const FOREIGN = ["+", "/", "=", " ", "\t", "\n", "\r", ".", "%", "~", "*", "\0", "é", "\u0100", "€", "😀"];

describe("a payload segment with a character outside base64url, signed so, is malformed", () => {
  // Three lengths, so that the last group is whole, two characters and three characters long.
  const payloads = [{ a: 1 }, { ab: 1 }, { abc: 1 }].map((claims) =>
    Buffer.from(JSON.stringify(claims)).toString("base64url"),
  );

  test("the payloads themselves are accepted, and end in groups of each length", () => {
    expect(payloads.map((payload) => payload.length % 4).sort()).toEqual([0, 2, 3]);
    for (const payload of payloads) expect(verdict(signed(payload))).toBe("accepted");
  });

  test("each foreign character, put in at the start, the middle or the end, or in place of one, is refused", () => {
    for (const payload of payloads) {
      for (const foreign of FOREIGN) {
        for (const at of [0, payload.length >> 1, payload.length - 1, payload.length]) {
          const inserted = payload.slice(0, at) + foreign + payload.slice(at);
          const replaced = payload.slice(0, at) + foreign + payload.slice(at + 1);
          for (const text of [inserted, replaced]) {
            expect({ text, why: verdict(signed(text)) }).toEqual({ text, why: "malformed token" });
          }
        }
      }
    }
  });
});

describe("a payload's UTF-8: Bun's toString marks what is not UTF-8 with U+FFFD, and only then is isUtf8 asked", () => {
  const payload = (bytes: Uint8Array | string) => signed(Buffer.from(bytes).toString("base64url"));
  const json = (inside: number[]) => new Uint8Array([...Buffer.from('{"a":"'), ...inside, ...Buffer.from('"}')]);

  test("not UTF-8 anywhere is malformed: a lone continuation, a truncated sequence, an overlong form, a surrogate", () => {
    const bad = [[0x80], [0xc3], [0xe2, 0x82], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0xff]];
    for (const bytes of bad) {
      expect({ bytes, why: verdict(payload(json(bytes))) }).toEqual({ bytes, why: "malformed token" });
    }
    // At the very end, after the JSON, where a sequence is cut short.
    expect(verdict(payload(new Uint8Array([...Buffer.from('{"a":1}'), 0xe2, 0x82])))).toBe("malformed token");
  });

  test("U+FFFD written as such, other characters beyond ASCII, and a leading byte order mark are accepted", () => {
    expect(verdict(payload('{"a":"\uFFFD"}'))).toBe("accepted");
    expect(verdict(payload('{"a":"é€😀"}'))).toBe("accepted");
    expect(verdict(payload('\uFEFF{"a":1}'))).toBe("accepted");
  });
});
