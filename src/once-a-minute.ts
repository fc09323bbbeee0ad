// A log line that could come once per message (a foreign payload, a refused publish) is written at most once a
// minute for each key, so that a flood of them cannot flood the log: the counters say how many there were.

/** The least time between two lines of one key. */
export const LOG_INTERVAL_MS = 60_000;
/** Keys remembered at most: past this, those older than LOG_INTERVAL_MS are forgotten (a key is a channel). */
const MAX_KEYS = 10_000;

/** Returns `say(key, line)`, which writes `line` with `write` unless a line of the same key went out within a minute. */
export function oncePerMinute(write: (line: string) => void, now: () => number = Date.now) {
  const last = new Map<string, number>();
  return (key: string, line: string): void => {
    const time = now();
    const previous = last.get(key);
    if (previous !== undefined && time - previous < LOG_INTERVAL_MS) return;
    if (previous === undefined && last.size >= MAX_KEYS) {
      for (const [k, t] of last) if (time - t >= LOG_INTERVAL_MS) last.delete(k);
      // Every key seen within the minute: the oldest goes, as a new key's line matters more.
      if (last.size >= MAX_KEYS) last.delete(last.keys().next().value as string);
    }
    last.delete(key);
    last.set(key, time);
    write(line);
  };
}
