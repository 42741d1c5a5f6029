/**
 * A location's proxy settings, compiled once per generation: the target group (or how to find it
 * when the URL has variables), the headers to set, the rules for `proxy_redirect` and
 * `proxy_next_upstream`, and every timeout.
 */
import type { ConnectionBudget } from '../core/connection-budget.js';
import { compileTemplate, parseTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { LocationMatch } from './core-module.js';
import { upstreamTlsSettings, type NextUpstreamCase, type ProxyPassTarget } from './proxy-module.js';
import { upstreamUri, type CompiledSetHeader } from './proxy-request.js';
import { earlyHintsPredicate } from './early-hints.js';
import type { HttpRequest } from './request.js';
import { implicitGroup, type UpstreamGroup } from '../upstream/group.js';
import { toByteString } from '../core/byte-string.js';
import { ResolveFailure, type Resolvers } from '../upstream/host-resolver.js';
import { isIP } from 'node:net';
import { certificatePathsOf, sslHostName, UpstreamTls } from '../tls/upstream-tls.js';
import type { CertificateCaches, CertificatePaths } from '../tls/certificate-cache.js';
import { parseSize } from '../core/parse.js';
import type { SizeValue } from './limit-rate.js';
import { compileBind } from './proxy-directives.js';
import type { LocalAddress } from '../upstream/peer-connect.js';
import { compileCookieRewriter, type CookieRewriter } from './proxy-cookie.js';

/** nginx's implicit `proxy_set_header` lines, used for any header the configuration does not set. */
const DEFAULT_SET_HEADERS: readonly [string, string][] = [
  ['Host', '$proxy_host'],
  ['Connection', 'close'],
];

/** A location's `proxy_pass` and the directives that shape it. */
export interface CompiledProxy {
  readonly scheme: 'http' | 'https';
  /** worker_connections: the worker's budget, which connections to peers count against. */
  readonly connections: ConnectionBudget | undefined;
  /** The URI part of proxy_pass, if any. */
  readonly uri: string | undefined;
  /** The part of the request URI the URI part replaces: the location's prefix. */
  readonly locationPrefix: string;
  readonly version: '1.0' | '1.1' | '2';
  /** proxy_pass_trailers: the upstream's trailers go to the client (HTTP/2 upstreams). */
  readonly passTrailers: boolean;
  /** early_hints: true when an upstream's 103 goes to the client of this request; default never. */
  earlyHints(request: HttpRequest): boolean;
  /** False when the request says `Connection: close` or HTTP/1.0: the connection is never reused then, as in nginx. */
  readonly upstreamKeepalive: boolean;
  readonly setHeaders: readonly CompiledSetHeader[];
  readonly hide: ReadonlySet<string>;
  readonly pass: ReadonlySet<string>;
  readonly passRequestHeaders: boolean;
  readonly passRequestBody: boolean;
  readonly redirect: ((value: string, request: HttpRequest) => string | undefined) | undefined;
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly buffering: boolean;
  readonly requestBuffering: boolean;
  readonly interceptErrors: boolean;
  readonly nextUpstream: ReadonlySet<NextUpstreamCase>;
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
  readonly ignoreClientAbort: boolean;
  readonly socketKeepalive: boolean;
  readonly maxBodySize: number;
  /** client_body_buffer_size: the most of an unbuffered body that $request_body keeps. */
  readonly bodyBufferSize: number;
  /** The group for this request: fixed, or found from the URL's variables. */
  resolveGroup(request: HttpRequest): UpstreamGroup<HttpRequest> | undefined;
  /** For a URL with variables: the host it names for this request (for the error message). */
  dynamicHost(request: HttpRequest): string;
  /** For a URL with variables: the evaluated URL when it starts with neither `http://` nor `https://`, else undefined. */
  invalidPrefix(request: HttpRequest): string | undefined;
  /** The URI of the request sent upstream (upstreamUri(); for a URL with variables, its own URI part when it has one). */
  uriFor(request: HttpRequest): string;
  /**
   * For a URL with variables and a `resolver`: undefined when {@link resolveGroup} can answer now,
   * else the resolution, which ends with nothing (resolveGroup answers then) or nginx's error line.
   */
  resolveHost(request: HttpRequest): Promise<string | undefined> | undefined;
  /** True when an error_page covers the status (proxy_intercept_errors). */
  errorPageFor(status: number): boolean;
  /** Sets `request.proxyHost`, which `$proxy_host` reads. */
  readonly proxyHost: string;
  /** `$proxy_host` for this request: {@link proxyHost}, or for a URL with variables, its host as evaluated. */
  proxyHostOf(request: HttpRequest): string;
  /** The TLS client for `proxy_pass https://`; undefined for http. */
  readonly ssl: UpstreamTls | undefined;
  /** `proxy_ssl_name` for this request (default `$proxy_host`), without its port. */
  sslName(request: HttpRequest): string;
  /** `proxy_method`: the method sent upstream; undefined sends the request's. */
  readonly method: CompiledTemplate<HttpRequest> | undefined;
  /** `proxy_set_body`: the body sent upstream instead of the client's. */
  readonly setBody: CompiledTemplate<HttpRequest> | undefined;
  /** `proxy_bind` for this request: the local address, undefined for none, or nginx's error for a bad value. */
  bind(request: HttpRequest): LocalAddress | undefined | { readonly invalid: string };
  /** `proxy_limit_rate` for this request, once the response head is in (0: no limit), or nginx's error for a bad value. */
  limitRate(request: HttpRequest): number | { readonly invalid: string };
  /** `proxy_ignore_headers`, lowercased. */
  readonly ignoreHeaders: ReadonlySet<string>;
  /** `proxy_cookie_domain`, `proxy_cookie_path`, `proxy_cookie_flags`; undefined when none applies. */
  readonly cookies: CookieRewriter | undefined;
  /** `proxy_ssl_certificate` with variables: the files of this request; undefined when fixed or evaluated empty (no certificate). */
  sslCertificate(request: HttpRequest): CertificatePaths | undefined;
}

/** proxy_limit_rate (fastcgi_limit_rate, uwsgi_, scgi_), compiled: a size, or a value read per request (ngx_http_complex_value_size()). */
export function compileLimitRate(setting: SizeValue, text: (template: Parameters<typeof compileTemplate>[0]) => CompiledTemplate<HttpRequest>): CompiledProxy['limitRate'] {
  if ('size' in setting) {
    const size = setting.size;
    return () => size;
  }
  const value = text(setting.value);
  return (request) => {
    const evaluated = value(request);
    return parseSize(evaluated) ?? { invalid: `invalid size "${evaluated}"` };
  };
}

/** Compiles the proxy settings of a level that has `proxy_pass`. */
export function compileProxy(
  block: ConfBlockView,
  target: ProxyPassTarget,
  groups: ReadonlyMap<string, UpstreamGroup<HttpRequest>>,
  implicit: Map<string, UpstreamGroup<HttpRequest>>,
  table: VariableTable<HttpRequest>,
  resolvers?: Resolvers<HttpRequest>,
  connections?: ConnectionBudget,
  certificateCaches?: CertificateCaches,
): CompiledProxy {
  const text = (template: Parameters<typeof compileTemplate>[0]): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const own = block.get('proxy_set_header');
  const setHeaders: CompiledSetHeader[] = own.map((header) => ({ key: header.name.toLowerCase(), name: header.name, value: text(header.value) }));
  for (const [name, value] of DEFAULT_SET_HEADERS) {
    if (!setHeaders.some((header) => header.key === name.toLowerCase())) setHeaders.push({ key: name.toLowerCase(), name, value: text(parseTemplate(value)) });
  }
  const match = block.value as LocationMatch | undefined;
  const locationPrefix = match !== undefined && (match.kind === 'prefix' || match.kind === 'prefix-noregex' || match.kind === 'exact') ? match.name : '';
  let fixed: UpstreamGroup<HttpRequest> | undefined;
  let dynamic: CompiledTemplate<HttpRequest> | undefined;
  if (target.template !== undefined) dynamic = text(target.template);
  else {
    fixed = groups.get(target.host);
    if (fixed === undefined) {
      const key = `${target.host}:${target.port}`;
      fixed = implicit.get(key) ?? implicitGroup(target.host, target.port);
      implicit.set(key, fixed);
    }
  }
  const resolverSetting = block.get('resolver');
  const resolver = dynamic !== undefined && resolverSetting !== undefined && resolvers !== undefined ? resolvers.for(resolverSetting, block.get('resolver_timeout')) : undefined;
  const defaultPort = target.scheme === 'https' ? 443 : 80;
  // ngx_http_upstream_init_request(): an upstream group by that name, else an address, else the resolver.
  const known = (host: string): UpstreamGroup<HttpRequest> | undefined => {
    // ngx_parse_url() takes `unix:/path` as an address, never resolved: a group of one peer, made
    // per request and not kept, as for an IP address (the path comes from the request).
    if (host.slice(0, 5).toLowerCase() === 'unix:' && host.length > 5) return implicitGroup(host, 0) as UpstreamGroup<HttpRequest>;
    const { name, port } = splitHostPort(host, defaultPort);
    const found = groups.get(host) ?? groups.get(name) ?? implicit.get(host);
    if (found !== undefined) return found;
    if (isIP(name) !== 0) return implicitGroup(name, port) as UpstreamGroup<HttpRequest>;

    return resolver?.cached(name, port);
  };
  const resolveDynamic = (request: HttpRequest): UpstreamGroup<HttpRequest> | undefined => known(hostOf((dynamic as CompiledTemplate<HttpRequest>)(request)));
  const resolveHost = (request: HttpRequest): Promise<string | undefined> | undefined => {
    if (resolver === undefined) return undefined;
    const host = hostOf((dynamic as CompiledTemplate<HttpRequest>)(request));
    if (host === '' || known(host) !== undefined) return undefined;
    const { name, port } = splitHostPort(host, defaultPort);
    return resolver.resolve(name, port).then((outcome) => (outcome instanceof ResolveFailure ? outcome.message : undefined));
  };
  const redirectRules = block.get('proxy_redirect');
  // ngx_http_proxy_rewrite_redirect(): the first rule that matches rewrites; none matching
  // (undefined) leaves the header as it came. With variables in proxy_pass there is no default
  // rule (nginx refuses an explicit one), but the explicit rules apply.
  const rules = redirectRules === 'off'
    ? []
    : redirectRules.flatMap((rule): ((value: string, request: HttpRequest) => string | undefined)[] => {
        if (rule.kind === 'default') {
          if (target.template !== undefined) return [];
          // ngx_http_proxy_merge_loc_conf(): without a URI part, "URL/" becomes "/".
          const from = target.uri === undefined ? `${target.source}/` : target.source;
          const to = target.uri === undefined ? '/' : locationPrefix;
          return [(value) => (value.startsWith(from) ? to + value.slice(from.length) : undefined)];
        }
        if (rule.kind === 'regex') {
          const to = text(rule.to);
          // ngx_http_proxy_rewrite_regex_handler(): a match replaces the whole value.
          return [(value, request) => {
            const found = rule.from.exec(value);
            if (found === null) return undefined;
            const saved = request.captures;
            request.captures = found;
            const replaced = to(request);
            request.captures = saved;
            return replaced;
          }];
        }
        const from = text(rule.from);
        const to = text(rule.to);
        return [(value, request) => {
          const prefix = from(request);
          return value.startsWith(prefix) ? to(request) + value.slice(prefix.length) : undefined;
        }];
      });
  const redirect = rules.length === 0
    ? undefined
    : (value: string, request: HttpRequest): string | undefined => {
        for (const rule of rules) {
          const rewritten = rule(value, request);
          if (rewritten !== undefined) return rewritten;
        }
        return undefined;
      };
  const errorCodes = new Set(block.get('error_page').flatMap((page) => page.codes));
  const ssl = target.scheme === 'https' ? UpstreamTls.load(upstreamTlsSettings(block), certificateCaches) : undefined;
  const sslCertificate = ssl?.variableCertificate === true ? certificatePathsOf(ssl.settings, table) : () => undefined;
  const sslNameSetting = block.get('proxy_ssl_name');
  const sslNameTemplate = sslNameSetting === undefined ? undefined : text(sslNameSetting);
  const sslName = (request: HttpRequest): string =>
    sslHostName(sslNameTemplate !== undefined ? sslNameTemplate(request) : request.proxyHost !== '' ? request.proxyHost : dynamic !== undefined ? hostOf(dynamic(request)) : target.proxyHost);
  const methodSetting = block.get('proxy_method');
  const bodySetting = block.get('proxy_set_body');
  const earlyHints = earlyHintsPredicate((block.get('early_hints') ?? []).map(text));
  const connection = own.find((header) => header.name.toLowerCase() === 'connection');
  const sendsClose = connection === undefined || connection.value.source.trim().toLowerCase() === 'close';
  return {
    scheme: target.scheme,
    connections,
    upstreamKeepalive: block.get('proxy_http_version') === '1.1' && !sendsClose,
    uri: target.uri,
    locationPrefix,
    version: block.get('proxy_http_version'),
    passTrailers: block.get('proxy_pass_trailers'),
    earlyHints,
    setHeaders,
    hide: new Set(block.get('proxy_hide_header')),
    pass: new Set(block.get('proxy_pass_header')),
    passRequestHeaders: block.get('proxy_pass_request_headers'),
    passRequestBody: block.get('proxy_pass_request_body'),
    redirect,
    connectTimeoutMs: block.get('proxy_connect_timeout'),
    sendTimeoutMs: block.get('proxy_send_timeout'),
    readTimeoutMs: block.get('proxy_read_timeout'),
    buffering: block.get('proxy_buffering'),
    requestBuffering: block.get('proxy_request_buffering'),
    interceptErrors: block.get('proxy_intercept_errors'),
    nextUpstream: block.get('proxy_next_upstream'),
    nextTries: block.get('proxy_next_upstream_tries'),
    nextTimeoutMs: block.get('proxy_next_upstream_timeout'),
    ignoreClientAbort: block.get('proxy_ignore_client_abort'),
    socketKeepalive: block.get('proxy_socket_keepalive'),
    maxBodySize: block.get('client_max_body_size'),
    bodyBufferSize: block.get('client_body_buffer_size'),
    resolveGroup: dynamic === undefined ? () => fixed : resolveDynamic,
    dynamicHost: (request) => (dynamic === undefined ? target.host : hostOf(dynamic(request))),
    invalidPrefix: (request) => {
      if (dynamic === undefined) return undefined;
      const url = dynamic(request);
      return hasUrlPrefix(url) ? undefined : url;
    },
    uriFor: (request) => (dynamic === undefined ? upstreamUri(request, target.uri, locationPrefix) : (uriOf(dynamic(request)) ?? upstreamUri(request, undefined, locationPrefix))),
    resolveHost,
    errorPageFor: (status) => errorCodes.has(status),
    proxyHost: target.template !== undefined ? '' : target.proxyHost,
    proxyHostOf: dynamic === undefined ? () => target.proxyHost : (request) => evaluatedProxyHost(hostOf(dynamic(request))),
    ssl,
    sslName,
    method: methodSetting === undefined ? undefined : text(methodSetting),
    setBody: bodySetting === undefined ? undefined : text(bodySetting),
    bind: compileBind(block.get('proxy_bind'), text),
    limitRate: compileLimitRate(block.get('proxy_limit_rate'), text),
    ignoreHeaders: block.get('proxy_ignore_headers'),
    cookies: compileCookieRewriter({ domain: block.get('proxy_cookie_domain'), path: block.get('proxy_cookie_path'), flags: block.get('proxy_cookie_flags') }, table),
    sslCertificate,
  };
}

/** `host[:port]` or `[v6][:port]` split, the port defaulting to the scheme's. */
export function splitHostPort(host: string, defaultPort: number): { name: string; port: number } {
  if (host.startsWith('[')) {
    const close = host.indexOf(']');
    const port = host.slice(close + 1).startsWith(':') ? Number(host.slice(close + 2)) : defaultPort;
    return { name: host.slice(1, close), port };
  }
  const colon = host.lastIndexOf(':');
  if (colon === -1 || host.indexOf(':') !== colon) return { name: host, port: defaultPort };
  return { name: host.slice(0, colon), port: Number(host.slice(colon + 1)) || defaultPort };
}

/**
 * Where the host of an evaluated proxy_pass URL ends: at the first `/` or `?`, or for a unix
 * socket (`unix:/path:/uri`) at the first `:` after the path (ngx_parse_unix_domain_url()), which
 * is then no part of the URI.
 */
function splitUrl(url: string): { host: string; uri: string | undefined } {
  const rest = url.replace(/^https?:\/\//i, '');
  if (rest.slice(0, 5).toLowerCase() === 'unix:') {
    const colon = rest.indexOf(':', 5);
    if (colon === -1) return { host: rest, uri: undefined };
    const uri = rest.slice(colon + 1);
    return { host: rest.slice(0, colon), uri: uri === '' ? undefined : uri };
  }
  const end = rest.search(/[/?]/);
  return end === -1 ? { host: rest, uri: undefined } : { host: rest.slice(0, end), uri: rest.slice(end) };
}

/**
 * ngx_http_proxy_eval(): the URI part of an evaluated URL, sent as it is (no args added), with a
 * `/` before a bare `?query`; undefined when the URL has none.
 */
function uriOf(url: string): string | undefined {
  const uri = splitUrl(url).uri;
  return uri?.startsWith('?') === true ? `/${uri}` : uri;
}

/** The host of a proxy_pass URL evaluated at request time: `backend:8080` in `http://backend:8080/x`, `unix:/path` in `http://unix:/path:/x`. */
function hostOf(url: string): string {
  return splitUrl(url).host;
}

/**
 * ngx_http_proxy_eval(): the Host of an evaluated URL is its host as written, with the port when
 * one is written (the scheme's own included), and `localhost` for a unix socket.
 */
function evaluatedProxyHost(host: string): string {
  return host.slice(0, 5).toLowerCase() === 'unix:' ? 'localhost' : host;
}

/** ngx_http_proxy_eval(): an evaluated URL must start with `http://` or `https://` (longer than the prefix). */
function hasUrlPrefix(url: string): boolean {
  return /^https?:\/\/./i.test(url);
}
