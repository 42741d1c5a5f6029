/**
 * A location's fastcgi_pass settings, compiled once per generation: the group, the parameters
 * (fastcgi_param, then the client's headers as HTTP_*), and every timeout and flag; and the
 * fastcgi_split_path_info / fastcgi_index pair every level has, for $fastcgi_script_name.
 */
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { FastcgiPassTarget } from './fastcgi-module.js';
import type { NextUpstreamCase } from './proxy-module.js';
import type { HttpRequest } from './request.js';
import type { FastcgiNames } from './fastcgi-names.js';
import { implicitGroup, type UpstreamGroup } from '../upstream/group.js';
import { toByteString } from '../core/byte-string.js';
import { isIP } from 'node:net';
import { certificatePathsOf, sslHostName, UpstreamTls } from '../tls/upstream-tls.js';
import type { CertificateCaches, CertificatePaths } from '../tls/certificate-cache.js';
import { upstreamTlsSettings } from './proxy-module.js';
import { compileBind } from './proxy-directives.js';
import { compileLimitRate } from './proxy-config.js';
import type { LocalAddress } from '../upstream/peer-connect.js';

/** A compiled `fastcgi_param`. */
export interface CompiledParam {
  readonly name: string;
  readonly value: CompiledTemplate<HttpRequest>;
  readonly ifNotEmpty: boolean;
}


/** A location's `fastcgi_pass` (or `uwsgi_pass`, `scgi_pass`) and the directives that shape it. */
export interface CompiledFastcgi {
  /** Which protocol the adapter speaks: FastCGI records, or the uwsgi packet or SCGI netstring and an HTTP or CGI response. */
  readonly protocol: 'fastcgi' | 'uwsgi' | 'scgi';
  /** uwsgi_modifier1 and uwsgi_modifier2 (0 for fastcgi). */
  readonly modifier1: number;
  readonly modifier2: number;
  /** The TLS client for suwsgi://; undefined otherwise. */
  readonly tls: UpstreamTls | undefined;
  /** The names `uwsgi_ssl_certificate` and `uwsgi_ssl_certificate_key` give with variables, for this request. */
  sslCertificate(request: HttpRequest): CertificatePaths | undefined;
  /** `uwsgi_ssl_name` for this request (default: the host of uwsgi_pass), without its port. */
  sslName(request: HttpRequest): string;
  /** fastcgi_pass as written, for the error log's `upstream: "fastcgi://..."`. */
  readonly source: string;
  /** The group of a fastcgi_pass without variables; undefined when it has some (see `groupFor`). */
  readonly group: UpstreamGroup<HttpRequest> | undefined;
  /** The group this request goes to, or nginx's message for why there is none and the status to answer. */
  groupFor(request: HttpRequest): UpstreamGroup<HttpRequest> | { readonly error: string; readonly status: number };
  readonly params: readonly CompiledParam[];
  /** The HTTP_* names fastcgi_param sets: a client header of that name is not sent again (ngx_http_fastcgi_init_params()). */
  readonly paramHeaders: ReadonlySet<string>;
  readonly keepConn: boolean;
  readonly hide: ReadonlySet<string>;
  readonly pass: ReadonlySet<string>;
  readonly ignoreHeaders: ReadonlySet<string>;
  readonly catchStderr: readonly string[];
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly interceptErrors: boolean;
  readonly nextUpstream: ReadonlySet<NextUpstreamCase>;
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
  readonly socketKeepalive: boolean;
  /** `fastcgi_bind` (uwsgi_bind, scgi_bind) for this request: the local address, undefined for none, or nginx's error for a bad value. */
  bind(request: HttpRequest): LocalAddress | undefined | { readonly invalid: string };
  readonly buffering: boolean;
  readonly requestBuffering: boolean;
  readonly passRequestBody: boolean;
  readonly passRequestHeaders: boolean;
  /** `fastcgi_ignore_client_abort`: the request to the server goes on when the client closes. */
  readonly ignoreClientAbort: boolean;
  /** `fastcgi_limit_rate` for this request, once the response head is in (0: no limit), or nginx's error for a bad value. */
  limitRate(request: HttpRequest): number | { readonly invalid: string };
  readonly maxBodySize: number;
  /** client_body_buffer_size: how much of a streamed body $request_body keeps. */
  readonly bodyBufferSize: number;
  /** True when an error_page covers the status (fastcgi_intercept_errors). */
  errorPageFor(status: number): boolean;
}

/** The split and index of a level. */
export function compileFastcgiNames(block: ConfBlockView): FastcgiNames {
  return { split: block.get('fastcgi_split_path_info'), index: block.get('fastcgi_index') };
}

/** Compiles the settings of a location that has `fastcgi_pass` (or, with `protocol` uwsgi or scgi, `uwsgi_pass` or `scgi_pass`). */
export function compileFastcgi(
  block: ConfBlockView,
  target: FastcgiPassTarget,
  groups: ReadonlyMap<string, UpstreamGroup<HttpRequest>>,
  implicit: Map<string, UpstreamGroup<HttpRequest>>,
  table: VariableTable<HttpRequest>,
  protocol: 'fastcgi' | 'uwsgi' | 'scgi' = 'fastcgi',
  certificateCaches?: CertificateCaches,
): CompiledFastcgi {
  const params = block.get(`${protocol}_param` as 'fastcgi_param').map((param) => ({ name: param.name, value: compileTemplate(param.value, table, { literal: toByteString }), ifNotEmpty: param.ifNotEmpty }));
  const groupOf = (host: string, port: number): UpstreamGroup<HttpRequest> => {
    const named = groups.get(host);
    if (named !== undefined) return named;
    const key = `${host}:${port}`;
    const group = implicit.get(key) ?? implicitGroup(host, port);
    // Bounded: addresses from variables are the client's to choose.
    if (implicit.size < 1024) implicit.set(key, group);
    return group;
  };
  const template = target.template === undefined ? undefined : compileTemplate(target.template, table, { literal: toByteString });
  const group = template === undefined ? groupOf(target.host, target.port) : undefined;
  const groupFor: CompiledFastcgi['groupFor'] = (request) => {
    if (group !== undefined) return group;
    const value = (template as CompiledTemplate<HttpRequest>)(request);
    const named = groups.get(value);
    if (named !== undefined) return named;
    const address = dynamicAddress(value);
    if ('error' in address) return { error: `${address.error} in upstream "${value}"`, status: 500 };
    // A host name would need a resolver; ngx_http_upstream_init_request() says so and answers 502.
    if (address.host !== undefined) return { error: `no resolver defined to resolve ${address.host}`, status: 502 };
    return groupOf(address.name, address.port);
  };
  const errorCodes = new Set(block.get('error_page').flatMap((page) => page.codes));
  const tls = target.tls === true ? UpstreamTls.load(upstreamTlsSettings(block, 'uwsgi'), certificateCaches, 'uwsgi_ssl_conf_command') : undefined;
  const sslCertificate = tls?.variableCertificate === true ? certificatePathsOf(tls.settings, table) : (): undefined => undefined;
  const sslNameSetting = tls === undefined ? undefined : block.get('uwsgi_ssl_name' as 'grpc_ssl_name');
  const sslNameTemplate = sslNameSetting === undefined ? undefined : compileTemplate(sslNameSetting, table, { literal: toByteString });
  return {
    protocol,
    tls,
    sslCertificate,
    sslName: (request) => sslHostName(sslNameTemplate !== undefined ? sslNameTemplate(request) : target.host),
    source: target.source,
    modifier1: protocol === 'uwsgi' ? block.get('uwsgi_modifier1') : 0,
    modifier2: protocol === 'uwsgi' ? block.get('uwsgi_modifier2') : 0,
    group,
    groupFor,
    params,
    paramHeaders: new Set(params.filter((param) => param.name.startsWith('HTTP_')).map((param) => param.name)),
    keepConn: protocol === 'fastcgi' && block.get('fastcgi_keep_conn'),
    // ngx_http_fastcgi_hide_headers, ngx_http_scgi_hide_headers: Status and the X-Accel-* fields are nginx's, not the client's.
    hide: new Set([...(protocol !== 'uwsgi' ? ['status'] : []), ...block.get(`${protocol}_hide_header` as 'fastcgi_hide_header')]),
    pass: new Set(block.get(`${protocol}_pass_header` as 'fastcgi_pass_header')),
    ignoreHeaders: block.get(`${protocol}_ignore_headers` as 'fastcgi_ignore_headers'),
    catchStderr: protocol === 'fastcgi' ? block.get('fastcgi_catch_stderr') : [],
    connectTimeoutMs: block.get(`${protocol}_connect_timeout` as 'fastcgi_connect_timeout'),
    sendTimeoutMs: block.get(`${protocol}_send_timeout` as 'fastcgi_send_timeout'),
    readTimeoutMs: block.get(`${protocol}_read_timeout` as 'fastcgi_read_timeout'),
    interceptErrors: block.get(`${protocol}_intercept_errors` as 'fastcgi_intercept_errors'),
    nextUpstream: block.get(`${protocol}_next_upstream` as 'fastcgi_next_upstream'),
    nextTries: block.get(`${protocol}_next_upstream_tries` as 'fastcgi_next_upstream_tries'),
    nextTimeoutMs: block.get(`${protocol}_next_upstream_timeout` as 'fastcgi_next_upstream_timeout'),
    socketKeepalive: block.get(`${protocol}_socket_keepalive` as 'fastcgi_socket_keepalive'),
    bind: compileBind(block.get(`${protocol}_bind` as 'proxy_bind'), (value) => compileTemplate(value, table, { literal: toByteString })),
    buffering: block.get(`${protocol}_buffering` as 'fastcgi_buffering'),
    requestBuffering: block.get(`${protocol}_request_buffering` as 'fastcgi_request_buffering'),
    passRequestBody: block.get(`${protocol}_pass_request_body` as 'fastcgi_pass_request_body'),
    passRequestHeaders: block.get(`${protocol}_pass_request_headers` as 'fastcgi_pass_request_headers'),
    ignoreClientAbort: block.get(`${protocol}_ignore_client_abort` as 'fastcgi_ignore_client_abort'),
    limitRate: compileLimitRate(block.get(`${protocol}_limit_rate` as 'fastcgi_limit_rate'), (value) => compileTemplate(value, table, { literal: toByteString })),
    maxBodySize: block.get('client_max_body_size'),
    bodyBufferSize: block.get('client_body_buffer_size'),
    errorPageFor: (status) => errorCodes.has(status),
  };
}

/** A fastcgi_pass value with variables, as ngx_parse_url() reads it: `unix:/path`, `ip:port` or `[ip6]:port`; a host name is returned as such. */
function dynamicAddress(value: string): { readonly name: string; readonly port: number; readonly host?: string } | { readonly error: string } {
  if (value.toLowerCase().startsWith('unix:')) return value.length > 5 ? { name: value, port: 0 } : { error: 'no path in the unix domain socket' };
  const v6 = /^\[([0-9A-Fa-f:.]+)\]:([0-9]+)$/.exec(value);
  const v4 = v6 === null ? /^([^:/[\]]+):([0-9]+)$/.exec(value) : null;
  const match = v6 ?? v4;
  if (match === null) return { error: value.includes(':') ? 'invalid port' : 'no port' };
  const host = match[1] as string;
  const port = Number(match[2]);
  if (port < 1 || port > 65535) return { error: 'invalid port' };
  if (isIP(host) === 0) return { name: value, port, host };
  return { name: v6 === null ? host : `[${host}]`, port };
}
