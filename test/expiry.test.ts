// The expiry wheel: a connection ends within about a second after its time, never before, and not at all once
// taken out.

import { expect, test } from "bun:test";
import { EXPIRY_TICK_MS, ExpiryWheel } from "../src/expiry.ts";

test("entries end after their time, in their order; one taken out does not end; the wheel stops when empty", async () => {
  const ended: Array<[string, number]> = [];
  const done = Promise.withResolvers<void>();
  const wheel = new ExpiryWheel<string>((name) => {
    ended.push([name, Date.now()]);
    if (ended.length === 3) done.resolve();
  });
  const start = Date.now();
  wheel.add(start + 1500, "later");
  wheel.add(start + 200, "soon");
  const removed = wheel.add(start + 300, "removed");
  wheel.add(start - 5000, "past");
  wheel.remove(removed, "removed");
  expect(wheel.pending).toBe(3);
  await done.promise;
  expect(ended.map(([name]) => name)).toEqual(["past", "soon", "later"]);
  for (const [name, at] of ended) {
    const due = name === "later" ? start + 1500 : name === "soon" ? start + 200 : start;
    expect(at).toBeGreaterThanOrEqual(due);
    // Within a tick of its time, and a loose margin for a loaded machine.
    expect(at - due).toBeLessThan(EXPIRY_TICK_MS + 1000);
  }
  expect(wheel.pending).toBe(0);
});
