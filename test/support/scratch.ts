// Scratch directories for tests that need files (logs, sockets, screenshots): removed when the test passes,
// kept when it fails, with their path printed, so that a failure can be looked into and a pass leaves nothing.

import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** Runs `work` with a new directory /tmp/pinghub-PREFIX-XXXXXX, removed afterwards unless `work` failed. */
export async function inScratch<T>(prefix: string, work: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), `pinghub-${prefix}-`));
  let result: T;
  try {
    result = await work(dir);
  } catch (error) {
    console.error(`the files of this failure are kept in ${dir}`);
    throw error;
  }
  rmSync(dir, { recursive: true, force: true });
  return result;
}
