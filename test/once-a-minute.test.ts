// The log limiter (src/once-a-minute.ts), on a clock the test moves.

import { expect, test } from "bun:test";
import { LOG_INTERVAL_MS, oncePerMinute } from "../src/once-a-minute.ts";

test("one line per key per minute; other keys are not held back", () => {
  const lines: string[] = [];
  let now = 0;
  const say = oncePerMinute(
    (line) => lines.push(line),
    () => now,
  );
  say("a", "a 1");
  say("a", "a 2");
  say("b", "b 1");
  now = LOG_INTERVAL_MS - 1;
  say("a", "a 3");
  now = LOG_INTERVAL_MS;
  say("a", "a 4");
  expect(lines).toEqual(["a 1", "b 1", "a 4"]);
});
