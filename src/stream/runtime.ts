/**
 * The worker side of a generation's `stream` block: attaches the listening sockets the master
 * hands over, runs a {@link StreamConnection} per accepted socket, and on a graceful drain stops
 * accepting and lets every session run to its end (worker_shutdown_timeout is the worker's to
 * enforce, with {@link StreamRuntime.close}), as nginx's stream sessions outlive a reload. A UDP
 * listening socket is the runtime's own: a drain stops reading it at once, and its sessions answer
 * from it until they end; it is closed with the generation.
 */
import { connectionStats } from '../core/connection-stats.js';
import { ConnectionBudget, type ConnectionSlot } from '../core/connection-budget.js';
import type { ServingState } from '../http/serving-state.js';
import type { Server, Socket } from 'node:net';
import type { HitlessConfig } from '../conf/model.js';
import type { ErrorLog } from '../core/log.js';
import type { PeerState } from '../upstream/group.js';
import { StreamConnection } from './connection.js';
import { StreamGeneration, type StreamRoute } from './generation.js';
import { passKeys, type PassedConnection, type PassTo } from './pass.js';
import { UdpListener } from './udp-listener.js';
import type { UdpSession } from './udp-session.js';

export { collectStreamListens } from './generation.js';

/** Options of {@link StreamRuntime}. */
export interface StreamRuntimeOptions {
  readonly log: ErrorLog;
  /** The running server's state (certificate store, ticket key, zones), shared by its generations. Default: one of its own. */
  readonly state?: ServingState;
  /** Where `pass` hands a connection: every listening socket of the generation. Default: the stream block's own. */
  readonly passTo?: PassTo;
}

/** Serves one configuration generation's stream servers in a worker. */
export class StreamRuntime {
  readonly #generation: StreamGeneration;
  readonly #attached = new Map<Server, (socket: Socket) => void>();
  readonly #udp = new Map<string, UdpListener>();
  readonly #sessions = new Set<StreamConnection | UdpSession>();
  readonly #budget: ConnectionBudget;
  readonly #listening: ConnectionSlot[] = [];
  #closed = false;
  #drain: { promise: Promise<void>; resolve: () => void } | undefined;
  readonly #passTo: PassTo;

  /** Compiles the stream block and opens its access logs; throws if one cannot be opened. */
  constructor(config: HitlessConfig, options: StreamRuntimeOptions) {
    this.#generation = new StreamGeneration(config, options.log, options.state);
    this.#budget = options.state?.upstreams.connections ?? new ConnectionBudget();
    this.#passTo = options.passTo ?? ((address, socket, passed) => {
      const key = passKeys(address).find((candidate) => this.serves(candidate));
      if (key === undefined) return false;
      this.acceptPassed(key, socket, passed);
      return true;
    });
  }

  /** True when this generation's stream block listens on `key`. */
  serves(key: string): boolean {
    return this.#generation.sockets.has(key);
  }

  /** Serves the connections a listening socket (handed over by the master) accepts. */
  attach(key: string, server: Server): void {
    if (this.#closed || this.#drain !== undefined) throw new Error(`Cannot attach "${key}": the generation is stopping`);
    if (!this.serves(key)) throw new Error(`No stream listening socket "${key}" in this configuration`);
    if (this.#attached.has(server)) return;
    const listener = (socket: Socket): void => this.#accept(key, socket);
    server.on('connection', listener);
    this.#attached.set(server, listener);
    // A listening socket is one of nginx's connections in every worker too.
    this.#listening.push(this.#budget.take() ?? { release: () => undefined });
  }

  /** Serves the datagrams of a UDP listening socket the master handed over (a raw UDP wrap). */
  attachUdp(key: string, handle: unknown): void {
    if (this.#closed || this.#drain !== undefined) throw new Error(`Cannot attach "${key}": the generation is stopping`);
    const route = this.#generation.routeFor(key, undefined);
    if (route === undefined) throw new Error(`No stream listening socket "${key}" in this configuration`);
    if (this.#udp.has(key)) return;
    const listener = new UdpListener(key, handle, route, route.server.errorLog, (session) => this.#track(session));
    this.#udp.set(key, listener);
    listener.start();
  }

  #track(session: StreamConnection | UdpSession): void {
    this.#sessions.add(session);
    session.onClose(() => {
      this.#sessions.delete(session);
      this.#settle();
    });
  }

  #accept(key: string, socket: Socket): void {
    const route = this.#generation.routeFor(key, socket.localAddress);
    if (this.#closed || route === undefined) {
      socket.destroy();
      return;
    }
    // worker_connections counts stream sessions too; they are never idle, so none is closed to make room.
    const slot = this.#budget.take();
    if (slot === undefined) {
      socket.destroy();
      return;
    }
    socket.once('close', () => slot.release());
    // stub_status counts a stream session as accepted and active, never waiting.
    const stat = connectionStats.open('none');
    socket.once('close', () => stat.close());
    this.#start(socket, route, { slot, stat, passes: 0 });
  }

  /** A connection `pass` handed to socket `key` (of this generation), with the slot and stub_status entry it holds. */
  acceptPassed(key: string, socket: Socket, passed: PassedConnection): void {
    const route = this.#generation.routeFor(key, socket.localAddress);
    if (this.#closed || route === undefined) {
      socket.destroy();
      return;
    }
    passed.stat.set('none');
    this.#start(socket, route, passed);
  }

  #start(socket: Socket, route: StreamRoute, passed: PassedConnection): void {
    const connection = new StreamConnection(socket, route, route.server.errorLog, passed, this.#passTo);
    this.#track(connection);
    connection.start();
  }

  /** The number of sessions open now. */
  get connections(): number {
    return this.#sessions.size;
  }

  /** Graceful drain: stops accepting and resolves when the last session has ended. */
  drain(): Promise<void> {
    if (this.#drain === undefined) {
      this.#detach();
      this.#generation.logs.flush();
      let resolve!: () => void;
      const promise = new Promise<void>((r) => (resolve = r)).then(() => this.#release());
      this.#drain = { promise, resolve };
      this.#settle();
    }
    return this.#drain.promise;
  }

  #settle(): void {
    if (this.#drain !== undefined && this.#sessions.size === 0) this.#drain.resolve();
  }

  /** Fast shutdown: ends every session at once. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#detach();
    for (const session of [...this.#sessions]) session.destroy();
    this.#release();
  }

  #detach(): void {
    for (const [server, listener] of this.#attached) server.off('connection', listener);
    this.#attached.clear();
    for (const listener of this.#udp.values()) listener.stopReceiving();
  }

  #release(): void {
    for (const slot of this.#listening.splice(0)) slot.release();
    for (const listener of this.#udp.values()) listener.close();
    this.#udp.clear();
    this.#generation.logs.close();
    this.#generation.errorLogs.close();
    this.#generation.close();
  }

  /** Reopens access log files (SIGUSR1). */
  reopenLogs(): void {
    this.#generation.logs.reopen();
    this.#generation.errorLogs.reopen();
  }

  /** Writes buffered access log lines now. */
  flushLogs(): void {
    this.#generation.logs.flush();
  }

  /** Every stream upstream peer's state in this worker. */
  upstreamStates(now = Date.now()): PeerState[] {
    return this.#generation.upstreamGroups().flatMap((group) => group.peerStates(now));
  }
}
