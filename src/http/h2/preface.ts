/**
 * HTTP/2 over cleartext with prior knowledge (RFC 9113 section 3.3) next to HTTP/1.x on one socket,
 * as nginx does for `http2 on` without TLS (ngx_http_wait_request_handler): the first bytes are
 * compared with the client connection preface; a full match hands the socket to HTTP/2, the first
 * byte that differs hands it to HTTP/1. The Upgrade: h2c dance (RFC 7540 section 3.2) is not
 * offered, as nginx does not offer it.
 */
import type { Socket } from 'node:net';
import { PendingConnection } from '../pending-connection.js';

/** The client connection preface (RFC 9113 section 3.4). */
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Receives the socket once its protocol is known; the bytes read so far are back in the socket. */
export type ProtocolChoice = (socket: Socket, http2: boolean) => void;

/**
 * A connection whose protocol is not known yet. It is a {@link ProtocolConnection} so that the
 * generation's drain and fast shutdown see it: it closes (for the tracker) once it has handed the
 * socket on, after the connection that takes it over was created.
 */
export class PrefaceSniffer extends PendingConnection {
  readonly socket: Socket;
  readonly #choose: ProtocolChoice;
  #buf: Buffer | undefined;
  readonly #unwatch: () => void;

  /** `timeoutMs` bounds the wait for the first bytes (nginx's client_header_timeout). */
  constructor(socket: Socket, timeoutMs: number, choose: ProtocolChoice) {
    super();
    this.socket = socket;
    this.#choose = choose;
    this.#unwatch = this.watchFirstBytes(socket, timeoutMs, (chunk) => this.#read(chunk));
  }

  #read(chunk: Buffer): void {
    const buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#buf = buf;
    const n = Math.min(buf.length, CONNECTION_PREFACE.length);
    if (buf.compare(CONNECTION_PREFACE, 0, n, 0, n) !== 0) this.#handOff(false);
    else if (n === CONNECTION_PREFACE.length) this.#handOff(true);
  }

  #handOff(http2: boolean): void {
    const socket = this.socket;
    this.#unwatch();
    socket.pause();
    if (this.#buf !== undefined) socket.unshift(this.#buf);
    this.#buf = undefined;
    this.#choose(socket, http2);
    // node:http2 reads what was unshifted by itself; the HTTP/1 engine waits for 'data' events.
    if (!http2) socket.resume();
    this.finish();
  }

  /** A connection that has sent nothing within the grace of a drain is closed, as an idle HTTP/1 one is. */
  protected graceExpired(): void {
    if (this.#buf === undefined) this.socket.end();
  }
}
