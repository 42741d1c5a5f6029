/**
 * The content phase for files, in nginx's order: `try_files` (its own phase), then the index
 * module (a URI ending in "/"), autoindex, and the static module; with nginx's answers for each
 * failure (404 and `log_not_found`, 403 for EACCES and refused symlinks, 301 to add the slash of
 * a directory, 405 for other methods) and the header filters that apply to a file: not modified
 * (304, 412) and ranges (206, 416). Bodies stream from the file with back-pressure, so a large file
 * costs one chunk of memory at a time.
 */
import { createReadStream } from 'node:fs';
import { lstat, open, opendir, stat, type FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import type { ErrorLog } from '../core/log.js';
import { formatSyscallError } from '../core/errors.js';
import { compileTemplate, parseTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import { jsonpCallback, renderAutoindex, sortEntries, type AutoindexEntry, type AutoindexSettings } from './autoindex.js';
import type { HttpExchange } from './exchange.js';
import { contentTypeOf, type MimeTypes } from './mime-types-module.js';
import { conditionalStatus } from './not-modified-filter.js';
import { ifRangeMatches, multipartOf, parseRange, type ByteRange } from './range-filter.js';
import type { HttpRequest } from './request.js';
import { gzipStaticOf, precompressed, type GzipStatic } from './gzip-static.js';
import { aliasLocationOf, documentRootOf, type DisableSymlinks, type IfModifiedSince } from './static-module.js';
import { toByteString } from '../core/byte-string.js';
import { findArg } from './variables.js';

/** A level's file settings, compiled once per generation. */
export interface CompiledStatic {
  /** `gzip_static`; undefined when off. */
  readonly gzipStatic: GzipStatic | undefined;
  readonly root: CompiledTemplate<HttpRequest>;
  /** The length of the location name an `alias` replaces; `'regex'` when the alias is the whole name; undefined for `root`. */
  readonly alias: number | 'regex' | undefined;
  readonly index: readonly CompiledTemplate<HttpRequest>[];
  readonly autoindex: AutoindexSettings | undefined;
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
  /** `$document_root` and `$request_filename` of a request this level answers. */
  readonly paths: (request: HttpRequest) => { root: string; path: string };
}

/** Compiles a server's or location's file settings. */
export function compileStatic(block: ConfBlockView, table: VariableTable<HttpRequest>): CompiledStatic {
  const text = (template: Parameters<typeof compileTemplate>[0]): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const root = documentRootOf(block);
  const aliasOf = root.alias ? aliasLocationOf(block) : undefined;
  const symlinks = block.get('disable_symlinks');
  const tryFiles = block.isSet('try_files') ? block.get('try_files') : undefined;
  const files: Omit<CompiledStatic, 'paths'> = {
    gzipStatic: gzipStaticOf(block),
    root: text(root.path),
    alias: aliasOf === undefined ? undefined : aliasOf.kind === 'regex' ? 'regex' : Buffer.byteLength(aliasOf.name),
    index: block.get('index').map(text),
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

function bytes(path: string): Buffer {
  return Buffer.from(path, 'latin1');
}

class SymlinkRefused extends Error {
  readonly code = 'ELOOP';
  readonly errno = 40;
}

/**
 * `disable_symlinks`: what ngx_open_file_wrapper() refuses with O_NOFOLLOW at each component after
 * `from=` (every component without it): a link (on), or a link owned by another user than its
 * target (if_not_owner).
 */
async function checkSymlinks(ctx: StaticContext, path: string): Promise<void> {
  const mode = ctx.files.symlinks;
  if (mode === 'off') return;
  const from = ctx.files.symlinksFrom?.(ctx.request) ?? '';
  let start = 1;
  if (from !== '' && path.startsWith(from)) start = from.length + 1;
  for (let i = start; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 0x2f) continue;
    const part = path.slice(0, i);
    if (part === '' || part.endsWith('/')) continue;
    let info: Stats;
    try {
      info = await lstat(bytes(part));
    } catch {
      return; // open() reports the missing component itself
    }
    if (!info.isSymbolicLink()) continue;
    if (mode === 'on') throw new SymlinkRefused('symbolic link refused');
    const target = await stat(bytes(part));
    if (target.uid !== info.uid) throw new SymlinkRefused('symbolic link owner differs');
  }
}

async function statChecked(ctx: StaticContext, path: string): Promise<Stats> {
  await checkSymlinks(ctx, path);
  return stat(bytes(path));
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
    await checkSymlinks(ctx, path);
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
  const body = renderAutoindex(request.uri, sortEntries(entries), settings, callback);
  const headers = ['Content-Type', type];
  ctx.headers(200, headers);
  request.status = 200;
  // nginx sends the listing without a Content-Length (its header goes out before the body is built).
  exchange.writeHead(200, headers, 'chunked');
  exchange.end(Buffer.from(body, 'latin1'));
  return { kind: 'sent' };
}

/** ngx_http_static_handler() and the header filters of a file response. */
async function staticFile(ctx: StaticContext, file?: string): Promise<StaticOutcome> {
  const { request, files, exchange } = ctx;
  const method = request.method;
  if (method !== 'GET' && method !== 'HEAD' && method !== 'POST') return { kind: 'status', status: 405 };
  const path = file ?? mapUriToPath(files, request).path;
  let handle: FileHandle;
  let info: Stats;
  // gzip_static (gzip-static.ts) runs first, as its content handler precedes the static one.
  const gz = files.gzipStatic === undefined ? undefined : await precompressed(files.gzipStatic, request, path);
  const encoded: string[] = [];
  // r->gzip_vary: the Vary header is the header filter's (varyFilter), for this response or an error page.
  if (gz?.vary === true) request.gzipVary = true;
  if (gz?.file !== undefined) {
    ({ handle, info } = gz.file);
    encoded.push('Content-Encoding', 'gzip');
  } else {
    try {
      await checkSymlinks(ctx, path);
      handle = await open(bytes(path), 'r');
    } catch (err) {
      return fileError(ctx, 'open', path, err);
    }
    try {
      info = await handle.stat();
    } catch (err) {
      await handle.close();
      return fileError(ctx, 'fstat', path, err);
    }
  }
  if (info.isDirectory()) {
    await handle.close();
    // ngx_http_static_handler(): the URI escaped (NGX_ESCAPE_URI), a "/", and the arguments.
    const location = `${escapeRedirectUri(request.uri)}/${request.hasArgs && request.args !== '' ? `?${request.args}` : ''}`;
    return { kind: 'status', status: 301, location: ctx.redirectLocation(location) };
  }
  if (!info.isFile()) {
    await handle.close();
    ctx.log.write('crit', `"${path}" is not a regular file${ctx.where()}`, ctx.connection);
    return { kind: 'status', status: 404 };
  }
  if (method === 'POST') {
    await handle.close();
    return { kind: 'status', status: 405 };
  }
  if (exchange.aborted) {
    await handle.close();
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
    await handle.close();
    return { kind: 'status', status: 412 };
  }
  const contentType = contentTypeOf(request.uri, files.types, files.defaultType);
  if (conditional === 304) {
    await handle.close();
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
    if (ifRange === undefined || ifRangeMatches(ifRange, etag, mtime)) {
      const decision = parseRange(rangeHeader, size, files.maxRanges);
      if (decision.kind === 'unsatisfiable') {
        await handle.close();
        return { kind: 'status', status: 416, headers: ['Content-Range', `bytes */${size}`] };
      }
      if (decision.kind === 'ranges') ranges = decision.ranges;
    }
  }
  const headers = ['Content-Type', contentType, 'Last-Modified', lastModified];
  if (etag !== undefined) headers.push('ETag', etag);
  headers.push(...encoded);
  const status = request.statusOverride ?? (ranges === undefined ? 200 : 206);
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

/** Streams the ranges of a file to the client, waiting for it to take each chunk; closes the file. */
async function sendParts(ctx: StaticContext, handle: FileHandle, ranges: readonly ByteRange[], multipart: { headers: readonly string[]; trailer: string } | undefined): Promise<void> {
  const { exchange } = ctx;
  try {
    if (ctx.request.method === 'HEAD') {
      exchange.end();
      return;
    }
    for (let i = 0; i < ranges.length; i++) {
      const range = ranges[i] as ByteRange;
      if (multipart !== undefined) exchange.write(Buffer.from(multipart.headers[i] as string, 'latin1'));
      const length = range.end - range.start;
      if (length <= SMALL_FILE) {
        const buffer = Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, length, range.start);
        if (bytesRead < length) throw new Error(`"${mapUriToPath(ctx.files, ctx.request).path}" was truncated while reading`);
        if (exchange.aborted) return;
        if (!exchange.write(buffer)) await new Promise<void>((resolve) => exchange.onDrain(resolve));
        continue;
      }
      const done = await streamRange(exchange, handle, range);
      if (!done) return;
    }
    if (multipart !== undefined) exchange.write(Buffer.from(multipart.trailer, 'latin1'));
    exchange.end();
  } catch (err) {
    ctx.log.write('crit', `${err instanceof Error ? err.message : String(err)}${ctx.where()}`, ctx.connection);
    exchange.connection.destroy();
  } finally {
    await handle.close().catch(() => undefined);
  }
}

/** One range through a read stream, paused while the client is slow; false if the client went away. */
function streamRange(exchange: HttpExchange, handle: FileHandle, range: ByteRange): Promise<boolean> {
  return new Promise((resolve, reject) => {
    const stream = createReadStream('', { fd: handle, start: range.start, end: range.end - 1, autoClose: false });
    let sent = 0;
    let settled = false;
    const finish = (ok: boolean, err?: Error): void => {
      if (settled) return;
      settled = true;
      if (err !== undefined) reject(err);
      else resolve(ok);
    };
    exchange.onAbort(() => {
      stream.destroy();
      finish(false);
    });
    stream.on('data', (chunk: Buffer | string) => {
      const data = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
      sent += data.length;
      if (!exchange.write(data)) {
        stream.pause();
        exchange.onDrain(() => stream.resume());
      }
    });
    stream.on('error', (err) => finish(false, err));
    stream.on('end', () => {
      if (sent < range.end - range.start) finish(false, new Error('file was truncated while reading'));
      else finish(true);
    });
  });
}
