// Serving on a UNIX socket: replacing a stale socket file left by a crash, refusing to steal a live one,
// creating the socket with the right permissions, and removing it at the end.

import { existsSync, lstatSync, unlinkSync } from "node:fs";
import { connect } from "node:net";

/** The address is taken: another process accepts connections on this socket. */
export class AddressInUseError extends Error {}

/** Clears the way for a new socket at `path`, or throws if a live server is there. */
export async function prepareUnixSocket(path: string): Promise<void> {
  if (!existsSync(path)) return;
  if (!lstatSync(path).isSocket()) throw new AddressInUseError(`${path} exists and is not a socket`);
  if (await acceptsConnections(path)) throw new AddressInUseError(`address in use: a server is listening on ${path}`);
  // Nobody answers: a crashed server left it behind.
  unlinkSync(path);
}

function acceptsConnections(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(path);
    socket.once("connect", () => {
      socket.destroy();
      resolve(true);
    });
    socket.once("error", () => resolve(false));
  });
}

/**
 * Runs `listen` with a umask that gives the new socket `mode` from its first moment, so no client outside the
 * group can connect in the gap before a chmod.
 */
export function withSocketMode<T>(mode: number, listen: () => T): T {
  const previous = process.umask(0o777 & ~mode);
  try {
    return listen();
  } finally {
    process.umask(previous);
  }
}

export function removeUnixSocket(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // Already gone: someone else cleaned up, which is what we wanted.
  }
}
