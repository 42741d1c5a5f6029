/**
 * A worker's copy of a UDP listening socket (`listen ... udp`): it reads the datagrams, gives
 * each client address and port its {@link UdpSession}, and sends the sessions' answers from the
 * same socket, so that the client sees them come from the address it sent to.
 *
 * The master hands the socket over as Node's raw UDP wrap ('dgram.Native' in
 * lib/internal/child_process.js). `dgram.Socket#bind()` adopts such a wrap (lib/dgram.js, as the
 * cluster module's workers do) and starts reading it. Every worker holds the same socket: on a
 * drain the worker stops reading at once (uv_udp_recv_stop() on the wrap, there is no public
 * call), so new datagrams go to the new workers, while it can still answer its sessions from the
 * socket until they end; then it closes its copy.
 */
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import type { ErrorLog } from '../core/log.js';
import { UdpSession } from './udp-session.js';
import type { StreamRoute } from './generation.js';

/** The parts of Node's raw UDP wrap a worker uses. */
interface RawUdpHandle {
  recvStart(): number;
  recvStop(): number;
}

function isRawUdpHandle(handle: unknown): handle is RawUdpHandle {
  return typeof handle === 'object' && handle !== null && typeof (handle as RawUdpHandle).recvStart === 'function' && typeof (handle as RawUdpHandle).recvStop === 'function';
}

/** Reads one UDP listening socket and routes its datagrams to sessions. */
export class UdpListener {
  readonly #socket: DgramSocket;
  readonly #handle: RawUdpHandle;
  readonly #route: StreamRoute;
  readonly #log: ErrorLog;
  readonly #onSession: (session: UdpSession) => void;
  /** The session of each client, by `address:port`. */
  readonly #sessions = new Map<string, UdpSession>();
  #receiving = false;
  #closed = false;

  /** Adopts `handle` (a raw UDP wrap from the master); datagrams are read once {@link start} is called. */
  constructor(key: string, handle: unknown, route: StreamRoute, log: ErrorLog, onSession: (session: UdpSession) => void) {
    if (!isRawUdpHandle(handle)) throw new Error(`The master sent no UDP socket for ${key}`);
    this.#handle = handle;
    this.#route = route;
    this.#log = log;
    this.#onSession = onSession;
    this.#socket = createSocket(key.startsWith('udp:[') ? 'udp6' : 'udp4');
    // A failed sendmsg() to one client (ICMP unreachable) must not end the socket for the others.
    this.#socket.on('error', (err) => this.#log.info(`UDP listening socket ${key}: ${err.message}`));
  }

  /** Starts reading datagrams. */
  start(): void {
    if (this.#receiving || this.#closed) return;
    // The listener first: bind() below starts reading at once, and a datagram must not be emitted to nobody.
    this.#socket.on('message', (datagram: Buffer, from: RemoteInfo) => this.#receive(datagram, from));
    (this.#socket.bind as (handle: unknown) => void)(this.#handle);
    this.#receiving = true;
  }

  #receive(datagram: Buffer, from: RemoteInfo): void {
    if (!this.#receiving) return;
    const client = `${from.address}:${from.port}`;
    const existing = this.#sessions.get(client);
    if (existing !== undefined) {
      existing.receive(datagram);
      return;
    }
    const local = this.#socket.address();
    const session = new UdpSession(this.#route, {
      address: from.address,
      port: from.port,
      localAddress: local.address,
      localPort: local.port,
      reply: (answer) => {
        if (!this.#closed) this.#socket.send(answer, from.port, from.address);
      },
    }, this.#log);
    this.#sessions.set(client, session);
    session.onDetach(() => {
      if (this.#sessions.get(client) === session) this.#sessions.delete(client);
    });
    this.#onSession(session);
    session.start(datagram);
  }

  /** Stops reading at once: the datagrams that arrive from now on are the other workers' to read. */
  stopReceiving(): void {
    if (!this.#receiving) return;
    this.#receiving = false;
    if (!this.#closed) this.#handle.recvStop();
  }

  /** Closes this worker's copy of the socket; the master and the other workers keep theirs. */
  close(): void {
    if (this.#closed) return;
    this.#receiving = false;
    this.#closed = true;
    this.#socket.close();
  }
}
