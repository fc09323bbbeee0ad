// The tokens jwt-access.ts remembers: bounded, the newest kept, a token in use kept longer; and those it has seen.

import { describe, expect, test } from "bun:test";
import { RecentTokens, SeenTokens } from "../src/recent-tokens.ts";

describe("RecentTokens", () => {
  test("keeps what was set, and answers undefined for a token never seen", () => {
    const recent = new RecentTokens<number>(10);
    recent.set("a", 1);
    expect(recent.get("a")).toBe(1);
    expect(recent.get("b")).toBeUndefined();
  });

  test("holds at most its maximum, and always the newest half of it", () => {
    const recent = new RecentTokens<number>(10);
    for (let n = 0; n < 1000; n++) recent.set(`t${n}`, n);
    const held = Array.from({ length: 1000 }, (_, n) => n).filter((n) => recent.get(`t${n}`) !== undefined);
    expect(held.length).toBeLessThanOrEqual(10);
    // The newest five, whatever the phase of the generations.
    for (let n = 995; n < 1000; n++) expect(held).toContain(n);
    expect(Math.min(...held)).toBeGreaterThanOrEqual(990);
  });

  test("a token in use outlives the generation it was set in", () => {
    const recent = new RecentTokens<string>(4);
    recent.set("kept", "yes");
    for (let n = 0; n < 100; n++) {
      recent.set(`other${n}`, "no");
      expect(recent.get("kept")).toBe("yes");
    }
    // Not asked for any more: forgotten after two generations.
    for (let n = 0; n < 4; n++) recent.set(`later${n}`, "no");
    expect(recent.get("kept")).toBeUndefined();
  });
});

describe("SeenTokens", () => {
  test("a token is seen before from its second visit on, and forgotten after two generations of others", () => {
    const seen = new SeenTokens(4);
    expect(seen.seenBefore("header.payload.signatureA")).toBe(false);
    expect(seen.seenBefore("header.payload.signatureA")).toBe(true);
    expect(seen.seenBefore("header.payload.signatureB")).toBe(false);
    for (let n = 0; n < 4; n++) seen.seenBefore(`header.payload.other${n}`);
    expect(seen.seenBefore("header.payload.signatureA")).toBe(false);
  });

  test("tokens that differ only before their last characters share a fingerprint: remembered sooner, no more", () => {
    const seen = new SeenTokens(100);
    expect(seen.seenBefore("one.payload.sameEnd")).toBe(false);
    expect(seen.seenBefore("two.payload.sameEnd")).toBe(true);
    expect(seen.seenBefore("two.payload.diffEnd")).toBe(false);
  });
});
