/**
 * Client connections of one generation: keep-alive timers, and the graceful drain that makes
 * reloads invisible. A draining connection that is busy, or that receives another request, answers
 * it with `Connection: close` and then closes; an idle one is closed only after a grace period, and
 * never while the client has started sending a request (bytes read since it went idle).
 */
import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { CompiledServer, LevelConfig } from './generation.js';
import type { ConnectionInfo } from './request.js';
import type { VirtualHosts } from './server-names.js';

/** nginx's `lingering_timeout` default: how long a closed-by-us connection waits for the client's FIN. */
export const LINGERING_TIMEOUT_MS = 5000;

/** The default grace before a draining worker closes an idle keep-alive connection. */
export const DEFAULT_DRAIN_GRACE_MS = 1000;

let connectionCounter = 0;

/** One accepted client connection. */
export class ClientConnection implements ConnectionInfo {
  readonly socket: Socket;
  readonly number = ++connectionCounter;
  /** The virtual servers of the address:port the connection arrived on. */
  readonly hosts: VirtualHosts<CompiledServer>;
  readonly remoteAddress: string;
  readonly remotePort: string;
  readonly localAddress: string;
  readonly localPort: string;
  /** Requests received so far (`$connection_requests` of the latest). */
  requests = 0;
  /** Responses not yet finished. */
  readonly inFlight = new Set<ServerResponse>();
  /** `socket.bytesRead` when the connection last went idle: more means a request has begun. */
  idleMark = 0;
  timer: NodeJS.Timeout | undefined;

  constructor(socket: Socket, hosts: VirtualHosts<CompiledServer>) {
    this.socket = socket;
    this.hosts = hosts;
    // Captured now: once the socket is closed (when the access log line is written) node forgets them.
    this.remoteAddress = socket.remoteAddress ?? 'unix:';
    this.remotePort = socket.remotePort === undefined ? '' : String(socket.remotePort);
    this.localAddress = socket.localAddress ?? '';
    this.localPort = socket.localPort === undefined ? '' : String(socket.localPort);
    this.idleMark = socket.bytesRead;
  }

  bytesWritten(): number {
    return this.socket.bytesWritten;
  }

  /** True when nothing is in flight and the client has sent nothing since. */
  get idle(): boolean {
    return this.inFlight.size === 0 && this.socket.bytesRead === this.idleMark;
  }

  clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}

/** Every open connection of a generation. */
export class ConnectionTracker {
  readonly #connections = new Set<ClientConnection>();
  #drain: { graceMs: number; promise: Promise<void>; resolve: () => void } | undefined;

  /** Starts tracking a connection the generation has accepted. */
  add(socket: Socket, hosts: VirtualHosts<CompiledServer>): ClientConnection {
    const conn = new ClientConnection(socket, hosts);
    this.#connections.add(conn);
    socket.once('close', () => {
      conn.clearTimer();
      this.#connections.delete(conn);
      this.#settle();
    });
    if (this.#drain !== undefined) this.#armGrace(conn);
    return conn;
  }

  /** The number of open connections. */
  get size(): number {
    return this.#connections.size;
  }

  /** True once {@link drain} was called. */
  get draining(): boolean {
    return this.#drain !== undefined;
  }

  /** Counts a request in; its connection is busy until the response ends. */
  requestStarted(conn: ClientConnection, res: ServerResponse): void {
    conn.requests++;
    conn.inFlight.add(res);
    conn.clearTimer();
  }

  /** Whether the response may leave the connection open (nginx's `r->keepalive`). */
  mayKeepAlive(conn: ClientConnection, level: LevelConfig): boolean {
    return this.#drain === undefined && level.keepaliveTimeoutMs > 0 && conn.requests < level.keepaliveRequests;
  }

  /** Counts a response out; an idle connection waits for its next request, or for the drain's grace. */
  requestFinished(conn: ClientConnection, res: ServerResponse, keepaliveMs: number): void {
    conn.inFlight.delete(res);
    if (conn.inFlight.size > 0 || conn.socket.destroyed) return;
    conn.idleMark = conn.socket.bytesRead;
    if (this.#drain !== undefined) this.#armGrace(conn);
    else if (keepaliveMs > 0) this.#armIdle(conn, keepaliveMs);
  }

  /** The request body was read to its end: bytes read so far belong to the finished request. */
  requestBodyDone(conn: ClientConnection): void {
    if (conn.inFlight.size === 0) conn.idleMark = conn.socket.bytesRead;
  }

  /**
   * Graceful drain: responses not yet begun will say `Connection: close`, idle connections close
   * after `graceMs`; resolves when no connection is left.
   */
  drain(graceMs: number): Promise<void> {
    if (this.#drain !== undefined) return this.#drain.promise;
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#drain = { graceMs, promise, resolve };
    for (const conn of this.#connections) {
      for (const res of conn.inFlight) if (!res.headersSent) res.shouldKeepAlive = false;
      if (conn.inFlight.size === 0) this.#armGrace(conn);
    }
    this.#settle();
    return promise;
  }

  /** Fast shutdown: destroys every connection now. */
  destroyAll(): void {
    for (const conn of this.#connections) {
      conn.clearTimer();
      conn.socket.destroy();
    }
  }

  #settle(): void {
    if (this.#drain !== undefined && this.#connections.size === 0) this.#drain.resolve();
  }

  #armGrace(conn: ClientConnection): void {
    this.#armIdle(conn, this.#drain?.graceMs ?? 0);
  }

  /** Closes the connection after `ms` if it is still idle then; a client that has begun a request gets its answer first. */
  #armIdle(conn: ClientConnection, ms: number): void {
    conn.clearTimer();
    conn.timer = setTimeout(() => {
      conn.timer = undefined;
      if (conn.inFlight.size > 0) return;
      if (conn.idle) this.#closeIdle(conn);
      else this.#armIdle(conn, this.#drain?.graceMs ?? ms);
    }, ms);
  }

  /** Sends our FIN and lets the client close its side; destroys only if it does not within lingering_timeout. */
  #closeIdle(conn: ClientConnection): void {
    conn.socket.end();
    conn.timer = setTimeout(() => conn.socket.destroy(), LINGERING_TIMEOUT_MS);
  }
}
