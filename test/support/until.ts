// One way to wait for something that has no event of its own to await (a gauge, a file, a process's words):
// poll it until it holds. The tests, the benchmark's servers and the scripts share it, so every wait has a
// deadline and says what it waited for. It stands in for an event, never for a sleep that hides a race.

/**
 * How long a wait may take before it fails: many times what anything here takes on an idle machine, so that a
 * loaded CI machine (two cores shared with other jobs) does not fail a test that is right.
 */
export const UNTIL_TIMEOUT_MS = 15_000;
/** How often the condition is checked: often enough to add little to a test's time, rarely enough to cost none. */
const INTERVAL_MS = 10;

/**
 * Resolves with what `check` returns once it is neither `false` nor `undefined`; checks at once, then every
 * 10 ms; rejects with "timed out waiting until `what`" after `timeoutMs`. `what` may be a function, read only
 * on failure, to say what was seen instead.
 */
export async function until<T>(
  check: () => T | false | undefined | Promise<T | false | undefined>,
  what: string | (() => string | Promise<string>),
  timeoutMs = UNTIL_TIMEOUT_MS,
): Promise<T> {
  const result = await settled(check, timeoutMs);
  if (result !== undefined) return result;
  throw new Error(`timed out after ${timeoutMs} ms waiting until ${typeof what === "string" ? what : await what()}`);
}

/**
 * The same wait, resolving with undefined at the deadline instead of failing: for the soak and fuzz harnesses,
 * which wait for the server to settle and then report what they found, whatever it is.
 */
export async function settled<T>(
  check: () => T | false | undefined | Promise<T | false | undefined>,
  timeoutMs = UNTIL_TIMEOUT_MS,
): Promise<T | undefined> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const result = await check();
    if (result !== false && result !== undefined) return result;
    if (performance.now() > deadline) return undefined;
    await Bun.sleep(INTERVAL_MS);
  }
}
