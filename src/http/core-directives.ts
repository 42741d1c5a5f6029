/**
 * The rest of `ngx_http_core_module`'s directives that real configurations use: server_tokens,
 * the resolver, the client header and body buffers, keep-alive by browser, lingering close,
 * limit_except, and the knobs of nginx's own memory layout (hash sizes, temporary files). Each
 * either does what it does in nginx or, where Node owns the thing it tunes, is accepted with
 * `"name" has no effect in hitless (why)` at [warn]; docs/http-core.md says what happens instead.
 */
import { prefixed } from '../conf/core-module.js';
import type { TempPath } from './body-file.js';
import { parseNumber, parseSize, parseTime } from '../core/parse.js';
import { parseResolver } from '../conf/resolver-setting.js';
import { defineDirective, type AnyDirectiveSpec, type Context, type DirectiveContext, type DirectiveName, type DirectiveValues } from '../conf/registry.js';

/** `server_tokens`: the version in the Server header and error pages, or not. */
export type ServerTokens = 'on' | 'off' | 'build';

/** `lingering_close`. */
export type LingeringClose = 'off' | 'on' | 'always';

/** `large_client_header_buffers number size`. */
export interface HeaderBuffers {
  readonly number: number;
  readonly size: number;
}

/** `keepalive_disable`: the browsers keep-alive is turned off for. */
export interface KeepaliveDisable {
  readonly msie6: boolean;
  readonly safari: boolean;
}

/** The methods `limit_except` allows, as `ngx_http_core_limit_except()` reads them. */
export interface LimitExcept {
  /** Upper-case method names; GET brings HEAD. */
  readonly methods: ReadonlySet<string>;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    server_tokens: ServerTokens;
    client_body_buffer_size: number;
    client_body_temp_path: TempPath;
    client_body_in_file_only: 'off' | 'on' | 'clean';
    client_body_in_single_buffer: boolean;
    client_header_buffer_size: number;
    large_client_header_buffers: HeaderBuffers;
    max_headers: number;
    keepalive_disable: KeepaliveDisable;
    lingering_close: LingeringClose;
    lingering_time: number;
    lingering_timeout: number;
    reset_timedout_connection: boolean;
    limit_except: undefined;
    recursive_error_pages: boolean;
    merge_slashes: boolean;
    underscores_in_headers: boolean;
    ignore_invalid_headers: boolean;
    chunked_transfer_encoding: boolean;
    msie_padding: boolean;
    server_names_hash_max_size: number;
    server_names_hash_bucket_size: number;
    variables_hash_max_size: number;
    variables_hash_bucket_size: number;
    connection_pool_size: number;
    request_pool_size: number;
    proxy_temp_path: string;
    proxy_buffers: HeaderBuffers;
    proxy_buffer_size: number;
    proxy_busy_buffers_size: number;
    proxy_max_temp_file_size: number;
    proxy_temp_file_write_size: number;
  }
}

const HTTP_LEVELS: readonly Context[] = ['http', 'server', 'location'];
const HTTP_SERVER: readonly Context[] = ['http', 'server'];

/** Why hitless never writes a temporary file, said once for every directive that tunes them. */
const NO_TEMP_FILES = 'hitless writes no temporary files for proxied responses: they are streamed to the client with back-pressure';
/** Why the proxy's buffer sizes do not apply. */
const readAhead = (module: 'proxy' | 'fastcgi' | 'uwsgi' | 'scgi'): string => `${module} responses are streamed through Node's socket buffers; with ${module}_buffering on hitless reads up to 1 MiB ahead of a slow client, in memory`;
/** Why hash sizes do not apply. */
const NO_HASH_TABLES = 'names are looked up in JavaScript Maps, which size themselves';
/** Why nginx's memory pool sizes do not apply. */
const NO_POOLS = 'V8 allocates and collects a connection\'s and a request\'s memory, there are no nginx memory pools to size';

/**
 * nginx's NGX_MIN_POOL_SIZE on a 64-bit system (sizeof(ngx_pool_t) plus two ngx_pool_large_t,
 * aligned to NGX_POOL_ALIGNMENT, 16), which `ngx_http_core_pool_size()` checks.
 */
const MIN_POOL_SIZE = 112;

/** `connection_pool_size`, `request_pool_size`: a size checked as `ngx_http_core_pool_size()` does. */
function poolSizeValue(args: readonly string[], ctx: DirectiveContext): number {
  const size = sizeValue(args, ctx);
  if (size < MIN_POOL_SIZE) ctx.fail(`the pool size must be no less than ${MIN_POOL_SIZE}`);
  if (size % 16 !== 0) ctx.fail('the pool size must be a multiple of 16');
  return size;
}

/** The methods nginx 1.22 knows (`ngx_methods_names`). */
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'MKCOL', 'COPY', 'MOVE', 'OPTIONS', 'PROPFIND', 'PROPPATCH', 'LOCK', 'UNLOCK', 'PATCH']);

function sizeValue([value = '']: readonly string[], ctx: DirectiveContext): number {
  return parseSize(value) ?? ctx.fail(`"${ctx.node.name}" directive invalid value`);
}

function timeValue([value = '']: readonly string[], ctx: DirectiveContext): number {
  return parseTime(value) ?? ctx.fail(`"${ctx.node.name}" directive invalid value`);
}

function numberValue([value = '']: readonly string[], ctx: DirectiveContext): number {
  return parseNumber(value) ?? ctx.fail(`"${ctx.node.name}" directive invalid number`);
}

/** `ngx_conf_set_enum_slot()`: one of a list of words, else `invalid value "x"`. */
function enumValue<T extends string>(words: readonly T[]) {
  return ([value = '']: readonly string[], ctx: DirectiveContext): T => {
    const found = words.find((word) => word === value.toLowerCase());
    return found ?? ctx.fail(`invalid value "${value}"`);
  };
}

/** `ngx_conf_set_bufs_slot()`: `number size`. */
function bufsValue([count = '', size = '']: readonly string[], ctx: DirectiveContext): HeaderBuffers {
  const number = parseNumber(count);
  if (number === undefined || number === 0) ctx.fail(`invalid value "${count}"`);
  const bytes = parseSize(size);
  if (bytes === undefined || bytes === 0) ctx.fail(`invalid value "${size}"`);
  return { number, size: bytes };
}

interface Spec<K extends DirectiveName> {
  readonly name: K;
  readonly contexts?: readonly Context[];
  readonly args?: readonly number[] | 'flag' | '1+';
  readonly syntax: string;
  readonly summary: string;
  readonly parse: (args: readonly string[], ctx: DirectiveContext) => DirectiveValues[K];
  readonly default: DirectiveValues[K];
  readonly defaultText: string;
}

function value<K extends DirectiveName>(spec: Spec<K>): AnyDirectiveSpec {
  const fallback = spec.default;
  return defineDirective<K>({
    kind: 'value',
    name: spec.name,
    contexts: spec.contexts ?? HTTP_LEVELS,
    args: spec.args ?? [1],
    syntax: spec.syntax,
    summary: spec.summary,
    default: () => fallback,
    defaultText: spec.defaultText,
    parse: (args, ctx) => spec.parse(args, ctx),
  });
}

/**
 * A directive that tunes what Node owns: parsed as nginx parses it (so a bad value is still an
 * error), then `"name" has no effect in hitless (reason)` at [warn], unless `harmless` says the
 * value written is what hitless does anyway.
 */
function knob<K extends DirectiveName>(spec: Spec<K>, reason: string, harmless?: (value: DirectiveValues[K]) => boolean): AnyDirectiveSpec {
  return value<K>({
    ...spec,
    parse: (args, ctx) => {
      const parsed = spec.parse(args, ctx);
      if (harmless === undefined || !harmless(parsed)) ctx.noEffect(reason);
      return parsed;
    },
  });
}

function onOff([value = '']: readonly string[]): boolean {
  return value === 'on';
}

/** `path [level1 [level2 [level3]]]`, as ngx_conf_set_path_slot() reads it: no trailing slash, levels of 1 or more adding up to at most 10. */
function parseTempPath(args: readonly string[], ctx: DirectiveContext): TempPath {
  const [name = '', ...levelArgs] = args;
  const levels = levelArgs.map((arg) => parseNumber(arg) ?? 0);
  if (levels.some((level) => level === 0) || levels.reduce((sum, level) => sum + level, 0) > 10) ctx.fail('"client_body_temp_path" directive invalid value');
  return { path: prefixed(ctx, name.endsWith('/') ? name.slice(0, -1) : name), levels };
}

/** `limit_except method ... { ... }`: the methods checked at `ngx_http_core_limit_except()`. */
export function parseLimitExcept(args: readonly string[], ctx: DirectiveContext): LimitExcept {
  const methods = new Set<string>();
  for (const arg of args) {
    const method = arg.toUpperCase();
    if (!METHODS.has(method)) ctx.fail(`invalid method "${arg}"`);
    methods.add(method);
  }
  if (methods.has('GET')) methods.add('HEAD');
  return { methods };
}

/** The directives of this file, appended to `ngx_http_core_module`'s table. */
export const CORE_DIRECTIVES: readonly AnyDirectiveSpec[] = [
  value({
    name: 'server_tokens',
    syntax: 'on | off | build;',
    summary: 'Whether the Server header and the built-in error pages name hitless\'s version (hitless/0.1.0) or only "hitless"; build is on (hitless has no build name).',
    parse: enumValue(['on', 'off', 'build'] as const),
    default: 'on',
    defaultText: 'server_tokens on;',
  }),
  value({
    name: 'resolver',
    args: '1+',
    syntax: 'address ... [valid=time] [ipv4=on|off] [ipv6=on|off];',
    summary: 'The DNS servers that resolve the host of a proxy_pass URL with variables at request time, and the names of upstream `server ... resolve` lines (UDP, TCP after a truncated answer); valid= overrides the answers\' TTL.',
    parse: parseResolver,
    default: undefined,
    defaultText: '—',
  }),
  value({
    name: 'resolver_timeout',
    syntax: 'time;',
    summary: 'How long a name may take to resolve; then the request gets 502.',
    parse: timeValue,
    default: 30_000,
    defaultText: 'resolver_timeout 30s;',
  }),
  value({
    name: 'client_body_buffer_size',
    syntax: 'size;',
    summary: 'A buffered request body longer than this is written to a file under client_body_temp_path, which $request_body_file names ($request_body is then empty); hitless keeps the body in memory as well and sends it upstream from there.',
    parse: sizeValue,
    default: 16 * 1024,
    defaultText: 'client_body_buffer_size 8k|16k;',
  }),
  defineDirective({
    kind: 'value',
    name: 'client_body_temp_path',
    contexts: HTTP_LEVELS,
    args: [1, 2, 3, 4],
    syntax: 'path [level1 [level2 [level3]]];',
    summary: 'The directory of request body files (client_body_in_file_only, or a body over client_body_buffer_size), with up to three levels of subdirectories named from the end of the file name; created mode 0700 when missing.',
    default: (ctx) => ({ path: prefixed(ctx, 'client_body_temp'), levels: [] }),
    defaultText: 'client_body_temp_path client_body_temp;',
    parse: parseTempPath,
  }),
  value({
    name: 'client_body_in_file_only',
    syntax: 'on | clean | off;',
    summary: 'Writes every buffered request body to a file, named by $request_body_file (also with proxy_pass_request_body off, for a backend that reads the file): on keeps the file after the request, clean removes it.',
    parse: enumValue(['off', 'on', 'clean'] as const),
    default: 'off',
    defaultText: 'client_body_in_file_only off;',
  }),
  knob({
    name: 'client_body_in_single_buffer',
    args: 'flag',
    syntax: 'on | off;',
    summary: 'nginx: keeps a request body read into memory in one buffer, so that $request_body has all of it. hitless always does (the body it reads is one Buffer in memory, never a file): on is its behaviour, off warns.',
    parse: onOff,
    default: false,
    defaultText: 'client_body_in_single_buffer off;',
  }, 'hitless holds a request body it reads in memory, whole, never in a file: $request_body always has all of it, as with "on"', (setting) => setting),
  value({
    name: 'client_header_buffer_size',
    contexts: HTTP_SERVER,
    syntax: 'size;',
    summary: 'The first buffer a request head is read into: with large_client_header_buffers, the whole head may take this plus number x size bytes.',
    parse: sizeValue,
    default: 1024,
    defaultText: 'client_header_buffer_size 1k;',
  }),
  value({
    name: 'large_client_header_buffers',
    contexts: HTTP_SERVER,
    args: [2],
    syntax: 'number size;',
    summary: 'The longest request line (414 beyond) and header line (400 "Request Header Or Cookie Too Large" beyond); the head may take client_header_buffer_size plus number x size; the default server of the address decides.',
    parse: bufsValue,
    default: { number: 4, size: 8192 },
    defaultText: 'large_client_header_buffers 4 8k;',
  }),
  value({
    name: 'max_headers',
    contexts: HTTP_SERVER,
    args: [1],
    syntax: 'number;',
    summary: 'The most header lines a request may have (HTTP/2 does not count cookie fields, as nginx does not); one more is refused with 400 "Request Header Or Cookie Too Large" and "client sent too many header lines" at info; the default server of the address decides.',
    parse: numberValue,
    default: 1000,
    defaultText: 'max_headers 1000;',
  }),
  value({
    name: 'keepalive_disable',
    args: [1, 2],
    syntax: 'none | browser ...;',
    summary: 'Turns keep-alive off for these browsers, by User-Agent: msie6 (MSIE 6 and older, not SV1), safari (Safari on macOS and iOS); none for no browser.',
    parse: (args, ctx) => {
      // ngx_conf_set_bitmask_slot(), then the merge: none wins over the others.
      const seen = new Set<string>();
      for (const arg of args) {
        if (arg !== 'none' && arg !== 'msie6' && arg !== 'safari') ctx.fail(`invalid value "${arg}"`);
        if (seen.has(arg)) ctx.warn(`duplicate value "${arg}"`);
        seen.add(arg);
      }
      if (seen.has('none')) return { msie6: false, safari: false };
      return { msie6: seen.has('msie6'), safari: seen.has('safari') };
    },
    default: { msie6: true, safari: false },
    defaultText: 'keepalive_disable msie6;',
  }),
  value({
    name: 'lingering_close',
    syntax: 'off | on | always;',
    summary: 'How a connection is closed: on reads and discards what the client still sends, when it may still be sending; always does so every time; off closes at once.',
    parse: enumValue(['off', 'on', 'always'] as const),
    default: 'on',
    defaultText: 'lingering_close on;',
  }),
  value({
    name: 'lingering_time',
    syntax: 'time;',
    summary: 'The longest a lingering close reads what the client sends.',
    parse: timeValue,
    default: 30_000,
    defaultText: 'lingering_time 30s;',
  }),
  value({
    name: 'lingering_timeout',
    syntax: 'time;',
    summary: 'How long a lingering close waits for more from the client before it closes.',
    parse: timeValue,
    default: 5000,
    defaultText: 'lingering_timeout 5s;',
  }),
  value({
    name: 'reset_timedout_connection',
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether a connection that timed out is reset (RST, SO_LINGER 0) instead of closed with FIN.',
    parse: onOff,
    default: false,
    defaultText: 'reset_timedout_connection off;',
  }),
  defineDirective({
    kind: 'block',
    name: 'limit_except',
    contexts: ['location'],
    args: '1+',
    block: 'limit_except',
    syntax: 'method ... { ... }',
    summary: 'The methods allowed without restriction (GET brings HEAD); other methods go through the access rules of the block.',
    unique: true,
    parse: parseLimitExcept,
  }),
  value({
    name: 'recursive_error_pages',
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether an error_page\'s own error response may be replaced by another error_page.',
    parse: onOff,
    default: false,
    defaultText: 'recursive_error_pages off;',
  }),
  value({
    name: 'merge_slashes',
    contexts: HTTP_SERVER,
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether repeated slashes in the URI are merged into one before locations are matched (the default server of the address decides, as in nginx).',
    parse: onOff,
    default: true,
    defaultText: 'merge_slashes on;',
  }),
  value({
    name: 'underscores_in_headers',
    contexts: HTTP_SERVER,
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether an underscore is a valid character in a request header name; off makes such headers invalid (see ignore_invalid_headers).',
    parse: onOff,
    default: false,
    defaultText: 'underscores_in_headers off;',
  }),
  value({
    name: 'ignore_invalid_headers',
    contexts: HTTP_SERVER,
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether request headers whose names have characters other than letters, digits and hyphens are dropped (logged at info) rather than kept.',
    parse: onOff,
    default: true,
    defaultText: 'ignore_invalid_headers on;',
  }),
  value({
    name: 'chunked_transfer_encoding',
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether an HTTP/1.1 response of unknown length is sent chunked; off ends it by closing the connection.',
    parse: onOff,
    default: true,
    defaultText: 'chunked_transfer_encoding on;',
  }),
  value({
    name: 'msie_padding',
    args: 'flag',
    syntax: 'on | off;',
    summary: 'Whether built-in error pages to MSIE clients are padded to 512 bytes, so that MSIE shows them instead of its own.',
    parse: onOff,
    default: true,
    defaultText: 'msie_padding on;',
  }),
  knob({
    name: 'server_names_hash_max_size',
    contexts: ['http'],
    syntax: 'size;',
    summary: 'nginx: the size of the server names hash table.',
    parse: numberValue,
    default: 512,
    defaultText: 'server_names_hash_max_size 512;',
  }, NO_HASH_TABLES),
  knob({
    name: 'server_names_hash_bucket_size',
    contexts: ['http'],
    syntax: 'size;',
    summary: 'nginx: the bucket size of the server names hash table.',
    parse: numberValue,
    default: 64,
    defaultText: 'server_names_hash_bucket_size 32|64|128;',
  }, NO_HASH_TABLES),
  knob({
    name: 'variables_hash_max_size',
    contexts: ['http'],
    syntax: 'size;',
    summary: 'nginx: the size of the variables hash table.',
    parse: numberValue,
    default: 1024,
    defaultText: 'variables_hash_max_size 1024;',
  }, NO_HASH_TABLES),
  knob({
    name: 'variables_hash_bucket_size',
    contexts: ['http'],
    syntax: 'size;',
    summary: 'nginx: the bucket size of the variables hash table.',
    parse: numberValue,
    default: 64,
    defaultText: 'variables_hash_bucket_size 64;',
  }, NO_HASH_TABLES),
  knob({
    name: 'connection_pool_size',
    contexts: HTTP_SERVER,
    syntax: 'size;',
    summary: 'nginx: the memory pool of a connection. hitless checks the size as nginx does, then warns: V8 manages the memory.',
    parse: poolSizeValue,
    default: 512,
    defaultText: 'connection_pool_size 256|512;',
  }, NO_POOLS),
  knob({
    name: 'request_pool_size',
    contexts: HTTP_SERVER,
    syntax: 'size;',
    summary: 'nginx: the memory pool of a request. hitless checks the size as nginx does, then warns: V8 manages the memory.',
    parse: poolSizeValue,
    default: 4096,
    defaultText: 'request_pool_size 4k;',
  }, NO_POOLS),
];

/** The buffering family of an upstream module (proxy_buffers, fastcgi_buffers, ...), appended to its table. */
export function upstreamBufferDirectives(module: 'proxy' | 'fastcgi' | 'uwsgi' | 'scgi'): AnyDirectiveSpec[] {
  return [
  knob({
    name: `${module}_temp_path` as 'proxy_temp_path',
    args: [1, 2, 3, 4],
    syntax: 'path [level1 [level2 [level3]]];',
    summary: 'nginx: the directory of proxied responses\' temporary files. hitless writes none.',
    parse: ([path = '']) => path,
    default: `${module}_temp`,
    defaultText: `${module}_temp_path ${module}_temp;`,
  }, NO_TEMP_FILES),
  knob({
    name: `${module}_buffers` as 'proxy_buffers',
    args: [2],
    syntax: 'number size;',
    summary: `nginx: the buffers an upstream response is read into. hitless reads up to 1 MiB ahead with ${module}_buffering on.`,
    parse: bufsValue,
    default: { number: 8, size: 4096 },
    defaultText: `${module}_buffers 8 4k|8k;`,
  }, readAhead(module)),
  knob({
    name: `${module}_buffer_size` as 'proxy_buffer_size',
    syntax: 'size;',
    summary: 'nginx: the buffer for the upstream response head. hitless allows a head of 32 KiB with lines of 8 KiB (502 beyond).',
    parse: sizeValue,
    default: 4096,
    defaultText: `${module}_buffer_size 4k|8k;`,
  }, module === 'proxy' ? 'an upstream response head may take 32 KiB, with lines up to 8 KiB, whatever the size' : `a ${module === 'fastcgi' ? 'FastCGI' : module === 'scgi' ? 'SCGI' : 'uwsgi'} response head may take 32 KiB, whatever the size`),
  knob({
    name: `${module}_busy_buffers_size` as 'proxy_busy_buffers_size',
    syntax: 'size;',
    summary: 'nginx: how much of the buffers may be busy sending to the client. hitless sends as the client takes.',
    parse: sizeValue,
    default: 8192,
    defaultText: `${module}_busy_buffers_size 8k|16k;`,
  }, readAhead(module)),
  knob({
    name: `${module}_max_temp_file_size` as 'proxy_max_temp_file_size',
    syntax: 'size;',
    summary: 'nginx: the largest temporary file of a buffered response; 0 disables them, which is what hitless does (no warning for 0).',
    parse: sizeValue,
    default: 1024 * 1024 * 1024,
    defaultText: `${module}_max_temp_file_size 1024m;`,
  }, NO_TEMP_FILES, (size) => size === 0),
  knob({
    name: `${module}_temp_file_write_size` as 'proxy_temp_file_write_size',
    syntax: 'size;',
    summary: 'nginx: how much is written to a temporary file at once. hitless writes none.',
    parse: sizeValue,
    default: 8192,
    defaultText: `${module}_temp_file_write_size 8k|16k;`,
  }, NO_TEMP_FILES),
];
}

/** The proxy buffering family, appended to `ngx_http_proxy_module`'s table. */
export const PROXY_BUFFER_DIRECTIVES: readonly AnyDirectiveSpec[] = upstreamBufferDirectives('proxy');
