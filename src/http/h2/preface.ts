/**
 * HTTP/2 over cleartext with prior knowledge (RFC 9113 section 3.3) next to HTTP/1.x on one socket,
 * as nginx does for `http2 on` without TLS (ngx_http_wait_request_handler): the first bytes are
 * compared with the client connection preface; a full match hands the socket to HTTP/2, the first
 * byte that differs hands it to HTTP/1. The Upgrade: h2c dance (RFC 7540 section 3.2) is not
 * offered, as nginx does not offer it.
 */
import type { Socket } from 'node:net';
import type { ProtocolConnection } from '../exchange.js';

/** The client connection preface (RFC 9113 section 3.4). */
export const CONNECTION_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** Receives the socket once its protocol is known; the bytes read so far are back in the socket. */
export type ProtocolChoice = (socket: Socket, http2: boolean) => void;

/**
 * A connection whose protocol is not known yet. It is a {@link ProtocolConnection} so that the
 * generation's drain and fast shutdown see it: it closes (for the tracker) once it has handed the
 * socket on, after the connection that takes it over was created.
 */
export class PrefaceSniffer implements ProtocolConnection {
  /** Not a connection of its own yet: `$connection` is given by the protocol that takes over. */
  readonly id = 0;
  readonly requests = 0;
  readonly socket: Socket;
  readonly #choose: ProtocolChoice;
  #buf: Buffer | undefined;
  #done = false;
  #graceTimer: NodeJS.Timeout | undefined;
  #closeListeners: (() => void)[] = [];
  readonly #onData = (chunk: Buffer): void => this.#read(chunk);
  readonly #onTimeout = (): void => void this.socket.destroy();
  readonly #onError = (): void => void this.socket.destroy();
  readonly #onSocketClose = (): void => this.#finish();

  /** `timeoutMs` bounds the wait for the first bytes (nginx's client_header_timeout). */
  constructor(socket: Socket, timeoutMs: number, choose: ProtocolChoice) {
    this.socket = socket;
    this.#choose = choose;
    socket.on('data', this.#onData);
    socket.on('timeout', this.#onTimeout);
    socket.on('error', this.#onError);
    socket.on('close', this.#onSocketClose);
    socket.setTimeout(timeoutMs);
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
    socket.off('data', this.#onData);
    socket.off('timeout', this.#onTimeout);
    socket.off('error', this.#onError);
    socket.off('close', this.#onSocketClose);
    socket.setTimeout(0);
    socket.pause();
    if (this.#buf !== undefined) socket.unshift(this.#buf);
    this.#buf = undefined;
    this.#choose(socket, http2);
    // node:http2 reads what was unshifted by itself; the HTTP/1 engine waits for 'data' events.
    if (!http2) socket.resume();
    this.#finish();
  }

  #finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** A connection that has sent nothing within `graceMs` of a drain is closed, as an idle HTTP/1 one is. */
  drain(graceMs: number): void {
    if (this.#done || this.#graceTimer !== undefined) return;
    this.#graceTimer = setTimeout(() => {
      if (!this.#done && this.#buf === undefined) this.socket.end();
    }, graceMs);
    this.#graceTimer.unref();
  }

  /** Closes at once. */
  destroy(): void {
    if (!this.#done) this.socket.destroy();
  }

  /** Calls `listener` once the socket was handed on or has closed. */
  onClose(listener: () => void): void {
    if (this.#done) listener();
    else this.#closeListeners.push(listener);
  }
}
