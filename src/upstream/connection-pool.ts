/**
 * Idle upstream connections kept for reuse, with the limits of nginx's upstream keepalive module:
 * `keepalive` (idle connections cached per worker for a group), `keepalive_requests`,
 * `keepalive_time` and `keepalive_timeout`. An idle connection the upstream closes, or that sends
 * anything while idle, leaves the pool at once, so it is never handed out dead when that is knowable.
 */
import type { Socket } from 'node:net';
import { setTimeoutOnce } from '../core/socket-timeout.js';

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

/** Whoever owns an upstream connection right now: an exchange, or the pool while it is idle. */
export interface UpstreamSocketOwner {
  onData(chunk: Buffer): void;
  /** The upstream closed its side, the socket closed, failed or timed out. */
  onGone(err: Error | undefined, why: 'end' | 'close' | 'error' | 'timeout'): void;
}

/**
 * A connection to one peer, with what the pool needs to know about it. Its socket listeners are
 * installed once and dispatch to the current owner: adding and removing listeners per request and
 * per pool visit cost more than the rest of the request's bookkeeping.
 */
export class UpstreamConnection {
  readonly socket: Socket;
  /** The peer it goes to (`127.0.0.1:8080`). */
  readonly peer: string;
  /**
   * What the pool matches on: the peer, and for TLS the settings and SSL name too, so that a
   * connection is never reused for another name or other TLS settings. Default: the peer.
   */
  readonly key: string;
  readonly createdAt = Date.now();
  /** Requests sent on it so far. */
  requests = 0;
  /** The exchange or pool it belongs to now; events with no owner are dropped (the socket is being destroyed). */
  owner: UpstreamSocketOwner | undefined;

  /** True once it has carried a request before the current one (a retry on failure is safe then). */
  get reused(): boolean {
    return this.requests > 1;
  }

  constructor(socket: Socket, peer: string, key: string = peer) {
    this.socket = socket;
    this.peer = peer;
    this.key = key;
    socket.on('data', (chunk: Buffer) => this.owner?.onData(chunk));
    socket.on('end', () => this.owner?.onGone(undefined, 'end'));
    socket.on('close', () => this.owner?.onGone(undefined, 'close'));
    socket.on('error', (err) => this.owner?.onGone(err, 'error'));
    socket.on('timeout', () => this.owner?.onGone(undefined, 'timeout'));
  }
}

/** Idle connections by peer, most recently used first (nginx's cache is a LIFO queue too). */
export class ConnectionPool {
  readonly #limits: PoolLimits;
  readonly #idle: UpstreamConnection[] = [];
  #closed = false;

  constructor(limits: PoolLimits) {
    this.#limits = limits;
  }

  /** `keepalive`: the most idle connections kept; 0 when the group keeps none. */
  get idleLimit(): number {
    return this.#limits.maxIdle;
  }

  /** How many connections are idle now. */
  get size(): number {
    return this.#idle.length;
  }

  /** An idle connection with this key (the peer's name for plain TCP), taken out of the pool, or undefined. */
  acquire(key: string): UpstreamConnection | undefined {
    for (let i = this.#idle.length - 1; i >= 0; i--) {
      const connection = this.#idle[i] as UpstreamConnection;
      if (connection.key !== key) continue;
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
      this.#closed ||
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

  /** Closes every idle connection, and those returned later (the generation is draining away). */
  close(): void {
    this.#closed = true;
    for (const connection of this.#idle.splice(0)) {
      this.#unwatch(connection);
      connection.socket.destroy();
    }
  }

  #watch(connection: UpstreamConnection): void {
    const socket = connection.socket;
    // Anything arriving on an idle connection (data, FIN, error, keepalive_timeout) means it cannot carry a request.
    const onGone = (): void => {
      const index = this.#idle.indexOf(connection);
      if (index !== -1) this.#idle.splice(index, 1);
      connection.owner = undefined;
      socket.destroy();
    };
    connection.owner = { onData: onGone, onGone };
    setTimeoutOnce(socket, this.#limits.idleTimeoutMs);
  }

  #unwatch(connection: UpstreamConnection): void {
    connection.owner = undefined;
  }
}
