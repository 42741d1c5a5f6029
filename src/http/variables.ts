/**
 * The HTTP variables (nginx's `ngx_http_variables.c` and the log module's own), bound to an
 * {@link HttpRequest}, and the configuration check that every variable used is known.
 */
import { fastcgiSplit } from './fastcgi-names.js';
import { connectionsVariable } from './stub-status-module.js';
import { randomBytes } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { templateVariables, VariableTable, type Template, type VariableGetter } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { LocationMatch } from './locations.js';
import type { HttpRequest } from './request.js';
import { basicCredentials } from './auth-basic-module.js';
import { compileNginxRegex } from './regex.js';
import { binaryAddress } from './realip.js';
import { isInvalidReferer } from './referer-module.js';
import { formatIso8601, formatTimeLocal } from './time-format.js';
import { NGINX_VERSION } from '../core/version.js';
import type { ResponseHead } from './h1/head-parser.js';
import { sslVariables } from '../tls/ssl-variables.js';
import { proxyProtocolTlvGetter } from '../core/proxy-protocol.js';
import { formatUpstreamStates, stateSeconds } from './upstream-states.js';

type Getter = VariableGetter<HttpRequest>;

/** `$arg_name`: the raw value of the first argument called `name` (case-insensitive), as `ngx_http_arg()`. */
export function findArg(args: string, name: string): string | undefined {
  let start = 0;
  while (start <= args.length) {
    const amp = args.indexOf('&', start);
    const end = amp === -1 ? args.length : amp;
    const eq = args.indexOf('=', start);
    if (eq !== -1 && eq < end && eq - start === name.length && args.slice(start, eq).toLowerCase() === name) return args.slice(eq + 1, end);
    if (amp === -1) return undefined;
    start = amp + 1;
  }
  return undefined;
}

/** `$cookie_name`: the value of the first cookie called `name` (case-insensitive) in `Cookie`. */
export function findCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    if (pair.slice(0, eq).trim().toLowerCase() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

/** `$remote_user`: the user of `Authorization: Basic`, read as ngx_http_auth_basic_user() reads it. */
function remoteUser(request: HttpRequest): string | undefined {
  return basicCredentials(request)?.user;
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

const HOSTNAME = hostname();

/** A field of a flat name/value list, repeated ones joined with `sep` (nginx's ngx_http_variable_headers_internal()). */
function fieldOf(fields: readonly string[] | undefined, name: string, sep = ', '): string | undefined {
  if (fields === undefined) return undefined;
  let value: string | undefined;
  for (let i = 0; i < fields.length; i += 2) {
    const key = fields[i] as string;
    if (key.length !== name.length || key.toLowerCase() !== name) continue;
    value = value === undefined ? (fields[i + 1] as string) : `${value}${sep}${fields[i + 1] as string}`;
  }
  return value;
}

/** `$upstream_cookie_name`: the value of the first `Set-Cookie` of the upstream's response setting cookie `name`. */
export function findSetCookie(fields: readonly string[] | undefined, name: string): string | undefined {
  if (fields === undefined) return undefined;
  for (let i = 0; i < fields.length; i += 2) {
    if ((fields[i] as string).toLowerCase() !== 'set-cookie') continue;
    // ngx_http_parse_set_cookie_lines(): the name at the very start (without case), spaces (not
    // tabs) around "=", and the value up to ";" as it is.
    const cookie = fields[i + 1] as string;
    if (name.length >= cookie.length || cookie.slice(0, name.length).toLowerCase() !== name) continue;
    let at = name.length;
    while (at < cookie.length && cookie[at] === ' ') at++;
    if (cookie[at] !== '=') continue;
    at++;
    while (at < cookie.length && cookie[at] === ' ') at++;
    const end = cookie.indexOf(';', at);
    return cookie.slice(at, end === -1 ? cookie.length : end);
  }
  return undefined;
}

/** Records what an upstream's response head brings to `$upstream_http_*` and `$upstream_cookie_*`; called by the proxy once per head. */
export function recordUpstreamHead(request: HttpRequest, head: ResponseHead): void {
  request.upstreamHeaders = head.headers;
}

/** `$request_length`: the head as received (HTTP/1; over HTTP/2 the header block, h2/frame-counter.ts) and the body read or discarded. */
function requestLength(request: HttpRequest): string {
  return String(requestLengthBytes(request));
}

/** `$request_length` as a number (the metrics' request bytes). */
export function requestLengthBytes(request: HttpRequest): number {
  const head = request.head as { headBytes?: number; contentLength?: number };
  let length = head.headBytes ?? request.head.headers.reduce((sum, field) => sum + field.length + 2, request.requestLine.length + 2);
  if (request.requestBody !== undefined) length += request.requestBody.reduce((sum, part) => sum + part.length, 0);
  else if (request.requestBodySpool !== undefined) length += request.requestBodySpool.length;
  else if (typeof head.contentLength === 'number' && head.contentLength > 0) length += head.contentLength;
  return length;
}

/** `$sent_http_name`: the field sent; for Content-Length also the length of a response hitless made itself. */
function sentField(name: string): Getter {
  if (name !== 'content-length') return (r) => fieldOf(r.sentHeaders, name);
  return (r) => fieldOf(r.sentHeaders, name) ?? (r.sentLength === undefined ? undefined : String(r.sentLength));
}

/** Every variable hitless defines for HTTP, by name. */
const HTTP_VARIABLES: Readonly<Record<string, Getter>> = {
  remote_addr: (r) => r.remoteAddress,
  remote_port: (r) => r.remotePort,
  binary_remote_addr: (r) => binaryAddress(r.remoteAddress),
  realip_remote_addr: (r) => r.connection.remoteAddress,
  realip_remote_port: (r) => r.connection.remotePort,
  // ngx_http_variable_proxy_protocol_*(): not found without a header (or for UNKNOWN and LOCAL).
  proxy_protocol_addr: (r) => r.connection.proxied?.sourceAddress,
  proxy_protocol_port: (r) => (r.connection.proxied === undefined ? undefined : String(r.connection.proxied.sourcePort)),
  proxy_protocol_server_addr: (r) => r.connection.proxied?.destinationAddress,
  proxy_protocol_server_port: (r) => (r.connection.proxied === undefined ? undefined : String(r.connection.proxied.destinationPort)),
  limit_req_status: (r) => r.limitReqStatus,
  limit_conn_status: (r) => r.limitConnStatus,
  remote_user: remoteUser,
  server_addr: (r) => r.connection.localAddress,
  server_port: (r) => r.connection.localPort,
  server_name: (r) => r.serverName,
  server_protocol: (r) => r.protocol,
  scheme: (r) => r.scheme,
  https: (r) => (r.scheme === 'https' ? 'on' : ''),
  host: (r) => r.host || r.serverName,
  request: (r) => r.requestLine,
  // r->method_name, which an internal redirect (error_page, X-Accel-Redirect) makes GET.
  request_method: (r) => r.method,
  request_uri: (r) => r.requestUri,
  uri: (r) => r.uri,
  document_uri: (r) => r.uri,
  args: (r) => (r.hasArgs ? r.args : undefined),
  query_string: (r) => (r.hasArgs ? r.args : undefined),
  is_args: (r) => (r.hasArgs && r.args !== '' ? '?' : ''),
  // ngx_http_variable_content_length(): without the field, the length of a body read whole (a
  // chunked or HTTP/2 one), as ngx_http_request_body_save_filter() sets content_length_n.
  content_length: (r) => r.header('content-length') ?? (r.requestBody === undefined ? (r.requestBodySpool === undefined ? undefined : String(r.requestBodySpool.length)) : String(r.requestBody.reduce((sum, part) => sum + part.length, 0))),
  content_type: (r) => r.header('content-type'),
  status: (r) => String(r.status).padStart(3, '0'),
  body_bytes_sent: (r) => String(r.bodyBytesSent),
  gzip_ratio: (r) => r.gzipRatio,
  brotli_ratio: (r) => r.brotliRatio,
  bytes_sent: (r) => String(r.connection.bytesWritten() - r.bytesWrittenAtStart),
  request_time: (r) => seconds(Math.max(0, Date.now() - r.startMs)),
  msec: () => seconds(Date.now()),
  time_local: () => formatTimeLocal(Date.now()),
  time_iso8601: () => formatIso8601(Date.now()),
  connection: (r) => String(r.connection.number),
  connection_requests: (r) => String(r.connectionRequests),
  connections_active: () => connectionsVariable('active'),
  connections_reading: () => connectionsVariable('reading'),
  connections_writing: () => connectionsVariable('writing'),
  connections_waiting: () => connectionsVariable('waiting'),
  connection_time: (r) => seconds(Math.max(0, Date.now() - (r.connection.startedAt ?? r.startMs))),
  pid: () => String(process.pid),
  nginx_version: () => NGINX_VERSION,
  request_length: requestLength,
  request_id: (r) => (r.requestId ??= randomBytes(16).toString('hex')),
  request_completion: (r) => (r.completed ? 'OK' : ''),
  // ngx_http_variable_request_body(): not found when the body is in a file.
  request_body: (r) => (r.requestBody === undefined || r.requestBodyFile !== undefined ? undefined : Buffer.concat(r.requestBody as Buffer[]).toString('latin1')),
  // hitless never writes a request body to a file, so nginx's answer for a body in memory: not found.
  request_body_file: (r) => r.requestBodyFile,
  pipe: (r) => (r.pipelined ? 'p' : '.'),
  // ngx_http_variable_request_port(): empty, not "not found", without a port; $is_request_port is ":" or nothing.
  request_port: (r) => (r.port > 0 ? String(r.port) : ''),
  is_request_port: (r) => (r.port > 0 ? ':' : ''),
  // ngx_http_variable_request_get_size(): r->limit_rate, 0 until something sets it.
  limit_rate: (r) => String(r.limitRate ?? 0),
  http2: (r) => (r.head.versionMajor === 2 ? (r.connection.tls === undefined ? 'h2c' : 'h2') : ''),
  // nginx 1.22 joins repeated Cookie headers with "; " (ngx_http_variable_cookies()).
  http_cookie: (r) => fieldOf(r.head.headers, 'cookie', '; '),
  proxy_host: (r) => r.proxyHost,
  proxy_port: (r) => {
    const colon = r.proxyHost.lastIndexOf(':');
    if (colon !== -1 && !r.proxyHost.endsWith(']')) return r.proxyHost.slice(colon + 1);
    return r.proxyScheme === 'https' ? '443' : '80';
  },
  proxy_add_x_forwarded_for: (r) => {
    const forwarded = r.header('x-forwarded-for');
    return forwarded === undefined ? r.remoteAddress : `${forwarded}, ${r.remoteAddress}`;
  },
  // ngx_http_grpc_module's: "trailers" when the client's TE lists it, for the TE sent to gRPC servers.
  grpc_internal_trailers: (r) => (r.header('te')?.split(',').some((token) => token.split(';')[0]?.trim().toLowerCase() === 'trailers') === true ? 'trailers' : undefined),
  // ngx_http_fastcgi_module's: the two parts of $uri by fastcgi_split_path_info (fastcgi-names.ts).
  fastcgi_script_name: (r) => fastcgiSplit(r).scriptName,
  fastcgi_path_info: (r) => fastcgiSplit(r).pathInfo,
  // ngx_http_upstream.c's list variables: one entry per try, " : " between upstream cycles.
  upstream_addr: (r) => formatUpstreamStates(r.upstreamStates, (state) => state.peer),
  upstream_status: (r) => formatUpstreamStates(r.upstreamStates, (state) => (state.status === 0 ? '-' : String(state.status))),
  upstream_connect_time: (r) => formatUpstreamStates(r.upstreamStates, (state) => stateSeconds(state.connectMs)),
  upstream_header_time: (r) => formatUpstreamStates(r.upstreamStates, (state) => stateSeconds(state.headerMs)),
  upstream_response_time: (r) => formatUpstreamStates(r.upstreamStates, (state) => stateSeconds(state.responseMs)),
  upstream_response_length: (r) => formatUpstreamStates(r.upstreamStates, (state) => String(state.responseLength)),
  upstream_bytes_received: (r) => formatUpstreamStates(r.upstreamStates, (state) => String(state.bytesReceived)),
  upstream_bytes_sent: (r) => formatUpstreamStates(r.upstreamStates, (state) => String(state.bytesSent)),
  // hitless has no proxy_cache: nginx's answer for a request no cache saw is "not found".
  upstream_cache_status: () => undefined,
  hostname: () => HOSTNAME,
  // ngx_http_core_module's file variables, from the level that answers.
  document_root: (r) => r.files?.(r).root,
  request_filename: (r) => r.files?.(r).path,
  realpath_root: (r) => {
    const root = r.files?.(r).root;
    if (root === undefined) return undefined;
    try {
      return realpathSync(Buffer.from(root, 'latin1'), { encoding: 'buffer' }).toString('latin1');
    } catch {
      return undefined;
    }
  },
  // ngx_http_referer_module's, by the answering level's valid_referers.
  invalid_referer: (r) => (isInvalidReferer(r.referers, r.header('referer')) ? '1' : ''),
  // ngx_http_ssl_module's: not found on a plain connection.
  ...sslVariables<HttpRequest>((r) => r.connection.tls),
};

/** True when `name` is a variable hitless itself defines (not a prefix family): a map may not redefine it. */
export function isBuiltinHttpVariable(name: string): boolean {
  return Object.hasOwn(HTTP_VARIABLES, name.toLowerCase());
}

// The built-in variables nginx declares NGX_HTTP_VAR_CHANGEABLE (ngx_http_variable_args, the referer module's).
const CHANGEABLE: ReadonlySet<string> = new Set(['args', 'invalid_referer']);

/** True for a built-in variable that a map, geo or split_clients may not define again ("the duplicate ... variable"). */
export function isFixedHttpVariable(name: string): boolean {
  return isBuiltinHttpVariable(name) && !CHANGEABLE.has(name.toLowerCase());
}

function captureGetter(index: number): Getter {
  return (r) => r.captures?.[index];
}

/**
 * The variable table of one generation: the built-in variables, the `$http_`, `$arg_` and
 * `$cookie_` families, `$1`..`$9`, and the named captures of the configuration's regexes.
 */
export function createHttpVariables(captureNames: Iterable<string> = []): VariableTable<HttpRequest> {
  const table = new VariableTable<HttpRequest>(captureGetter);
  for (const name of captureNames) table.define(name, (r) => r.namedCaptures.get(name));
  for (const [name, get] of Object.entries(HTTP_VARIABLES)) table.define(name, get);
  table.definePrefix('http_', (suffix) => {
    const header = suffix.replace(/_/g, '-');
    // ngx_http_variable_unknown_header() reads "-" in a name as "_": a header kept with underscores_in_headers matches too.
    return (r) => r.header(header) ?? (r.head.headers.some((field, i) => i % 2 === 0 && field.includes('_')) ? fieldOf(r.head.headers.map((field, i) => (i % 2 === 0 ? field.replace(/_/g, '-') : field)), header) : undefined);
  });
  table.definePrefix('arg_', (suffix) => (r) => findArg(r.args, suffix));
  table.definePrefix('proxy_protocol_tlv_', (suffix) => {
    const tlv = proxyProtocolTlvGetter(suffix);
    return (r) => tlv(r.connection.proxied);
  });
  // ngx_http_parse_multi_header_lines(): every Cookie line is searched, in order.
  table.definePrefix('cookie_', (suffix) => (r) => findCookie(fieldOf(r.head.headers, 'cookie', '; '), suffix));
  table.definePrefix('sent_http_', (suffix) => sentField(suffix.replace(/_/g, '-')));
  table.definePrefix('sent_trailer_', (suffix) => {
    const name = suffix.replace(/_/g, '-');
    return (r) => fieldOf(r.sentTrailers, name);
  });
  table.definePrefix('upstream_http_', (suffix) => {
    const header = suffix.replace(/_/g, '-');
    return (r) => fieldOf(r.upstreamHeaders, header);
  });
  table.definePrefix('upstream_cookie_', (suffix) => (r) => findSetCookie(r.upstreamHeaders, suffix));
  return table;
}

/** The named captures of every regex in an `http` block (`server_name ~`, `location ~`, `map`), which nginx also defines as variables. */
export function captureNamesOf(http: ConfBlockView): Set<string> {
  const names = new Set<string>();
  for (const map of http.get('map')) for (const regex of map.regexes) for (const name of regex.names) names.add(name);
  const walk = (block: ConfBlockView): void => {
    if (block.name === 'server') {
      for (const name of block.get('server_name')) {
        if (name.kind === 'regex') for (const capture of compileNginxRegex(name.name, name.caseless).names) names.add(capture);
      }
    }
    if (block.name === 'location') {
      const match = block.value as LocationMatch;
      if (match.kind === 'regex') for (const capture of compileNginxRegex(match.name, match.caseless).names) names.add(capture);
    }
    // rewrite's and if's regexes (rewrite-module.ts keeps their names).
    if (block.context !== 'http' && block.isSet('rewrite')) for (const rule of block.get('rewrite')) for (const name of rule.captures) names.add(name);
    if (block.name === 'if') for (const name of (block.value as { captures: readonly string[] }).captures) names.add(name);
    for (const child of block.blocks) walk(child);
  };
  walk(http);
  return names;
}

const knownTables = new WeakMap<ConfBlockView, VariableTable<HttpRequest>>();

/**
 * Refuses a value that uses a variable nothing defines, as `ngx_http_variables_init_vars()` does
 * once the whole configuration is read: `unknown "x" variable`, with no file or line.
 */
export function checkVariables(http: ConfBlockView, templates: Iterable<Template>): void {
  let table = knownTables.get(http);
  if (table === undefined) {
    table = createHttpVariables(captureNamesOf(http));
    // map-defined variables (ngx_http_map_block() adds them while the configuration is read).
    for (const map of http.get('map')) table.define(map.variable, () => undefined);
    for (const split of http.get('split_clients')) table.define(split.variable, () => undefined);
    for (const geo of http.get('geo')) table.define(geo.variable, () => undefined);
    // set-declared variables (ngx_http_rewrite_set() adds them while the configuration is read).
    for (const name of setVariablesOf(http)) table.define(name, () => undefined);
    knownTables.set(http, table);
  }
  for (const template of templates) {
    for (const name of templateVariables(template)) {
      if (!table.has(name)) throw new ConfigError(`unknown "${name}" variable`, undefined);
    }
  }
}

/** The names `set` declares anywhere under `http` (servers, locations and their `if` blocks). */
export function setVariablesOf(http: ConfBlockView): Set<string> {
  const names = new Set<string>();
  const walk = (block: ConfBlockView): void => {
    for (const child of block.blocks) {
      if (child.name !== 'server' && child.name !== 'location' && child.name !== 'if') continue;
      if (child.isSet('set')) for (const rule of child.get('set')) names.add(rule.name);
      walk(child);
    }
  };
  walk(http);
  return names;
}

/**
 * Binds the `set` variables into a generation's table: the value `set` stored for this request,
 * else the variable's own getter (a map's, `$args`), else nginx's uninitialized empty value with
 * its warning (ngx_http_rewrite_var()).
 */
export function defineSetVariables(table: VariableTable<HttpRequest>, http: ConfBlockView): void {
  for (const name of setVariablesOf(http)) {
    const own = table.resolve(name);
    if (name === 'args') continue;
    table.define(name, (r) => {
      const value = r.variables.get(name);
      if (value !== undefined) return value;
      if (own !== undefined) return own(r);
      r.uninitialized?.(name);
      return '';
    });
  }
}

// blocksOf() moved to conf/values.ts, where upstream modules reach it too.
export { blocksOf } from '../conf/values.js';
