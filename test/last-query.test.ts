// ?last=N read from a request URL: what is asked, what is refused, and a query that does not ask at all.

import { describe, expect, test } from "bun:test";
import { lastFromUrl } from "../src/last-query.ts";

describe("lastFromUrl", () => {
  test("no query, or a query without last (a token only): nothing asked", () => {
    expect(lastFromUrl("http://h/a")).toEqual({ count: 0 });
    expect(lastFromUrl("http://h/a?token=eyJhbGciOiJIUzI1NiJ9.eyJwaW5naHViIjp7fX0.sig")).toEqual({ count: 0 });
    expect(lastFromUrl("http://h/a?blast=3")).toEqual({ count: 0 });
  });

  test("last given, plainly, percent-encoded or beside a token: its count", () => {
    expect(lastFromUrl("http://h/a?last=5")).toEqual({ count: 5 });
    expect(lastFromUrl("http://h/a?token=abc&last=2")).toEqual({ count: 2 });
    expect(lastFromUrl("http://h/a?%6Cast=3")).toEqual({ count: 3 });
    expect(lastFromUrl("http://h/a?last=%34")).toEqual({ count: 4 });
  });

  test("last twice or not a whole number: one line saying why", () => {
    expect(lastFromUrl("http://h/a?last=1&last=2").error).toBe("bad ?last: given 2 times");
    expect(lastFromUrl("http://h/a?last=-1").error).toBe('bad ?last="-1": expected a whole number, 0 or more');
    expect(lastFromUrl("http://h/a?%6Cast=x").error).toBe('bad ?last="x": expected a whole number, 0 or more');
  });
});
