/**
 * nginx's `ngx_stream_ssl_module`: TLS termination on `listen ... ssl` with the http ssl module's
 * directives (registered again for stream) and the same certificate store, so a certificate
 * rotated live serves L4 too; `ssl_handshake_timeout` bounds the handshake.
 */
import { ConfigError } from '../core/errors.js';
import type { ErrorLog } from '../core/log.js';
import { parseTime } from '../core/parse.js';
import { defineDirective, type ConfBlockView, type ConfModule } from '../conf/registry.js';
import { groupListens } from '../http/listen.js';
import { VirtualHosts } from '../http/server-names.js';
import { serverTlsOf, type ServerTls } from '../tls/contexts.js';
import type { TLSSocket } from 'node:tls';
import type { Template, VariableTable } from '../core/variables.js';
import { checkStreamVariables } from './variables.js';
import type { CertificateCaches } from '../tls/certificate-cache.js';
import type { StreamSession } from './session.js';
import { TlsTermination } from '../tls/sni.js';
import type { TlsRuntime } from '../tls/tls-runtime.js';
import { sslDirectives } from '../tls/ssl-module.js';
import { reuseDirective, STREAM_SERVER_CONTEXTS } from './reuse.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_handshake_timeout: number;
    /** The protocols offered by ALPN, in the server's order of preference; empty: no ALPN. */
    ssl_alpn: readonly string[];
  }
}

/** A `listen ... ssl` server's TLS side, built once per generation. */
export interface StreamTls {
  readonly termination: TlsTermination<ConfBlockView>;
  readonly handshakeTimeoutMs: number;
  /** The session of each handshake under way, which an ssl_certificate with variables is evaluated against. */
  readonly sessions: WeakMap<TLSSocket, StreamSession>;
}

/** What an `ssl_certificate` with variables needs: the generation's variables and certificate caches. */
export interface StreamCertificateVariables {
  readonly table: VariableTable<StreamSession>;
  readonly caches: CertificateCaches;
}

/**
 * The TLS termination of one `listen ... ssl` address: SNI chooses among the servers that share it
 * by server_name (ngx_stream_ssl_servername()), then the store's certificate for the name, else
 * the chosen server's own. Certificate names with variables are evaluated in the handshake against
 * the session (ngx_stream_ssl_certificate()), where `$ssl_server_name` is the SNI name.
 */
export function streamTlsOf(servers: readonly ConfBlockView[], server: ConfBlockView, runtime: TlsRuntime, log?: ErrorLog, variables?: StreamCertificateVariables): StreamTls {
  const report = { invalid: (): void => undefined, conflict: (): void => undefined };
  const hosts = VirtualHosts.build(servers, server, (one) => one.get('server_name'), `${server.file}:${server.line}`, report);
  const sessions = new WeakMap<TLSSocket, StreamSession>();
  const bound = new Map<ConfBlockView, ServerTls>();
  const tlsOf = (block: ConfBlockView): ServerTls => {
    const tls = serverTlsOf(block);
    if (tls.variable === undefined || variables === undefined || log === undefined) return tls;
    let selected = bound.get(block);
    if (selected === undefined) {
      selected = { ...tls, select: tls.variable.bind(variables.table, (socket, servername) => handshakeSession(sessions, socket, servername), log, variables.caches) };
      bound.set(block, selected);
    }
    return selected;
  };
  // ssl_alpn: the server's list, first match in its order (SSL_select_next_proto() in
  // ngx_stream_ssl_alpn_select()); a client offering none of them fails the handshake.
  return { termination: new TlsTermination(hosts, tlsOf, runtime, false, server.get('ssl_alpn'), log), handshakeTimeoutMs: server.get('ssl_handshake_timeout'), sessions };
}

/** The session of a handshake, with the SNI name as `$ssl_server_name` until the handshake's own facts replace it. */
function handshakeSession(sessions: WeakMap<TLSSocket, StreamSession>, socket: TLSSocket, servername: string): StreamSession {
  const session = sessions.get(socket);
  if (session === undefined) throw new Error('No session for the handshake');
  session.tls = { serverName: servername, protocol: '', cipher: '', sessionReused: '.', client: undefined, alpnProtocol: '', sessionId: () => '', ciphers: () => '', curves: () => '', curve: () => '' };
  return session;
}

const SHARED = [
  'ssl_certificate', 'ssl_certificate_key', 'ssl_password_file', 'ssl_protocols', 'ssl_ciphers', 'ssl_prefer_server_ciphers',
  'ssl_ecdh_curve', 'ssl_session_timeout', 'ssl_session_cache', 'ssl_session_tickets', 'ssl_session_ticket_key',
  'ssl_reject_handshake', 'ssl_certificate_compression', 'ssl_verify_client', 'ssl_client_certificate', 'ssl_trusted_certificate', 'ssl_verify_depth', 'ssl_crl',
  'ssl_dhparam', 'ssl_stapling', 'ssl_stapling_file', 'ssl_stapling_responder', 'ssl_stapling_verify', 'ssl_conf_command',
  'ssl_certificate_cache',
];

/** The stream ssl module's directives. */
export const streamSslModule: ConfModule = {
  name: 'ngx_stream_ssl_module',
  directives: [
    ...SHARED.map((name) => reuseDirective(sslDirectives, name, STREAM_SERVER_CONTEXTS)),
    defineDirective({
      kind: 'value',
      name: 'ssl_handshake_timeout',
      contexts: STREAM_SERVER_CONTEXTS,
      args: [1],
      syntax: 'time;',
      summary: 'How long the TLS handshake of a listen ... ssl session may take.',
      default: () => 60_000,
      defaultText: 'ssl_handshake_timeout 60s;',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail('"ssl_handshake_timeout" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_alpn',
      contexts: STREAM_SERVER_CONTEXTS,
      args: '1+',
      syntax: 'protocol ...;',
      summary: 'The application protocols a listen ... ssl server accepts by ALPN, most preferred first; a client that offers ALPN but none of them fails the handshake ($ssl_alpn_protocol is the one chosen).',
      default: () => [],
      defaultText: '—',
      parse: (args, ctx) => {
        if (args.some((protocol) => Buffer.byteLength(protocol, 'latin1') > 255)) ctx.fail('"ssl_alpn" directive protocol too long');
        return [...args];
      },
    }),
  ],
  check(main, ctx) {
    const stream = main.blocks.find((block) => block.name === 'stream');
    if (stream === undefined) return;
    const templates: Template[] = [];
    for (const server of stream.blocks) {
      if (server.name !== 'server') continue;
      const files = [...server.get('ssl_certificate'), ...server.get('ssl_certificate_key')];
      // Names with variables are evaluated in each handshake against the session (streamTlsOf()).
      for (const file of files) if (file.template !== undefined) templates.push(file.template);
      for (const warning of serverTlsOf(server).warnings) ctx.warn(warning);
    }
    checkStreamVariables(stream, templates);
    for (const socket of groupListens(stream)) {
      for (const addr of socket.addrs) {
        const server = addr.defaultServer;
        if (addr.ssl && server.get('ssl_certificate').length === 0 && !server.get('ssl_reject_handshake')) {
          const listen = server.get('listen').find((entry) => entry.ssl) ?? { file: server.file, line: server.line };
          // ngx_stream_ssl_merge_srv_conf() names the listen's place in its text: the same words as a located error.
          throw new ConfigError('no "ssl_certificate" is defined for the "listen ... ssl" directive', { file: listen.file, line: listen.line });
        }
      }
    }
  },
};
