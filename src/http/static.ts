/**
 * The content phase for files, in nginx's order: `try_files` (its own phase), then the index
 * module (a URI ending in "/"), autoindex, and the static module; with nginx's answers for each
 * failure (404 and `log_not_found`, 403 for EACCES and refused symlinks, 301 to add the slash of
 * a directory, 405 for other methods) and the header filters that apply to a file: not modified
 * (304, 412) and ranges (206, 416). Bodies stream from the file with back-pressure, so a large file
 * costs one chunk of memory at a time.
 */
import { connectionStats } from '../core/connection-stats.js';
import { stubStatusBody } from './stub-status-module.js';
import { localMetricsSource, type MetricsSource } from './metrics-module.js';
import { EXPOSITION_CONTENT_TYPES, formatOfAccept } from '../admin/exposition.js';
import { lstat, opendir, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { ErrorLog } from '../core/log.js';
import { formatSyscallError } from '../core/errors.js';
import { compileTemplate, parseTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import { jsonpCallback, renderAutoindex, sortEntries, type AutoindexEntry, type AutoindexSettings } from './autoindex.js';
import type { HttpExchange } from './exchange.js';
import { contentTypeOf, type MimeTypes } from './mime-types-module.js';
import { checkSymlinks, openFile, pathBytes as bytes, readAt, statPath, type OpenedFile, type OpenSettings } from './open-file.js';
import type { OpenFileCache, OpenFileCacheUse, OpenFileCaches } from './open-file-cache.js';
import { conditionalStatus } from './not-modified-filter.js';
import { ifRangeMatches, multipartOf, parseRange, type ByteRange } from './range-filter.js';
import type { HttpRequest } from './request.js';
import { FilteredExchange, headerOf } from './output-filter.js';
import { brotliPrecompressed, brotliStaticOf } from './brotli-static.js';
import { gzipStaticOf, precompressed, type GzipStatic } from './gzip-static.js';
import { aliasLocationOf, documentRootOf, type DisableSymlinks, type IfModifiedSince } from './static-module.js';
import { toByteString } from '../core/byte-string.js';
import { findArg } from './variables.js';

/** A level's file settings, compiled once per generation. */
export interface CompiledStatic {
  /** `gzip_static`; undefined when off. */
  readonly gzipStatic: GzipStatic | undefined;
  /** ngx_brotli's `brotli_static`; undefined when off. */
  readonly brotliStatic: 'on' | 'always' | undefined;
  readonly root: CompiledTemplate<HttpRequest>;
  /** The length of the location name an `alias` replaces; `'regex'` when the alias is the whole name; undefined for `root`. */
  readonly alias: number | 'regex' | undefined;
  readonly index: readonly CompiledTemplate<HttpRequest>[];
  readonly autoindex: AutoindexSettings | undefined;
  /** `stub_status`: the level answers with the connection counters (stub-status-module.ts). */
  readonly stubStatus: boolean;
  /** `hitless_metrics`: the level answers with the metrics from this source (metrics-module.ts); undefined when off. */
  readonly metrics: MetricsSource | undefined;
  /** `try_files`: each item, and whether it tests a directory (written with a final "/", which is dropped). */
  readonly tryFiles: readonly { readonly name: CompiledTemplate<HttpRequest>; readonly dir: boolean }[] | undefined;
  readonly types: MimeTypes;
  readonly defaultType: string;
  readonly etag: boolean;
  readonly ifModifiedSince: IfModifiedSince;
  readonly maxRanges: number | undefined;
  readonly internal: boolean;
  readonly logNotFound: boolean;
  readonly symlinks: DisableSymlinks['mode'];
  readonly symlinksFrom: CompiledTemplate<HttpRequest> | undefined;
  /** `aio on | threads`: file system calls on the thread pool rather than the event loop. */
  readonly threads: boolean;
  /** The level's `open_file_cache`, if any, and how the level uses it. */
  readonly openFileCache: OpenFileCache | undefined;
  readonly openFileCacheUse: OpenFileCacheUse;
  /** `$document_root` and `$request_filename` of a request this level answers. */
  readonly paths: (request: HttpRequest) => { root: string; path: string };
}

/** Compiles a server's or location's file settings. */
export function compileStatic(block: ConfBlockView, table: VariableTable<HttpRequest>, caches: OpenFileCaches, metrics?: MetricsSource): CompiledStatic {
  const text = (template: Parameters<typeof compileTemplate>[0]): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const root = documentRootOf(block);
  const aliasOf = root.alias ? aliasLocationOf(block) : undefined;
  const symlinks = block.get('disable_symlinks');
  const tryFiles = block.isSet('try_files') ? block.get('try_files') : undefined;
  const cache = block.get('open_file_cache');
  const files: Omit<CompiledStatic, 'paths'> = {
    gzipStatic: gzipStaticOf(block),
    brotliStatic: brotliStaticOf(block),
    root: text(root.path),
    alias: aliasOf === undefined ? undefined : aliasOf.kind === 'regex' ? 'regex' : Buffer.byteLength(aliasOf.name),
    index: block.get('index').map(text),
    stubStatus: block.get('stub_status'),
    metrics: block.get('hitless_metrics') ? (metrics ?? localMetricsSource(undefined)) : undefined,
    autoindex: block.get('autoindex') ? { format: block.get('autoindex_format'), exactSize: block.get('autoindex_exact_size'), localtime: block.get('autoindex_localtime') } : undefined,
    // ngx_http_try_files(): an item but the last ending in "/" tests a directory, named without the "/".
    tryFiles: tryFiles?.map((item, i) => {
      const dir = i < tryFiles.length - 1 && item.source.endsWith('/');
      return { name: text(dir ? parseTemplate(item.source.slice(0, -1)) : item), dir };
    }),
    types: block.get('types'),
    defaultType: block.get('default_type'),
    etag: block.get('etag'),
    ifModifiedSince: block.get('if_modified_since'),
    maxRanges: block.get('max_ranges'),
    internal: block.name === 'location' && block.get('internal'),
    logNotFound: block.get('log_not_found'),
    symlinks: symlinks.mode,
    symlinksFrom: symlinks.from === undefined ? undefined : text(symlinks.from),
    threads: block.get('aio') !== 'off',
    openFileCache: cache === undefined ? undefined : caches.of(cache),
    openFileCacheUse: { valid: block.get('open_file_cache_valid'), minUses: block.get('open_file_cache_min_uses'), errors: block.get('open_file_cache_errors') },
  };
  return { ...files, paths: (request) => mapUriToPath(files, request) };
}

/** The file paths of a request: `$document_root` and `$request_filename` (ngx_http_map_uri_to_path()). */
export function mapUriToPath(files: Omit<CompiledStatic, 'paths'>, request: HttpRequest, uri = request.uri): { root: string; path: string } {
  const root = files.root(request);
  if (files.alias === 'regex') return { root, path: root };
  const alias = files.alias ?? 0;
  // An alias replaces the location's prefix; a URI not starting with it (rewritten) keeps its own.
  return { root, path: root + uri.slice(uri.length >= alias ? alias : 0) };
}

/** What the content phase decided, for the handler to carry out. */
export type StaticOutcome =
  | { readonly kind: 'sent' }
  | { readonly kind: 'status'; readonly status: number; readonly location?: string; readonly headers?: readonly string[] }
  | { readonly kind: 'redirect'; readonly uri: string; readonly args: string | undefined }
  | { readonly kind: 'named'; readonly name: string };

/** What the file handler needs from the request pipeline. */
export interface StaticContext {
  readonly request: HttpRequest;
  readonly exchange: HttpExchange;
  readonly files: CompiledStatic;
  readonly log: ErrorLog;
  readonly connection: number;
  /** `, client: ..., server: ...` for error log lines. */
  where(): string;
  /** The header filter: the level's keep-alive and add_header for this status, added to `headers`. */
  headers(status: number, headers: string[]): void;
  /** `absolute_redirect` and friends applied to a path (`/dir/`). */
  redirectLocation(path: string): string;
  /** nginx's temp number, for the multipart boundary. */
  nextBoundary(): number;
  /** An output filter (gzip) will re-encode a 200 with these headers and length, which clears ranges (ngx_http_clear_accept_ranges()). */
  encodes?(headers: readonly string[], size: number): boolean;
}

/**
 * ngx_escape_uri(NGX_ESCAPE_URI) of current nginx, for the redirects nginx makes itself: controls,
 * space, `"#%<>?\^\`{|}`, DEL and bytes above it (RFC 3986 section 2; nginx 1.22 left `"<>\^\`{|}` as they were).
 */
export function escapeRedirectUri(path: string): string {
  return path.replace(/[\x00-\x20"#%<>?\\^`{|}\x7f-\xff]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

const NOT_FOUND_CODES = new Set(['ENOENT', 'ENOTDIR', 'ENAMETOOLONG']);

function errCode(err: unknown): string {
  return err instanceof Error && 'code' in err && typeof err.code === 'string' ? err.code : '';
}

/** How this request's files are opened: the level's disable_symlinks (from= evaluated) and aio. */
function openSettings(ctx: StaticContext): OpenSettings {
  const { files } = ctx;
  return { symlinks: files.symlinks, from: files.symlinksFrom?.(ctx.request) ?? '', threads: files.threads };
}

function statChecked(ctx: StaticContext, path: string): Promise<Stats> {
  return statPath(path, openSettings(ctx));
}

/**
 * Only the try_files phase (ngx_http_core_try_files_phase()), for a location whose content
 * handler is not static (fastcgi_pass): undefined when the request goes on to that handler, with
 * the URI of the file found.
 */
export function runTryFiles(ctx: StaticContext): Promise<StaticOutcome | undefined> {
  return ctx.files.tryFiles === undefined ? Promise.resolve(undefined) : tryFiles(ctx, ctx.files.tryFiles);
}

/** Runs try_files, index, autoindex and static for a request whose location serves files. */
export async function serveFiles(ctx: StaticContext): Promise<StaticOutcome> {
  const { files } = ctx;
  if (files.tryFiles !== undefined) {
    const outcome = await tryFiles(ctx, files.tryFiles);
    if (outcome !== undefined) return outcome;
  }
  return contentPhase(ctx);
}

async function contentPhase(ctx: StaticContext): Promise<StaticOutcome> {
  const { files, request } = ctx;
  if (files.stubStatus) return stubStatus(ctx);
  if (files.metrics !== undefined) return metricsPage(ctx, files.metrics);
  if (request.uri.endsWith('/')) {
    const index = await indexPhase(ctx);
    if (index !== undefined) return index;
    if (files.autoindex !== undefined && (request.method === 'GET' || request.method === 'HEAD')) return autoindex(ctx, files.autoindex);
    // ngx_http_static_handler() refuses other methods before it declines a directory URI.
    if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'POST') return { kind: 'status', status: 405 };
    // ngx_http_core_content_phase(): no module took a directory URI.
    ctx.log.error(`directory index of "${mapUriToPath(files, request).path}" is forbidden${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 403 };
  }
  return staticFile(ctx);
}

/** ngx_http_core_try_files_phase(). */
async function tryFiles(ctx: StaticContext, list: NonNullable<CompiledStatic['tryFiles']>): Promise<StaticOutcome | undefined> {
  const { request, files } = ctx;
  for (let i = 0; i < list.length - 1; i++) {
    const item = list[i] as (typeof list)[number];
    const name = item.name(request);
    const wantDir = item.dir;
    const root = files.root(request);
    const alias = files.alias;
    // An alias replaces the location's prefix when the name starts with it; a regex location's alias is followed by the name.
    const prefix = typeof alias === 'number' ? request.uri.slice(0, alias) : '';
    const strip = typeof alias === 'number' && name.startsWith(prefix);
    const path = root + (strip ? name.slice(alias) : name);
    try {
      const info = await statChecked(ctx, path);
      if (wantDir !== info.isDirectory()) continue;
    } catch {
      continue;
    }
    if (alias === 'regex') {
      if (!wantDir) return fileContent(ctx, path, name);
      return undefined;
    }
    request.uri = strip ? name : typeof alias === 'number' ? prefix + name : name;
    return undefined;
  }
  const last = (list[list.length - 1] as (typeof list)[number]).name(request);
  if (last.startsWith('=')) return { kind: 'status', status: Number(last.slice(1)) };
  if (last.startsWith('@')) return { kind: 'named', name: last };
  const question = last.indexOf('?');
  return question === -1 ? { kind: 'redirect', uri: last, args: undefined } : { kind: 'redirect', uri: last.slice(0, question), args: last.slice(question + 1) };
}

/** A regex location's alias with a try_files name found (nginx's add_uri_to_alias): the file is alias + name. */
function fileContent(ctx: StaticContext, path: string, name: string): Promise<StaticOutcome> {
  ctx.request.uri = name;
  if (name.endsWith('/')) return contentPhase(ctx);
  return staticFile(ctx, path);
}

/** ngx_http_index_handler(): the first index file found is served by an internal redirect. */
async function indexPhase(ctx: StaticContext): Promise<StaticOutcome | undefined> {
  const { request, files } = ctx;
  if (request.method !== 'GET' && request.method !== 'HEAD' && request.method !== 'POST') return undefined;
  let dirTested = false;
  for (let i = 0; i < files.index.length; i++) {
    const name = (files.index[i] as CompiledTemplate<HttpRequest>)(request);
    const absolute = name.startsWith('/');
    if (absolute && i === files.index.length - 1) return { kind: 'redirect', uri: name, args: undefined };
    const uri = absolute ? name : request.uri + name;
    const path = absolute ? mapUriToPath(files, request, name).path : mapUriToPath(files, request).path + name;
    try {
      await statChecked(ctx, path);
      return { kind: 'redirect', uri, args: undefined };
    } catch (err) {
      const code = errCode(err);
      if (code === 'ELOOP') return { kind: 'status', status: 403 };
      if (code === 'ENOTDIR' || code === 'ENAMETOOLONG' || code === 'EACCES') return indexError(ctx, path, err);
      if (!dirTested) {
        dirTested = true;
        const dir = path.slice(0, path.length - name.length);
        try {
          const info = await statChecked(ctx, dir);
          if (!info.isDirectory()) {
            ctx.log.write('alert', `"${dir}" is not a directory${ctx.where()}`, ctx.connection);
            return { kind: 'status', status: 500 };
          }
        } catch (dirErr) {
          const dirCode = errCode(dirErr);
          if (dirCode === 'ELOOP') return { kind: 'status', status: 403 };
          if (dirCode === 'ENOENT' || dirCode === 'ENOTDIR') return indexError(ctx, path, dirErr);
          if (dirCode !== 'EACCES') return fileError(ctx, 'stat', dir, dirErr);
        }
      }
      if (code === 'ENOENT') continue;
      return fileError(ctx, 'stat', path, err);
    }
  }
  return undefined;
}

/** ngx_http_index_error(). */
function indexError(ctx: StaticContext, path: string, err: unknown): StaticOutcome {
  const detail = formatSyscallError('x', undefined, err).replace(/^x\(\) failed /, '');
  if (errCode(err) === 'EACCES') {
    ctx.log.error(`"${path}" is forbidden ${detail}${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 403 };
  }
  if (ctx.files.logNotFound) ctx.log.error(`"${path}" is not found ${detail}${ctx.where()}`, ctx.connection);
  return { kind: 'status', status: 404 };
}

/** The answer to a failed open() as ngx_http_static_handler() gives it. */
function fileError(ctx: StaticContext, call: string, path: string, err: unknown): StaticOutcome {
  const code = errCode(err);
  if (NOT_FOUND_CODES.has(code)) {
    if (ctx.files.logNotFound) ctx.log.error(`${formatSyscallError(call, path, err)}${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 404 };
  }
  if (code === 'EACCES' || code === 'ELOOP' || code === 'EMLINK') {
    ctx.log.error(`${formatSyscallError(call, path, err)}${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 403 };
  }
  ctx.log.write('crit', `${formatSyscallError(call, path, err)}${ctx.where()}`, ctx.connection);
  return { kind: 'status', status: 500 };
}

/** ngx_http_autoindex_handler(). */
async function autoindex(ctx: StaticContext, settings: AutoindexSettings): Promise<StaticOutcome> {
  const { request, exchange } = ctx;
  let callback = '';
  if (settings.format === 'jsonp') {
    const value = jsonpCallback(request.args, findArg);
    if (value === undefined) {
      ctx.log.info(`client sent invalid callback name: "${findArg(request.args, 'callback') ?? ''}"${ctx.where()}`, ctx.connection);
      return { kind: 'status', status: 400 };
    }
    callback = value;
  }
  const { path: full } = mapUriToPath(ctx.files, request);
  const path = full.length > 1 ? full.slice(0, -1) : full;
  const entries: AutoindexEntry[] = [];
  try {
    await checkSymlinks(path, openSettings(ctx));
    // latin1 gives the names' bytes as they are, as the rest of the request is kept.
    const dir = await opendir(bytes(path), { encoding: 'latin1' });
    for await (const dirent of dir) {
      const name = dirent.name;
      if (name.startsWith('.')) continue;
      let info: Stats;
      try {
        info = await stat(bytes(`${path}/${name}`));
      } catch (err) {
        const code = errCode(err);
        if (code !== 'ENOENT' && code !== 'ELOOP') {
          ctx.log.write('crit', `${formatSyscallError('stat', `${path}/${name}`, err)}${ctx.where()}`, ctx.connection);
          if (code === 'EACCES') continue;
          return { kind: 'status', status: 500 };
        }
        info = await lstat(bytes(`${path}/${name}`));
      }
      entries.push({ name, dir: info.isDirectory(), file: info.isFile(), mtime: Math.floor(info.mtimeMs / 1000), size: info.size });
    }
  } catch (err) {
    return fileError(ctx, 'opendir', path, err);
  }
  const type = settings.format === 'json' || (settings.format === 'jsonp' && callback === '') ? 'application/json' : settings.format === 'jsonp' ? 'application/javascript' : settings.format === 'xml' ? 'text/xml; charset=utf-8' : 'text/html';
  const headers = ['Content-Type', type];
  ctx.headers(200, headers);
  request.status = 200;
  // nginx sends the listing without a Content-Length (its header goes out before the body is built),
  // and counts names in characters when the charset filter made it utf-8.
  exchange.writeHead(200, headers, 'chunked');
  const sent = exchange instanceof FilteredExchange ? headerOf(exchange.sentHeaders ?? headers, 'content-type') : type;
  const utf8 = /;\s*charset=utf-8$/i.test(sent ?? '');
  exchange.end(Buffer.from(renderAutoindex(request.uri, sortEntries(entries), settings, callback, utf8), 'latin1'));
  return { kind: 'sent' };
}

/** ngx_http_stub_status_handler(): GET and HEAD only; text/plain with a Content-Length, no Last-Modified or ETag. */
async function stubStatus(ctx: StaticContext): Promise<StaticOutcome> {
  const { request, exchange } = ctx;
  if (request.method !== 'GET' && request.method !== 'HEAD') return { kind: 'status', status: 405 };
  const body = Buffer.from(stubStatusBody(await connectionStats.total()), 'latin1');
  if (exchange.aborted) return { kind: 'sent' };
  const headers = ['Content-Type', 'text/plain'];
  ctx.headers(200, headers);
  request.status = 200;
  exchange.writeHead(200, headers, body.length);
  exchange.end(request.method === 'HEAD' ? undefined : body);
  return { kind: 'sent' };
}

/** `hitless_metrics`: as stub_status, GET and HEAD only, the exposition format the Accept header asks for. */
async function metricsPage(ctx: StaticContext, source: MetricsSource): Promise<StaticOutcome> {
  const { request, exchange } = ctx;
  if (request.method !== 'GET' && request.method !== 'HEAD') return { kind: 'status', status: 405 };
  const format = formatOfAccept(request.header('accept'));
  let text: string;
  try {
    text = await source(format);
  } catch (err) {
    ctx.log.error(`hitless_metrics failed: ${err instanceof Error ? err.message : String(err)}${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 500 };
  }
  const body = Buffer.from(text, 'utf8');
  if (exchange.aborted) return { kind: 'sent' };
  const headers = ['Content-Type', EXPOSITION_CONTENT_TYPES[format]];
  ctx.headers(200, headers);
  request.status = 200;
  exchange.writeHead(200, headers, body.length);
  exchange.end(request.method === 'HEAD' ? undefined : body);
  return { kind: 'sent' };
}

/** ngx_http_static_handler() and the header filters of a file response. */
async function staticFile(ctx: StaticContext, file?: string): Promise<StaticOutcome> {
  const { request, files, exchange } = ctx;
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return { kind: 'status', status: 405 };
  const path = file ?? mapUriToPath(files, request).path;
  let handle: OpenedFile;
  const settings = openSettings(ctx);
  // brotli_static (brotli-static.ts), then gzip_static (gzip-static.ts), as their content handlers precede the static one.
  const br = files.brotliStatic === undefined ? undefined : await brotliPrecompressed(files.brotliStatic, request, path, settings);
  const gz = br !== undefined || files.gzipStatic === undefined ? undefined : await precompressed(files.gzipStatic, request, path, settings);
  const encoded: string[] = [];
  // r->gzip_vary: the Vary header is the header filter's (varyFilter), for this response or an error page.
  if (gz?.vary === true) request.gzipVary = true;
  if (br !== undefined) {
    handle = br;
    encoded.push('Content-Encoding', 'br');
  } else if (gz?.file !== undefined) {
    handle = gz.file;
    encoded.push('Content-Encoding', 'gzip');
  } else {
    try {
      handle = await (files.openFileCache === undefined ? openFile(path, settings) : files.openFileCache.open(path, settings, files.openFileCacheUse));
    } catch (err) {
      return fileError(ctx, err instanceof Error && 'syscall' in err && err.syscall === 'fstat' ? 'fstat' : 'open', path, err);
    }
  }
  const info = handle.info;
  if (info.isDirectory()) {
    handle.release();
    // ngx_http_static_handler(): the URI escaped (NGX_ESCAPE_URI), a "/", and the arguments.
    const location = `${escapeRedirectUri(request.uri)}/${request.hasArgs && request.args !== '' ? `?${request.args}` : ''}`;
    return { kind: 'status', status: 301, location: ctx.redirectLocation(location) };
  }
  if (!info.isFile()) {
    handle.release();
    ctx.log.write('crit', `"${path}" is not a regular file${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 404 };
  }
  if (method === 'POST') {
    handle.release();
    return { kind: 'status', status: 405 };
  }
  if (exchange.aborted) {
    handle.release();
    return { kind: 'sent' };
  }
  const size = info.size;
  const mtime = Math.floor(info.mtimeMs / 1000);
  // ngx_http_set_etag(): "%xT-%xO", the modification time and size in hex.
  const etag = files.etag ? `"${mtime.toString(16)}-${size.toString(16)}"` : undefined;
  const lastModified = new Date(mtime * 1000).toUTCString();
  // ngx_http_not_modified_header_filter() judges 200 responses only, not an error page's.
  const conditional = request.statusOverride === undefined ? conditionalStatus((name) => request.header(name), etag, mtime, files.ifModifiedSince) : 200;
  if (conditional === 412) {
    handle.release();
    return { kind: 'status', status: 412 };
  }
  const contentType = contentTypeOf(request.uri, files.types, files.defaultType);
  if (conditional === 304) {
    handle.release();
    const headers = ['Last-Modified', lastModified];
    if (etag !== undefined) headers.push('ETag', etag);
    headers.push(...encoded);
    ctx.headers(304, headers);
    request.status = 304;
    exchange.writeHead(304, headers, 0);
    exchange.end();
    return { kind: 'sent' };
  }
  let ranges: readonly ByteRange[] | undefined;
  const rangeHeader = request.header('range');
  const rangesAllowed = files.maxRanges !== 0 && request.statusOverride === undefined && ctx.encodes?.(['Content-Type', contentType, ...encoded], size) !== true;
  if (rangesAllowed && rangeHeader !== undefined && rangeHeader.length >= 7 && rangeHeader.slice(0, 6).toLowerCase() === 'bytes=') {
    const ifRange = request.header('if-range');
    if (ifRange === undefined || ifRangeMatchesSent(ifRange, ctx, ['Content-Type', contentType, 'Last-Modified', lastModified, ...(etag === undefined ? [] : ['ETag', etag]), ...encoded])) {
      const decision = parseRange(rangeHeader, size, files.maxRanges);
      if (decision.kind === 'unsatisfiable') {
        handle.release();
        return { kind: 'status', status: 416, headers: ['Content-Range', `bytes */${size}`] };
      }
      if (decision.kind === 'ranges') ranges = decision.ranges;
    }
  }
  const status = request.statusOverride ?? (ranges === undefined ? 200 : 206);
  // ngx_http_header_filter(): no Last-Modified on a status but 200, 206 and 304 (an error_page's file).
  const headers = status === 200 || status === 206 ? ['Content-Type', contentType, 'Last-Modified', lastModified] : ['Content-Type', contentType];
  if (etag !== undefined) headers.push('ETag', etag);
  headers.push(...encoded);
  if (ranges === undefined) {
    if (rangesAllowed && status === 200) headers.push('Accept-Ranges', 'bytes');
    ctx.headers(status, headers);
    request.status = status;
    exchange.writeHead(status, headers, size, { fileTime: true });
    await sendParts(ctx, handle, [{ start: 0, end: size }], undefined);
    return { kind: 'sent' };
  }
  if (ranges.length === 1) {
    const range = ranges[0] as ByteRange;
    headers.push('Content-Range', `bytes ${range.start}-${range.end - 1}/${size}`);
    ctx.headers(206, headers);
    request.status = 206;
    exchange.writeHead(206, headers, range.end - range.start, { fileTime: true, rangedFrom: size });
    await sendParts(ctx, handle, ranges, undefined);
    return { kind: 'sent' };
  }
  const multipart = multipartOf(ranges, size, contentType, ctx.nextBoundary());
  headers[1] = multipart.contentType;
  ctx.headers(206, headers);
  request.status = 206;
  exchange.writeHead(206, headers, multipart.length, { fileTime: true, rangedFrom: size });
  await sendParts(ctx, handle, ranges, multipart);
  return { kind: 'sent' };
}

/** Files up to this size are read at once and leave with their head in one write. */
const SMALL_FILE = 64 * 1024;
/** The read size for larger files: one chunk per connection is in memory at a time. */
const CHUNK = 64 * 1024;

/** Sends the ranges of a file to the client, waiting for it to take each chunk; releases the file. */
async function sendParts(ctx: StaticContext, handle: OpenedFile, ranges: readonly ByteRange[], multipart: { headers: readonly string[]; trailer: string } | undefined): Promise<void> {
  const { exchange } = ctx;
  const threads = ctx.files.threads;
  // One abort listener for the response, made when it first waits: it wakes the wait in progress.
  let wake: ((ok: boolean) => void) | undefined;
  let listening = false;
  const drained = (): Promise<boolean> => new Promise((resolve) => {
    if (!listening) {
      listening = true;
      exchange.onAbort(() => wake?.(false));
    }
    wake = (ok) => {
      wake = undefined;
      resolve(ok);
    };
    exchange.onDrain(() => wake?.(true));
  });
  try {
    if (ctx.request.method === 'HEAD') {
      exchange.end();
      return;
    }
    for (let i = 0; i < ranges.length; i++) {
      const range = ranges[i] as ByteRange;
      if (multipart !== undefined) exchange.write(Buffer.from(multipart.headers[i] as string, 'latin1'));
      for (let position = range.start; position < range.end;) {
        const length = Math.min(range.end - position, range.end - range.start <= SMALL_FILE ? SMALL_FILE : CHUNK);
        const buffer = Buffer.allocUnsafe(length);
        // A small file is read on the event loop (aio off); the chunks of a large one on the thread
        // pool, so that the copy of one response does not hold up the others (measured: bench/static).
        const read = await readAt(handle.fd, buffer, 0, length, position, threads || length > SMALL_FILE || range.end - range.start > SMALL_FILE);
        if (read < length) throw new Error(`"${mapUriToPath(ctx.files, ctx.request).path}" was truncated while reading`);
        if (exchange.aborted) return;
        position += read;
        if (!exchange.write(buffer) && !(await drained())) return;
      }
    }
    if (multipart !== undefined) exchange.write(Buffer.from(multipart.trailer, 'latin1'));
    exchange.end();
  } catch (err) {
    ctx.log.write('crit', `${err instanceof Error ? err.message : String(err)}${ctx.where()}`, ctx.connection);
    exchange.connection.destroy();
  } finally {
    handle.release();
  }
}

/**
 * If-Range as ngx_http_range_parse() judges it, after the headers filter: against the ETag and
 * Last-Modified the response goes out with, so that `add_header Last-Modified` (or an empty one,
 * which no date matches) decides, as it does in nginx. `headers` are the 200's, before add_header.
 */
function ifRangeMatchesSent(ifRange: string, ctx: StaticContext, headers: string[]): boolean {
  ctx.headers(200, headers);
  const lastModified = headerOf(headers, 'last-modified');
  const time = lastModified === undefined ? Number.NaN : Date.parse(lastModified);
  return ifRangeMatches(ifRange, headerOf(headers, 'etag'), Number.isNaN(time) ? -1 : Math.floor(time / 1000));
}
