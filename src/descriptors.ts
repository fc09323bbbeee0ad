// Running out of file descriptors. Bun's accept loop gives no sign when accept() fails with EMFILE: it retries,
// serving the connections it has, and new ones wait in the listen queue until descriptors free up. So pinghub
// looks for itself, once a second, by opening /dev/null, and says so once in the log, and once when it is over.

import { closeSync, openSync, readFileSync } from "node:fs";

const CHECK_EVERY_MS = 1000;

export interface DescriptorLog {
  warn(message: string): void;
  info(message: string): void;
}

/** Starts watching; returns the function that stops it. */
export function watchDescriptors(log: DescriptorLog): () => void {
  // One descriptor held back, to read the limit when none is left (it may have changed since the start).
  let reserve: number | undefined = openSync("/dev/null", "r");
  let out = false;
  const timer = setInterval(() => {
    let fd: number;
    try {
      fd = openSync("/dev/null", "r");
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if ((code === "EMFILE" || code === "ENFILE") && !out) {
        out = true;
        if (reserve !== undefined) closeSync(reserve);
        const limit = openFilesLimit();
        reserve = tryOpen();
        log.warn(
          `out of file descriptors (limit ${limit}): new connections wait until some close; raise the limit (ulimit -n, systemd LimitNOFILE)`,
        );
      }
      return;
    }
    closeSync(fd);
    reserve ??= tryOpen();
    if (out) {
      out = false;
      log.info("file descriptors available again: accepting new connections");
    }
  }, CHECK_EVERY_MS);
  timer.unref();
  return () => {
    clearInterval(timer);
    if (reserve !== undefined) closeSync(reserve);
  };
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
