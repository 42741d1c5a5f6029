/**
 * The brotli filter of google/ngx_brotli (`ngx_http_brotli_filter_module`): `brotli`,
 * `brotli_types`, `brotli_comp_level`, `brotli_window`, `brotli_min_length`, the deprecated
 * `brotli_buffers`, and `$brotli_ratio`. It judges a response as the gzip filter does (status,
 * Content-Encoding, length, type: gzip-filter.ts's `compressible()`), but the client by
 * Accept-Encoding alone: gzip_proxied, gzip_disable and gzip_http_version do not apply. The
 * module is an addon, first in the filter chain, so br wins over gzip for a client that takes
 * both; Vary comes from gzip_vary, as ngx_brotli sets r->gzip_vary for the header filter.
 */
import type { Transform } from 'node:stream';
import { constants, createBrotliCompress } from 'node:zlib';
import { parseNumber, parseSize } from '../core/parse.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { flagDirective } from '../conf/values.js';
import { compressible, encodeHead, gzipRatio } from './gzip-filter.js';
import { parseMimeTypes, zlibBuffers, type MimeTypeSet } from './gzip-module.js';
import type { FilterHead, OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    brotli: boolean;
    brotli_types: MimeTypeSet;
    brotli_comp_level: number;
    /** The window as its log2 (BROTLI_PARAM_LGWIN). */
    brotli_window: number;
    brotli_min_length: number;
    brotli_buffers: { readonly number: number; readonly size: number };
  }
}

/** BROTLI_MIN_WINDOW_BITS and BROTLI_MAX_WINDOW_BITS. */
const MIN_WINDOW_BITS = 10;
const MAX_WINDOW_BITS = 24;

/** ngx_brotli's `check_accept_encoding()`: "br" as a token, refused only by a q of 0 (`q=0`, `q=0.`, up to `q=0.000`). */
export function acceptsBrotli(acceptEncoding: string | undefined): boolean {
  if (acceptEncoding === undefined || acceptEncoding.length < 2) return false;
  const text = acceptEncoding.toLowerCase();
  // Past the end reads as NUL in nginx's buffer: it matches none of the characters looked for.
  const at = (i: number): string => text[i] ?? '\0';
  let from = 0;
  for (;;) {
    const found = text.indexOf('br', from);
    if (found === -1) return false;
    let p = found + 2;
    from = p;
    const before = found === 0 ? ' ' : at(found - 1);
    const after = p >= text.length ? ' ' : at(p);
    if ((before !== ',' && before !== ' ') || (after !== ',' && after !== ' ' && after !== ';')) continue;
    const skipSpaces = (): void => {
      while (at(p) === ' ') p++;
    };
    skipSpaces();
    if (at(p++) !== ';') return true;
    skipSpaces();
    if (at(p++) !== 'q') return true;
    skipSpaces();
    if (at(p++) !== '=') return true;
    skipSpaces();
    if (at(p++) !== '0') return true;
    if (at(p++) !== '.') return false;
    for (let digits = 0; digits < 3; digits++) {
      const d = at(p++);
      if (d < '0' || d > '9') return false;
      if (d > '0') return true;
    }
    return false;
  }
}

/** `ngx_conf_set_num_slot()` with ngx_brotli's bounds, BROTLI_MIN_QUALITY to BROTLI_MAX_QUALITY. */
function parseQuality([value = '']: readonly string[], ctx: DirectiveContext): number {
  const n = parseNumber(value) ?? ctx.fail('"brotli_comp_level" directive invalid number');
  if (n < 0 || n > 11) ctx.fail('value must be between 0 and 11');
  return n;
}

/** `ngx_http_brotli_parse_wbits()`: a size that is a power of two from 1k to 16m, stored as its log2. */
function parseWindow([value = '']: readonly string[], ctx: DirectiveContext): number {
  const size = parseSize(value) ?? ctx.fail('"brotli_window" directive invalid value');
  for (let bits = MIN_WINDOW_BITS; bits <= MAX_WINDOW_BITS; bits++) if (size === 2 ** bits) return bits;
  return ctx.fail('"brotli_window" directive must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, 512k, 1m, 2m, 4m, 8m or 16m');
}

/** The brotli filter's directives. */
export const httpBrotliModule: ConfModule = {
  name: 'ngx_http_brotli_filter_module',
  directives: [
    flagDirective('brotli', 'Compresses responses with brotli for clients whose Accept-Encoding takes br (preferred over gzip).', false, ['http', 'server', 'location', 'location_if']),
    defineDirective({
      kind: 'value',
      name: 'brotli_types',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'mime-type ...;',
      summary: 'MIME types brotli compresses, besides text/html (always); * for any.',
      default: () => parseMimeTypes([], 'text/html'),
      defaultText: 'brotli_types text/html;',
      parse: (args) => parseMimeTypes(args, 'text/html'),
    }),
    defineDirective({
      kind: 'value',
      name: 'brotli_comp_level',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'level;',
      summary: 'The brotli quality, 0 to 11.',
      default: () => 6,
      defaultText: 'brotli_comp_level 6;',
      parse: parseQuality,
    }),
    defineDirective({
      kind: 'value',
      name: 'brotli_window',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: 'The largest brotli window, 1k to 16m, a power of two (smaller for a response whose length is known to be smaller).',
      default: () => 19,
      defaultText: 'brotli_window 512k;',
      parse: parseWindow,
    }),
    defineDirective({
      kind: 'value',
      name: 'brotli_min_length',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'length;',
      summary: 'Responses whose Content-Length is below this are not compressed (responses of unknown length are).',
      default: () => 20,
      defaultText: 'brotli_min_length 20;',
      parse: ([value = ''], ctx) => parseSize(value) ?? ctx.fail('"brotli_min_length" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'brotli_buffers',
      contexts: ['http', 'server', 'location'],
      args: [2],
      syntax: 'number size;',
      summary: 'Deprecated and ignored, as in ngx_brotli (a [warn] says so).',
      default: () => ({ number: 32, size: 4096 }),
      defaultText: 'brotli_buffers 32 4k|16 8k;',
      parse: zlibBuffers('brotli_buffers', '"brotli_buffers" is deprecated and ignored, as in ngx_brotli'),
    }),
  ],
};

/** The brotli filter of a level; undefined when `brotli` is off there. */
export function brotliFilterOf(block: ConfBlockView): OutputFilter | undefined {
  if (!block.get('brotli')) return undefined;
  const types = block.get('brotli_types');
  const quality = block.get('brotli_comp_level');
  const window = block.get('brotli_window');
  const minLength = block.get('brotli_min_length');
  return {
    name: 'ngx_http_brotli_filter_module',
    encodes: (head, request) => compressible(head, types, minLength) && acceptsBrotli(request.header('accept-encoding')),
    header(head: FilterHead, request: HttpRequest): Transform | undefined {
      if (!compressible(head, types, minLength)) return undefined;
      request.gzipVary = true;
      if (!acceptsBrotli(request.header('accept-encoding'))) return undefined;
      // r->gzip_tested, r->gzip_ok = 0: the gzip and gunzip filters take the client as refusing gzip.
      request.gzipRefused = true;
      // ngx_http_brotli_filter_ensure_stream_initialized(): the smallest window that holds a known length.
      let bits = window;
      if (typeof head.framing === 'number' && head.framing > 0) {
        bits = MIN_WINDOW_BITS;
        while (bits < window && head.framing > 2 ** bits) bits++;
      }
      encodeHead(head, 'br');
      const brotli = createBrotliCompress({ params: { [constants.BROTLI_PARAM_QUALITY]: quality, [constants.BROTLI_PARAM_LGWIN]: bits } });
      let out = 0;
      brotli.on('data', (data: Buffer) => {
        out += data.length;
      });
      brotli.once('end', () => {
        if (out > 0) request.brotliRatio = gzipRatio(brotli.bytesWritten, out);
      });
      return brotli;
    },
  };
}
