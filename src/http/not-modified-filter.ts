/**
 * nginx's `ngx_http_not_modified_filter_module`: for a 200 response, `If-Unmodified-Since` and
 * `If-Match` that fail give 412; `If-Modified-Since` and `If-None-Match` that match give 304
 * (RFC 9110 section 13.2.2's order: the strong preconditions first).
 */
import type { IfModifiedSince } from './static-module.js';

/** What the conditional headers of a request ask for a representation with these validators. */
export function conditionalStatus(
  header: (name: string) => string | undefined,
  etag: string | undefined,
  mtimeSeconds: number,
  mode: IfModifiedSince,
): 200 | 304 | 412 {
  const unmodifiedSince = header('if-unmodified-since');
  if (unmodifiedSince !== undefined && !unmodifiedTest(unmodifiedSince, mtimeSeconds)) return 412;
  const ifMatch = header('if-match');
  if (ifMatch !== undefined && !matchTest(ifMatch, etag, false)) return 412;
  const modifiedSince = header('if-modified-since');
  const noneMatch = header('if-none-match');
  if (modifiedSince === undefined && noneMatch === undefined) return 200;
  if (modifiedSince !== undefined && modifiedTest(modifiedSince, mtimeSeconds, mode)) return 200;
  if (noneMatch !== undefined && !matchTest(noneMatch, etag, true)) return 200;
  return 304;
}

function parseSeconds(value: string): number {
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? -1 : Math.floor(ms / 1000);
}

/** ngx_http_test_if_unmodified(): true when the file is not newer than the date. */
function unmodifiedTest(value: string, mtime: number): boolean {
  return parseSeconds(value) >= mtime;
}

/** ngx_http_test_if_modified(): true when the response must be sent in full. */
function modifiedTest(value: string, mtime: number, mode: IfModifiedSince): boolean {
  if (mode === 'off') return true;
  const since = parseSeconds(value);
  if (since === mtime) return false;
  return mode === 'exact' || since < mtime;
}

/** ngx_http_test_if_match(): `*`, or one of the listed tags equal to the ETag (weakly for If-None-Match). */
function matchTest(value: string, etag: string | undefined, weak: boolean): boolean {
  if (etag === undefined) return false;
  if (value === '*') return true;
  const own = weak && etag.startsWith('W/') ? etag.slice(2) : etag;
  for (const item of value.split(',')) {
    let tag = item.trim();
    if (weak && tag.startsWith('W/')) tag = tag.slice(2);
    if (tag === own) return true;
  }
  return false;
}
