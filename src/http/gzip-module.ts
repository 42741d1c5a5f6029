/**
 * nginx's `ngx_http_gzip_filter_module` directives (`gzip`, `gzip_types`, `gzip_comp_level`,
 * `gzip_min_length`, `gzip_buffers`, `gzip_window`, `gzip_hash`) and the core module's gzip ones
 * (`gzip_vary`, `gzip_proxied`, `gzip_disable`, `gzip_http_version`), which the filter
 * (gzip-filter.ts) reads. Messages are those of nginx's slot handlers and post handlers.
 */
import { parseNumber, parseSize } from '../core/parse.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { flagDirective } from '../conf/values.js';
import { compileConfigRegex } from './regex.js';

/** `gzip_types` (and `brotli_types`): MIME types without parameters, lowercased; `any` for `*`. */
export interface MimeTypeSet {
  readonly any: boolean;
  readonly types: ReadonlySet<string>;
}

/** `gzip_disable`: the regexes on User-Agent, and the `msie6` mask. */
export interface GzipDisable {
  readonly regexes: readonly RegExp[];
  readonly msie6: boolean;
}

/** The `gzip_proxied` flags (NGX_HTTP_GZIP_PROXIED_*). */
export type GzipProxiedFlag = 'off' | 'expired' | 'no-cache' | 'no-store' | 'private' | 'no_last_modified' | 'no_etag' | 'auth' | 'any';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    gzip: boolean;
    gzip_types: MimeTypeSet;
    gzip_comp_level: number;
    gzip_min_length: number;
    gzip_buffers: { readonly number: number; readonly size: number };
    /** zlib's windowBits. */
    gzip_window: number;
    /** zlib's memLevel. */
    gzip_hash: number;
    gzip_vary: boolean;
    gzip_proxied: ReadonlySet<GzipProxiedFlag>;
    gzip_disable: GzipDisable;
    /** 1000 for 1.0, 1001 for 1.1 (NGX_HTTP_VERSION_*). */
    gzip_http_version: number;
  }
}

const PROXIED_FLAGS: ReadonlySet<string> = new Set(['off', 'expired', 'no-cache', 'no-store', 'private', 'no_last_modified', 'no_etag', 'auth', 'any']);

/** `ngx_http_types_slot()`: a list of MIME types, `*` for any; `always` is added whatever is listed (text/html for gzip_types). */
export function parseMimeTypes(args: readonly string[], always: string): MimeTypeSet {
  const types = new Set<string>([always]);
  let any = false;
  for (const arg of args) {
    if (arg === '*') any = true;
    else types.add(arg.toLowerCase());
  }
  return { any, types };
}

/** `ngx_http_test_content_type()`: the response's type (without parameters) is in the set. */
export function typeMatches(set: MimeTypeSet, contentType: string | undefined): boolean {
  if (set.any) return true;
  if (contentType === undefined || contentType === '') return false;
  const semicolon = contentType.indexOf(';');
  const type = (semicolon === -1 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  return set.types.has(type);
}

/** A size that must be a power of two in [512, max], stored as its log2 minus `shift` (ngx_http_gzip_window(), ngx_http_gzip_hash()). */
function powerOfTwo(name: string, max: number, shift: number, allowed: string): (args: readonly string[], ctx: DirectiveContext) => number {
  return ([value = ''], ctx) => {
    const size = parseSize(value) ?? ctx.fail(`"${name}" directive invalid value`);
    for (let bits = Math.log2(max); bits >= 9; bits--) if (size === 2 ** bits) return bits - shift;
    return ctx.fail(`"${name}" directive must be ${allowed}`);
  };
}

/** `ngx_conf_set_num_slot()` with bounds (`ngx_conf_check_num_bounds()`). */
function boundedNumber(name: string, low: number, high: number): (args: readonly string[], ctx: DirectiveContext) => number {
  return ([value = ''], ctx) => {
    const n = parseNumber(value) ?? ctx.fail(`"${name}" directive invalid number`);
    if (n < low || n > high) ctx.fail(`value must be between ${low} and ${high}`);
    return n;
  };
}

/**
 * `ngx_conf_set_bufs_slot()` for a compression stream's buffers (gzip_buffers, gunzip_buffers,
 * brotli_buffers): hitless uses the size as zlib's chunkSize and says at -t that the number is
 * not used, or says `warning` instead.
 */
export function zlibBuffers(name: string, warning?: string): (args: readonly string[], ctx: DirectiveContext) => { readonly number: number; readonly size: number } {
  return ([count = '', size = ''], ctx) => {
    const number = parseNumber(count) ?? 0;
    const bytes = parseSize(size) ?? 0;
    if (number === 0 || bytes === 0) ctx.fail(`"${name}" directive invalid value`);
    ctx.warn(warning ?? `"${name}" sets only the size of zlib's output chunks in hitless; the number ${number} is not used (the stream's back-pressure bounds the memory of a response)`);
    return { number, size: bytes };
  };
}

/** Node's zlib takes chunks of 64 bytes or more. */
export function zlibChunkSize(buffers: { readonly size: number }): number {
  return Math.max(64, buffers.size);
}

/** The gzip directives: nginx's gzip filter module, with the core module's gzip_* settings. */
export const httpGzipModule: ConfModule = {
  name: 'ngx_http_gzip_filter_module',
  directives: [
    flagDirective('gzip', 'Compresses responses with gzip for clients that accept it (the other gzip_* directives say which).', false, ['http', 'server', 'location', 'location_if']),
    defineDirective({
      kind: 'value',
      name: 'gzip_types',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'mime-type ...;',
      summary: 'MIME types gzip compresses, besides text/html (always); * for any.',
      default: () => parseMimeTypes([], 'text/html'),
      defaultText: 'gzip_types text/html;',
      parse: (args) => parseMimeTypes(args, 'text/html'),
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_comp_level',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'level;',
      summary: 'The zlib compression level, 1 to 9.',
      default: () => 1,
      defaultText: 'gzip_comp_level 1;',
      parse: boundedNumber('gzip_comp_level', 1, 9),
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_min_length',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'length;',
      summary: 'Responses whose Content-Length is below this are not compressed (responses of unknown length are).',
      default: () => 20,
      defaultText: 'gzip_min_length 20;',
      parse: ([value = ''], ctx) => parseSize(value) ?? ctx.fail('"gzip_min_length" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_buffers',
      contexts: ['http', 'server', 'location'],
      args: [2],
      syntax: 'number size;',
      summary: 'In hitless the size is the size of the chunks zlib hands out (zlib chunkSize); the number is not used, since the stream\'s back-pressure bounds what one response holds (a [warn] says so).',
      default: () => ({ number: 32, size: 4096 }),
      defaultText: 'gzip_buffers 32 4k|16 8k;',
      parse: zlibBuffers('gzip_buffers'),
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_window',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: 'The zlib window (windowBits): 512 to 32k, a power of two.',
      default: () => 15,
      defaultText: 'gzip_window 32k;',
      parse: powerOfTwo('gzip_window', 32 * 1024, 0, '512, 1k, 2k, 4k, 8k, 16k, or 32k'),
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_hash',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: 'The zlib hash memory (memLevel): 512 to 128k, a power of two.',
      default: () => 9,
      defaultText: 'gzip_hash 128k;',
      parse: powerOfTwo('gzip_hash', 128 * 1024, 8, '512, 1k, 2k, 4k, 8k, 16k, 32k, 64k, or 128k'),
    }),
    flagDirective('gzip_vary', 'Adds "Vary: Accept-Encoding" to responses gzip (or gzip_static) considered, compressed or not.', false),
    defineDirective({
      kind: 'value',
      name: 'gzip_proxied',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'off | expired | no-cache | no-store | private | no_last_modified | no_etag | auth | any ...;',
      summary: 'Whether to compress for requests that came through a proxy (with a Via header), by the response\'s Expires, Cache-Control, Last-Modified, ETag and the request\'s Authorization.',
      default: () => new Set<GzipProxiedFlag>(['off']),
      defaultText: 'gzip_proxied off;',
      parse: (args, ctx) => {
        const flags = new Set<GzipProxiedFlag>();
        for (const arg of args) {
          if (!PROXIED_FLAGS.has(arg)) ctx.fail(`invalid value "${arg}"`);
          if (flags.has(arg as GzipProxiedFlag)) ctx.warn(`duplicate value "${arg}"`);
          flags.add(arg as GzipProxiedFlag);
        }
        return flags;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_disable',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'regex ...;',
      summary: 'No gzip for User-Agents matching any of the regexes (case-insensitive); msie6 stands for MSIE 4 to 6.',
      default: () => ({ regexes: [], msie6: false }),
      defaultText: '—',
      parse: (args, ctx) => {
        const regexes: RegExp[] = [];
        let msie6 = false;
        // ngx_http_gzip_disable(): "msie6" is a mask, anything else a caseless regex.
        for (const arg of args) {
          if (arg === 'msie6') msie6 = true;
          else regexes.push(compileConfigRegex(arg, true, ctx).regex);
        }
        return { regexes, msie6 };
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'gzip_http_version',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: '1.0 | 1.1;',
      summary: 'The lowest HTTP version of a request whose response is compressed.',
      default: () => 1001,
      defaultText: 'gzip_http_version 1.1;',
      parse: ([value = ''], ctx) => (value === '1.0' ? 1000 : value === '1.1' ? 1001 : ctx.fail(`invalid value "${value}"`)),
    }),
  ],
};

/** The gzip settings of a level, read by the filter. */
export interface GzipSettings {
  readonly types: MimeTypeSet;
  readonly level: number;
  readonly minLength: number;
  readonly chunkSize: number;
  readonly windowBits: number;
  readonly memLevel: number;
  readonly proxied: ReadonlySet<GzipProxiedFlag>;
  readonly disable: GzipDisable;
  readonly httpVersion: number;
}

/** The level's gzip settings; undefined when `gzip` is off there. */
export function gzipSettingsOf(block: ConfBlockView): GzipSettings | undefined {
  if (!block.get('gzip')) return undefined;
  return {
    types: block.get('gzip_types'),
    level: block.get('gzip_comp_level'),
    minLength: block.get('gzip_min_length'),
    chunkSize: zlibChunkSize(block.get('gzip_buffers')),
    windowBits: block.get('gzip_window'),
    memLevel: block.get('gzip_hash'),
    proxied: block.get('gzip_proxied'),
    disable: block.get('gzip_disable'),
    httpVersion: block.get('gzip_http_version'),
  };
}
