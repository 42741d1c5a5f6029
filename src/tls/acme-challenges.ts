/**
 * The ACME challenges a server answers while the master's ACME manager has an order open, as
 * nginx-acme's solvers answer them from its shared zone (src/acme/solvers/): http-01 tokens and
 * their key authorizations (RFC 8555 section 8.3), tls-alpn-01 certificates by server name
 * (RFC 8737). The master sends the whole table to every worker (process/ipc.ts
 * `acme-challenges`); each message replaces it.
 */
import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { parseClientHello } from './client-hello.js';

/** The ALPN protocol of tls-alpn-01 (RFC 8737 section 6.2). */
export const ACME_TLS_ALPN = 'acme-tls/1';

/** One tls-alpn-01 challenge certificate and its key, PEM. */
export interface TlsAlpnChallenge {
  readonly cert: string;
  readonly key: string;
}

/** The whole table, as the master sends it. */
export interface AcmeChallengeTable {
  /** http-01: token -> key authorization. */
  readonly http: Readonly<Record<string, string>>;
  /** tls-alpn-01: server name (lowercase) -> challenge certificate. */
  readonly tlsAlpn: Readonly<Record<string, TlsAlpnChallenge>>;
}

/** The challenges one server process answers (a worker's, or a program's own). */
export class AcmeChallenges {
  #http = new Map<string, string>();
  #tlsAlpn = new Map<string, { readonly challenge: TlsAlpnChallenge; context: SecureContext | undefined }>();

  /** Replaces the whole table. */
  replace(table: AcmeChallengeTable): void {
    this.#http = new Map(Object.entries(table.http));
    const next = new Map<string, { readonly challenge: TlsAlpnChallenge; context: SecureContext | undefined }>();
    for (const [name, challenge] of Object.entries(table.tlsAlpn)) {
      const known = this.#tlsAlpn.get(name.toLowerCase());
      // The same certificate keeps the context built for it.
      next.set(name.toLowerCase(), known !== undefined && known.challenge.cert === challenge.cert && known.challenge.key === challenge.key ? known : { challenge, context: undefined });
    }
    this.#tlsAlpn = next;
  }

  /** True while any http-01 token is presented: the request path looks only then. */
  get hasHttp(): boolean {
    return this.#http.size > 0;
  }

  /** True while any tls-alpn-01 certificate is presented: the handshake path looks only then. */
  get hasTlsAlpn(): boolean {
    return this.#tlsAlpn.size > 0;
  }

  /** The key authorization of an http-01 token, or undefined. */
  keyAuthorization(token: string): string | undefined {
    return this.#http.get(token);
  }

  /** The context of a name's tls-alpn-01 certificate (built once per certificate), or undefined. */
  tlsAlpnContext(name: string): SecureContext | undefined {
    const entry = this.#tlsAlpn.get(name.toLowerCase());
    if (entry === undefined) return undefined;
    entry.context ??= createSecureContext({ cert: entry.challenge.cert, key: entry.challenge.key });
    return entry.context;
  }

  /**
   * nginx-acme's tls-alpn-01 responder: a ClientHello (`first`, the bytes the connection began with)
   * that offers `acme-tls/1` for a name with a challenge certificate gets that certificate and
   * `acme-tls/1`, then the connection closes once the handshake is done (RFC 8737 section 3).
   * Undefined for any other ClientHello, which the server's own TLS takes.
   */
  answer(socket: Socket, first: Buffer): TLSSocket | undefined {
    if (this.#tlsAlpn.size === 0) return undefined;
    const hello = parseClientHello(first);
    if (hello === undefined || hello.serverName === undefined || !hello.alpn.includes(ACME_TLS_ALPN)) return undefined;
    let context: SecureContext | undefined;
    try {
      context = this.tlsAlpnContext(hello.serverName);
    } catch {
      // A certificate that does not load: the handshake goes to the server, and validation fails.
      return undefined;
    }
    if (context === undefined) return undefined;
    const secure = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_ALPN] });
    secure.once('secure', () => secure.destroySoon());
    return secure;
  }
}
