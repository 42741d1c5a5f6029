/**
 * The content phase of `proxy_pass` (nginx's `ngx_stream_proxy_handler()`): choose a peer with the
 * group's balancer, connect within proxy_connect_timeout, pass a failed connect to the next peer
 * (proxy_next_upstream, _tries, _timeout), send the PROXY protocol header and TLS if asked, then
 * copy bytes both ways until both sides are done, with proxy_timeout between two transfers.
 * A client that half-closes keeps receiving: its FIN is passed on, as nginx's `shutdown(SHUT_WR)`.
 */
import { connect, type Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { ErrorLog } from '../core/log.js';
import type { UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import type { UpstreamTls } from '../tls/upstream-tls.js';
import { writeProxyProtocol } from './proxy-protocol.js';
import type { StreamSession, UpstreamTry } from './session.js';

/** A server's `proxy_*` settings, compiled once per generation. */
export interface StreamProxySettings {
  /** The group for a session: fixed, or from proxy_pass's variables; a string is the error to log. */
  readonly resolveGroup: (session: StreamSession) => UpstreamGroup<StreamSession> | string;
  readonly connectTimeoutMs: number;
  readonly timeoutMs: number;
  readonly nextUpstream: boolean;
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
  /** 0 when proxy_protocol is off. */
  readonly proxyProtocol: 0 | 1 | 2;
  readonly tcpNodelay: boolean;
  /** UDP: proxy_responses, undefined for no limit. */
  readonly responses: number | undefined;
  /** UDP: proxy_requests, 0 for no limit. */
  readonly requests: number;
  readonly ssl: { readonly tls: UpstreamTls; readonly name: (session: StreamSession, group: UpstreamGroup<StreamSession>) => string } | undefined;
}

/** What the proxy needs of the session's client side. */
export interface ProxiedClient {
  readonly socket: Socket;
  /** Bytes the client sent before the content phase (preread, after a PROXY header). */
  readonly pending: readonly Buffer[];
  /** `client: ..., server: ...` as nginx ends its connection messages. */
  readonly logContext: string;
}

/** Runs proxy_pass for one session; `finish` is called once, when the session is over. */
export function proxySession(session: StreamSession, client: ProxiedClient, settings: StreamProxySettings, log: ErrorLog, finish: () => void): void {
  const resolved = settings.resolveGroup(session);
  if (typeof resolved === 'string') {
    log.error(`${resolved}, ${client.logContext}`, session.id);
    session.status = 500;
    finish();
    return;
  }
  const group = resolved;
  const picker = group.begin(session);
  const tried = new Set<Peer>();
  const started = performance.now();
  const maxTries = settings.nextTries === 0 ? group.size : Math.min(group.size, settings.nextTries);
  // tcp_nodelay applies to the client connection too, once the content phase starts (ngx_stream_core_content_phase()).
  if (settings.tcpNodelay) client.socket.setNoDelay(true);
  let closed = client.socket.destroyed;
  client.socket.once('close', () => (closed = true));

  const fail = (status: 502 | 500): void => {
    session.status = status;
    finish();
  };

  const attempt = (): void => {
    if (closed) {
      finish();
      return;
    }
    const peer = picker.pick(tried, Date.now());
    if (peer === undefined) {
      log.error(`no live upstreams while connecting to upstream, ${client.logContext}, upstream: "${group.name}"`, session.id);
      fail(502);
      return;
    }
    tried.add(peer);
    peer.conns++;
    const record: UpstreamTry = { addr: peer.name, connectMs: -1, bytesSent: 0, bytesReceived: 0 };
    session.upstreams.push(record);
    const connectStart = performance.now();
    const socket = peer.address.kind === 'unix' ? connect({ path: peer.address.path, allowHalfOpen: true }) : connect({ host: peer.address.host, port: peer.address.port, allowHalfOpen: true });
    let settled = false;
    const timer = setTimeout(() => failed('upstream timed out (110: Connection timed out) while connecting to upstream'), settings.connectTimeoutMs);
    const failed = (message: string): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      peer.conns--;
      group.record(peer, true);
      log.error(`${message}, ${client.logContext}, upstream: "${peer.name}"`, session.id);
      const elapsed = performance.now() - started;
      const more = settings.nextUpstream && tried.size < maxTries && (settings.nextTimeoutMs === 0 || elapsed < settings.nextTimeoutMs);
      if (more) attempt();
      else fail(502);
    };
    socket.once('error', (err: NodeJS.ErrnoException) => failed(connectMessage(err)));
    socket.once('connect', () => {
      if (settings.tcpNodelay) socket.setNoDelay(true);
      const connected = (upstream: Socket): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        record.connectMs = performance.now() - connectStart;
        socket.removeAllListeners('error');
        if (closed) {
          upstream.destroy();
          peer.conns--;
          finish();
          return;
        }
        relay(session, client, upstream, record, settings, log, () => {
          peer.conns--;
          group.record(peer, false);
          finish();
        });
      };
      if (settings.ssl === undefined) {
        connected(socket);
        return;
      }
      const name = settings.ssl.name(session, group);
      // The PROXY header goes before the TLS handshake, in the clear, as nginx sends it.
      if (settings.proxyProtocol !== 0) socket.write(proxyHeader(session, settings.proxyProtocol));
      settings.ssl.tls.handshake(socket, peer.name, name, settings.connectTimeoutMs, (result) => {
        if (result.ok) connected(result.socket as TLSSocket);
        else failed(result.message);
      });
    });
  };
  attempt();
}

function proxyHeader(session: StreamSession, version: 1 | 2): Buffer {
  return writeProxyProtocol(version, {
    sourceAddress: session.remoteAddress,
    sourcePort: Number(session.remotePort) || 0,
    destinationAddress: session.serverAddress,
    destinationPort: Number(session.serverPort) || 0,
  });
}

/** nginx's wording of a failed connect(). */
function connectMessage(err: NodeJS.ErrnoException): string {
  const errno: Record<string, string> = { ECONNREFUSED: '111: Connection refused', EHOSTUNREACH: '113: No route to host', ENETUNREACH: '101: Network is unreachable', ENOENT: '2: No such file or directory', EACCES: '13: Permission denied' };
  return `connect() failed (${errno[err.code ?? ''] ?? err.message}) while connecting to upstream`;
}

/**
 * Copies bytes both ways. A side's FIN is passed on to the other; the session is over when both
 * sockets have closed (every byte written), when one fails (both are destroyed), or after
 * proxy_timeout without a transfer.
 */
function relay(session: StreamSession, client: ProxiedClient, upstream: Socket, record: UpstreamTry, settings: StreamProxySettings, log: ErrorLog, done: () => void): void {
  const downstream = client.socket;
  let finished = false;
  let idle: NodeJS.Timeout | undefined;
  const state = { downstream: { ended: false, closed: false }, upstream: { ended: false, closed: false } };
  const finishRelay = (): void => {
    if (finished) return;
    finished = true;
    if (idle !== undefined) clearTimeout(idle);
    downstream.destroy();
    upstream.destroy();
    done();
  };
  const touch = (): void => {
    if (settings.timeoutMs === 0 || finished) return;
    if (idle !== undefined) idle.refresh();
    else {
      idle = setTimeout(() => {
        log.error(`upstream timed out (110: Connection timed out) while proxying connection, ${client.logContext}, upstream: "${record.addr}"`, session.id);
        finishRelay();
      }, settings.timeoutMs);
    }
  };
  if (settings.proxyProtocol !== 0 && settings.ssl === undefined) {
    const header = proxyHeader(session, settings.proxyProtocol);
    record.bytesSent += header.length;
    upstream.write(header);
  }
  for (const chunk of client.pending) {
    record.bytesSent += chunk.length;
    upstream.write(chunk);
  }
  touch();
  const wire = (from: Socket, to: Socket, own: { ended: boolean; closed: boolean }, other: { ended: boolean; closed: boolean }, count: (n: number) => void): void => {
    from.on('data', (chunk: Buffer) => {
      count(chunk.length);
      touch();
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => from.resume());
    from.on('end', () => {
      own.ended = true;
      to.end();
    });
    from.on('error', finishRelay);
    from.on('close', (hadError: boolean) => {
      own.closed = true;
      if (other.closed) finishRelay();
      // The other side can no longer be answered, or its FIN will close it once flushed.
      else if (hadError || !own.ended || !other.ended) to.destroy();
    });
  };
  wire(downstream, upstream, state.downstream, state.upstream, (n) => {
    session.bytesReceived += n;
    record.bytesSent += n;
  });
  wire(upstream, downstream, state.upstream, state.downstream, (n) => {
    record.bytesReceived += n;
    session.bytesSent += n;
  });
  // A client that sent its FIN during the preread: pass it on now.
  if (downstream.readableEnded) {
    state.downstream.ended = true;
    upstream.end();
  }
  downstream.resume();
}
