/**
 * The listening sockets the master owns, keyed by the `ListenSpec.key` that identifies an address
 * across reloads. A socket whose key survives a reload is never closed and re-opened: the kernel's
 * accept queue lives as long as one descriptor refers to the socket, so connections that arrive
 * while old workers stop and new ones start wait in it instead of being refused.
 *
 * The master binds but never calls listen() itself. libuv's uv_listen() always starts polling
 * (src/unix/tcp.c uv__tcp_listen), and a polling master would accept connections it must not
 * serve. The first worker handed the socket calls listen(); from then on the socket is in the
 * LISTEN state for every process holding it, the master included, which never polls it. This is
 * how Node's own cluster module shares a handle in `SCHED_NONE` mode
 * (lib/internal/cluster/shared_handle.js), and it uses the same helper, `net._createServerHandle`.
 *
 * A UDP socket (stream's `listen ... udp`) is bound the same way, with the helper the cluster
 * module uses for datagram sockets, `dgram._createSocketHandle`: a bound UDP wrap that does not
 * receive. Datagrams wait in the socket's receive buffer for the workers, which alone read it.
 */
import * as dgram from 'node:dgram';
import { rmSync } from 'node:fs';
import * as net from 'node:net';
import { getSystemErrorMap, getSystemErrorName } from 'node:util';
import { HitlessError, formatSyscallError } from '../core/errors.js';
import type { ErrorLog } from '../core/log.js';
import type { ListenSpec } from '../http/listen.js';

/** The parts of Node's internal TCP/Pipe wrap the process layer uses. */
export interface RawListeningHandle {
  /** The file descriptor (Unix only, which is all hitless runs on). */
  readonly fd: number;
  close(callback?: () => void): void;
  /** uv_listen(): 0, or a negated errno; a UDP wrap has none. */
  readonly listen?: (backlog: number) => number;
}

type CreateServerHandle = (address: string | undefined, port: number | undefined, addressType: number | undefined, fd: number | undefined, flags: number) => RawListeningHandle | number;

/** libuv's `UV_TCP_IPV6ONLY` flag for uv_tcp_bind(), and `UV_UDP_IPV6ONLY` for uv_udp_bind(). */
const UV_TCP_IPV6ONLY = 1;
const UV_UDP_IPV6ONLY = 1;

const createServerHandle = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;

/**
 * `dgram._createSocketHandle()` (lib/dgram.js, what lib/internal/cluster/shared_handle.js binds a
 * shared UDP socket with). It is deprecated for users (DEP0112) and warns once; the warning would
 * only tell operators about hitless's internals, so it is silenced for the call.
 */
function createUdpHandle(address: string | undefined, port: number | undefined, addressType: 'udp4' | 'udp6', fd: number | undefined, flags: number): RawListeningHandle | number {
  type CreateSocketHandle = (address: string | undefined, port: number | undefined, type: 'udp4' | 'udp6', fd: number | undefined, flags: number) => RawListeningHandle | number;
  const create = (dgram as unknown as { _createSocketHandle?: CreateSocketHandle })._createSocketHandle;
  if (create === undefined) throw new ListenError('This Node.js has no dgram._createSocketHandle(); hitless needs it for "listen ... udp"');
  const quiet = process.noDeprecation;
  process.noDeprecation = true;
  try {
    return create(address, port, addressType, fd, flags);
  } finally {
    process.noDeprecation = quiet ?? false;
  }
}

/** True for the key of a UDP socket (`udp:127.0.0.1:53`, http/listen.ts specOf()). */
export function isUdpKey(key: string): boolean {
  return key.startsWith('udp:');
}

/** A listening socket that could not be opened: `bind() to 127.0.0.1:80 failed (98: Address already in use)`. */
export class ListenError extends HitlessError {
  constructor(message: string, options?: ErrorOptions) {
    super('HITLESS_ERR_PROCESS', message, options);
  }
}

interface OwnedSocket {
  readonly handle: RawListeningHandle;
  /** Unknown for an inherited socket until a configuration names its key. */
  spec: ListenSpec | undefined;
}

/** The master's listening sockets. */
export class ListeningSockets {
  readonly #sockets = new Map<string, OwnedSocket>();
  #log: ErrorLog;

  constructor(log: ErrorLog) {
    if (createServerHandle === undefined) throw new ListenError('This Node.js has no net._createServerHandle(); hitless needs Node 20 or newer');
    this.#log = log;
  }

  /** Logs to this error log from now on (after a reload opened a new one). */
  useLog(log: ErrorLog): void {
    this.#log = log;
  }

  /** Takes over a socket inherited from a previous master (binary upgrade, daemonizing). */
  adopt(key: string, fd: number): void {
    const handle = isUdpKey(key) ? createUdpHandle(undefined, undefined, key.startsWith('udp:[') ? 'udp6' : 'udp4', fd, 0) : (createServerHandle as CreateServerHandle)(undefined, undefined, undefined, fd, 0);
    if (typeof handle === 'number') {
      throw new ListenError(`${syscallMessage('open', `inherited socket ${fd} for ${key}`, handle)}`);
    }
    this.#sockets.set(key, { handle, spec: undefined });
  }

  /**
   * Binds every spec whose key is not held yet, as `ngx_open_listening_sockets()` does, and
   * returns the keys it opened. On a failure it closes what it opened and throws.
   */
  open(specs: readonly ListenSpec[]): string[] {
    const opened: string[] = [];
    try {
      for (const spec of specs) {
        const held = this.#sockets.get(spec.key);
        if (held !== undefined) {
          held.spec = spec;
          continue;
        }
        this.#sockets.set(spec.key, { handle: bind(spec), spec });
        opened.push(spec.key);
      }
    } catch (err) {
      for (const key of opened) this.close(key);
      throw err;
    }
    return opened;
  }

  /** True when the master holds a socket for this key. */
  has(key: string): boolean {
    return this.#sockets.has(key);
  }

  /** The keys of every socket held. */
  keys(): string[] {
    return [...this.#sockets.keys()];
  }

  /** The raw handle of a socket, to send to a worker. */
  handle(key: string): RawListeningHandle {
    const socket = this.#sockets.get(key);
    if (socket === undefined) throw new ListenError(`No listening socket for "${key}"`);
    return socket.handle;
  }

  /** Every socket's key and descriptor, for a process that inherits them. */
  descriptors(): { key: string; fd: number }[] {
    return [...this.#sockets].map(([key, socket]) => ({ key, fd: socket.handle.fd }));
  }

  /**
   * Closes the master's copy of a socket. A UNIX-domain socket's file is removed unless another
   * master still uses it, as `ngx_close_listening_sockets()` keeps it while `ngx_new_binary` runs.
   */
  close(key: string, options: { keepUnixFile?: boolean } = {}): void {
    const socket = this.#sockets.get(key);
    if (socket === undefined) return;
    this.#sockets.delete(key);
    socket.handle.close();
    const path = socket.spec?.path;
    if (path !== undefined && !options.keepUnixFile) {
      try {
        rmSync(path, { force: true });
      } catch (err) {
        this.#log.crit(formatSyscallError('unlink', path, err));
      }
    }
  }

  /** Closes every socket. */
  closeAll(options: { keepUnixFile?: boolean } = {}): void {
    for (const key of this.keys()) this.close(key, options);
  }
}

function bind(spec: ListenSpec): RawListeningHandle {
  const create = createServerHandle as CreateServerHandle;
  let handle: RawListeningHandle | number;
  if (spec.udp === true) {
    const host = spec.host ?? '0.0.0.0';
    const v6 = net.isIPv6(host);
    // No SO_REUSEADDR: a second bind() of the address fails, as nginx's does without reuseport.
    handle = createUdpHandle(host, spec.port ?? 0, v6 ? 'udp6' : 'udp4', undefined, v6 && spec.ipv6only ? UV_UDP_IPV6ONLY : 0);
    if (typeof handle === 'number') throw new ListenError(syscallMessage('bind', `to ${spec.key.slice(4)}`, handle));
    return handle;
  }
  if (spec.path !== undefined) {
    // Port and address type -1 make Node create a Pipe (lib/net.js createServerHandle).
    handle = create(spec.path, -1, -1, undefined, 0);
  } else {
    const host = spec.host ?? '0.0.0.0';
    const v6 = net.isIPv6(host);
    const flags = v6 && spec.ipv6only ? UV_TCP_IPV6ONLY : 0;
    handle = create(host, spec.port ?? 80, v6 ? 6 : 4, undefined, flags);
    if (typeof handle !== 'number') {
      const conflict = trialListen(create, host, spec.port ?? 80, v6 ? 6 : 4, flags, spec.backlog);
      if (conflict !== 0) {
        handle.close();
        handle = conflict;
      }
    }
  }
  if (typeof handle === 'number') throw new ListenError(syscallMessage('bind', `to ${spec.key}`, handle));
  return handle;
}

/**
 * Linux lets a socket with SO_REUSEADDR (libuv always sets it) bind an address another process
 * listens on; only listen() fails. The master does not listen on its own socket, so it finds out
 * with a second socket on the same address: listen(), then close at once, in the same tick, so
 * that no accept() can run. An address nobody serves yet loses nothing by it.
 */
function trialListen(create: CreateServerHandle, host: string, port: number, addressType: number, flags: number, backlog: number): number {
  const trial = create(host, port, addressType, undefined, flags);
  if (typeof trial === 'number') return trial;
  const result = trial.listen?.(backlog) ?? 0;
  trial.close();
  return result;
}

/** `bind() to 127.0.0.1:80 failed (98: Address already in use)`, nginx's words for a failed call. */
function syscallMessage(call: string, what: string, uvError: number): string {
  // libuv reports a failed call as the negated errno (uv-errno.h on Unix).
  const code = getSystemErrorName(uvError);
  const description = getSystemErrorMap().get(uvError)?.[1] ?? code;
  const err = Object.assign(new Error(description.charAt(0).toUpperCase() + description.slice(1)), { code, errno: -uvError });
  return formatSyscallError(call, undefined, err).replace(`${call}()`, `${call}() ${what}`);
}
