/** Socket inactivity timers, changed only when their value changes. */
import type { Socket } from 'node:net';

/**
 * Sets a socket's inactivity timeout unless it already has that value. Node refreshes the timer
 * on every read and write by itself; each setTimeout() call re-links it, which costs more than
 * the rest of a small request's bookkeeping.
 */
export function setTimeoutOnce(socket: Socket, ms: number): void {
  if (socket.timeout !== ms) socket.setTimeout(ms);
}
