/**
 * Opening a connection to a peer, the step every protocol adapter of the upstream cycle shares
 * (ngx_event_connect_peer() and, for `proxy_ssl`/`grpcs`, ngx_http_upstream_ssl_init_connection()):
 * TCP or a unix socket within the connect timeout, then TLS within its own, failures in nginx's
 * words, and the `hitless:upstream:connect` and `:connectError` events.
 */
import { connect, type Socket } from 'node:net';
import type { ConnectionBudget } from '../core/connection-budget.js';
import { channels, type UpstreamProtocol } from '../core/diagnostics.js';
import { errnoText } from '../core/errno.js';
import type { UpstreamTls } from '../tls/upstream-tls.js';
import type { CertificatePaths } from '../tls/certificate-cache.js';
import type { Peer } from './peer.js';

/** How to open one connection to a peer. */
export interface PeerConnectOptions {
  readonly protocol: UpstreamProtocol;
  /** The group's name, for the events. */
  readonly group: string;
  /** proxy_connect_timeout, for the connect and then for the TLS handshake. */
  readonly timeoutMs: number;
  /** Keep the socket writable after the peer's FIN (stream: each side's FIN is passed on). Default: false. */
  readonly allowHalfOpen?: boolean;
  /** TCP_NODELAY. Default: false. */
  readonly noDelay?: boolean;
  /** SO_KEEPALIVE (proxy_socket_keepalive). Default: false. */
  readonly keepAlive?: boolean;
  /** Called once TCP is up, before TLS: the stream PROXY protocol header goes here, in the clear. */
  readonly beforeTls?: (socket: Socket) => void;
  /** TLS to the peer, with the name to verify and send by SNI, and ALPN protocols to offer. */
  readonly tls?: { readonly tls: UpstreamTls; readonly name: string; readonly alpn?: readonly string[]; readonly certificate?: CertificatePaths | undefined };
  /** worker_connections: the connection takes a place in the worker's budget until it closes. Default: not counted. */
  readonly budget?: ConnectionBudget | undefined;
  /** proxy_bind: the local address (and port, 0 for any) the connection is made from. Default: the kernel's choice. */
  readonly local?: LocalAddress | undefined;
}

/** A local address to bind to, as ngx_parse_addr_port() gives it; port 0 lets the kernel choose. */
export interface LocalAddress {
  readonly host: string;
  readonly port: number;
  /** The text as given, for nginx's `bind(...) failed` message. */
  readonly name: string;
}

/** A connection ready for the protocol, or nginx's message for why there is none. */
export type PeerConnectResult =
  | { readonly ok: true; readonly socket: Socket }
  | {
      readonly ok: false;
      readonly message: string;
      readonly timedOut: boolean;
      /** This side's failure: the worker is out of connections (logged already), or `certificate`. */
      readonly local?: true;
      /** proxy_bind's address could not be bound. */
      readonly bindFailed?: true;
      /** The certificate with variables of this connection did not load: `message` is for the error log, the answer is 500. */
      readonly certificate?: true;
    };

/**
 * Connects to `peer`; `done` is called once. The returned function gives up (the client went
 * away): the socket is destroyed and `done` is not called.
 */
export function connectPeer(peer: Peer, options: PeerConnectOptions, done: (result: PeerConnectResult) => void): () => void {
  // ngx_event_connect_peer(): no connection left in the worker is NGX_ERROR, the worker's fault
  // and not the peer's (local: nginx answers 500 and tries no other peer). Reported a tick later,
  // as a failed connect would be.
  const slot = options.budget?.take(' while connecting to upstream');
  if (options.budget !== undefined && slot === undefined) {
    let cancelled = false;
    queueMicrotask(() => {
      if (!cancelled) done({ ok: false, message: `${options.budget?.limit} worker_connections are not enough while connecting to upstream`, timedOut: false, local: true });
    });
    return () => (cancelled = true);
  }
  const address = peer.address;
  const allowHalfOpen = options.allowHalfOpen ?? false;
  const local = address.kind === 'unix' ? undefined : options.local;
  const bound = local === undefined ? {} : { localAddress: local.host, ...(local.port === 0 ? {} : { localPort: local.port }) };
  const socket: Socket = address.kind === 'unix' ? connect({ path: address.path, allowHalfOpen }) : connect({ host: address.host, port: address.port, allowHalfOpen, ...bound });
  if (slot !== undefined) socket.once('close', () => slot.release());
  let settled = false;
  const settle = (result: PeerConnectResult): void => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    if (!result.ok) {
      socket.destroy();
      const failed = channels.upstreamConnectError;
      if (failed.hasSubscribers) failed.publish({ protocol: options.protocol, group: options.group, peer: peer.name, error: result.message, timedOut: result.timedOut });
    }
    done(result);
  };
  const timer = setTimeout(() => settle({ ok: false, message: 'upstream timed out (110: Connection timed out) while connecting to upstream', timedOut: true }), options.timeoutMs);
  const onError = (err: Error): void => {
    // ngx_event_connect_peer(): a failed bind() is the worker's error (NGX_ERROR, a 500), not the peer's.
    if ((err as NodeJS.ErrnoException).syscall === 'bind' && local !== undefined) {
      settle({ ok: false, message: `bind(${local.name}) failed (${errnoText(err)}) while connecting to upstream`, timedOut: false, local: true, bindFailed: true });
      return;
    }
    settle({ ok: false, message: `connect() failed (${errnoText(err)}) while connecting to upstream`, timedOut: false });
  };
  socket.once('error', onError);
  socket.once('connect', () => {
    if (settled) return;
    clearTimeout(timer);
    socket.off('error', onError);
    if (options.noDelay === true) socket.setNoDelay(true);
    if (options.keepAlive === true) socket.setKeepAlive(true);
    const opened = channels.upstreamConnect;
    if (opened.hasSubscribers) opened.publish({ protocol: options.protocol, group: options.group, peer: peer.name });
    options.beforeTls?.(socket);
    const tls = options.tls;
    if (tls === undefined) {
      settled = true;
      done({ ok: true, socket });
      return;
    }
    tls.tls.handshake(
      socket,
      peer.name,
      tls.name,
      options.timeoutMs,
      (result) => {
        if (result.ok) {
          if (settled) {
            result.socket.destroy();
            return;
          }
          settled = true;
          done({ ok: true, socket: result.socket });
        } else if (result.local === true) {
          settle({ ok: false, message: `${result.message} while SSL handshaking to upstream`, timedOut: false, local: true, certificate: true });
        } else {
          settle({ ok: false, message: `${result.message} while SSL handshaking to upstream`, timedOut: result.timedOut });
        }
      },
      tls.alpn,
      tls.certificate,
    );
  });
  return () => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    socket.destroy();
  };
}
