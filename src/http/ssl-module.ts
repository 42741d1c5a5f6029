/**
 * `ngx_http_ssl_module`: the table of tls/ssl-module.ts, and the checks nginx runs once the http
 * block is read, which need http's listens and variables.
 */
import { ConfigError } from '../core/errors.js';
import type { ConfBlockView, ConfModule } from '../conf/registry.js';
import { serverTlsOf } from '../tls/contexts.js';
import { sslDirectives } from '../tls/ssl-module.js';
import { groupListens } from './listen.js';
import { checkVariables } from './variables.js';

/** The directives of `ngx_http_ssl_module`, and its checks. */
export const httpSslModule: ConfModule = {
  ...sslDirectives,
  check(main, ctx) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    // ngx_http_variables_init_vars(): certificate names with variables use known variables only.
    const named = [http, ...http.blocks.filter((block) => block.name === 'server')];
    checkVariables(http, named.flatMap((block) => [...block.get('ssl_certificate'), ...block.get('ssl_certificate_key')].flatMap((file) => (file.template === undefined ? [] : [file.template]))));
    // ngx_http_ssl_merge_srv_conf(): every server's certificates are loaded, used or not.
    for (const server of http.blocks) if (server.name === 'server') for (const warning of serverTlsOf(server).warnings) ctx.warn(warning);
    for (const socket of groupListens(http)) {
      for (const addr of socket.addrs) {
        if (!addr.ssl) continue;
        checkSslAddress(addr.defaultServer, addr.servers);
      }
    }
  },
};

/** `ngx_http_ssl_init()`: the default server of a `listen ... ssl` address has certificates, or every server refuses handshakes. */
function checkSslAddress(defaultServer: ConfBlockView, servers: readonly ConfBlockView[]): void {
  const missing = (server: ConfBlockView): never => {
    throw new ConfigError(`no "ssl_certificate" is defined for the "listen ... ssl" directive in ${server.file}:${server.line}`, undefined);
  };
  if (defaultServer.get('ssl_certificate').length > 0) return;
  if (!defaultServer.get('ssl_reject_handshake')) missing(defaultServer);
  for (const server of servers) {
    if (server.get('ssl_certificate').length === 0 && !server.get('ssl_reject_handshake')) missing(server);
  }
}
