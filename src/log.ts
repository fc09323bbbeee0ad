// Logging with consola: to stderr by default, or appended to --log, a file that SIGHUP reopens so logrotate
// can rename it. Pinghub logs events (start, stop, a subscriber cut off, a listener error), never a line per
// message, so a synchronous write per line costs nothing that matters and loses nothing on exit.

import { closeSync, openSync, writeSync } from "node:fs";
import { type ConsolaInstance, createConsola, type LogObject } from "consola";
import type { LogLevel } from "./config.ts";

/** consola's numeric levels for pinghub's level names. */
const LEVELS: Record<LogLevel, number> = { silent: -999, error: 0, warn: 1, info: 3, debug: 4 };

export interface Log {
  logger: ConsolaInstance;
  /** Writes a line that is already formatted (a worker's, under --workers) to the log as it is. */
  write(line: string): void;
  /** Closes and opens the log file again at its path; nothing is written to the old file afterwards. */
  reopen(): void;
  close(): void;
}

/** `label` goes before each message: a worker's lines say which worker wrote them (`worker 2: ...`). */
export function createLog(level: LogLevel, file: string | undefined, label?: string): Log {
  let fd = file === undefined ? 2 : openLogFile(file);
  const write = (line: string) => {
    try {
      writeSync(fd, line);
    } catch {
      // Nowhere left to say it: stderr is a pipe whose reader is gone (a --workers parent killed), or the disk
      // is full. Losing the line is better than failing what was being logged, such as an orderly stop.
    }
  };
  const logger = createConsola({
    level: LEVELS[level],
    reporters: [{ log: (entry: LogObject) => write(formatLine(entry, label)) }],
  });
  return {
    logger,
    write,
    reopen() {
      if (file === undefined) return;
      const next = openLogFile(file);
      const previous = fd;
      fd = next;
      closeSync(previous);
    },
    close() {
      if (fd !== 2) closeSync(fd);
      fd = 2;
    },
  };
}

function openLogFile(path: string): number {
  return openSync(path, "a", 0o640);
}

/** One line per event: time, level, message. Plain text, so grep and logrotate's users read it as it is. */
function formatLine(entry: LogObject, label: string | undefined): string {
  const text = entry.args.map((a) => (a instanceof Error ? a.message : String(a))).join(" ");
  return `${entry.date.toISOString()} ${entry.type} ${label === undefined ? "" : `${label}: `}${text}\n`;
}
