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
import { serverTlsOf } from '../tls/contexts.js';
import { TlsTermination } from '../tls/sni.js';
import type { TlsRuntime } from '../tls/tls-runtime.js';
import { sslDirectives } from '../tls/ssl-module.js';
import { reuseDirective, STREAM_SERVER_CONTEXTS } from './reuse.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_handshake_timeout: number;
  }
}

/** A `listen ... ssl` server's TLS side, built once per generation. */
export interface StreamTls {
  readonly termination: TlsTermination<ConfBlockView>;
  readonly handshakeTimeoutMs: number;
}

/** The TLS termination of a stream server: its certificates, or the store's for the client's SNI name. */
export function streamTlsOf(server: ConfBlockView, runtime: TlsRuntime, log?: ErrorLog): StreamTls {
  const report = { invalid: (): void => undefined, conflict: (): void => undefined };
  // One server per address: SNI selects among the store's certificates only.
  const hosts = VirtualHosts.build([server], server, () => [], `${server.file}:${server.line}`, report);
  return { termination: new TlsTermination(hosts, serverTlsOf, runtime, false, [], log), handshakeTimeoutMs: server.get('ssl_handshake_timeout') };
}

const SHARED = [
  'ssl_certificate', 'ssl_certificate_key', 'ssl_password_file', 'ssl_protocols', 'ssl_ciphers', 'ssl_prefer_server_ciphers',
  'ssl_ecdh_curve', 'ssl_session_timeout', 'ssl_session_cache', 'ssl_session_tickets', 'ssl_session_ticket_key',
  'ssl_reject_handshake', 'ssl_certificate_compression', 'ssl_verify_client', 'ssl_client_certificate', 'ssl_trusted_certificate', 'ssl_verify_depth', 'ssl_crl',
  'ssl_dhparam', 'ssl_stapling', 'ssl_stapling_file', 'ssl_stapling_responder', 'ssl_stapling_verify', 'ssl_conf_command',
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
  ],
  check(main, ctx) {
    const stream = main.blocks.find((block) => block.name === 'stream');
    if (stream === undefined) return;
    for (const server of stream.blocks) {
      if (server.name !== 'server') continue;
      const files = [...server.get('ssl_certificate'), ...server.get('ssl_certificate_key')];
      if (files.some((file) => file.template !== undefined)) {
        throw new ConfigError('variables in "ssl_certificate" of a stream server are not supported by hitless', { file: server.file, line: server.line });
      }
      for (const warning of serverTlsOf(server).warnings) ctx.warn(warning);
    }
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
