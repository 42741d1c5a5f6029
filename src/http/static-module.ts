/**
 * The directives of static file serving: nginx's `ngx_http_static_module`,
 * `ngx_http_index_module`, `ngx_http_autoindex_module` and the file parts of
 * `ngx_http_core_module` (`root`, `alias`, `try_files`, `internal`, `etag`, `if_modified_since`,
 * `max_ranges`, `disable_symlinks`, the redirect settings and the I/O tuning knobs). What they do
 * at request time is in static.ts.
 */
import { ConfigError } from '../core/errors.js';
import { parseNumber, parseSize, parseTime } from '../core/parse.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type AnyDirectiveSpec, type ConfBlockView, type ConfModule, type Context, type DirectiveContext } from '../conf/registry.js';
import type { LocationMatch } from './core-module.js';
import { parseValue } from './rewrite-module.js';
import { blocksOf, checkVariables } from './variables.js';
import { flagDirective } from '../conf/values.js';

/** `root path` or `alias path`, with where it was written. */
export interface DocumentRoot {
  readonly alias: boolean;
  readonly path: Template;
  readonly file: string;
  readonly line: number;
}

/** `if_modified_since off | exact | before`. */
export type IfModifiedSince = 'off' | 'exact' | 'before';

/** `autoindex_format`. */
export type AutoindexFormat = 'html' | 'xml' | 'json' | 'jsonp';

/** `disable_symlinks off | on | if_not_owner [from=part]`. */
export interface DisableSymlinks {
  readonly mode: 'off' | 'on' | 'if_not_owner';
  /** The path prefix not checked (`from=`); undefined checks every component. */
  readonly from: Template | undefined;
}

/** `open_file_cache max=N [inactive=time]`; undefined for `off`. */
export interface OpenFileCacheValue {
  readonly max: number;
  /** Seconds, as nginx counts them. */
  readonly inactive: number;
}

/** `aio off | on | threads[=pool]`: whether file system calls run on the thread pool. */
export type Aio = 'off' | 'on' | 'threads';

/** A tuning directive hitless accepts but cannot apply, with what it does instead (said at -t). */
export interface NoEffect {
  readonly reason: string;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    root: DocumentRoot;
    alias: DocumentRoot | undefined;
    index: readonly Template[];
    autoindex: boolean;
    autoindex_exact_size: boolean;
    autoindex_format: AutoindexFormat;
    autoindex_localtime: boolean;
    try_files: readonly Template[] | undefined;
    etag: boolean;
    if_modified_since: IfModifiedSince;
    max_ranges: number | undefined;
    internal: boolean;
    log_not_found: boolean;
    disable_symlinks: DisableSymlinks;
    absolute_redirect: boolean;
    port_in_redirect: boolean;
    server_name_in_redirect: boolean;
    open_file_cache: OpenFileCacheValue | undefined;
    open_file_cache_valid: number;
    open_file_cache_min_uses: number;
    open_file_cache_errors: boolean;
    sendfile: NoEffect | undefined;
    tcp_nopush: NoEffect | undefined;
    directio: NoEffect | undefined;
    aio: Aio;
    output_buffers: NoEffect | undefined;
  }
}

const LEVELS: readonly Context[] = ['http', 'server', 'location'];
const LEVELS_IF: readonly Context[] = ['http', 'server', 'location', 'location_if'];

/** `ngx_http_core_root()`: `root` and `alias` share one slot, so a block has one or the other. */
function parseRoot(alias: boolean) {
  return (args: readonly string[], ctx: DirectiveContext): DocumentRoot => {
    const [path = ''] = args;
    const name = alias ? 'alias' : 'root';
    const location = ctx.enclosing?.name === 'location' ? (ctx.enclosing.value as LocationMatch) : undefined;
    if (alias && location?.kind === 'named') ctx.fail('the "alias" directive cannot be used inside the named location');
    for (const banned of ['document_root', 'realpath_root']) {
      if (path.includes(`$${banned}`) || path.includes(`\${${banned}}`)) ctx.fail(`the $${banned} variable cannot be used in the "${name}" directive`);
    }
    // nginx drops a root's trailing slash (an alias keeps it, the URI's rest is appended as is).
    const text = !alias && path.length > 1 && path.endsWith('/') ? path.slice(0, -1) : path;
    // ngx_conf_full_name(): a relative path is relative to the prefix, unless it starts with a variable.
    const full = text.startsWith('/') || text.startsWith('$') ? text : `${ctx.prefix}${text}`;
    return { alias, path: parseValue(full, ctx), file: ctx.location.file, line: ctx.location.line };
  };
}

function noEffect(reason: string) {
  return (_args: readonly string[], ctx: DirectiveContext): NoEffect => {
    ctx.noEffect(reason);
    return { reason, file: ctx.location.file, line: ctx.location.line };
  };
}

/** A tuning knob: checked as nginx checks it, then kept only to be reported at -t. */
function knob(name: NoEffectName, contexts: readonly Context[], args: AnyDirectiveSpec['args'], syntax: string, defaultText: string, reason: string, check?: (args: readonly string[], ctx: DirectiveContext) => void): AnyDirectiveSpec {
  return defineDirective({
    kind: 'value',
    name,
    contexts,
    args,
    syntax,
    summary: `Accepted for nginx compatibility; in hitless: ${reason}.`,
    defaultText,
    parse: (values, ctx) => {
      check?.(values, ctx);
      return noEffect(reason)(values, ctx);
    },
  });
}

/** The directives whose value is a {@link NoEffect}. */
export const NO_EFFECT_DIRECTIVES = ['sendfile', 'tcp_nopush', 'directio', 'output_buffers'] as const;

type NoEffectName = (typeof NO_EFFECT_DIRECTIVES)[number];

/** ngx_http_core_open_file_cache(). */
function parseOpenFileCache(args: readonly string[], ctx: DirectiveContext): OpenFileCacheValue | undefined {
  let max = 0;
  let inactive = 60;
  let off = false;
  for (const arg of args) {
    if (arg.startsWith('max=')) {
      max = parseNumber(arg.slice(4)) ?? 0;
      if (max > 0) continue;
    } else if (arg.startsWith('inactive=')) {
      const ms = parseTime(arg.slice(9), { seconds: true });
      if (ms !== undefined) {
        inactive = ms / 1000;
        continue;
      }
    } else if (arg === 'off') {
      off = true;
      continue;
    }
    ctx.fail(`invalid "open_file_cache" parameter "${arg}"`);
  }
  if (off) return undefined;
  if (max === 0) ctx.fail('"open_file_cache" must have the "max" parameter');
  return { max, inactive };
}

function parseDisableSymlinks(args: readonly string[], ctx: DirectiveContext): DisableSymlinks {
  let mode: DisableSymlinks['mode'] | undefined;
  let from: Template | undefined;
  for (const arg of args) {
    if (arg === 'off' || arg === 'on' || arg === 'if_not_owner') {
      if (mode !== undefined) ctx.fail(`invalid parameter "${arg}"`);
      mode = arg;
      continue;
    }
    if (arg.startsWith('from=')) {
      const value = arg.slice(5);
      if (value === 'off') continue;
      from = parseValue(value, ctx);
      continue;
    }
    ctx.fail(`invalid parameter "${arg}"`);
  }
  if (mode === undefined) ctx.fail('"disable_symlinks" directive has no mode');
  if (mode === 'off' && from !== undefined) ctx.fail('duplicate parameters "off" and "from="');
  return { mode, from };
}

/** `autoindex` and its settings (ngx_http_autoindex_module, reported by -V as built in). */
export const httpAutoindexModule: ConfModule = {
  name: 'ngx_http_autoindex_module',
  directives: [
    flagDirective('autoindex', 'Lists a directory whose URI ends in "/" when no index file is found.', false, LEVELS),
    flagDirective('autoindex_exact_size', 'The HTML listing shows sizes in bytes (on) or rounded to K, M, G (off).', true, LEVELS),
    defineDirective({
      kind: 'value', name: 'autoindex_format', contexts: LEVELS, args: [1], syntax: 'html | xml | json | jsonp;',
      summary: 'The format of the directory listing; jsonp takes the callback from the "callback" argument.',
      default: () => 'html', defaultText: 'autoindex_format html;',
      parse: ([value = ''], ctx) => {
        if (value === 'html' || value === 'xml' || value === 'json' || value === 'jsonp') return value;
        return ctx.fail(`invalid value "${value}" in "autoindex_format" directive, it must be "html" or "json" or "jsonp" or "xml"`);
      },
    }),
    flagDirective('autoindex_localtime', 'The HTML listing shows times in the local time zone (on) or UTC (off).', false, LEVELS),
  ],
};

/** The static file directives. */
export const httpStaticModule: ConfModule = {
  name: 'ngx_http_static_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'root',
      contexts: LEVELS_IF,
      args: [1],
      syntax: 'path;',
      summary: 'The directory files are served from: the file is root followed by the URI (variables allowed, relative to the prefix).',
      default: (ctx) => ({ alias: false, path: { source: `${ctx.prefix}html`, parts: [{ kind: 'text', text: `${ctx.prefix}html` }] }, file: '', line: 0 }),
      defaultText: 'root html;',
      parse: parseRoot(false),
    }),
    defineDirective({
      kind: 'value',
      name: 'alias',
      contexts: ['location'],
      args: [1],
      syntax: 'path;',
      summary: 'Replaces the location\'s prefix with path to find the file; in a regex location, the whole file name (use captures).',
      defaultText: '—',
      parse: parseRoot(true),
    }),
    defineDirective({
      kind: 'value',
      name: 'index',
      contexts: LEVELS,
      args: '1+',
      repeatable: true,
      syntax: 'file ...;',
      summary: 'For a URI ending in "/", the files tried in order; the first found is served by an internal redirect to its URI (variables allowed; the last may be absolute).',
      default: () => [{ source: 'index.html', parts: [{ kind: 'text', text: 'index.html' }] }],
      defaultText: 'index index.html;',
      parse: (args, ctx, previous) => {
        const list = args.map((arg) => {
          if (arg === '') ctx.fail('index "" in "index" directive is invalid');
          return parseValue(arg, ctx);
        });
        return [...(previous ?? []), ...list];
      },
    }),
    defineDirective({
      kind: 'value', name: 'try_files', contexts: ['server', 'location'], args: '2+', syntax: 'file ... uri; | file ... =code;', inherit: false,
      summary: 'Serves the first file (or "dir/") that exists; else an internal redirect to the last argument, a URI, @named location or =code.',
      defaultText: '—',
      parse: (args, ctx) => {
        const last = args[args.length - 1] ?? '';
        if (last.startsWith('=')) {
          const code = parseNumber(last.slice(1));
          if (code === undefined || code > 999) ctx.fail(`invalid code "${last}"`);
        }
        return args.map((arg) => parseValue(arg, ctx));
      },
    }),
    flagDirective('etag', 'Static responses carry an ETag: the modification time and size in hex.', true, LEVELS),
    defineDirective({
      kind: 'value', name: 'if_modified_since', contexts: LEVELS, args: [1], syntax: 'off | exact | before;',
      summary: 'How If-Modified-Since is compared with the modification time: not at all, equal, or not older.',
      default: () => 'exact', defaultText: 'if_modified_since exact;',
      parse: ([value = ''], ctx) => {
        if (value === 'off' || value === 'exact' || value === 'before') return value;
        return ctx.fail(`invalid value "${value}" in "if_modified_since" directive, it must be "off" or "exact" or "before"`);
      },
    }),
    defineDirective({
      kind: 'value', name: 'max_ranges', contexts: LEVELS, args: [1], syntax: 'number;',
      summary: 'The most byte ranges a request may ask for; more are answered with the whole file; 0 turns ranges off.',
      defaultText: '—',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('invalid number'),
    }),
    defineDirective({
      kind: 'value', name: 'internal', contexts: ['location'], args: [0], syntax: '',
      summary: 'The location serves only internal redirects (error_page, index, try_files); a client request gets 404.',
      inherit: false, default: () => false, defaultText: '—', parse: () => true,
    }),
    flagDirective('log_not_found', 'A missing file is logged at error level.', true, LEVELS),
    defineDirective({
      kind: 'value', name: 'disable_symlinks', contexts: LEVELS, args: [1, 2], syntax: 'off; | on | if_not_owner [from=part];',
      summary: 'Refuses (403) a file whose path has a symbolic link (on), or one owned by another user than its target (if_not_owner), after the from= prefix.',
      default: () => ({ mode: 'off', from: undefined }), defaultText: 'disable_symlinks off;', parse: parseDisableSymlinks,
    }),
    flagDirective('absolute_redirect', 'Redirects nginx makes itself (a directory without "/", return) carry scheme, host and port (on) or only the path (off).', true, LEVELS),
    flagDirective('port_in_redirect', 'An absolute redirect names the port the request arrived on.', true, LEVELS),
    flagDirective('server_name_in_redirect', 'An absolute redirect names the server\'s primary name (on) or the request\'s Host (off).', false, LEVELS),
    flagDirective('tcp_nodelay', 'TCP_NODELAY on client connections (hitless sets it when a connection is accepted); off turns it off again for responses of the level.', true, LEVELS),
    defineDirective({
      kind: 'value', name: 'open_file_cache', contexts: LEVELS, args: [1, 2], syntax: 'off; | max=N [inactive=time];',
      summary: 'Caches open descriptors and their fstat(), per path, for the level and those inheriting it: at most max entries, each dropped after inactive (60s) unused.',
      default: () => undefined, defaultText: 'open_file_cache off;', parse: parseOpenFileCache,
    }),
    defineDirective({
      kind: 'value', name: 'open_file_cache_valid', contexts: LEVELS, args: [1], syntax: 'time;',
      summary: 'How long a cached entry is trusted before a stat() revalidates it (the same inode keeps its descriptor).',
      default: () => 60, defaultText: 'open_file_cache_valid 60s;',
      parse: ([value = ''], ctx) => {
        const ms = parseTime(value, { seconds: true });
        return ms === undefined ? ctx.fail('invalid value') : ms / 1000;
      },
    }),
    defineDirective({
      kind: 'value', name: 'open_file_cache_min_uses', contexts: LEVELS, args: [1], syntax: 'number;',
      summary: 'The uses within inactive after which a cached descriptor stays open between requests.',
      default: () => 1, defaultText: 'open_file_cache_min_uses 1;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('invalid number'),
    }),
    flagDirective('open_file_cache_errors', 'File lookup errors (not found, forbidden) are cached as descriptors are.', false, LEVELS),
    defineDirective({
      kind: 'value', name: 'aio', contexts: LEVELS, args: [1], syntax: 'on | off | threads[=pool];',
      summary: 'off: open, stat and the read of a file up to 64 KiB are made on the event loop, as nginx makes them, and a larger file is read in 64 KiB chunks on the thread pool so that one copy does not hold up other responses; on and threads: all of them on Node\'s one libuv thread pool (a threads=pool name is not kept: Node has one pool).',
      default: () => 'off', defaultText: 'aio off;',
      parse: ([value = ''], ctx) => {
        if (value === 'off' || value === 'on' || value === 'threads') return value;
        if (value.startsWith('threads=')) {
          ctx.warn(`the thread pool "${value.slice(8)}" of "aio" is Node's one libuv thread pool in hitless`);
          return 'threads';
        }
        return ctx.fail(`invalid value "${value}" in "aio" directive, it must be "on" or "off" or "threads"`);
      },
    }),
    knob('sendfile', [...LEVELS_IF], 'flag', 'on | off;', 'sendfile off;', 'Node has no sendfile(2); files are read into buffers and written with back-pressure'),
    knob('tcp_nopush', LEVELS, 'flag', 'on | off;', 'tcp_nopush off;', 'Node cannot set TCP_CORK; a response head and a small body leave in one write instead, and so do a chunked head, the pieces written in one tick and the last chunk'),
    knob('directio', LEVELS, [1], 'size | off;', 'directio off;', 'Node cannot open files with O_DIRECT; reads go through the page cache', (args, ctx) => {
      if (args[0] !== 'off' && parseSize(args[0] ?? '') === undefined) ctx.fail('invalid value');
    }),
    knob('output_buffers', LEVELS, [2], 'number size;', 'output_buffers 2 32k;', 'a file up to 64 KiB is read at once, a larger one in 64 KiB chunks, one at a time per response', (args, ctx) => {
      if (parseNumber(args[0] ?? '') === undefined || parseSize(args[1] ?? '') === undefined) ctx.fail('invalid value');
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const templates: Template[] = [];
    for (const block of blocksOf(http)) {
      checkRootAlias(block);
      if (block.isSet('root')) templates.push(block.get('root').path);
      const alias = block.isSet('alias') ? block.get('alias') : undefined;
      if (alias !== undefined) templates.push(alias.path);
      if (block.isSet('index')) templates.push(...block.get('index'));
      const tryFiles = block.isSet('try_files') ? block.get('try_files') : undefined;
      if (tryFiles !== undefined) templates.push(...tryFiles);
      const from = block.get('disable_symlinks').from;
      if (from !== undefined) templates.push(from);
    }
    checkVariables(http, templates);
  },
};

/** `ngx_http_core_root()`'s duplicate rules, and `alias` in a regex location needing captures. */
function checkRootAlias(block: ConfBlockView): void {
  const alias = block.isSet('alias') ? block.get('alias') : undefined;
  if (alias === undefined) return;
  if (block.isSet('root')) {
    const root = block.get('root');
    const later = root.line > alias.line ? root : alias;
    const name = later === root ? 'root' : 'alias';
    const earlier = later === root ? 'alias' : 'root';
    throw new ConfigError(`"${name}" directive is duplicate, "${earlier}" directive was specified earlier`, later);
  }
}

/** The effective `root` or `alias` of a block: its own, else the nearest enclosing block's (they share nginx's one slot). */
export function documentRootOf(block: ConfBlockView): DocumentRoot {
  for (let b: ConfBlockView | undefined = block; b !== undefined; b = b.parent) {
    if (b.isSet('alias')) return b.get('alias') as DocumentRoot;
    if (b.isSet('root')) return b.get('root');
    if (b.name === 'http') break;
  }
  return block.get('root');
}

/** The location whose name an `alias` replaces: the block where the alias is written. */
export function aliasLocationOf(block: ConfBlockView): LocationMatch | undefined {
  for (let b: ConfBlockView | undefined = block; b !== undefined; b = b.parent) {
    if (b.isSet('alias')) return b.value as LocationMatch;
    if (b.isSet('root')) return undefined;
  }
  return undefined;
}


