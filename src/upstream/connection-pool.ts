/**
 * Idle upstream connections kept for reuse, with the limits of nginx's upstream keepalive module:
 * `keepalive` (idle connections cached per worker for a group), `keepalive_requests`,
 * `keepalive_time` and `keepalive_timeout`. An idle connection the upstream closes, or that sends
 * anything while idle, leaves the pool at once, so it is never handed out dead when that is knowable.
 */
import type { Socket } from 'node:net';

/** Limits of one pool, as the `upstream` block sets them. */
export interface PoolLimits {
  /** `keepalive`: most idle connections kept; 0 keeps none. */
  readonly maxIdle: number;
  /** `keepalive_requests`: requests one connection may carry. Default 1000. */
  readonly maxRequests: number;
  /** `keepalive_time`, in ms: how long one connection may be reused. Default 1 h. */
  readonly maxAgeMs: number;
  /** `keepalive_timeout`, in ms: how long an idle connection is kept. Default 60 s. */
  readonly idleTimeoutMs: number;
}

/** A connection to one peer, with what the pool needs to know about it. */
export class UpstreamConnection {
  readonly socket: Socket;
  /** The peer it goes to (`127.0.0.1:8080`). */
  readonly peer: string;
  readonly createdAt = Date.now();
  /** Requests sent on it so far. */
  requests = 0;
  /** True once it has carried a request before the current one (a retry on failure is safe then). */
  get reused(): boolean {
    return this.requests > 1;
  }

  constructor(socket: Socket, peer: string) {
    this.socket = socket;
    this.peer = peer;
  }
}

/** Idle connections by peer, most recently used first (nginx's cache is a LIFO queue too). */
export class ConnectionPool {
  readonly #limits: PoolLimits;
  readonly #idle: UpstreamConnection[] = [];
  readonly #watchers = new Map<UpstreamConnection, { onGone: () => void; timer: NodeJS.Timeout }>();

  constructor(limits: PoolLimits) {
    this.#limits = limits;
  }

  /** How many connections are idle now. */
  get size(): number {
    return this.#idle.length;
  }

  /** An idle connection to `peer`, taken out of the pool, or undefined. */
  acquire(peer: string): UpstreamConnection | undefined {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const connection = this.#idle[i] as UpstreamConnection;
      if (connection.peer !== peer) continue;
      this.#idle.splice(i, 1);
      this.#unwatch(connection);
      if (connection.socket.destroyed || !connection.socket.writable) {
        connection.socket.destroy();
        continue;
      }
      return connection;
    }
    return undefined;
  }

  /**
   * Returns a connection after a complete response. It is kept only within the limits; otherwise,
   * or when `reusable` is false, it is closed.
   */
  release(connection: UpstreamConnection, reusable: boolean): void {
    const limits = this.#limits;
    const socket = connection.socket;
    if (
      !reusable ||
      limits.maxIdle === 0 ||
      connection.requests >= limits.maxRequests ||
      Date.now() - connection.createdAt >= limits.maxAgeMs ||
      socket.destroyed ||
      !socket.writable
    ) {
      socket.destroy();
      return;
    }
    if (this.#idle.length >= limits.maxIdle) {
      // Full: close the least recently used, as ngx_http_upstream_free_keepalive_peer does.
      const oldest = this.#idle.shift() as UpstreamConnection;
      this.#unwatch(oldest);
      oldest.socket.destroy();
    }
    this.#idle.push(connection);
    this.#watch(connection);
  }

  /** Closes every idle connection (worker shutdown, or a reload that removed the group). */
  close(): void {
    for (const connection of this.#idle.splice(0)) {
      this.#unwatch(connection);
      connection.socket.destroy();
    }
  }

  #watch(connection: UpstreamConnection): void {
    const socket = connection.socket;
    const onGone = (): void => {
      const index = this.#idle.indexOf(connection);
      if (index !== -1) this.#idle.splice(index, 1);
      this.#unwatch(connection);
      socket.destroy();
    };
    // Anything arriving on an idle connection (data, FIN, error) means it cannot carry a request.
    socket.on('data', onGone);
    socket.on('end', onGone);
    socket.on('close', onGone);
    socket.on('error', onGone);
    const timer = setTimeout(onGone, this.#limits.idleTimeoutMs);
    timer.unref();
    this.#watchers.set(connection, { onGone, timer });
  }

  #unwatch(connection: UpstreamConnection): void {
    const watcher = this.#watchers.get(connection);
    if (watcher === undefined) return;
    this.#watchers.delete(connection);
    clearTimeout(watcher.timer);
    const socket = connection.socket;
    socket.off('data', watcher.onGone);
    socket.off('end', watcher.onGone);
    socket.off('close', watcher.onGone);
    socket.off('error', watcher.onGone);
  }
}
