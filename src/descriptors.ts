// Running out of file descriptors. Bun's accept loop gives no sign when accept() fails with EMFILE: it retries,
// serving the connections it has, and new ones wait in the listen queue until descriptors free up. So pinghub
// looks for itself, once a second, by opening /dev/null, and says so once in the log, and once when it is over.

import { closeSync, openSync, readdirSync, readFileSync } from "node:fs";

const CHECK_EVERY_MS = 1000;

export interface DescriptorLog {
  warn(message: string): void;
  info(message: string): void;
}

/** Starts watching; returns the function that stops it. */
export function watchDescriptors(log: DescriptorLog): () => void {
  // One descriptor held back, to read the limit and count what is open when none is left (the limit may have
  // changed since the start).
  let reserve: number | undefined = openSync("/dev/null", "r");
  const count = () => {
    if (reserve !== undefined) closeSync(reserve);
    const counted = { limit: openFilesLimit(), open: openFiles() };
    reserve = tryOpen();
    return counted;
  };
  let out = false;
  const timer = setInterval(() => {
    if (!out) {
      const fd = tryOpen();
      if (fd !== undefined) {
        closeSync(fd);
        reserve ??= tryOpen();
        return;
      }
      out = true;
      log.warn(
        `out of file descriptors (limit ${count().limit}): new connections wait until some close; raise the limit (ulimit -n, systemd LimitNOFILE)`,
      );
      return;
    }
    // Over only once well under the limit, not at the first descriptor free: a server that hovers at its limit,
    // a connection closing and the next one taking its place, would be reported on and off every few seconds.
    const { limit, open } = count();
    const back =
      Number.isFinite(Number(limit)) && open !== undefined ? open < Number(limit) * 0.9 : reserve !== undefined;
    if (back) {
      out = false;
      log.info(`file descriptors available again: ${open ?? "?"} of ${limit} in use, accepting new connections`);
    }
  }, CHECK_EVERY_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (reserve !== undefined) closeSync(reserve);
  };
}

function openFiles(): number | undefined {
  try {
    return readdirSync("/proc/self/fd").length;
  } catch {
    return undefined;
  }
}

function tryOpen(): number | undefined {
  try {
    return openSync("/dev/null", "r");
  } catch {
    return undefined;
  }
}

function openFilesLimit(): string {
  try {
    const line = readFileSync("/proc/self/limits", "utf8")
      .split("\n")
      .find((l) => l.startsWith("Max open files"));
    return line?.split(/\s+/)[3] ?? "unknown";
  } catch {
    return "unknown";
  }
}
