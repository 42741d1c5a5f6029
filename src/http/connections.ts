/**
 * Client connections of one generation, and the graceful drain that makes reloads invisible. The
 * protocol work (keep-alive, answering the next request of a draining connection with
 * `Connection: close`, closing an idle one only after a grace period) is the connection's own, in
 * h1/server-connection.ts; this file keeps the set of them and knows when the last one is gone.
 */
import type { ProxyProtocolAddresses } from '../core/proxy-protocol.js';
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import { tlsInfoOf, type TlsConnectionInfo } from '../tls/sni.js';
import type { ProtocolConnection } from './exchange.js';
import type { CompiledServer } from './generation.js';
import type { ConnectionInfo } from './request.js';
import type { VirtualHosts } from './server-names.js';

/** The default grace before a draining worker closes an idle keep-alive connection. */
export const DEFAULT_DRAIN_GRACE_MS = 1000;

/** One accepted client connection and what requests on it need to know. */
export class ClientConnection implements ConnectionInfo {
  readonly socket: Socket;
  readonly protocol: ProtocolConnection;
  /** The virtual servers of the address:port the connection arrived on. */
  readonly hosts: VirtualHosts<CompiledServer>;
  readonly remoteAddress: string;
  readonly remotePort: string;
  readonly localAddress: string;
  readonly localPort: string;
  /** The handshake's results on a TLS connection. */
  readonly tls: TlsConnectionInfo | undefined;
  /** Plain HTTP sent to a `listen ... ssl` address: every request is answered with 497. */
  readonly plainHttp: boolean;
  /** See {@link ConnectionOrigin.http2Listen}. */
  readonly http2Listen: boolean;
  /** When the connection began (Date.now()), for `keepalive_time` and `$connection_time`. */
  readonly startedAt: number;

  /** The addresses of a PROXY protocol header (`listen ... proxy_protocol`); undefined without one or for `UNKNOWN`. */
  readonly proxied: ProxyProtocolAddresses | undefined;

  /**
   * `session`: the connection an HTTP/2 stream (`protocol`) belongs to, whose socket facts
   * (addresses, the handshake) the stream shares, read once per connection and not per stream:
   * an Http2Session's socket is a proxy, each read of it a lookup.
   */
  constructor(protocol: ProtocolConnection, hosts: VirtualHosts<CompiledServer>, origin: ConnectionOrigin = {}, session?: ClientConnection) {
    const socket = session?.socket ?? protocol.socket;
    this.socket = socket;
    this.protocol = protocol;
    this.hosts = hosts;
    if (session !== undefined) {
      this.remoteAddress = session.remoteAddress;
      this.remotePort = session.remotePort;
      this.localAddress = session.localAddress;
      this.localPort = session.localPort;
      this.tls = session.tls;
    } else {
      // Captured now: once the socket is closed (when the access log line is written) node forgets them.
      this.remoteAddress = socket.remoteAddress ?? 'unix:';
      this.remotePort = socket.remotePort === undefined ? '' : String(socket.remotePort);
      this.localAddress = socket.localAddress ?? '';
      this.localPort = socket.localPort === undefined ? '' : String(socket.localPort);
      this.tls = socket instanceof TLSSocket && socket.encrypted ? tlsInfoOf(socket) : undefined;
    }
    this.plainHttp = origin.plainHttp ?? false;
    this.proxied = origin.proxied;
    this.http2Listen = origin.http2Listen ?? false;
    // An HTTP/2 stream gets its own ClientConnection: the session's start is the connection's.
    this.startedAt = protocol.startedAt ?? Date.now();
  }

  /** `$connection`. */
  get number(): number {
    return this.protocol.id;
  }

  /** Requests received so far. */
  get requests(): number {
    return this.protocol.requests;
  }

  bytesWritten(): number {
    return this.socket.bytesWritten;
  }
}

/** What a connection was told before its first request: by the listener (497) or by a PROXY header. */
export interface ConnectionOrigin {
  readonly plainHttp?: boolean;
  readonly proxied?: ProxyProtocolAddresses | undefined;
  /** An HTTP/2 connection on an address with `listen ... http2`: every server of it may take HTTP/2. */
  readonly http2Listen?: boolean;
}

/** Every open connection of a generation. */
export class ConnectionTracker {
  readonly #connections = new Set<ClientConnection>();
  #drain: { graceMs: number; promise: Promise<void>; resolve: () => void } | undefined;

  /** Starts tracking a connection the generation has accepted. */
  add(conn: ClientConnection): void {
    this.#connections.add(conn);
    conn.protocol.onClose(() => {
      this.#connections.delete(conn);
      this.#settle();
    });
    if (this.#drain !== undefined) conn.protocol.drain(this.#drain.graceMs);
  }

  /** The number of open connections. */
  get size(): number {
    return this.#connections.size;
  }

  /** True once {@link drain} was called. */
  get draining(): boolean {
    return this.#drain !== undefined;
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
    for (const conn of this.#connections) conn.protocol.drain(graceMs);
    this.#settle();
    return promise;
  }

  /** The idle connections (see ProtocolConnection.idle), oldest first. */
  *idle(): Iterable<ClientConnection> {
    for (const conn of this.#connections) if (conn.protocol.idle === true) yield conn;
  }

  /** Fast shutdown: destroys every connection now. */
  destroyAll(): void {
    for (const conn of this.#connections) conn.protocol.destroy();
  }

  #settle(): void {
    if (this.#drain !== undefined && this.#connections.size === 0) this.#drain.resolve();
  }
}
