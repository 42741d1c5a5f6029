/**
 * A connection on a `listen ... ssl` address before its protocol is known: nginx's
 * `ngx_http_ssl_handshake()`. The first byte tells a TLS ClientHello (0x16, or an SSLv2 hello with
 * the high bit set) from plain HTTP, which nginx still reads to answer 497; a handshake then ends in
 * HTTP/2 or HTTP/1.1 by ALPN.
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { inheritLocalAddress } from '../core/local-address.js';
import { PendingConnection } from './pending-connection.js';
import { HttpRequest } from './request.js';
import type { TlsTermination } from '../tls/sni.js';
import { clientHelloIncomplete } from '../tls/client-hello.js';
import type { AcmeChallenges } from '../tls/acme-challenges.js';
import { channels } from '../core/diagnostics.js';

/** How the connection goes on: HTTP/2 or HTTP/1.1 over TLS, or plain HTTP sent to a TLS port. */
export type TlsOutcome = 'h2' | 'http/1.1' | 'plain';

/** Receives the socket (the TLS one unless `plain`) once the handshake is done. */
export type TlsChoice = (socket: Socket, outcome: TlsOutcome) => void;

/** Tracked like a connection so that a drain or a fast shutdown sees a handshake in progress. */
export class TlsHandshake<S> extends PendingConnection {
  socket: Socket;
  readonly #termination: TlsTermination<S>;
  readonly #challenges: AcmeChallenges;
  readonly #timeoutMs: number;
  readonly #choose: TlsChoice;
  /** Set once the TLS handshake began, until its end is published (`hitless:tls:handshake`). */
  #tlsPending = false;
  readonly #onTimeout = (): void => {
    this.#tlsEnded(false, 'timeout');
    this.socket.destroy();
  };
  readonly #onError = (err: Error): void => {
    this.#tlsEnded(false, handshakeFailureReason(err));
    this.socket.destroy();
  };
  readonly #onClose = (): void => {
    this.#tlsEnded(false, 'closed');
    this.finish();
  };

  /** `timeoutMs` bounds the handshake, as nginx's client_header_timeout does; `challenges` answers tls-alpn-01 first. */
  constructor(socket: Socket, termination: TlsTermination<S>, challenges: AcmeChallenges, timeoutMs: number, choose: TlsChoice) {
    super();
    this.socket = socket;
    this.#termination = termination;
    this.#challenges = challenges;
    this.#timeoutMs = timeoutMs;
    this.#choose = choose;
    this.#watch(socket);
    // The ClientHello is read whole first (for the staple of the certificate it gets, and $ssl_ciphers).
    const chunks: Buffer[] = [];
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      const bytes = chunks.length === 1 ? chunk : Buffer.concat(chunks);
      if (clientHelloIncomplete(bytes)) return;
      socket.off('data', onData);
      this.#first(bytes);
    };
    socket.on('data', onData);
  }

  #watch(socket: Socket): void {
    socket.on('timeout', this.#onTimeout);
    socket.on('error', this.#onError);
    socket.on('close', this.#onClose);
    socket.setTimeout(this.#timeoutMs);
  }

  #unwatch(socket: Socket): void {
    socket.off('timeout', this.#onTimeout);
    socket.off('error', this.#onError);
    socket.off('close', this.#onClose);
    socket.setTimeout(0);
  }

  #first(chunk: Buffer): void {
    const raw = this.socket;
    raw.pause();
    raw.unshift(chunk);
    this.#unwatch(raw);
    const byte = chunk[0] ?? 0;
    if (byte !== 0x16 && (byte & 0x80) === 0) {
      this.#choose(raw, 'plain');
      raw.resume();
      this.finish();
      return;
    }
    // nginx-acme's ClientHello callback: acme-tls/1 for a name with a challenge, before any server's TLS.
    const challenge = this.#challenges.answer(raw, chunk);
    if (challenge !== undefined) {
      this.#challenge(raw, challenge);
      return;
    }
    const secure: TLSSocket | undefined = this.#termination.wrap(raw, chunk);
    if (secure === undefined) {
      // ssl_reject_handshake: the alert is on its way and the socket ends; only its end is watched.
      channels.tlsHandshake.publishLazy(() => ({ ok: false, resumed: false, reason: 'rejected' }));
      this.#watch(raw);
      return;
    }
    inheritLocalAddress(raw, secure);
    this.socket = secure;
    this.#tlsPending = true;
    this.#watch(secure);
    secure.once('secure', () => {
      this.#unwatch(secure);
      this.#tlsEnded(true, '', secure.isSessionReused());
      // What tls.Server's onServerSocketSecure() does before 'secureConnection': node:http2 waits for
      // a 'secureConnect' a server socket never emits while this flag is still set.
      (secure as TLSSocket & { secureConnecting: boolean }).secureConnecting = false;
      this.#choose(secure, secure.alpnProtocol === 'h2' ? 'h2' : 'http/1.1');
      this.finish();
    });
  }

  /** A tls-alpn-01 handshake: watched as any until it is done, then the socket closes (acme-challenges.ts). */
  #challenge(raw: Socket, secure: TLSSocket): void {
    inheritLocalAddress(raw, secure);
    this.socket = secure;
    this.#tlsPending = true;
    this.#watch(secure);
    secure.once('secure', () => {
      this.#unwatch(secure);
      this.#tlsEnded(true, '', false);
      // Closed by the responder once the handshake is done; errors of the close are the client's.
      secure.on('error', () => secure.destroy());
      this.finish();
    });
  }

  /** Publishes how the handshake ended, once. */
  #tlsEnded(ok: boolean, reason: string, resumed = false): void {
    if (!this.#tlsPending) return;
    this.#tlsPending = false;
    channels.tlsHandshake.publishLazy(() => ({ ok, resumed, reason }));
  }

  /** A handshake still unfinished when a drain's grace ends is closed. */
  protected graceExpired(): void {
    this.socket.destroy();
  }
}

/** `ngx_http_alloc_request()` in the certificate callback: the connection and its SNI name, nothing else. */
export function handshakeRequest(socket: TLSSocket, servername: string): HttpRequest {
  return new HttpRequest(
    { method: '', target: '', versionMinor: 1, headers: [] },
    {
      number: 0,
      requests: 0,
      remoteAddress: socket.remoteAddress ?? '',
      remotePort: String(socket.remotePort ?? ''),
      localAddress: socket.localAddress ?? '',
      localPort: String(socket.localPort ?? ''),
      tls: { serverName: servername, protocol: '', cipher: '', sessionReused: '.', client: undefined, alpnProtocol: '', sessionId: () => '', ciphers: () => '', curves: () => '', curve: () => '' },
      bytesWritten: () => 0,
    },
    Date.now(),
  );
}

/** OpenSSL's reason for a failed handshake, from Node's error code (`ERR_SSL_NO_SHARED_CIPHER` is `no_shared_cipher`), or the socket's (`econnreset`). */
function handshakeFailureReason(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === undefined) return 'error';
  return code.replace(/^ERR_SSL_/, '').toLowerCase();
}
