/**
 * The gzip output filter (`ngx_http_gzip_header_filter()` and its body filter) and nginx's test
 * of whether a client gets gzip (`ngx_http_gzip_ok()` in ngx_http_core_module.c), which
 * gzip_static shares. The body goes through node:zlib's gzip stream with back-pressure, so a
 * response of any length is compressed in constant memory.
 */
import type { Transform } from 'node:stream';
import { constants, createGzip } from 'node:zlib';
import type { ConfBlockView } from '../conf/registry.js';
import { detectBrowser } from './core-level.js';
import type { GzipDisable, GzipProxiedFlag, GzipSettings } from './gzip-module.js';
import { typeMatches } from './gzip-module.js';
import { headerOf, removeHeader, type FilterHead, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';

/**
 * `ngx_http_gzip_quantity()`: the q-value after `q=` in thousandths as nginx reads it (0 to 100
 * for 0 to 1, at most three decimals), 0 for anything malformed.
 */
function quantity(text: string, at: number): number {
  let p = at;
  const c = text[p++];
  if (c !== '0' && c !== '1') return 0;
  let q = (c === '1' ? 1 : 0) * 100;
  if (p === text.length) return q;
  const next = text[p++];
  if (next === ',' || next === ' ') return q;
  if (next !== '.') return 0;
  let n = 0;
  while (p < text.length) {
    const d = text[p++] as string;
    if (d === ',' || d === ' ') break;
    if (d >= '0' && d <= '9') {
      // nginx adds each digit as is (so 0.5 is 5, not 50): only "is it zero" matters to the caller.
      q += d.charCodeAt(0) - 48;
      n++;
      continue;
    }
    return 0;
  }
  if (q > 100 || n > 3) return 0;
  return q;
}

/**
 * `ngx_http_gzip_accept_encoding()`: `coding` appears as a token (at the start or after `,` or a
 * space) and, if it has a `;q=`, the quantity is not zero.
 */
export function acceptsEncoding(acceptEncoding: string, coding: string): boolean {
  const lower = acceptEncoding.toLowerCase();
  let start = 0;
  let p: number;
  for (;;) {
    p = lower.indexOf(coding, start);
    if (p === -1) return false;
    const before = lower[p - 1];
    if (p === 0 || before === ',' || before === ' ') break;
    start = p + coding.length;
  }
  p += coding.length;
  while (p < lower.length) {
    const c = lower[p++];
    if (c === ',') return true;
    if (c === ';') {
      while (p < lower.length) {
        const d = lower[p++];
        if (d === 'q') {
          if (p + 2 > lower.length || lower[p++] !== '=') return false;
          return quantity(lower, p) !== 0;
        }
        if (d !== ' ') return false;
      }
      return true;
    }
    if (c !== ' ') return false;
  }
  return true;
}

/** A Cache-Control token (`ngx_http_parse_multi_header_lines()`): `name` as a whole directive. */
function hasCacheDirective(cacheControl: string, name: string): boolean {
  for (const part of cacheControl.toLowerCase().split(',')) {
    const token = part.trim();
    if (token === name || token.startsWith(`${name}=`) || token.startsWith(`${name};`) || token.startsWith(`${name} `)) return true;
  }
  return false;
}

/** The settings `ngx_http_gzip_ok()` reads from the core module's location configuration. */
export interface GzipClientRules {
  readonly proxied: ReadonlySet<GzipProxiedFlag>;
  readonly disable: GzipDisable;
  readonly httpVersion: number;
}

/** The core module's settings that `ngx_http_gzip_ok()` reads, at a level. */
export function gzipClientRulesOf(block: ConfBlockView): GzipClientRules {
  return { proxied: block.get('gzip_proxied'), disable: block.get('gzip_disable'), httpVersion: block.get('gzip_http_version') };
}

/** nginx's `r->http_version`: 1000 for HTTP/1.0, 1001 for HTTP/1.1, 2000 for HTTP/2. */
function httpVersionOf(request: HttpRequest): number {
  if (request.head.versionMajor === 2) return 2000;
  return request.head.versionMinor === 0 ? 1000 : 1001;
}

/**
 * `ngx_http_gzip_ok()`: the client takes `coding` (Accept-Encoding), is not disabled by
 * gzip_disable, speaks a recent enough HTTP, and a proxied request (Via) passes gzip_proxied as
 * judged on the response's headers (`fileTime`: its Last-Modified is a file's time, which nginx
 * keeps outside the header list, so that no_last_modified does not see it).
 */
export function clientTakes(request: HttpRequest, responseHeaders: readonly string[], rules: GzipClientRules, fileTime: boolean, coding = 'gzip'): boolean {
  const ae = request.header('accept-encoding');
  if (ae === undefined || ae.length < coding.length) return false;
  if (!ae.startsWith(`${coding},`) && !acceptsEncoding(ae, coding)) return false;
  const userAgent = request.header('user-agent');
  if (rules.disable.msie6 && detectBrowser(userAgent).msie6) return false;
  if (httpVersionOf(request) < rules.httpVersion) return false;
  if (request.header('via') !== undefined && !proxiedAllowed(request, responseHeaders, rules.proxied, fileTime)) return false;
  if (userAgent !== undefined) {
    for (const regex of rules.disable.regexes) {
      if (regex.test(userAgent)) return false;
    }
  }
  return true;
}

/** The gzip_proxied part of `ngx_http_gzip_ok()`, for a request with a Via header. */
function proxiedAllowed(request: HttpRequest, headers: readonly string[], p: ReadonlySet<GzipProxiedFlag>, fileTime: boolean): boolean {
  if (p.has('off')) return false;
  if (p.has('any')) return true;
  if (p.has('auth') && request.header('authorization') !== undefined) return true;
  const expires = headerOf(headers, 'expires');
  if (expires !== undefined) {
    if (!p.has('expired')) return false;
    const when = Date.parse(expires);
    if (Number.isNaN(when)) return false;
    const dateHeader = headerOf(headers, 'date');
    const date = dateHeader === undefined ? Date.now() : Date.parse(dateHeader);
    if (Number.isNaN(date)) return false;
    return when < date;
  }
  const cc = headerOf(headers, 'cache-control');
  if (cc !== undefined) {
    return (p.has('no-cache') && hasCacheDirective(cc, 'no-cache')) || (p.has('no-store') && hasCacheDirective(cc, 'no-store')) || (p.has('private') && hasCacheDirective(cc, 'private'));
  }
  if (p.has('no_last_modified') && !fileTime && headerOf(headers, 'last-modified') !== undefined) return false;
  if (p.has('no_etag') && headerOf(headers, 'etag') !== undefined) return false;
  return true;
}

/** `ngx_http_weak_etag()`: a strong ETag becomes weak (`W/"..."`); anything not quoted is dropped. */
export function weakenEtag(headers: string[]): void {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() !== 'etag') continue;
    const value = headers[i + 1] as string;
    if (value.startsWith('W/')) continue;
    if (value.startsWith('"')) headers[i + 1] = `W/${value}`;
    else {
      headers.splice(i, 2);
      i -= 2;
    }
  }
}

/** The response is one the gzip header filter considers (before asking about the client). */
export function compressible(head: FilterHead, types: GzipSettings['types'], minLength: number): boolean {
  if (head.status !== 200 && head.status !== 403 && head.status !== 404) return false;
  if (head.headerOnly) return false;
  const encoding = headerOf(head.headers, 'content-encoding');
  if (encoding !== undefined && encoding !== '') return false;
  if (typeof head.framing === 'number' && head.framing < minLength) return false;
  return typeMatches(types, headerOf(head.headers, 'content-type'));
}

/** Marks the head as carrying a coding of unknown length: nginx's clear_content_length, clear_accept_ranges, weak_etag. */
export function encodeHead(head: FilterHead, coding: string): void {
  head.headers.push('Content-Encoding', coding);
  recodedHead(head);
}

/** A body whose bytes a filter changes: nginx's clear_content_length, clear_accept_ranges, weak_etag (gzip and gunzip alike). */
export function recodedHead(head: FilterHead): void {
  removeHeader(head.headers, 'content-length');
  removeHeader(head.headers, 'accept-ranges');
  weakenEtag(head.headers);
  head.framing = 'chunked';
}

/** `$gzip_ratio`: "%ui.%02ui", the input over the deflate output, rounded at the third decimal (ngx_http_gzip_ratio_variable()). */
export function gzipRatio(zin: number, zout: number): string {
  let int = Math.floor(zin / zout);
  let frac = Math.floor((zin * 100) / zout) % 100;
  if (Math.floor((zin * 1000) / zout) % 10 > 4) {
    frac++;
    if (frac > 99) {
      int++;
      frac = 0;
    }
  }
  return `${int}.${String(frac).padStart(2, '0')}`;
}

/** `gzip_vary on`: "Vary: Accept-Encoding" when gzip or gzip_static set r->gzip_vary (ngx_http_header_filter()); runs after gzip. */
export const varyFilter: OutputFilter = {
  name: 'ngx_http_header_filter_module',
  header(head: FilterHead, request: HttpRequest): undefined {
    if (request.gzipVary) head.headers.push('Vary', 'Accept-Encoding');
  },
};

/** The gzip header filter of a level with `gzip on`. */
export function gzipFilter(settings: GzipSettings): OutputFilter {
  return {
    name: 'ngx_http_gzip_filter_module',
    encodes: (head, request) => compressible(head, settings.types, settings.minLength) && !request.gzipRefused && clientTakes(request, head.headers, settings, head.fileTime),
    header(head: FilterHead, request: HttpRequest): Transform | undefined {
      if (!compressible(head, settings.types, settings.minLength)) return undefined;
      // r->gzip_vary: set before the client is asked, so a response that could be gzipped varies.
      // r->gzip_vary: the header filter (varyFilter) adds the Vary header once, for gzip and gzip_static alike.
      request.gzipVary = true;
      if (request.gzipRefused || !clientTakes(request, head.headers, settings, head.fileTime)) return undefined;
      // ngx_http_gzip_filter_memory(): a small known length needs a smaller window and hash.
      let windowBits = settings.windowBits;
      let memLevel = settings.memLevel;
      if (typeof head.framing === 'number' && head.framing > 0) {
        // "the actual zlib window size is smaller by 262 bytes"
        while (head.framing < 2 ** (windowBits - 1) - 262) {
          windowBits--;
          memLevel--;
        }
        if (memLevel < 1) memLevel = 1;
      }
      encodeHead(head, 'gzip');
      const gzip = createGzip({ level: settings.level, windowBits, memLevel, chunkSize: settings.chunkSize, strategy: constants.Z_DEFAULT_STRATEGY });
      let zout = 0;
      gzip.on('data', (data: Buffer) => {
        zout += data.length;
      });
      gzip.once('end', () => {
        // zlib's total_out in nginx is the raw deflate stream: without gzip's 10-byte header and 8-byte trailer.
        const deflated = zout - 18;
        if (deflated > 0) request.gzipRatio = gzipRatio(gzip.bytesWritten, deflated);
      });
      return gzip;
    },
  };
}
