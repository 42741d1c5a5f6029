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
import { connectPeer, type LocalAddress, type PeerConnectOptions } from '../upstream/peer-connect.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';
import type { UpstreamTls } from '../tls/upstream-tls.js';
import type { CertificatePaths } from '../tls/certificate-cache.js';
import { writeProxyProtocol } from '../core/proxy-protocol.js';
import type { StreamSession, UpstreamTry } from './session.js';
import { RateGate, startSecond, type RateOf } from './rate-limit.js';

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
  /** proxy_upload_rate: bytes per second read from the client, 0 for no limit; read once the upstream is connected. */
  readonly uploadRate: RateOf<StreamSession>;
  /** proxy_download_rate: bytes per second read from the upstream. */
  readonly downloadRate: RateOf<StreamSession>;
  /** proxy_buffer_size: the most bytes read from a side before they are written to the other. */
  readonly bufferSize: number;
  readonly ssl:
    | {
        readonly tls: UpstreamTls;
        readonly name: (session: StreamSession, group: UpstreamGroup<StreamSession>) => string;
        /** `proxy_ssl_certificate` with variables: the files of this session; undefined for none or fixed ones. */
        readonly certificate: (session: StreamSession) => CertificatePaths | undefined;
        /** proxy_ssl_alpn, evaluated per connect; undefined (or an empty list) offers no ALPN. */
        readonly alpn: ((session: StreamSession) => readonly string[]) | undefined;
      }
    | undefined;
  /** proxy_bind for a session: the local address, undefined for none, or nginx's error for a bad value. */
  readonly bind: (session: StreamSession) => LocalAddress | undefined | { readonly invalid: string };
}

/** proxy_bind for a session, its [error] logged for a value that is no address. */
export function localAddressFor(settings: StreamProxySettings, session: StreamSession, log: ErrorLog, logContext: string): LocalAddress | undefined {
  const bind = settings.bind(session);
  if (bind === undefined || !('invalid' in bind)) return bind;
  log.error(`${bind.invalid}, ${logContext}`, session.id);
  return undefined;
}

/** proxy_buffer_size's default, 16k: Node's own high-water mark, which paces without a gate. */
export const DEFAULT_BUFFER_SIZE = 16384;

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
  // u->start_sec: the rates count from here, the start of the content phase.
  const startSec = startSecond();
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
      // ngx_stream_proxy_connect(): the try is recorded under the group's name (`$upstream_addr`).
      const now = performance.now();
      session.upstreams.push({ addr: group.name, connectMs: -1, firstByteMs: -1, startedAt: now, endedAt: now, bytesSent: 0, bytesReceived: 0 });
      fail(502);
      return;
    }
    const peer = attempt.peer;
    const record: UpstreamTry = { addr: peer.name, connectMs: -1, firstByteMs: -1, startedAt: performance.now(), endedAt: undefined, bytesSent: 0, bytesReceived: 0 };
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
      ...(ssl === undefined ? {} : { tls: tlsOptions(session, group, ssl) }),
      local: localAddressFor(settings, session, log, client.logContext),
    };
    cancelConnect = connectPeer(peer, { ...options, budget: settings.connections }, (result) => {
      cancelConnect = undefined;
      if (!result.ok && result.bindFailed === true) log.write('crit', `${result.message}, ${client.logContext}, upstream: "${peer.name}"`, session.id);
      if (!result.ok && result.local === true) {
        // ngx_stream_proxy_connect(): NGX_ERROR closes the session; the peer is not at fault. So
        // does a certificate with variables that does not load (ngx_stream_proxy_ssl_init_connection()).
        if (result.certificate === true) log.error(`${result.message}, ${client.logContext}, upstream: "${peer.name}"`, session.id);
        attempt.finish('aborted', result.certificate === true ? 'certificate' : 'worker_connections');
        fail(500);
        return;
      }
      if (!result.ok) {
        record.endedAt = performance.now();
        attempt.finish('failed', result.timedOut ? 'timeout' : 'error');
        log.error(`${result.message}, ${client.logContext}, upstream: "${peer.name}"`, session.id);
        if (settings.nextUpstream && cycle.mayRetry()) next();
        else fail(502);
        return;
      }
      attempt.connected();
      record.connectMs = performance.now() - connectStart;
      relay(session, client, result.socket, record, attempt, settings, startSec, log, (reason) => {
        attempt.finish('ok', reason);
        finish();
      });
    });
  };
  next();
  return () => cycle.stop('drained');
}

function tlsOptions(session: StreamSession, group: UpstreamGroup<StreamSession>, ssl: NonNullable<StreamProxySettings['ssl']>): NonNullable<PeerConnectOptions['tls']> {
  const alpn = ssl.alpn?.(session) ?? [];
  const certificate = ssl.certificate(session);
  return { tls: ssl.tls, name: ssl.name(session, group), ...(certificate === undefined ? {} : { certificate }), ...(alpn.length === 0 ? {} : { alpn }) };
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
function relay(session: StreamSession, client: ProxiedClient, upstream: Socket, record: UpstreamTry, attempt: UpstreamAttempt, settings: StreamProxySettings, startSec: number, log: ErrorLog, done: (reason: string) => void): void {
  const downstream = client.socket;
  let finished = false;
  const gates: RateGate[] = [];
  let idle: NodeJS.Timeout | undefined;
  const state = { downstream: { ended: false, closed: false }, upstream: { ended: false, closed: false } };
  /** `reason`: `timeout` (proxy_timeout), `error` (a side failed), '' when both sides closed. */
  const finishRelay = (reason = ''): void => {
    if (finished) return;
    finished = true;
    if (idle !== undefined) clearTimeout(idle);
    for (const gate of gates) gate.stop();
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
  /** A FIN from `from`, once everything it sent has been passed on. */
  const ended = (to: Socket): void => {
    // Without proxy_half_close, nginx finalizes the session as soon as one side's read end is at
    // EOF and nothing is left to write to the other (ngx_stream_proxy_test_finalize()): bytes the
    // other side sends later are not waited for.
    if (settings.halfClose) to.end();
    else to.end(() => finishRelay());
  };
  const wire = (from: Socket, to: Socket, own: { ended: boolean; closed: boolean }, other: { ended: boolean; closed: boolean }, rate: number, received: () => number, count: (n: number) => void): void => {
    // The default buffer is Node's own 16k high-water mark; a rate or another proxy_buffer_size paces through a gate.
    const gate = rate === 0 && settings.bufferSize === DEFAULT_BUFFER_SIZE
      ? undefined
      : new RateGate({
        rate,
        startSec,
        bufferSize: settings.bufferSize,
        sink: { write: (part, flushed) => to.write(part, flushed), pending: () => to.writableLength },
        received,
        count,
        pause: () => from.pause(),
        resume: () => from.resume(),
      });
    if (gate !== undefined) gates.push(gate);
    from.on('data', (chunk: Buffer) => {
      touch();
      if (gate !== undefined) {
        gate.push(chunk);
        return;
      }
      count(chunk.length);
      if (!to.write(chunk)) from.pause();
    });
    to.on('drain', () => from.resume());
    from.on('end', () => {
      own.ended = true;
      if (gate === undefined) ended(to);
      else gate.whenEmpty(() => ended(to));
    });
    from.on('error', () => finishRelay('error'));
    from.on('close', (hadError: boolean) => {
      own.closed = true;
      if (other.closed) finishRelay();
      // The other side can no longer be answered, or its FIN will close it once flushed.
      else if (hadError || !own.ended || !other.ended) to.destroy();
    });
  };
  // ngx_stream_proxy_init_upstream(): the rates are read once the upstream is connected.
  wire(downstream, upstream, state.downstream, state.upstream, settings.uploadRate(session), () => session.bytesReceived, (n) => {
    session.bytesReceived += n;
    record.bytesSent += n;
  });
  wire(upstream, downstream, state.upstream, state.downstream, settings.downloadRate(session), () => record.bytesReceived, (n) => {
    // The first byte back is the stream's "response header" for latency-aware balancers (ewma).
    if (record.bytesReceived === 0) {
      attempt.responded();
      record.firstByteMs = performance.now() - record.startedAt;
    }
    record.bytesReceived += n;
    session.bytesSent += n;
  });
  // A client that sent its FIN during the preread: pass it on now.
  if (downstream.readableEnded) {
    state.downstream.ended = true;
    ended(upstream);
  }
  downstream.resume();
}
