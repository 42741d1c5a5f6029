/**
 * The contract between the process layer and the HTTP layer (the worker side of a generation).
 * The master calls {@link collectListens} to know which sockets to own; a worker builds one
 * {@link HttpRuntime} per configuration generation and attaches the listening sockets it is handed.
 */
import { ConnectionBudget, type ConnectionSlot } from '../core/connection-budget.js';
import type { ServingState } from './serving-state.js';
import type { Server, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';
import { ClientConnection, ConnectionTracker, DEFAULT_DRAIN_GRACE_MS, type ConnectionOrigin } from './connections.js';
import type { ProxyProtocolAddresses } from '../core/proxy-protocol.js';
import { ProxyProtocolReader } from './proxy-protocol-reader.js';
import { connectionStats, type ConnectionStat } from '../core/connection-stats.js';
import { HttpGeneration, type CompiledServer } from './generation.js';
import type { PeerState } from '../upstream/group.js';
import { h1Options } from './core-level.js';
import { H1ServerConnection } from './h1/server-connection.js';
import { DEFAULT_MAX_HEADERS } from './h1/head-parser.js';
import { H2Endpoint } from './h2/h2-connection.js';
import { FirstFrameShim, PrefaceSniffer } from './h2/preface.js';
import { RequestHandler } from './handler.js';
import { TlsHandshake } from './ssl-handshake.js';
import { specialPage } from './responses.js';
import { collectHttpListens } from './listen.js';
import type { VirtualHosts } from './server-names.js';

export type { ListenSpec } from './listen.js';
/** Every distinct listening socket the `http` block asks for (http/listen.ts). */
export const collectListens = collectHttpListens;

/** Options of {@link HttpRuntime}. */
export interface HttpRuntimeOptions {
  readonly log: ErrorLog;
  /** The running server's state (certificate store, ticket key, zones), shared by its generations. Default: one of its own. */
  readonly state?: ServingState;
}

/** Serves one configuration generation's HTTP servers in a worker. */
export class HttpRuntime {
  readonly #generation: HttpGeneration;
  readonly #tracker = new ConnectionTracker();
  readonly #handler: RequestHandler;
  readonly #attached = new Map<Server, (socket: Socket) => void>();
  /** worker_connections: the worker's budget, and each client socket's place in it. */
  readonly #budget: ConnectionBudget;
  readonly #slots = new WeakMap<Socket, ConnectionSlot>();
  readonly #unregister: () => void;
  readonly #listening: ConnectionSlot[] = [];
  #closed = false;
  #drained: Promise<void> | undefined;
  /** By http2_max_concurrent_streams, each created with the first HTTP/2 connection that needs it. */
  readonly #h2 = new Map<string, H2Endpoint>();

  /** Compiles the generation and opens its access logs; throws if a log file cannot be opened. */
  constructor(config: HitlessConfig, options: HttpRuntimeOptions) {
    this.#generation = new HttpGeneration(config, options.log, options.state);
    this.#handler = new RequestHandler(options.log, this.#generation.acmeChallenges);
    this.#budget = options.state?.upstreams.connections ?? new ConnectionBudget();
    this.#unregister = this.#budget.addReclaimer({
      idleCount: () => {
        let n = 0;
        for (const _ of this.#tracker.idle()) n++;
        return n;
      },
      closeIdle: (max) => {
        let closed = 0;
        for (const conn of this.#tracker.idle()) {
          if (closed >= max) break;
          this.#slots.get(conn.protocol.socket)?.release();
          conn.protocol.destroy();
          closed++;
        }
        return closed;
      },
    });
  }

  /** Serves the connections a listening socket (handed over by the master) accepts. */
  attach(key: string, server: Server): void {
    if (this.#closed || this.#drained !== undefined) throw new Error(`Cannot attach "${key}": the generation is stopping`);
    if (!this.#generation.sockets.has(key)) throw new Error(`No listening socket "${key}" in this configuration`);
    if (this.#attached.has(server)) return;
    const listener = (socket: Socket): void => this.#accept(key, socket);
    server.on('connection', listener);
    this.#attached.set(server, listener);
    // A listening socket is one of nginx's connections in every worker too.
    this.#listening.push(this.#budget.take() ?? { release: () => undefined });
  }

  /** True when this generation's http block listens on `key`. */
  serves(key: string): boolean {
    return this.#generation.sockets.has(key);
  }

  #accept(key: string, socket: Socket): void {
    const hosts = this.#generation.routesFor(key, socket.localAddress);
    if (this.#closed || hosts === undefined) {
      socket.destroy();
      return;
    }
    // ngx_event_accept(): no connection left, the new one is closed at once.
    const slot = this.#budget.take();
    if (slot === undefined) {
      socket.destroy();
      return;
    }
    // stub_status: accepted, handled and active; waiting until a request's first bytes arrive.
    const stat = connectionStats.open('waiting');
    socket.once('close', () => stat.close());
    socket.once('close', () => slot.release());
    this.#begin(socket, hosts, slot, stat);
  }

  /**
   * A connection a stream `pass` handed to socket `key`, as if accepted there (ngx_stream_pass_handler()
   * calls the listening socket's handler), with the worker_connections slot and the stub_status
   * entry it already holds.
   */
  acceptPassed(key: string, socket: Socket, passed: { readonly slot: ConnectionSlot; readonly stat: ConnectionStat }): void {
    const hosts = this.#generation.routesFor(key, socket.localAddress);
    if (this.#closed || hosts === undefined) {
      socket.destroy();
      return;
    }
    passed.stat.set('waiting');
    this.#begin(socket, hosts, passed.slot, passed.stat);
  }

  #begin(socket: Socket, hosts: VirtualHosts<CompiledServer>, slot: ConnectionSlot, stat: ConnectionStat): void {
    this.#slots.set(socket, slot);
    if (!this.#generation.readsProxyProtocol(hosts)) {
      this.#serve(socket, hosts, undefined, stat);
      return;
    }
    // The PROXY protocol header comes before everything else, TLS included.
    const reader = new ProxyProtocolReader(
      socket,
      hosts.defaultServer.level.clientHeaderTimeoutMs,
      (sock, addresses) => {
        this.#serve(sock, hosts, addresses, stat);
        sock.resume();
      },
      (failure) => {
        const client = `client: ${socket.remoteAddress ?? 'unix:'}, server: ${socket.localAddress ?? ''}:${socket.localPort ?? ''}`;
        // Before any request, the connection logs to the default server's error_log (ngx_http_add_listening()).
        const log = hosts.defaultServer.level.errorLog;
        if (failure.kind === 'broken') log.error(`broken header: "${failure.header}" while reading PROXY protocol, ${client}`);
        else log.info(`client timed out (110: Connection timed out) while reading PROXY protocol, ${client}`);
      },
    );
    this.#tracker.add(new ClientConnection(reader, hosts));
  }

  /** TLS, HTTP/2 by prior knowledge or HTTP/1.1 on an accepted socket (its PROXY header, if any, read). */
  #serve(socket: Socket, hosts: VirtualHosts<CompiledServer>, proxied: ProxyProtocolAddresses | undefined, stat: ConnectionStat): void {
    const tls = this.#generation.tlsFor(hosts);
    if (tls !== undefined) {
      const handshake = new TlsHandshake(socket, tls, this.#generation.acmeChallenges, hosts.defaultServer.level.clientHeaderTimeoutMs, (sock, outcome) => {
        // HTTP/2 over TLS: its preface too may come alone, before a first frame nghttp2 refuses (preface.ts).
        if (outcome === 'h2') this.#tracker.add(new ClientConnection(new PrefaceSniffer(sock, hosts.defaultServer.level.clientHeaderTimeoutMs, (s, _http2, transport) => this.#serveH2(s, hosts, proxied, stat, transport), true, this.#countsH2Frames()), hosts));
        else this.#serveH1(sock, hosts, { plainHttp: outcome === 'plain', proxied }, stat);
      });
      this.#tracker.add(new ClientConnection(handshake, hosts));
      return;
    }
    if (this.#generation.speaksH2c(hosts)) {
      // Tracked while the preface decides, so that a drain or a fast shutdown sees the socket.
      const sniffer = new PrefaceSniffer(
        socket,
        hosts.defaultServer.level.clientHeaderTimeoutMs,
        (sock, http2, transport) => (http2 ? this.#serveH2(sock, hosts, proxied, stat, transport) : this.#serveH1(sock, hosts, { proxied }, stat)),
        false,
        this.#countsH2Frames(),
      );
      this.#tracker.add(new ClientConnection(sniffer, hosts));
      return;
    }
    this.#serveH1(socket, hosts, { proxied }, stat);
  }

  /**
   * `$request_length` over HTTP/2 counts header blocks as they came on the wire (h2/frame-counter.ts),
   * which takes the connection's bytes through JavaScript: only where the configuration uses it.
   */
  #countsH2Frames(): boolean {
    return this.#generation.variables.referenced('request_length');
  }

  /** HTTP/2 on a socket that sent the preface (or, with TLS, negotiated `h2`). */
  #serveH2(socket: Socket, hosts: VirtualHosts<CompiledServer>, proxied: ProxyProtocolAddresses | undefined, stat: ConnectionStat, transport?: Duplex): void {
    const level = hosts.defaultServer.level;
    // SETTINGS go out as the session starts, so endpoints differ by them (one per value in use).
    const streams = hosts.defaultServer.maxConcurrentStreams;
    const maxHeaders = hosts.defaultServer.connection.limits.maxHeaders ?? DEFAULT_MAX_HEADERS;
    const prereadSize = hosts.defaultServer.prereadSize;
    const http2Listen = this.#generation.listensHttp2(hosts);
    const key = `${streams} ${maxHeaders} ${prereadSize}`;
    let endpoint = this.#h2.get(key);
    if (endpoint === undefined) {
      endpoint = new H2Endpoint({ maxConcurrentStreams: streams, maxHeaders, prereadSize });
      this.#h2.set(key, endpoint);
    }
    const protocol = endpoint.accept(
      socket,
      (exchange) => this.#handler.handle(new ClientConnection(exchange.connection, hosts, { proxied, http2Listen }, conn), exchange),
      {
        keepaliveTimeoutMs: level.keepaliveTimeoutMs,
        keepaliveRequests: level.keepaliveRequests,
        keepaliveTimeMs: level.keepaliveTimeMs,
        headerTimeoutMs: level.clientHeaderTimeoutMs,
        bodyTimeoutMs: level.clientBodyTimeoutMs,
        sendTimeoutMs: level.sendTimeoutMs,
        serverHeader: level.core.serverHeader,
        maxHeaders,
        prereadSize,
        errorPage: (status) => specialPage(status, level.core.signature) ?? '',
        stat,
        ...(transport instanceof FirstFrameShim && transport.counter !== undefined ? { frameCounter: transport.counter } : {}),
      },
      (err) => this.#handler.clientError(conn, err),
      transport,
    );
    const conn = new ClientConnection(protocol, hosts, { proxied });
    this.#tracker.add(conn);
  }

  /** `origin.plainHttp`: a request sent without TLS to a `listen ... ssl` address, answered with 497. */
  #serveH1(socket: Socket, hosts: VirtualHosts<CompiledServer>, origin: ConnectionOrigin, stat: ConnectionStat): void {
    const level = hosts.defaultServer.level;
    // The handlers run on socket events, after `conn` below is set.
    const protocol = new H1ServerConnection(
      socket,
      (exchange) => this.#handler.handle(conn, exchange),
      {
        keepaliveTimeoutMs: level.keepaliveTimeoutMs,
        headerTimeoutMs: level.clientHeaderTimeoutMs,
        bodyTimeoutMs: level.clientBodyTimeoutMs,
        sendTimeoutMs: level.sendTimeoutMs,
        // keepalive_requests is nginx's per-location setting; the handler applies it.
        keepaliveRequests: Number.MAX_SAFE_INTEGER,
        ...h1Options(hosts.defaultServer),
        refusedHeaders: (status): string[] => this.#handler.refusedHeaders(conn, status),
        stat,
      },
      (_connection, err) => this.#handler.clientError(conn, err),
    );
    const conn = new ClientConnection(protocol, hosts, origin);
    this.#tracker.add(conn);
  }

  #detach(): void {
    for (const [server, listener] of this.#attached) server.off('connection', listener);
    this.#attached.clear();
  }

  /** The number of client connections open now. */
  get connections(): number {
    return this.#tracker.size;
  }

  /**
   * Graceful drain: the caller has stopped accepting. Finishes requests in flight, answers the
   * next request on a keep-alive connection with `Connection: close`, closes idle keep-alive
   * connections after `graceMs` (default 1000), and resolves when no connection is left.
   */
  async drain(options: { graceMs?: number } = {}): Promise<void> {
    if (this.#drained === undefined) {
      this.#detach();
      this.#generation.logs.flush();
      this.#drained = this.#tracker.drain(options.graceMs ?? DEFAULT_DRAIN_GRACE_MS).then(() => this.#release());
    }
    return this.#drained;
  }

  /** Fast shutdown: destroys every connection at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#detach();
    this.#tracker.destroyAll();
    this.#release();
  }

  #release(): void {
    this.#unregister();
    for (const slot of this.#listening.splice(0)) slot.release();
    this.#generation.logs.close();
    this.#generation.errorLogs.close();
    this.#generation.closeUpstreams();
    this.#generation.closeFiles();
  }

  /** Reopens access log files (SIGUSR1). */
  reopenLogs(): void {
    this.#generation.logs.reopen();
    this.#generation.errorLogs.reopen();
  }

  /**
   * Every upstream peer's state and counters in this worker (the `upstream` groups and the
   * implicit groups of `proxy_pass http://host`), for the admin API.
   */
  upstreamStates(now = Date.now()): PeerState[] {
    return this.#generation.upstreamGroups().flatMap((group) => group.peerStates(now));
  }

  /** Writes buffered access log lines now (they are otherwise written once per event-loop turn). */
  flushLogs(): void {
    this.#generation.logs.flush();
  }
}
