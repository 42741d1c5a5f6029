/**
 * The directives of nginx's `ngx_http_grpc_module`, with nginx's syntax, defaults, inheritance and
 * error messages. The upstream checks, the TLS directives and the timeouts are the proxy module's,
 * under the grpc_ names; what they do at request time is in grpc.ts.
 */
import { ConfigError } from '../core/errors.js';
import { hasVariables } from '../conf/lexer.js';
import { defineDirective, type CheckContext, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { Template } from '../core/variables.js';
import {
  checkUpstreamHost,
  checkUpstreamSsl,
  once,
  flag,
  headerList,
  nextUpstreamDirectives,
  parseUpstreamAddress,
  timeout,
  upstreamGroupNames,
  upstreamSslDirectives,
  type NextUpstreamCase,
  type ProxySetHeader,
  type UpstreamAddress,
} from './proxy-module.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';
import type { PasswordFile, TlsFile } from '../tls/ssl-module.js';
import type { CertificateCacheSetting } from '../tls/certificate-cache.js';
import { parseSize } from '../core/parse.js';

/** Where `grpc_pass` sends requests. */
export interface GrpcPassTarget extends UpstreamAddress {
  /** The argument as written. */
  readonly source: string;
  /** Set when the address holds variables: evaluated per request (ngx_http_grpc_eval()); host is then empty. */
  readonly template: Template | undefined;
  /** `grpcs://`: TLS to the upstream, with the grpc_ssl_* settings. */
  readonly tls: boolean;
  /** `:authority` sent upstream: host, and `:port` when one was written; `localhost` for a unix socket (ngx_http_grpc_pass()). */
  readonly authority: string;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    grpc_pass: GrpcPassTarget;
    grpc_set_header: readonly ProxySetHeader[];
    grpc_hide_header: readonly string[];
    grpc_pass_header: readonly string[];
    grpc_connect_timeout: number;
    grpc_send_timeout: number;
    grpc_read_timeout: number;
    grpc_intercept_errors: boolean;
    grpc_socket_keepalive: boolean;
    grpc_next_upstream: ReadonlySet<NextUpstreamCase>;
    grpc_next_upstream_tries: number;
    grpc_next_upstream_timeout: number;
    grpc_ssl_verify: boolean;
    grpc_ssl_trusted_certificate: string | undefined;
    grpc_ssl_verify_depth: number;
    grpc_ssl_name: Template | undefined;
    grpc_ssl_server_name: boolean;
    grpc_ssl_protocols: readonly string[];
    grpc_ssl_ciphers: string;
    grpc_ssl_certificate: TlsFile | undefined;
    grpc_ssl_certificate_key: TlsFile | undefined;
    grpc_ssl_session_reuse: boolean;
    grpc_ssl_password_file: PasswordFile | undefined;
    grpc_ssl_crl: string | undefined;
    grpc_ssl_conf_command: readonly (readonly [name: string, value: string])[];
    grpc_ssl_certificate_cache: CertificateCacheSetting | undefined;
    grpc_buffer_size: number;
  }
}

/** Parses `grpc_pass address`, as ngx_http_grpc_pass() does: `grpc://`, `grpcs://` or no scheme, and no default port. */
export function parseGrpcPass([url = '']: readonly string[], ctx: DirectiveContext): GrpcPassTarget {
  const lower = url.toLowerCase();
  // ngx_http_grpc_pass(): an address with variables is only compiled, its scheme taken per request;
  // the TLS client is set up for any of them, as nginx sets glcf->ssl.
  if (hasVariables(url)) {
    return { source: url, template: parseValue(url, ctx), tls: true, authority: '', host: '', port: 0, explicitPort: false, uri: undefined, file: ctx.location.file, line: ctx.location.line };
  }
  const skip = lower.startsWith('grpc://') ? 7 : lower.startsWith('grpcs://') ? 8 : 0;
  const address = parseUpstreamAddress(url.slice(skip), 0, ctx);
  const authority = address.host.startsWith('unix:') ? 'localhost' : address.explicitPort ? `${address.host}:${address.port}` : address.host;
  return { ...address, source: url, template: undefined, tls: skip === 8, authority, file: ctx.location.file, line: ctx.location.line };
}

/** Checks needing the whole `http` block: every grpc_pass host is a group or resolves, and its TLS settings load. */
function checkGrpcTargets(main: ConfBlockView, ctx: CheckContext): void {
  const http = main.blocks.find((block) => block.name === 'http');
  if (http === undefined) return;
  const warn = once(ctx);
  const groups = upstreamGroupNames(http);
  const templates: Template[] = [];
  for (const block of blocksOf(http)) {
    for (const header of block.isSet('grpc_set_header') ? block.get('grpc_set_header') : []) templates.push(header.value);
    if (!block.isSet('grpc_pass')) continue;
    const target = block.get('grpc_pass');
    if (block.isSet('proxy_pass')) throw new ConfigError('"grpc_pass" and "proxy_pass" in one location are not supported by hitless', target);
    if (target.tls) templates.push(...checkUpstreamSsl(block, 'grpc', warn));
    const sslName = block.get('grpc_ssl_name');
    if (sslName !== undefined) templates.push(sslName);
    if (target.template !== undefined) templates.push(target.template);
    else checkUpstreamHost(target, groups);
  }
  checkVariables(http, templates);
}

/** The grpc module's directives. */
export const httpGrpcModule: ConfModule = {
  name: 'ngx_http_grpc_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'grpc_pass',
      contexts: ['location'],
      args: [1],
      inherit: false,
      syntax: 'address;',
      summary: 'Passes the request to a gRPC server over HTTP/2: grpc://host:port, grpcs://host:port (TLS with the grpc_ssl_* settings), host:port, unix:/path or an upstream group; with variables it is evaluated per request (a group name, else an address, else a name for `resolver`); a connection of its own per request, closed after it, as in nginx; with `keepalive` in the upstream group, one connection per peer kept and its streams multiplexed.',
      defaultText: '—',
      parse: parseGrpcPass,
    }),
    defineDirective({
      kind: 'value',
      name: 'grpc_set_header',
      contexts: ['http', 'server', 'location'],
      args: [2],
      repeatable: true,
      syntax: 'field value;',
      summary: 'Sets a request header sent to the gRPC server (variables allowed); an empty value removes it; Host sets :authority. Inherited only by levels that set none.',
      default: () => [],
      defaultText: 'grpc_set_header Content-Length $content_length; grpc_set_header TE $grpc_internal_trailers;',
      parse: ([name = '', value = ''], ctx, previous) => [...(previous ?? []), { name, value: parseValue(value, ctx) }],
    }),
    headerList('grpc_hide_header', 'A gRPC server response header not to pass to the client, besides Date, Server and X-Accel-*.'),
    headerList('grpc_pass_header', 'Passes a gRPC server response header that is hidden by default (Date, Server, X-Accel-*).'),
    timeout('grpc_connect_timeout', 'How long establishing a connection (and the TLS handshake) to a gRPC server may take.', '60s'),
    timeout('grpc_send_timeout', 'How long the gRPC server may take to accept the next part of the request.', '60s'),
    timeout('grpc_read_timeout', 'How long the gRPC server may stay silent between two reads of its response.', '60s'),
    flag('grpc_intercept_errors', 'Whether gRPC server responses with status 300 or more are replaced by the matching error_page.', false),
    flag('grpc_socket_keepalive', 'Whether TCP keepalive (SO_KEEPALIVE) is set on connections to gRPC servers.', false),
    defineDirective({
      kind: 'value',
      name: 'grpc_buffer_size',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: "nginx: the buffer a gRPC server's response is read into, which its header block must fit. hitless checks the size as nginx does, then warns: node:http2 reads the response, and takes a header block of up to 64 KiB (its maxHeaderListSize) whatever the size; the body is passed on as it comes, as with nginx.",
      default: () => 4096,
      defaultText: 'grpc_buffer_size 4k|8k;',
      parse: ([value = ''], ctx) => {
        const size = parseSize(value) ?? ctx.fail('"grpc_buffer_size" directive invalid value');
        ctx.noEffect("node:http2 reads the gRPC server's response: a header block may take 64 KiB whatever the size");
        return size;
      },
    }),
    ...nextUpstreamDirectives('grpc'),
    ...upstreamSslDirectives('grpc', 'grpcs'),
  ],
  check: checkGrpcTargets,
};
