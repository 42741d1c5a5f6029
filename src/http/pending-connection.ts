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
