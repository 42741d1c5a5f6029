/**
 * The sockets a probe opens, so that it can count its connections and close every one of them
 * before it reports: a continuity check must not leave its own connections behind on the server
 * it was watching.
 */
import type { Socket } from 'node:net';

/** Counts the connections a probe opened and closes the ones still open. */
export class ConnectionTracker {
  #open = new Set<Socket>();
  #seen = new WeakSet<Socket>();
  #connected = 0;

  /** TCP connections established so far (refused attempts are not connections). */
  get connected(): number {
    return this.#connected;
  }

  /** Follows a socket handed to a request; a pooled socket seen before is counted once. */
  track(socket: Socket): void {
    if (this.#seen.has(socket)) return;
    this.#seen.add(socket);
    if (socket.destroyed) return;
    this.#open.add(socket);
    socket.once('close', () => this.#open.delete(socket));
    if (socket.connecting) socket.once('connect', () => (this.#connected += 1));
    else this.#connected += 1;
  }

  /** Destroys every socket still open and resolves once all of them have closed. */
  async closeAll(): Promise<void> {
    const closing = [...this.#open].map((socket) => {
      // Not events.once(): that rejects on 'error', and only the close matters here.
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.destroy();
      return closed;
    });
    await Promise.all(closing);
  }
}
