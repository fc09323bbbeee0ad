// Every answer pinghub writes itself is one line of plain text, with one Content-Type, accepted or refused.

/**
 * The Content-Type of every plain-text answer, written as Bun writes it for the "OK" of a POST (a string body
 * gets it without a header to build), so that every answer says the same.
 */
export const PLAIN_TEXT = "text/plain;charset=utf-8";

/** A plain-text answer with this status, and any further headers. */
export function plainText(text: string, status: number, headers: Record<string, string> = {}): Response {
  return new Response(text, { status, headers: { "Content-Type": PLAIN_TEXT, ...headers } });
}
