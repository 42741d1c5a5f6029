/**
 * A connection whose protocol is not known yet (waiting for the HTTP/2 preface, or for a TLS
 * handshake). It is a {@link ProtocolConnection} so that the generation's drain and fast shutdown
 * see it; it counts as closed once it has handed the socket on to the protocol that takes over.
 */
import type { Socket } from 'node:net';
import type { ProtocolConnection } from './exchange.js';

/** The drain, close and hand-off bookkeeping both kinds of pending connection share. */
export abstract class PendingConnection implements ProtocolConnection {
  /** Not a connection of its own yet: `$connection` is given by the protocol that takes over. */
  readonly id = 0;
  readonly requests = 0;
  abstract readonly socket: Socket;
  #done = false;
  #graceTimer: NodeJS.Timeout | undefined;
  #closeListeners: (() => void)[] = [];

  /** True once the socket was handed on or has closed. */
  protected get done(): boolean {
    return this.#done;
  }

  /**
   * Reads the socket's first bytes with `onData` until the returned function stops it: a timeout
   * (`timeoutMs`, nginx's client_header_timeout) runs `onTimeout` and closes, an error closes, a
   * close finishes the connection.
   */
  protected watchFirstBytes(socket: Socket, timeoutMs: number, onData: (chunk: Buffer) => void, onTimeout: () => void = () => undefined): () => void {
    const timedOut = (): void => {
      onTimeout();
      socket.destroy();
    };
    const failed = (): void => void socket.destroy();
    const closed = (): void => this.finish();
    socket.on('data', onData);
    socket.on('timeout', timedOut);
    socket.on('error', failed);
    socket.on('close', closed);
    socket.setTimeout(timeoutMs);
    return () => {
      socket.off('data', onData);
      socket.off('timeout', timedOut);
      socket.off('error', failed);
      socket.off('close', closed);
      socket.setTimeout(0);
    };
  }

  /** What to do when a drain's grace period ends before the protocol is known. */
  protected abstract graceExpired(): void;

  /** Marks the socket handed on (or closed) and tells the tracker. */
  protected finish(): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#graceTimer !== undefined) clearTimeout(this.#graceTimer);
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Gives the connection `graceMs` to declare its protocol, then {@link graceExpired}. */
  drain(graceMs: number): void {
    if (this.#done || this.#graceTimer !== undefined) return;
    this.#graceTimer = setTimeout(() => {
      if (!this.#done) this.graceExpired();
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
