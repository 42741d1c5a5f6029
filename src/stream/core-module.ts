/**
 * nginx's `ngx_stream_module` and `ngx_stream_core_module`: the `stream` block, its `server`
 * blocks, `listen` (`ngx_stream_core_listen()`, nginx 1.25.5's rules: servers share an address and
 * are chosen by `server_name`, `default_server`, `udp` datagram sockets), and the preread and PROXY
 * protocol limits of a session.
 */
import { ConfigError } from '../core/errors.js';
import { defineDirective, type AnyDirectiveSpec, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { timeDirective } from '../conf/values.js';
import { parseResolver } from '../conf/resolver-setting.js';
import { parseSize, parseTime } from '../core/parse.js';
import { groupListens, parseListen, type HttpListen } from '../http/listen.js';
import { httpCoreModule } from '../http/core-module.js';
import { VirtualHosts } from '../http/server-names.js';
import { reuseDirective } from './reuse.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    stream: undefined;
    preread_buffer_size: number;
    preread_timeout: number;
    proxy_protocol_timeout: number;
    tcp_nodelay: boolean;
  }
}

/** The parameters `listen` takes in `stream` (ngx_stream_core_listen()). */
const STREAM_LISTEN_PARAMS = /^(default_server|bind|reuseport|ssl|proxy_protocol|udp|(fastopen|backlog|rcvbuf|sndbuf|so_keepalive)=.*|ipv6only=o.*)$/;

/** The parameters ngx_stream_core_listen() refuses with `udp`, in the order it checks them. */
const TCP_ONLY_PARAMS = ['backlog', 'ssl', 'so_keepalive', 'proxy_protocol', 'fastopen'] as const;

/**
 * Parses a stream `listen`. The address rules are ngx_parse_url()'s, shared with http. nginx 1.22
 * binds a listen without a port to port 0 (any free port), which nobody can connect to on
 * purpose; hitless refuses it instead.
 */
export function parseStreamListen(args: readonly string[], ctx: DirectiveContext, previous: readonly HttpListen[] | undefined): readonly HttpListen[] {
  const [url = '', ...params] = args;
  for (const param of params) {
    if (!STREAM_LISTEN_PARAMS.test(param)) ctx.fail(`the invalid "${param}" parameter`);
  }
  const explicitPort = url.slice(0, 5).toLowerCase() === 'unix:' || /:[0-9]+$/.test(url) || /^[0-9]+$/.test(url);
  if (!explicitPort) ctx.fail(`no port in "${url}" of the "listen" directive`);
  const udp = params.includes('udp');
  const listens = parseListen([url, ...params.filter((param) => param !== 'udp')], ctx, undefined);
  if (!udp) return [...(previous ?? []), ...listens];
  for (const name of TCP_ONLY_PARAMS) {
    if (params.some((param) => param === name || param.startsWith(`${name}=`))) ctx.fail(`"listen" directive "${name}" parameter is incompatible with "udp"`);
  }
  // Node's dgram module has no UNIX-domain datagram sockets.
  if (listens.some((listen) => listen.family === 'unix')) ctx.fail('the "udp" parameter with a unix domain socket is not supported by hitless');
  return [...(previous ?? []), ...listens.map((listen) => ({ ...listen, udp: true }))];
}

/**
 * `ngx_stream_add_listen()`'s checks (nginx 1.25.5, where servers share an address and are told
 * apart by server_name: a server listing an address twice, two default servers, two sets of
 * socket options). A server without proxy_pass or return is no longer refused (nginx 1.25.5): a
 * session that reaches it there, by SNI or not, ends with 500 (ngx_stream_core_content_phase()).
 */
function checkServers(stream: ConfBlockView): void {
  for (const server of stream.blocks) {
    if (server.name !== 'server') continue;
    if (!server.isSet('listen')) throw new ConfigError('no "listen" is defined for server', server);
  }
  for (const socket of groupListens(stream)) {
    for (const addr of socket.addrs) {
      if (addr.servers.length < 2) continue;
      // ngx_stream_server_names(): a bad wildcard refuses the configuration.
      VirtualHosts.build(addr.servers, addr.defaultServer, (server) => server.get('server_name'), addr.listen.addrText, {
        invalid: (reason) => {
          throw new ConfigError(reason, undefined);
        },
        conflict: () => undefined,
      });
    }
  }
  for (const server of stream.blocks) {
    if (server.name !== 'server') continue;
    // The active checks connect over TCP; a UDP server's peers would all be marked down.
    if (server.isSet('health_check') && server.get('listen').some((listen) => listen.udp)) {
      throw new ConfigError('"health_check" in a server that listens with "udp" is not supported by hitless', server);
    }
  }
}

/** A `time;` directive of the stream block and its servers. */
function time(name: string, summary: string, defaultText: string, contexts: DirectiveContext['context'][] = ['stream', 'stream_server']): AnyDirectiveSpec {
  return timeDirective(name, summary, defaultText, contexts);
}

/** The `stream` block and its virtual servers. */
export const streamCoreModule: ConfModule = {
  name: 'ngx_stream_core_module',
  directives: [
    defineDirective({
      kind: 'block',
      name: 'stream',
      contexts: ['main'],
      args: [0],
      block: 'stream',
      unique: true,
      syntax: '{ ... }',
      summary: 'The TCP (L4) proxy: its servers and upstream groups.',
    }),
    defineDirective({
      kind: 'block',
      name: 'server',
      contexts: ['stream'],
      args: [0],
      block: 'stream_server',
      syntax: '{ ... }',
      summary: 'An L4 virtual server, chosen by the address a connection arrives on and, among the servers sharing it, by server_name.',
    }),
    defineDirective({
      kind: 'value',
      name: 'listen',
      contexts: ['stream_server'],
      args: '1+',
      repeatable: true,
      inherit: false,
      syntax: 'address:port [default_server] [ssl] [udp] [proxy_protocol] [backlog=number] [rcvbuf=size] [sndbuf=size] [bind] [ipv6only=on|off] [reuseport] [so_keepalive=on|off|[keepidle]:[keepintvl]:[keepcnt]]; | unix:path [...];',
      summary: 'The address and port, or unix socket, the stream server accepts connections (or with udp, datagrams) on; servers sharing one are chosen by server_name (the TLS SNI name, or ssl_preread\'s), else the first or the default_server.',
      default: () => [],
      defaultText: '—',
      parse: parseStreamListen,
    }),
    reuseDirective(httpCoreModule, 'server_name', ['stream_server'], {
      summary: 'The names of the virtual server among those sharing an address (nginx 1.25.5), matched against the TLS SNI name or ssl_preread\'s server name: exact, *.example.com, .example.com, www.example.*, ~regex (with named captures).',
    }),
    reuseDirective(httpCoreModule, 'server_names_hash_max_size', ['stream']),
    reuseDirective(httpCoreModule, 'server_names_hash_bucket_size', ['stream']),
    defineDirective({
      kind: 'value',
      name: 'preread_buffer_size',
      contexts: ['stream', 'stream_server'],
      args: [1],
      syntax: 'size;',
      summary: 'The most bytes read from a client before the session is routed (ssl_preread); a ClientHello larger than this is left unparsed.',
      default: () => 16384,
      defaultText: 'preread_buffer_size 16k;',
      parse: ([value = ''], ctx) => parseSize(value) ?? ctx.fail('"preread_buffer_size" directive invalid value'),
    }),
    time('preread_timeout', 'How long the preread phase (ssl_preread) may wait for the client\'s first bytes.', '30s'),
    time('proxy_protocol_timeout', 'How long reading the PROXY protocol header of a listen ... proxy_protocol connection may take.', '30s'),
    defineDirective({
      kind: 'value',
      name: 'tcp_nodelay',
      contexts: ['stream', 'stream_server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Sets TCP_NODELAY on client and upstream connections.',
      default: () => true,
      defaultText: 'tcp_nodelay on;',
      parse: ([value]) => value === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'resolver',
      contexts: ['stream', 'stream_server'],
      args: '1+',
      syntax: 'address ... [valid=time] [ipv4=on|off] [ipv6=on|off];',
      summary: 'The DNS servers that resolve the host of a proxy_pass with variables at session time, and the names of upstream `server ... resolve` lines (a group may name its own).',
      default: () => undefined,
      defaultText: '—',
      parse: parseResolver,
    }),
    defineDirective({
      kind: 'value',
      name: 'resolver_timeout',
      contexts: ['stream', 'stream_server'],
      args: [1],
      syntax: 'time;',
      summary: 'How long resolving a name may take (proxy_pass with variables; an upstream group\'s names).',
      default: () => 30_000,
      defaultText: 'resolver_timeout 30s;',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail(`"${ctx.node.name}" directive invalid value`),
    }),
  ],
  check(main) {
    const stream = main.blocks.find((block) => block.name === 'stream');
    if (stream !== undefined) checkServers(stream);
  },
};
