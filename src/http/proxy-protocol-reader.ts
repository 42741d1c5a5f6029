/**
 * A connection on a `listen ... proxy_protocol` address before its PROXY protocol header is read:
 * nginx's `ngx_http_wait_request_handler()` calling `ngx_proxy_protocol_read()`. The header comes
 * first, before TLS and before HTTP/2's preface; a broken one, or none within client_header_timeout,
 * closes the connection without an answer, as nginx does.
 */
import type { Socket } from 'node:net';
import { brokenHeaderText, readProxyProtocol, type ProxyProtocolAddresses } from '../core/proxy-protocol.js';
import { PendingConnection } from './pending-connection.js';

/** Receives the socket, the header's bytes consumed, and the addresses (undefined for `UNKNOWN`/`LOCAL`). */
export type ProxyProtocolRead = (socket: Socket, addresses: ProxyProtocolAddresses | undefined) => void;

/** Why the header was not read, for the error log: nginx's words. */
export type ProxyProtocolFailure = { readonly kind: 'broken'; readonly header: string } | { readonly kind: 'timeout' };

export class ProxyProtocolReader extends PendingConnection {
  readonly socket: Socket;
  readonly #read: ProxyProtocolRead;
  readonly #failed: (failure: ProxyProtocolFailure) => void;
  #buf: Buffer | undefined;
  readonly #unwatch: () => void;

  /** `timeoutMs` bounds the wait for the header (nginx's client_header_timeout). */
  constructor(socket: Socket, timeoutMs: number, read: ProxyProtocolRead, failed: (failure: ProxyProtocolFailure) => void) {
    super();
    this.socket = socket;
    this.#read = read;
    this.#failed = failed;
    this.#unwatch = this.watchFirstBytes(socket, timeoutMs, (chunk) => this.#data(chunk), () => failed({ kind: 'timeout' }));
  }

  #data(chunk: Buffer): void {
    const buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#buf = buf;
    const header = readProxyProtocol(buf);
    if (header.kind === 'again') return;
    const socket = this.socket;
    this.#unwatch();
    this.#buf = undefined;
    if (header.kind === 'broken') {
      this.#failed({ kind: 'broken', header: brokenHeaderText(buf) });
      socket.destroy();
      this.finish();
      return;
    }
    socket.pause();
    const rest = buf.subarray(header.length);
    if (rest.length > 0) socket.unshift(rest);
    this.#read(socket, header.addresses);
    this.finish();
  }

  /** A connection still without its header when a drain's grace ends is closed. */
  protected graceExpired(): void {
    this.socket.destroy();
  }
}
