/**
 * The content phase of `proxy_pass` (nginx's `ngx_stream_proxy_handler()`): choose a peer with the
 * group's balancer, connect within proxy_connect_timeout, pass a failed connect to the next peer
 * (proxy_next_upstream, _tries, _timeout), send the PROXY protocol header and TLS if asked, then
 * copy bytes both ways until both sides are done, with proxy_timeout between two transfers.
 * A side's FIN ends the session once the other side has been sent everything (nginx's default,
 * `proxy_half_close off`); with `proxy_half_close on` it is passed on, as nginx's `shutdown(SHUT_WR)`,
 * and the session ends when both sides have sent theirs.
 */
import type { ConnectionBudget } from '../core/connection-budget.js';
import type { Socket } from 'node:net';
import type { ErrorLog } from '../core/log.js';
import type { UpstreamGroup } from '../upstream/group.js';
import { connectPeer, type PeerConnectOptions } from '../upstream/peer-connect.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';
import type { UpstreamTls } from '../tls/upstream-tls.js';
import { writeProxyProtocol } from '../core/proxy-protocol.js';
import type { StreamSession, UpstreamTry } from './session.js';

/** A server's `proxy_*` settings, compiled once per generation. */
export interface StreamProxySettings {
  /**
   * The group for a session: fixed, or from proxy_pass's variables; a string is the error to log;
   * a promise when the `resolver` must be asked first.
   */
  readonly resolveGroup: (session: StreamSession) => UpstreamGroup<StreamSession> | string | Promise<UpstreamGroup<StreamSession> | string>;
  readonly connectTimeoutMs: number;
  /** worker_connections: the worker's budget, which connections to peers count against. */
  readonly connections?: ConnectionBudget;
  readonly timeoutMs: number;
  readonly nextUpstream: boolean;
  readonly nextTries: number;
  readonly nextTimeoutMs: number;
  /** 0 when proxy_protocol is off. */
  readonly proxyProtocol: 0 | 1 | 2;
  readonly tcpNodelay: boolean;
  /** proxy_half_close: pass a FIN on and keep the other direction open (default off). */
  readonly halfClose: boolean;
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

/**
 * Runs proxy_pass for one session, the TCP adapter of the upstream cycle; `finish` is called
 * once, when the session is over. The returned function ends the attempt in progress as
 * `drained`, for a worker that shuts the session down (worker_shutdown_timeout, fast shutdown).
 */
export function proxySession(session: StreamSession, client: ProxiedClient, settings: StreamProxySettings, log: ErrorLog, finish: () => void): () => void {
  const resolving = settings.resolveGroup(session);
  if (!(resolving instanceof Promise)) return proxyToGroup(resolving, session, client, settings, log, finish);
  // ngx_stream_proxy_resolve_handler(): the session waits on the resolver; a drain meanwhile ends it.
  let stop: (() => void) | undefined;
  let drained = false;
  void resolving.then((resolved) => {
    if (drained || client.socket.destroyed) {
      if (!drained) finish();
      return;
    }
    stop = proxyToGroup(resolved, session, client, settings, log, finish);
  });
  return () => {
    if (stop !== undefined) return stop();
    if (drained) return;
    drained = true;
    finish();
  };
}

function proxyToGroup(resolved: UpstreamGroup<StreamSession> | string, session: StreamSession, client: ProxiedClient, settings: StreamProxySettings, log: ErrorLog, finish: () => void): () => void {
  if (typeof resolved === 'string') {
    log.error(`${resolved}, ${client.logContext}`, session.id);
    session.status = 500;
    finish();
    return () => undefined;
  }
  const group = resolved;
  const cycle = new UpstreamCycle('tcp', group, session, settings);
  // tcp_nodelay applies to the client connection too, once the content phase starts (ngx_stream_core_content_phase()).
  if (settings.tcpNodelay) client.socket.setNoDelay(true);
  /** Gives up the connect in progress, if any. */
  let cancelConnect: (() => void) | undefined;
  let closed = client.socket.destroyed;
  client.socket.once('close', () => {
    closed = true;
    if (cancelConnect === undefined) return;
    // The client left while its upstream connection was being opened: the attempt ends here.
    cancelConnect();
    cancelConnect = undefined;
    cycle.stop('aborted');
    finish();
  });

  const fail = (status: 502 | 500): void => {
    session.status = status;
    finish();
  };

  const next = (): void => {
    if (closed) {
      finish();
      return;
    }
    const attempt = cycle.next();
    if (attempt === undefined) {
      log.error(`no live upstreams while connecting to upstream, ${client.logContext}, upstream: "${group.name}"`, session.id);
      // ngx_stream_proxy_connect(): the state of the try that found no peer names the group.
      session.upstreams.push({ addr: group.name, connectMs: -1, bytesSent: 0, bytesReceived: 0 });
      fail(502);
      return;
    }
    const peer = attempt.peer;
    const record: UpstreamTry = { addr: peer.name, connectMs: -1, bytesSent: 0, bytesReceived: 0 };
    session.upstreams.push(record);
    const connectStart = performance.now();
    const ssl = settings.ssl;
    const options: PeerConnectOptions = {
      protocol: 'tcp',
      group: group.name,
      timeoutMs: settings.connectTimeoutMs,
      allowHalfOpen: true,
      noDelay: settings.tcpNodelay,
      // The PROXY header goes before the TLS handshake, in the clear, as nginx sends it.
      ...(ssl !== undefined && settings.proxyProtocol !== 0 ? { beforeTls: (socket: Socket) => socket.write(proxyHeader(session, settings.proxyProtocol as 1 | 2)) } : {}),
      ...(ssl === undefined ? {} : { tls: { tls: ssl.tls, name: ssl.name(session, group) } }),
    };
    cancelConnect = connectPeer(peer, { ...options, budget: settings.connections }, (result) => {
      cancelConnect = undefined;
      if (!result.ok && result.local === true) {
        // ngx_stream_proxy_connect(): NGX_ERROR closes the session; the peer is not at fault.
        attempt.finish('aborted', 'worker_connections');
        fail(500);
        return;
      }
      if (!result.ok) {
        attempt.finish('failed', result.timedOut ? 'timeout' : 'error');
        log.error(`${result.message}, ${client.logContext}, upstream: "${peer.name}"`, session.id);
        if (settings.nextUpstream && cycle.mayRetry()) next();
        else fail(502);
        return;
      }
      attempt.connected();
      record.connectMs = performance.now() - connectStart;
      relay(session, client, result.socket, record, attempt, settings, log, (reason) => {
        attempt.finish('ok', reason);
        finish();
      });
    });
  };
  next();
  return () => cycle.stop('drained');
}

function proxyHeader(session: StreamSession, version: 1 | 2): Buffer {
  return writeProxyProtocol(version, {
    sourceAddress: session.remoteAddress,
    sourcePort: Number(session.remotePort) || 0,
    destinationAddress: session.serverAddress,
    destinationPort: Number(session.serverPort) || 0,
  });
}

/**
 * Copies bytes both ways. A side's FIN is passed on to the other; the session is over once that
 * side has been sent every byte (proxy_half_close off, `ngx_stream_proxy_test_finalize()`), or
 * with proxy_half_close on when both sockets have closed; when one fails (both are destroyed); or
 * after proxy_timeout without a transfer.
 */
function relay(session: StreamSession, client: ProxiedClient, upstream: Socket, record: UpstreamTry, attempt: UpstreamAttempt, settings: StreamProxySettings, log: ErrorLog, done: (reason: string) => void): void {
  const downstream = client.socket;
  let finished = false;
  let idle: NodeJS.Timeout | undefined;
  const state = { downstream: { ended: false, closed: false }, upstream: { ended: false, closed: false } };
  /** `reason`: `timeout` (proxy_timeout), `error` (a side failed), '' when both sides closed. */
  const finishRelay = (reason = ''): void => {
    if (finished) return;
    finished = true;
    if (idle !== undefined) clearTimeout(idle);
    downstream.destroy();
    upstream.destroy();
    done(reason);
  };
  const touch = (): void => {
    if (settings.timeoutMs === 0 || finished) return;
    if (idle !== undefined) idle.refresh();
    else {
      idle = setTimeout(() => {
        log.error(`upstream timed out (110: Connection timed out) while proxying connection, ${client.logContext}, upstream: "${record.addr}"`, session.id);
        finishRelay('timeout');
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
      // Without proxy_half_close, nginx finalizes the session as soon as one side's read end is at
      // EOF and nothing is left to write to the other (ngx_stream_proxy_test_finalize()): bytes the
      // other side sends later are not waited for.
      if (settings.halfClose) to.end();
      else to.end(() => finishRelay());
    });
    from.on('error', () => finishRelay('error'));
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
    // The first byte back is the stream's "response header" for latency-aware balancers (ewma).
    if (record.bytesReceived === 0) attempt.responded();
    record.bytesReceived += n;
    session.bytesSent += n;
  });
  // A client that sent its FIN during the preread: pass it on now.
  if (downstream.readableEnded) {
    state.downstream.ended = true;
    if (settings.halfClose) upstream.end();
    else upstream.end(() => finishRelay());
  }
  downstream.resume();
}
