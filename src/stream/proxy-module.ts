/**
 * nginx's `ngx_stream_proxy_module`: `proxy_pass` to an upstream group, an address or a value
 * with variables, the connect and idle timeouts, passing a failed connect to the next peer, the
 * PROXY protocol header, and TLS to upstreams (`proxy_ssl*`, shared with http's proxy module).
 */
import { parseNumber, parseSize } from '../core/parse.js';
import { hasVariables } from '../conf/lexer.js';
import { defineDirective, type AnyDirectiveSpec, type CheckContext, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { Template } from '../core/variables.js';
import {
  checkUpstreamHost,
  checkUpstreamSsl,
  once,
  httpProxyModule,
  parseUpstreamAddress,
  timeout,
  type NextUpstreamCase,
  type ProxyPassTarget,
} from '../http/proxy-module.js';
import { parseValue } from '../conf/values.js';
import { isConstantTemplate } from '../core/variables.js';
import type { SizeValue } from '../http/limit-rate.js';
import { reuseDirective, STREAM_SERVER_CONTEXTS } from './reuse.js';
import { checkStreamVariables } from './variables.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    proxy_timeout: number;
    proxy_protocol: boolean;
    proxy_protocol_version: 1 | 2;
    proxy_ssl: boolean;
    proxy_responses: number | undefined;
    proxy_requests: number;
    proxy_half_close: boolean;
    proxy_buffer_size: number;
    /** Undefined when not given: no ALPN to the upstream. */
    proxy_ssl_alpn: readonly Template[] | undefined;
    /** Undefined when not given on any level (nginx's NULL: no limit). */
    proxy_upload_rate: SizeValue | undefined;
    proxy_download_rate: SizeValue | undefined;
  }
}

/**
 * `proxy_pass address;` of `ngx_stream_proxy_pass()`: a group name, `host:port`, `unix:/path`,
 * or a value with variables evaluated per session. The value has the shape of http's proxy_pass
 * (without scheme or URI) so that both share the upstream address checks.
 */
export function parseStreamProxyPass([address = '']: readonly string[], ctx: DirectiveContext): ProxyPassTarget {
  const where = { file: ctx.location.file, line: ctx.location.line };
  if (hasVariables(address)) {
    return { source: address, template: parseValue(address, ctx), scheme: 'http', host: '', port: 0, explicitPort: false, uri: undefined, proxyHost: '', ...where };
  }
  if (address.includes('://') || address.includes('/') && !address.toLowerCase().startsWith('unix:')) ctx.fail(`invalid host in upstream "${address}"`);
  const { host, port, explicitPort } = parseUpstreamAddress(address, 0, ctx);
  return { source: address, template: undefined, scheme: 'http', host, port, explicitPort, uri: undefined, proxyHost: explicitPort ? `${host}:${port}` : host, ...where };
}

/** Every `proxy_pass` host is a group or resolves, every variable is known: nginx's checks at start. */
function checkStreamProxy(stream: ConfBlockView, ctx: CheckContext): void {
  const warn = once(ctx);
  const groups = new Set(stream.blocks.filter((block) => block.name === 'upstream').map((block) => block.args[0] ?? ''));
  const templates: Template[] = [];
  for (const server of stream.blocks) {
    if (server.name !== 'server' || !server.isSet('proxy_pass')) continue;
    const target = server.get('proxy_pass') as ProxyPassTarget;
    if (server.get('proxy_ssl')) templates.push(...checkUpstreamSsl(server, 'proxy', warn));
    const sslName = server.get('proxy_ssl_name');
    templates.push(...(server.get('proxy_ssl_alpn') ?? []));
    for (const name of ['proxy_upload_rate', 'proxy_download_rate'] as const) {
      const rate = server.get(name);
      if (rate !== undefined && 'value' in rate) templates.push(rate.value);
    }
    if (sslName !== undefined) templates.push(sslName);
    if (target.template !== undefined) templates.push(target.template);
    else checkUpstreamHost(target, groups);
    const bind = server.get('proxy_bind');
    if (bind?.kind === 'value') templates.push(bind.value);
  }
  checkStreamVariables(stream, templates);
}

/** A size that may hold variables (ngx_stream_set_complex_value_size_slot()). */
function sizeValue([text = '']: readonly string[], ctx: DirectiveContext): SizeValue {
  const value = parseValue(text, ctx);
  if (!isConstantTemplate(value)) return { value };
  return { size: parseSize(text) ?? ctx.fail(`"${ctx.node.name}" directive invalid value`) };
}

/** `proxy_upload_rate` / `proxy_download_rate`. */
function rateDirective(name: 'proxy_upload_rate' | 'proxy_download_rate', summary: string): AnyDirectiveSpec {
  return defineDirective({
    kind: 'value',
    name,
    contexts: STREAM_SERVER_CONTEXTS,
    args: [1],
    syntax: 'rate;',
    summary,
    default: () => undefined,
    defaultText: `${name} 0;`,
    parse: sizeValue,
  });
}

const SSL_DIRECTIVES = [
  'proxy_ssl_verify', 'proxy_ssl_trusted_certificate', 'proxy_ssl_verify_depth', 'proxy_ssl_name', 'proxy_ssl_server_name',
  'proxy_ssl_protocols', 'proxy_ssl_ciphers', 'proxy_ssl_certificate', 'proxy_ssl_certificate_key', 'proxy_ssl_session_reuse',
  'proxy_ssl_password_file', 'proxy_ssl_crl', 'proxy_ssl_conf_command', 'proxy_ssl_certificate_cache',
];

/** The stream proxy module's directives. */
export const streamProxyModule: ConfModule = {
  name: 'ngx_stream_proxy_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'proxy_pass',
      contexts: ['stream_server'],
      args: [1],
      inherit: false,
      syntax: 'address;',
      summary: 'Passes the session to an upstream group, an address (host:port, unix:path), or a value with variables ($ssl_preread_server_name through a map).',
      defaultText: '—',
      parse: parseStreamProxyPass,
    }),
    timeout('proxy_connect_timeout', 'How long establishing a connection to an upstream may take.', '60s', [...STREAM_SERVER_CONTEXTS]),
    timeout('proxy_timeout', 'How long the client and upstream connections may both stay silent before the session is closed.', '10m', [...STREAM_SERVER_CONTEXTS]),
    defineDirective({
      kind: 'value',
      name: 'proxy_next_upstream',
      contexts: STREAM_SERVER_CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether a session whose upstream connection cannot be established is passed to the next server.',
      default: () => new Set<NextUpstreamCase>(['error', 'timeout']),
      defaultText: 'proxy_next_upstream on;',
      parse: ([value]) => new Set<NextUpstreamCase>(value === 'on' ? ['error', 'timeout'] : []),
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_next_upstream_tries',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: 'number;',
      summary: 'The most servers one session may be tried on; 0 means no limit.',
      default: () => 0,
      defaultText: 'proxy_next_upstream_tries 0;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"proxy_next_upstream_tries" directive invalid number'),
    }),
    timeout('proxy_next_upstream_timeout', 'How long a session may be passed from server to server; 0 means no limit.', '0', [...STREAM_SERVER_CONTEXTS]),
    defineDirective({
      kind: 'value',
      name: 'proxy_responses',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: 'number;',
      summary: 'UDP: how many datagrams the upstream sends back per client datagram; once they came, the session ends. Default: no limit (the session ends after proxy_timeout).',
      default: () => undefined,
      defaultText: '—',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"proxy_responses" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_requests',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: 'number;',
      summary: 'UDP: after this many client datagrams, the client\'s next datagram starts a new session (nginx 1.15.7); 0 means no limit.',
      default: () => 0,
      defaultText: 'proxy_requests 0;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"proxy_requests" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_half_close',
      contexts: STREAM_SERVER_CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether a FIN from one side is passed on and the other direction kept open until it closes too; off: the first FIN ends the session once the other side has been sent everything.',
      default: () => false,
      defaultText: 'proxy_half_close off;',
      parse: ([value]) => value === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_buffer_size',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: 'size;',
      summary: 'The most bytes read from one side of a session before they are written to the other.',
      default: () => 16384,
      defaultText: 'proxy_buffer_size 16k;',
      parse: ([value = ''], ctx) => parseSize(value) ?? ctx.fail('"proxy_buffer_size" directive invalid value'),
    }),
    rateDirective('proxy_upload_rate', 'Paces the bytes read from the client at rate bytes per second (0: no limit), per session; may hold variables, read once the upstream is connected.'),
    rateDirective('proxy_download_rate', 'Paces the bytes read from the upstream at rate bytes per second (0: no limit), per session; may hold variables, read once the upstream is connected.'),
    defineDirective({
      kind: 'value',
      name: 'proxy_protocol',
      contexts: STREAM_SERVER_CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Sends a PROXY protocol header with the client\'s address before the session\'s bytes to the upstream.',
      default: () => false,
      defaultText: 'proxy_protocol off;',
      parse: ([value]) => value === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_protocol_version',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: '1 | 2;',
      summary: 'hitless: the PROXY protocol version proxy_protocol sends, the text v1 (as nginx) or the binary v2.',
      default: () => 1,
      defaultText: 'proxy_protocol_version 1;',
      parse: ([value], ctx) => (value === '1' ? 1 : value === '2' ? 2 : ctx.fail(`invalid value "${value ?? ''}"`)),
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_ssl',
      contexts: STREAM_SERVER_CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Speaks TLS to the upstream, with the proxy_ssl_* settings.',
      default: () => false,
      defaultText: 'proxy_ssl off;',
      parse: ([value]) => value === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'proxy_ssl_alpn',
      contexts: STREAM_SERVER_CONTEXTS,
      args: '1+',
      syntax: 'protocol ...;',
      summary: 'The application protocols offered by ALPN to a proxy_ssl upstream; each may hold variables, and a value that comes out empty (or longer than 255 bytes) is not offered.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => args.map((arg) => {
        const value = parseValue(arg, ctx);
        if (isConstantTemplate(value) && Buffer.byteLength(arg, 'latin1') > 255) ctx.fail('"proxy_ssl_alpn" directive protocol too long');
        return value;
      }),
    }),
    ...SSL_DIRECTIVES.map((name) => reuseDirective(httpProxyModule, name, STREAM_SERVER_CONTEXTS)),
    reuseDirective(httpProxyModule, 'proxy_bind', STREAM_SERVER_CONTEXTS),
  ],
  check(main, ctx) {
    const stream = main.blocks.find((block) => block.name === 'stream');
    if (stream === undefined) return;
    checkStreamProxy(stream, ctx);
  },
};
