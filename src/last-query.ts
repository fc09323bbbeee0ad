// `?last=N` on an SSE GET or a websocket upgrade: a new subscriber asks for the newest N messages the channel's
// history keeps, given before the live ones. The query string is never part of the channel's name
// (channel-path.ts), so `/x?last=5` subscribes to `/x`.

/** The query parameter's name. */
export const LAST_PARAMETER = "last";

/** N from a request URL: 0 when not asked, or the one-line reason the value is refused. */
export type LastResult = { count: number; error?: undefined } | { count?: undefined; error: string };

const NONE: LastResult = { count: 0 };

export function lastFromUrl(url: string): LastResult {
  const query = url.indexOf("?");
  // Most subscribers ask for nothing: no query string, nothing parsed.
  if (query < 0) return NONE;
  // Nor does a query without the name, even percent-encoded (a subscriber's ?token= only): no URLSearchParams
  // parsed out of a 200-character token for every connect.
  if (url.indexOf(LAST_PARAMETER, query) < 0 && url.indexOf("%", query) < 0) return NONE;
  const values = new URLSearchParams(url.slice(query + 1)).getAll(LAST_PARAMETER);
  if (values.length === 0) return NONE;
  if (values.length > 1) return { error: `bad ?${LAST_PARAMETER}: given ${values.length} times` };
  const value = values[0] ?? "";
  // Digits only: no sign, no fraction, no exponent, no spaces. A number past what any history keeps is as good
  // as what it keeps, so a huge one is no error.
  if (!/^\d+$/.test(value)) {
    return {
      error: `bad ?${LAST_PARAMETER}=${JSON.stringify(value.slice(0, 40))}: expected a whole number, 0 or more`,
    };
  }
  return { count: Math.min(Number(value), Number.MAX_SAFE_INTEGER) };
}
