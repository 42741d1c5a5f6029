/**
 * nginx's `ngx_http_range_filter_module` for responses of known length: the `Range: bytes=` list
 * parsed as `ngx_http_range_parse()` parses it (spaces allowed, suffix and open ranges, a list
 * nginx declines answered in full), `If-Range` against the ETag or Last-Modified, and the
 * `multipart/byteranges` body with nginx's boundary and part headers.
 */

/** One satisfiable range: `start` inclusive, `end` exclusive. */
export interface ByteRange {
  readonly start: number;
  readonly end: number;
}

/** What the range filter decides for a 200 response of `size` bytes. */
export type RangeDecision =
  | { readonly kind: 'full' }
  | { readonly kind: 'unsatisfiable' }
  | { readonly kind: 'ranges'; readonly ranges: readonly ByteRange[] };

const FULL: RangeDecision = { kind: 'full' };
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' };

/** nginx's NGX_MAX_OFF_T_VALUE, as far as a JavaScript number is exact. */
const MAX_OFFSET = Number.MAX_SAFE_INTEGER;

/**
 * Parses a `Range` value as `ngx_http_range_parse()`: `maxRanges` is `max_ranges` (undefined when
 * unset, which adds nginx's overhead check for many small parts).
 */
export function parseRange(header: string, size: number, maxRanges: number | undefined): RangeDecision {
  const ranges: ByteRange[] = [];
  let p = 6;
  const at = (i: number): number => (i < header.length ? header.charCodeAt(i) : 0);
  const isDigit = (c: number): boolean => c >= 0x30 && c <= 0x39;
  let left = maxRanges ?? 0x7fffffff;
  let total = 0;
  for (;;) {
    let start = 0;
    let end = 0;
    let suffix = false;
    while (at(p) === 0x20) p++;
    let open = false;
    if (at(p) !== 0x2d) {
      if (!isDigit(at(p))) return UNSATISFIABLE;
      while (isDigit(at(p))) {
        start = start * 10 + (at(p++) - 0x30);
        if (start > MAX_OFFSET) return UNSATISFIABLE;
      }
      while (at(p) === 0x20) p++;
      if (at(p++) !== 0x2d) return UNSATISFIABLE;
      while (at(p) === 0x20) p++;
      if (at(p) === 0x2c || at(p) === 0) {
        end = size;
        open = true;
      }
    } else {
      suffix = true;
      p++;
    }
    if (!open) {
      if (!isDigit(at(p))) return UNSATISFIABLE;
      while (isDigit(at(p))) {
        end = end * 10 + (at(p++) - 0x30);
        if (end > MAX_OFFSET) return UNSATISFIABLE;
      }
      while (at(p) === 0x20) p++;
      if (at(p) !== 0x2c && at(p) !== 0) return UNSATISFIABLE;
      if (suffix) {
        start = end < size ? size - end : 0;
        end = size - 1;
      }
      end = end >= size ? size : end + 1;
    }
    if (start < end) {
      ranges.push({ start, end });
      total += end - start;
      if (left-- === 0) return FULL;
    } else if (start === 0) {
      return FULL;
    }
    if (at(p++) !== 0x2c) break;
  }
  if (ranges.length === 0) return UNSATISFIABLE;
  if (ranges.length === 1) return { kind: 'ranges', ranges };
  if (total > size) return FULL;
  // Without max_ranges, nginx declines lists whose part headers would outweigh the file.
  if (maxRanges === undefined && total + ranges.length * 256 > size + 4096) return FULL;
  return { kind: 'ranges', ranges };
}

/**
 * True when `If-Range` lets the ranges apply (ngx_http_range_header_filter()): an entity tag
 * equal to the ETag, or a date equal to Last-Modified (seconds).
 */
export function ifRangeMatches(ifRange: string, etag: string | undefined, mtimeSeconds: number): boolean {
  if (ifRange.length >= 2 && ifRange.endsWith('"')) return etag !== undefined && ifRange === etag;
  const time = Date.parse(ifRange);
  return !Number.isNaN(time) && Math.floor(time / 1000) === mtimeSeconds;
}

/** The parts of a multipart/byteranges body: each part's header, and the closing boundary. */
export interface Multipart {
  readonly contentType: string;
  readonly headers: readonly string[];
  readonly trailer: string;
  readonly length: number;
}

/** Builds the multipart/byteranges framing as ngx_http_range_multipart_header() does; `boundary` is nginx's temp number. */
export function multipartOf(ranges: readonly ByteRange[], size: number, contentType: string, boundary: number): Multipart {
  // "%0muA": zero-padded to NGX_ATOMIC_T_LEN (20 digits on 64-bit platforms).
  const mark = String(boundary).padStart(20, '0');
  const head = `\r\n--${mark}\r\n${contentType === '' ? '' : `Content-Type: ${contentType}\r\n`}Content-Range: bytes `;
  const headers = ranges.map((range) => `${head}${range.start}-${range.end - 1}/${size}\r\n\r\n`);
  const trailer = `\r\n--${mark}--\r\n`;
  let length = trailer.length;
  ranges.forEach((range, i) => {
    length += (headers[i] as string).length + range.end - range.start;
  });
  return { contentType: `multipart/byteranges; boundary=${mark}`, headers, trailer, length };
}
