/**
 * A location's grpc_pass settings, compiled once per generation: the group, the request headers
 * (nginx's defaults under the configured ones), the TLS client for grpcs:// and every timeout.
 */
import { compileTemplate, parseTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { GrpcPassTarget } from './grpc-module.js';
import { upstreamTlsSettings, type NextUpstreamCase } from './proxy-module.js';
import type { CompiledSetHeader } from './proxy-request.js';
import type { HttpRequest } from './request.js';
import { implicitGroup, type UpstreamGroup } from '../upstream/group.js';
import { toByteString } from '../core/byte-string.js';
import { certificatePathsOf, sslHostName, UpstreamTls } from '../tls/upstream-tls.js';
import type { CertificateCaches, CertificatePaths } from '../tls/certificate-cache.js';
import { earlyHintsPredicate } from './early-hints.js';
import { isIP } from 'node:net';
import { splitHostPort } from './proxy-config.js';
import { ResolveFailure, type Resolvers } from '../upstream/host-resolver.js';

/**
 * nginx's implicit `grpc_set_header` lines (ngx_http_grpc_headers), used for any header the
 * configuration does not set: an empty value keeps the client's header from going upstream.
 */
const DEFAULT_SET_HEADERS: readonly [string, string][] = [
  ['Content-Length', '$content_length'],
  ['TE', '$grpc_internal_trailers'],
  ['Host', ''],
  ['Connection', ''],
  ['Proxy-Connection', ''],
  ['Transfer-Encoding', ''],
  ['Keep-Alive', ''],
  ['Expect', ''],
  ['Upgrade', ''],
];

/** A location's `grpc_pass` and the directives that shape it. */
export interface CompiledGrpc {
  /** The argument of grpc_pass, for the error log's `upstream: "grpc://..."`. */
  readonly scheme: 'grpc' | 'grpcs';
  readonly group: UpstreamGroup<HttpRequest>;
  /** `:authority` when grpc_set_header sets no Host: grpc_pass's host[:port]. */
  readonly authority: string;
  /** `grpc_set_header Host value`: the `:authority` per request, when set. */
  readonly host: CompiledTemplate<HttpRequest> | undefined;
  /** The headers to set (Host excluded), nginx's defaults included; an empty value sends none. */
  readonly setHeaders: readonly CompiledSetHeader[];
  readonly hide: ReadonlySet<string>;
  /** early_hints: true when the server's 103 goes to the client of this request; default never. */
  earlyHints(request: HttpRequest): boolean;
  readonly pass: ReadonlySet<string>;
  readonly connectTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly interceptErrors: boolean;
  readonly nextUpstream: ReadonlySet<NextUpstreamCase>;
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
  readonly socketKeepalive: boolean;
  readonly maxBodySize: number;
  /** True when an error_page covers the status (grpc_intercept_errors). */
  errorPageFor(status: number): boolean;
  /** The TLS client for grpcs://; undefined for grpc://. */
  readonly tls: UpstreamTls | undefined;
  /** `grpc_ssl_name` for this request (default: grpc_pass's host), without its port. */
  sslName(request: HttpRequest): string;
  /** `grpc_ssl_certificate` with variables: the files of this request; undefined when fixed or evaluated empty (no certificate). */
  sslCertificate(request: HttpRequest): CertificatePaths | undefined;
  /**
   * The settings for this request: these, or for grpc_pass with variables a copy with the group,
   * scheme and `:authority` it evaluates to (ngx_http_grpc_eval()); a string is nginx's error line (502).
   */
  routed(request: HttpRequest): CompiledGrpc | string;
  /**
   * For grpc_pass with variables and a `resolver`: undefined when {@link routed} can answer now,
   * else the resolution, which ends with nothing (routed answers then) or nginx's error line.
   */
  resolveHost(request: HttpRequest): Promise<string | undefined> | undefined;
}

/** An evaluated grpc_pass address (ngx_http_grpc_eval()): `grpc://` or `grpcs://` taken off when longer than itself. */
function evaluatedAddress(url: string): { tls: boolean; host: string } {
  const lower = url.toLowerCase();
  if (url.length > 7 && lower.startsWith('grpc://')) return { tls: false, host: url.slice(7) };
  if (url.length > 8 && lower.startsWith('grpcs://')) return { tls: true, host: url.slice(8) };
  return { tls: false, host: url };
}

/** Compiles the grpc settings of a location that has `grpc_pass`. */
export function compileGrpc(
  block: ConfBlockView,
  target: GrpcPassTarget,
  groups: ReadonlyMap<string, UpstreamGroup<HttpRequest>>,
  implicit: Map<string, UpstreamGroup<HttpRequest>>,
  table: VariableTable<HttpRequest>,
  certificateCaches?: CertificateCaches,
  resolvers?: Resolvers<HttpRequest>,
): CompiledGrpc {
  const text = (template: Parameters<typeof compileTemplate>[0]): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const own = block.get('grpc_set_header');
  const setHeaders: CompiledSetHeader[] = own.map((header) => ({ key: header.name.toLowerCase(), name: header.name, value: text(header.value) }));
  for (const [name, value] of DEFAULT_SET_HEADERS) {
    if (!setHeaders.some((header) => header.key === name.toLowerCase())) setHeaders.push({ key: name.toLowerCase(), name, value: text(parseTemplate(value)) });
  }
  const hostIndex = own.findIndex((header) => header.name.toLowerCase() === 'host');
  const host = hostIndex === -1 ? undefined : setHeaders[hostIndex]?.value;
  const dynamic = target.template === undefined ? undefined : text(target.template);
  // With variables, routed() gives each request its group: this one (no peers) is never tried.
  let group = dynamic === undefined ? groups.get(target.host) : (implicitGroup('unix:', 0, []) as UpstreamGroup<HttpRequest>);
  if (group === undefined) {
    const key = `${target.host}:${target.port}`;
    group = implicit.get(key) ?? implicitGroup(target.host, target.port);
    implicit.set(key, group);
  }
  const resolverSetting = block.get('resolver');
  const resolver = dynamic !== undefined && resolverSetting !== undefined && resolvers !== undefined ? resolvers.for(resolverSetting, block.get('resolver_timeout')) : undefined;
  // ngx_http_upstream_init_request(): an upstream group by that name, else an address, else the resolver.
  const known = (host: string): UpstreamGroup<HttpRequest> | string | undefined => {
    if (host.slice(0, 5).toLowerCase() === 'unix:' && host.length > 5) return implicitGroup(host, 0) as UpstreamGroup<HttpRequest>;
    const { name, port } = splitHostPort(host, 0);
    const found = groups.get(host) ?? implicit.get(host);
    if (found !== undefined) return found;
    if (port === 0) return `no port in upstream "${host}"`;
    if (isIP(name) !== 0) return implicitGroup(name, port) as UpstreamGroup<HttpRequest>;
    return resolver?.cached(name, port);
  };
  const errorCodes = new Set(block.get('error_page').flatMap((page) => page.codes));
  const tls = target.tls ? UpstreamTls.load(upstreamTlsSettings(block, 'grpc'), certificateCaches, 'grpc_ssl_conf_command') : undefined;
  const sslCertificate = tls?.variableCertificate === true ? certificatePathsOf(tls.settings, table) : () => undefined;
  const sslNameSetting = block.get('grpc_ssl_name');
  const sslNameTemplate = sslNameSetting === undefined ? undefined : text(sslNameSetting);
  const compiled: CompiledGrpc = {
    scheme: target.tls ? 'grpcs' : 'grpc',
    group,
    authority: target.authority,
    host,
    setHeaders,
    hide: new Set(block.get('grpc_hide_header')),
    earlyHints: earlyHintsPredicate((block.get('early_hints') ?? []).map(text)),
    pass: new Set(block.get('grpc_pass_header')),
    connectTimeoutMs: block.get('grpc_connect_timeout'),
    sendTimeoutMs: block.get('grpc_send_timeout'),
    readTimeoutMs: block.get('grpc_read_timeout'),
    interceptErrors: block.get('grpc_intercept_errors'),
    nextUpstream: block.get('grpc_next_upstream'),
    nextTries: block.get('grpc_next_upstream_tries'),
    nextTimeoutMs: block.get('grpc_next_upstream_timeout'),
    socketKeepalive: block.get('grpc_socket_keepalive'),
    maxBodySize: block.get('client_max_body_size'),
    errorPageFor: (status) => errorCodes.has(status),
    tls,
    sslName: (request) => sslHostName(sslNameTemplate !== undefined ? sslNameTemplate(request) : target.authority),
    sslCertificate,
    routed: () => compiled,
    resolveHost: () => undefined,
  };
  if (dynamic === undefined) return compiled;
  compiled.routed = (request) => {
    const { tls: secure, host } = evaluatedAddress(dynamic(request));
    if (host === '') return 'no host in upstream ""';
    const found = known(host);
    if (typeof found === 'string') return found;
    if (found === undefined) return `no resolver defined to resolve ${splitHostPort(host, 0).name}`;
    // ngx_http_grpc_eval(): :authority is the host as written, `localhost` for a unix socket.
    const authority = host.slice(0, 5).toLowerCase() === 'unix:' ? 'localhost' : host;
    const sslName = (req: HttpRequest): string => sslHostName(sslNameTemplate !== undefined ? sslNameTemplate(req) : authority);
    return { ...compiled, scheme: secure ? 'grpcs' : 'grpc', group: found, authority, tls: secure ? tls : undefined, sslName };
  };
  compiled.resolveHost = (request) => {
    if (resolver === undefined) return undefined;
    const { host } = evaluatedAddress(dynamic(request));
    if (host === '' || known(host) !== undefined) return undefined;
    const { name, port } = splitHostPort(host, 0);
    return resolver.resolve(name, port).then((outcome) => (outcome instanceof ResolveFailure ? outcome.message : undefined));
  };
  return compiled;
}
