/**
 * ngx_http_parse_unsafe_uri(): a URI from somewhere other than the client's request line (an
 * upstream's X-Accel-Redirect) split at its first `?`, %XX-decoded, and refused when it names a
 * parent directory or holds a NUL byte, so that it cannot leave the locations it was meant for.
 */

/** The URI and its arguments, or undefined when the URI is unsafe. */
export function parseUnsafeUri(value: string): { readonly uri: string; readonly args: string | undefined } | undefined {
  if (value === '' || value.startsWith('?')) return undefined;
  // nginx's `usual` table: a `?` ends the path; "%" marks it for decoding.
  const query = value.indexOf('?');
  const path = query === -1 ? value : value.slice(0, query);
  const args = query === -1 ? undefined : value.slice(query + 1);
  if (hasUnsafeSegment(path)) return undefined;
  if (!path.includes('%')) return { uri: path, args };
  // ngx_unescape_uri(..., 0): every %XX, whatever byte it gives; a malformed one stays as it is.
  const decoded = path.replace(/%([0-9a-fA-F]{2})/g, (_escaped, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  if (hasUnsafeSegment(decoded)) return undefined;
  return { uri: decoded, args };
}

/** A leading `..` or `../`, a `/..` or `/../` anywhere, or a NUL byte. */
function hasUnsafeSegment(path: string): boolean {
  if (path.includes('\0')) return true;
  return /(?:^|\/)\.\.(?:\/|$)/.test(path);
}
