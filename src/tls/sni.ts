/**
 * TLS termination for one address:port: the certificate chosen by SNI with nginx's server_name
 * rules (`ngx_http_ssl_servername()`), ALPN (`ngx_http_ssl_alpn_select()`), and what a request
 * later reads of the handshake (`$ssl_protocol`, `$ssl_cipher`...).
 */
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import type { VirtualHosts } from '../http/server-names.js';
import type { ServerTls } from './contexts.js';

/** What the variables read of an established TLS connection, captured once. */
export interface TlsConnectionInfo {
  /** `$ssl_server_name`: the SNI name, or empty. */
  readonly serverName: string;
  /** `$ssl_protocol`: `TLSv1.3`. */
  readonly protocol: string;
  /** `$ssl_cipher`: OpenSSL's name of the cipher suite. */
  readonly cipher: string;
  /** `$ssl_session_reused`: `r` or `.`. */
  readonly sessionReused: string;
}

/** Reads {@link TlsConnectionInfo} off a socket whose handshake is done. */
export function tlsInfoOf(socket: TLSSocket): TlsConnectionInfo {
  const servername = (socket as TLSSocket & { servername?: string | false }).servername;
  return {
    serverName: typeof servername === 'string' ? servername : '',
    protocol: socket.getProtocol() ?? '',
    cipher: socket.getCipher()?.name ?? '',
    sessionReused: socket.isSessionReused() ? 'r' : '.',
  };
}

/** A context without a certificate: a handshake that falls back to it fails. */
let refusing: SecureContext | undefined;

/** The TLS side of one address:port, built once per configuration generation. */
export class TlsTermination<S> {
  readonly #hosts: VirtualHosts<S>;
  readonly #tlsOf: (server: S) => ServerTls;
  readonly #default: SecureContext;
  readonly #alpn: string[];

  /** `http2`: `listen ... http2` or the default server's `http2 on` offer `h2` before `http/1.1`. */
  constructor(hosts: VirtualHosts<S>, tlsOf: (server: S) => ServerTls, http2: boolean) {
    this.#hosts = hosts;
    this.#tlsOf = tlsOf;
    const fallback = tlsOf(hosts.defaultServer);
    this.#default = (fallback.rejectHandshake ? undefined : fallback.context) ?? (refusing ??= createSecureContext({}));
    this.#alpn = http2 ? ['h2', 'http/1.1'] : ['http/1.1'];
  }

  /** Starts the server side of a handshake on `socket`; bytes already read must be back in it. */
  wrap(socket: Socket): TLSSocket {
    return new TLSSocket(socket, {
      isServer: true,
      secureContext: this.#default,
      ALPNProtocols: this.#alpn,
      SNICallback: (servername, done) => this.#select(servername, done),
    });
  }

  /** `ngx_http_ssl_servername()`: the server the name selects, its context, or the default's. */
  #select(servername: string, done: (err: Error | null, context?: SecureContext) => void): void {
    const { server } = this.#hosts.find(servername.toLowerCase());
    const tls = this.#tlsOf(server);
    if (tls.rejectHandshake) {
      done(new Error(`TLS handshake rejected for server name "${servername}"`));
      return;
    }
    done(null, tls.context ?? this.#default);
  }
}
