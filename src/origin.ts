// The Origin check. With --origin set, a browser page from another site may neither subscribe nor publish
// through a visitor's browser. Requests without an Origin header (servers, curl) are not from a page, so they
// pass: the check protects browsers, it is not authentication.
//
// --origin takes one or more origins (repeated, or comma-separated, the form an environment variable needs),
// each exact (`https://example.com`) or a pattern for its subdomains (`https://*.example.com`, which matches
// `https://www.example.com` and `https://a.b.example.com` but not `https://example.com` itself).

import { plainText } from "./plain-text.ts";

/** True when the request may go on: no --origin, no Origin header, or one the list allows. */
export function originAllowed(allowed: readonly string[] | undefined, header: string | null): boolean {
  if (allowed === undefined || header === null) return true;
  // Browsers send the origin already serialised, so an exact match is the common case.
  if (allowed.includes(header)) return true;
  // Otherwise compare the normalised form: case of scheme and host, and a default port written out.
  let origin: URL;
  try {
    origin = new URL(header);
    if (origin.origin === "null") return false;
  } catch {
    return false;
  }
  return allowed.some((entry) => matches(entry, origin));
}

/** The 403 for a page from a site the list does not allow. */
export function forbiddenOrigin(allowed: readonly string[] | undefined): Response {
  return plainText(`forbidden: Origin is not ${(allowed ?? []).join(" or ")}\n`, 403);
}

function matches(entry: string, origin: URL): boolean {
  if (!entry.includes("://*.")) return entry === origin.origin;
  const [scheme = "", rest = ""] = entry.split("://*.");
  const colon = rest.lastIndexOf(":");
  const base = colon < 0 ? rest : rest.slice(0, colon);
  const port = colon < 0 ? "" : rest.slice(colon + 1);
  return `${scheme}:` === origin.protocol && port === origin.port && origin.hostname.endsWith(`.${base}`);
}
