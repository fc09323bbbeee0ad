// The Origin check. With --origin set, a browser page from another site may neither subscribe nor publish
// through a visitor's browser. Requests without an Origin header (servers, curl) are not from a page, so they
// pass: the check protects browsers, it is not authentication.

/** True when the request may go on: no Origin header, or one naming the configured origin. */
export function originAllowed(allowed: string | undefined, header: string | null): boolean {
  if (allowed === undefined || header === null) return true;
  // Browsers send the origin already serialised, so an exact match is the common case.
  if (header === allowed) return true;
  // Otherwise compare the normalised form: case of scheme and host, and a default port written out.
  try {
    return new URL(header).origin === allowed;
  } catch {
    return false;
  }
}
