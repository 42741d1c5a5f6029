/**
 * Building what goes upstream and what comes back, with nginx's header rules
 * (ngx_http_proxy_create_request, ngx_http_proxy_process_header): the request line and headers for
 * the upstream, and the response headers for the client.
 */
import type { CompiledTemplate } from '../core/variables.js';
import type { ResponseHead } from './h1/head-parser.js';
import type { HttpRequest } from './request.js';

/** A `proxy_set_header`, compiled. */
export interface CompiledSetHeader {
  /** Lowercased, for matching the client's headers it replaces. */
  readonly key: string;
  readonly name: string;
  readonly value: CompiledTemplate<HttpRequest>;
}

/**
 * Request headers never passed as the client sent them: hop-by-hop ones (RFC 9110 section 7.6.1),
 * framing (the proxy frames the body itself), and those nginx drops by default (TE, Keep-Alive,
 * Expect, Upgrade: ngx_http_proxy_headers).
 */
export const HOP_BY_HOP_REQUEST: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'transfer-encoding', 'upgrade', 'content-length', 'expect', 'trailer']);

/** Response headers nginx never passes (ngx_http_proxy_hide_headers and the hop-by-hop ones it frames itself). */
export const HIDDEN_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'date', 'server', 'x-pad', 'x-accel-expires', 'x-accel-redirect', 'x-accel-limit-rate', 'x-accel-buffering', 'x-accel-charset',
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer',
]);

/**
 * Builds the request head sent upstream. `bodyLength` is -1 when there is no body, -2 for a chunked
 * one. `version` is never 2 here: HTTP/2 requests are built by proxy-h2.ts.
 */
export function upstreamRequestHead(
  request: HttpRequest,
  method: string,
  uri: string,
  version: '1.0' | '1.1' | '2',
  setHeaders: readonly CompiledSetHeader[],
  passClientHeaders: boolean,
  bodyLength: number,
): string {
  let head = `${method} ${uri} HTTP/${version}\r\n`;
  const replaced = new Set<string>();
  for (const header of setHeaders) {
    replaced.add(header.key);
    const value = header.value(request);
    // An empty value removes the header (ngx_http_proxy_create_request skips it).
    if (value !== '') head += `${header.name}: ${value}\r\n`;
  }
  if (passClientHeaders) {
    const headers = request.head.headers;
    const listed = connectionListed(request);
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      const key = name.toLowerCase();
      if (replaced.has(key) || HOP_BY_HOP_REQUEST.has(key) || listed?.has(key)) continue;
      head += `${name}: ${headers[i + 1] as string}\r\n`;
    }
  }
  if (bodyLength >= 0) head += `Content-Length: ${bodyLength}\r\n`;
  else if (bodyLength === -2) head += 'Transfer-Encoding: chunked\r\n';
  return `${head}\r\n`;
}

/** Headers the client's Connection header names as hop-by-hop (RFC 9110 section 7.6.1). */
export function connectionListed(request: HttpRequest): Set<string> | undefined {
  const connection = request.header('connection');
  if (connection === undefined) return undefined;
  const names = connection.split(',').map((token) => token.trim().toLowerCase()).filter((token) => token !== '' && token !== 'close' && token !== 'keep-alive');
  return names.length === 0 ? undefined : new Set(names);
}

/** `proxy_redirect` for one response: its rules, and the header filter's absolute_redirect. */
export interface ProxyRedirector {
  /** The rewritten URL, or undefined when no rule matches. */
  rewrite(value: string): string | undefined;
  /** A Location starting with `/` made absolute as absolute_redirect says. */
  absolute(location: string): string;
}

/**
 * The upstream response fields nginx keeps once (ngx_http_upstream_process_header_line() and its
 * kin): a second one is a [warn] "upstream sent duplicate header line: ..., ignored", not passed.
 */
const ONCE_RESPONSE_FIELDS: ReadonlySet<string> = new Set([
  'status', 'content-type', 'date', 'last-modified', 'etag', 'server', 'location', 'refresh', 'expires', 'x-accel-expires', 'x-accel-redirect', 'x-accel-limit-rate',
]);

/** What else shapes the response fields for the client. */
export interface ClientHeaderOptions {
  /** proxy_cookie_*: a Set-Cookie value rewritten, undefined to leave it. Default: none. */
  readonly cookies?: ((value: string) => string | undefined) | undefined;
  /** Pass Upgrade (to an HTTP/1 client) even where Connection lists it. Default: false. */
  readonly passUpgrade?: boolean;
  /** Told of a repeated field nginx ignores, with nginx's [warn] text. Default: not told. */
  readonly duplicate?: (message: string) => void;
}

/** The upstream's response headers as passed to the client, minus hidden and hop-by-hop ones. */
export function clientResponseHeaders(
  head: ResponseHead,
  hide: ReadonlySet<string>,
  pass: ReadonlySet<string>,
  redirect: ProxyRedirector | undefined,
  options: ClientHeaderOptions = {},
): string[] {
  const { cookies, passUpgrade = false, duplicate } = options;
  let seen: Map<string, string> | undefined;
  const out: string[] = [];
  const headers = head.headers;
  const listed = head.connection.length === 0 ? undefined : new Set(head.connection);
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i] as string;
    const key = name.toLowerCase();
    if (ONCE_RESPONSE_FIELDS.has(key)) {
      const line = `${name}: ${headers[i + 1] as string}`;
      const previous = (seen ??= new Map<string, string>()).get(key);
      if (previous !== undefined) {
        duplicate?.(`upstream sent duplicate header line: "${line}", previous value: "${previous}", ignored`);
        continue;
      }
      seen.set(key, line);
    }
    // ngx_http_upstream_copy_upgrade(): Upgrade goes to an HTTP/1 client (a 426's, a 200's), even
    // when the upstream's Connection names it; never to an HTTP/2 one.
    if (key === 'upgrade' && passUpgrade) {
      out.push(name, headers[i + 1] as string);
      continue;
    }
    if (((HIDDEN_RESPONSE_HEADERS.has(key) || hide.has(key)) && !pass.has(key)) || listed?.has(key)) continue;
    let value = headers[i + 1] as string;
    if (redirect !== undefined && key === 'location') {
      // ngx_http_upstream_rewrite_location(): only a rewritten Location is the response's
      // location, which the header filter makes absolute (absolute_redirect).
      const rewritten = redirect.rewrite(value);
      if (rewritten !== undefined) value = redirect.absolute(rewritten);
    } else if (redirect !== undefined && key === 'refresh') {
      // ngx_http_upstream_rewrite_refresh(): the rules see what follows "url=".
      const at = value.toLowerCase().indexOf('url=');
      const rewritten = at < 0 ? undefined : redirect.rewrite(value.slice(at + 4));
      if (rewritten !== undefined) value = value.slice(0, at + 4) + rewritten;
    } else if (cookies !== undefined && key === 'set-cookie') {
      // ngx_http_upstream_rewrite_set_cookie(): proxy_cookie_domain, _path and _flags.
      value = cookies(value) ?? value;
    }
    out.push(name, value);
  }
  return out;
}

/**
 * The URI sent upstream. Without a URI part in proxy_pass, the client's request URI as it was sent;
 * with one, the part of the normalised URI that the location matched is replaced by it, and the
 * result is escaped as nginx's ngx_escape_uri() escapes it.
 */
export function upstreamUri(request: HttpRequest, proxyUri: string | undefined, locationPrefix: string): string {
  // ngx_http_proxy_create_request(): after an internal redirect (try_files, index, error_page) the
  // URI is no longer the client's (valid_unparsed_uri is 0): the new one goes, escaped.
  if (proxyUri === undefined && !request.internal) return request.requestUri;
  if (proxyUri === undefined) return request.hasArgs ? `${escapeUri(request.uri)}?${request.args}` : escapeUri(request.uri);
  const rest = request.uri.startsWith(locationPrefix) ? request.uri.slice(locationPrefix.length) : request.uri;
  const path = escapeUri(proxyUri + rest);
  return request.hasArgs ? `${path}?${request.args}` : path;
}

/** ngx_escape_uri(NGX_ESCAPE_URI): spaces, `#`, `%`, `?`, controls and bytes above 0x7e. */
export function escapeUri(path: string): string {
  return path.replace(/[\x00-\x20#%?\x7f-\xff]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}
