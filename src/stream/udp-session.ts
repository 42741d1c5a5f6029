/**
 * One UDP session (nginx's stream module with `listen ... udp`): the datagrams of one client
 * address and port. The phases are the TCP session's that apply to datagrams (limit_conn,
 * ssl_preread over the first datagram, return, proxy_pass). proxy_pass picks a peer with the
 * group's balancer, sends each client datagram to it as one datagram from a connected socket, and
 * each datagram it sends back goes to the client from the listening socket.
 *
 * The session ends as `ngx_stream_proxy_test_finalize()` and `ngx_stream_proxy_process_connection()`
 * decide for SOCK_DGRAM: once `proxy_responses` datagrams per client datagram came back (after
 * `proxy_requests` client datagrams, when that is set), or after `proxy_timeout` without a
 * datagram either way. An upstream that fails before it answered (ICMP port unreachable) passes
 * the session to the next peer, as ngx_stream_proxy_process() does for `u->received == 0`.
 */
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { ErrorLog } from '../core/log.js';
import { logRequest } from '../http/access-log.js';
import { channels } from '../core/diagnostics.js';
import { errnoText } from '../core/errno.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';
import type { CompiledStreamServer, StreamRoute } from './generation.js';
import { validateHost } from '../http/uri.js';
import { SessionConnLimits } from './limit-conn.js';
import { clientText, StreamSession, type StreamStatus, type UpstreamTry } from './session.js';
import { accessDenied, runSets } from './phases.js';
import { ClientHelloReader } from './ssl-preread.js';
import { localAddressFor } from './proxy.js';
import { DatagramPacer, startSecond } from './rate-limit.js';
import { busyTry } from './proxy.js';

/** Where a UDP session's client is, and how to answer it (from the listening socket). */
export interface UdpClient {
  readonly address: string;
  readonly port: number;
  readonly localAddress: string;
  readonly localPort: number;
  /** Sends one datagram to the client from the listening socket. */
  readonly reply: (datagram: Buffer) => void;
}

/** The most client datagrams held while the session looks for its upstream, as nginx keeps one buffer. */
const MAX_QUEUED_DATAGRAMS = 64;

/** A session in progress, as the runtime tracks it for drains and fast shutdowns. */
export class UdpSession {
  readonly session: StreamSession;
  /** The address's default server, until ssl_preread's name chooses another. */
  #server: CompiledStreamServer;
  readonly #find: StreamRoute['find'];
  readonly #client: UdpClient;
  #log: ErrorLog;
  readonly #closeListeners: (() => void)[] = [];
  /** Client datagrams not sent upstream yet (before the content phase, or while connecting). */
  #queue: Buffer[] = [];
  /** Datagrams sent to a peer that has not answered: sent again to the next peer if it fails. */
  #unanswered: Buffer[] = [];
  #upstream: { socket: DgramSocket; attempt: UpstreamAttempt; record: UpstreamTry; connected: boolean } | undefined;
  readonly #limits = new SessionConnLimits();
  #requests = 0;
  #responses = 0;
  #idle: NodeJS.Timeout | undefined;
  /** proxy_upload_rate and proxy_download_rate, once the upstream is connected. */
  #pacers: { upload: DatagramPacer; download: DatagramPacer } | undefined;
  /** The upstream's datagrams that wait for proxy_download_rate (in nginx, in the socket's buffer). */
  #answers: Buffer[] = [];
  #detach: (() => void) | undefined;
  #done = false;

  constructor(route: StreamRoute, client: UdpClient, log: ErrorLog) {
    const server = route.server;
    this.#server = server;
    this.#find = route.find;
    this.#client = client;
    this.#log = log;
    this.session = new StreamSession({ remoteAddress: client.address, remotePort: client.port, localAddress: client.localAddress, localPort: client.localPort }, 'UDP');
    this.session.serverName = server.serverName;
  }

  /** `udp client: 127.0.0.1, server: 0.0.0.0:53`, as nginx ends the messages of a datagram session. */
  get #logContext(): string {
    return `udp client: ${this.session.remoteAddress}, server: ${this.#server.addrText}`;
  }

  /** Called once the client's next datagram must start a new session (proxy_requests reached, or the end). */
  onDetach(listener: () => void): void {
    this.#detach = listener;
  }

  /** Runs the phases with the client's first datagram; the session ends by itself. */
  start(first: Buffer): void {
    this.#log.info(`udp client ${clientText(this.session.peerAddress, this.session.peerPort)} connected to ${this.#server.addrText}`, this.session.id);
    this.#count(first);
    this.#queue.push(first);
    void this.#run(first).catch((err: unknown) => {
      this.#log.alert(`stream session failed: ${err instanceof Error ? err.message : String(err)}`);
      this.#finish(500);
    });
  }

  /** A later datagram of the client. */
  receive(datagram: Buffer): void {
    if (this.#done) return;
    const upstream = this.#upstream;
    // Sent while proxy_upload_rate delays reading: nginx does not read it, and it is lost.
    if (upstream?.connected === true && this.#pacers?.upload.mayRead(this.session.bytesReceived) === false) return;
    this.#count(datagram);
    if (upstream?.connected === true) {
      this.#pacers?.upload.read(datagram.length);
      this.#send(datagram);
    } else if (this.#queue.length < MAX_QUEUED_DATAGRAMS) this.#queue.push(datagram);
  }

  #count(datagram: Buffer): void {
    this.session.bytesReceived += datagram.length;
    this.#requests++;
    this.#touch();
    const limit = this.#server.proxy?.requests ?? 0;
    // ngx_delete_udp_connection(): the client's next datagram is a new session; this one finishes its answers.
    if (limit > 0 && this.#requests >= limit) this.#release();
  }

  async #run(first: Buffer): Promise<void> {
    const server = this.#server;
    // The preaccess phase (set, then limit_conn), then the access phase.
    runSets(server, this.session);
    if (server.limitConn.length > 0 && !(await this.#limits.acquire(server, this.session, this.#log, this.#logContext))) return this.#finish(503);
    if (this.#done) return;
    if (accessDenied(server, this.session, this.#log, this.#logContext)) return this.#finish(403);
    if (server.sslPreread) {
      // The preread phase of a datagram session reads its first datagram, nothing more.
      const reader = new ClientHelloReader();
      const result = reader.feed(first.subarray(0, server.prereadBufferSize));
      if (result !== 'declined' && result !== 'again') this.session.preread = reader.values;
      this.#chooseServer(this.session.preread?.serverName ?? '');
    }
    // The content phase runs in the server the session ended up in.
    const chosen = this.#server;
    if (chosen.returnValue !== undefined) {
      const text = Buffer.from(chosen.returnValue(this.session), 'latin1');
      this.session.bytesSent += text.length;
      this.#client.reply(text);
      return this.#finish(200);
    }
    if (chosen.proxy === undefined) return this.#finish(500);
    this.#proxy();
  }

  /** ngx_stream_ssl_preread_servername(): the ClientHello's name chooses among the address's servers. */
  #chooseServer(name: string): void {
    const host = name === '' || this.#find === undefined ? undefined : validateHost(name)?.host;
    if (host === undefined || this.#find === undefined) return;
    const { server, match } = this.#find(host);
    if (match !== undefined) this.session.captures = match;
    this.#server = server;
    this.#log = server.errorLog;
    this.session.serverName = server.serverName;
  }

  #proxy(): void {
    const settings = this.#server.proxy;
    if (settings === undefined) return;
    const resolving = settings.resolveGroup(this.session);
    if (resolving instanceof Promise) {
      void resolving.then((resolved) => {
        if (!this.#done) this.#proxyTo(settings, resolved);
      });
      return;
    }
    this.#proxyTo(settings, resolving);
  }

  #proxyTo(settings: NonNullable<CompiledStreamServer['proxy']>, resolved: Exclude<ReturnType<NonNullable<CompiledStreamServer['proxy']>['resolveGroup']>, Promise<unknown>>): void {
    if (typeof resolved === 'string') {
      this.#log.error(`${resolved}, ${this.#logContext}`, this.session.id);
      return this.#finish(500);
    }
    const group = resolved;
    const cycle = new UpstreamCycle('udp', group, this.session, settings);
    // u->start_sec: the rates count from here.
    const startSec = startSecond();

    const attempt = (): void => {
      if (this.#done) return;
      const current = cycle.next();
      if (current === undefined) {
        this.#log.error(`no live upstreams while connecting to upstream, ${this.#logContext}, upstream: "${group.name}"`, this.session.id);
        this.session.upstreams.push(busyTry(group.name));
        return this.#finish(502);
      }
      const peer = current.peer;
      const next = (): void => {
        if (settings.nextUpstream && cycle.mayRetry()) attempt();
        else this.#finish(502);
      };
      const record: UpstreamTry = { addr: peer.name, connectMs: -1, firstByteMs: -1, startedAt: performance.now(), endedAt: undefined, bytesSent: 0, bytesReceived: 0 };
      this.session.upstreams.push(record);
      if (peer.address.kind === 'unix') {
        this.#log.error(`datagrams to the unix domain socket "${peer.name}" are not supported by hitless, ${this.#logContext}`, this.session.id);
        current.finish('failed', 'error');
        return next();
      }
      const { host, port } = peer.address;
      const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
      // proxy_bind: the datagrams leave from that address (ngx_event_connect_peer() binds before connecting).
      const local = localAddressFor(settings, this.session, this.#log, this.#logContext);
      const upstream = { socket, attempt: current, record, connected: false };
      this.#upstream = upstream;
      const connectStart = performance.now();
      let failedOnce = false;
      const failed = (err: NodeJS.ErrnoException, call: string): void => {
        if (failedOnce || this.#done) return;
        failedOnce = true;
        socket.close();
        this.#upstream = undefined;
        const text = errnoText(err);
        if (record.bytesReceived > 0) {
          // The peer answered before: the session is over, as a TCP connection that broke.
          this.#log.error(`${call}() failed (${text}) while proxying and reading from upstream, ${this.#logContext}, upstream: "${peer.name}"`, this.session.id);
          current.finish('ok', 'error');
          return this.#finish(200);
        }
        const message = `${call}() failed (${text}) while ${upstream.connected ? 'proxying and reading from upstream' : 'connecting to upstream'}`;
        if (!upstream.connected) channels.upstreamConnectError.publishLazy(() => ({ protocol: 'udp', group: group.name, peer: peer.name, error: message, timedOut: false }));
        this.#log.error(`${message}, ${this.#logContext}, upstream: "${peer.name}"`, this.session.id);
        record.endedAt = performance.now();
        current.finish('failed', 'error');
        // A datagram session goes to no other peer once its socket is connected: nginx's connect()
        // of a UDP socket succeeds at once, and a later error (an ICMP port unreachable read back
        // as ECONNREFUSED) ends the session, counted against the peer (ngx_stream_proxy_finalize()).
        if (upstream.connected) return this.#finish(502);
        // ngx_stream_proxy_next_upstream() drops a datagram session's output (u->upstream_out = NULL):
        // what the failed peer was to be sent is not sent again; the client's next datagrams go to the next peer.
        this.#queue = [];
        this.#unanswered = [];
        next();
      };
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (err.syscall === 'bind' && local !== undefined && !failedOnce && !this.#done) {
          // ngx_event_connect_peer(): bind() failed is the worker's error: crit, and the session ends.
          failedOnce = true;
          socket.close();
          this.#upstream = undefined;
          this.#log.write('crit', `bind(${local.name}) failed (${errnoText(err)}) while connecting to upstream, ${this.#logContext}, upstream: "${peer.name}"`, this.session.id);
          current.finish('aborted', 'bind');
          this.#finish(500);
          return;
        }
        failed(err, err.syscall === 'send' ? 'send' : 'recv');
      });
      socket.on('message', (datagram: Buffer) => this.#answer(datagram));
      const connect = (): void => socket.connect(port, host, () => {
        if (this.#done || failedOnce) return;
        upstream.connected = true;
        current.connected();
        channels.upstreamConnect.publishLazy(() => ({ protocol: 'udp', group: group.name, peer: peer.name }));
        record.connectMs = performance.now() - connectStart;
        // ngx_stream_proxy_init_upstream(): the rates are read once the upstream is connected.
        this.#pacers?.upload.stop();
        this.#pacers?.download.stop();
        this.#pacers = {
          upload: new DatagramPacer(settings.uploadRate(this.session), startSec),
          download: new DatagramPacer(settings.downloadRate(this.session), startSec, () => this.#pumpAnswers()),
        };
        for (const datagram of this.#queue.splice(0)) this.#send(datagram);
      });
      if (local === undefined) connect();
      else socket.bind({ address: local.host, port: local.port, exclusive: true }, connect);
    };
    attempt();
  }

  #send(datagram: Buffer): void {
    const upstream = this.#upstream;
    if (upstream === undefined) return;
    upstream.record.bytesSent += datagram.length;
    if (upstream.record.bytesReceived === 0) this.#unanswered.push(datagram);
    upstream.socket.send(datagram, (err) => {
      if (err !== null && err !== undefined) upstream.socket.emit('error', Object.assign(err, { syscall: 'send' }));
      else this.#testFinalize();
    });
  }

  /** A datagram from the upstream: to the client, from the listening socket, when proxy_download_rate lets it be read. */
  #answer(datagram: Buffer): void {
    if (this.#done || this.#upstream === undefined) return;
    if (this.#answers.length > 0 || this.#pacers?.download.mayRead(this.#upstream.record.bytesReceived) === false) {
      if (this.#answers.length < MAX_QUEUED_DATAGRAMS) this.#answers.push(datagram);
      return;
    }
    this.#deliver(datagram);
  }

  /** The upstream's datagrams that waited, as long as the rate lets them be read. */
  #pumpAnswers(): void {
    while (!this.#done && this.#upstream !== undefined && this.#answers.length > 0) {
      if (this.#pacers?.download.mayRead(this.#upstream.record.bytesReceived) === false) return;
      this.#deliver(this.#answers.shift() as Buffer);
    }
  }

  #deliver(datagram: Buffer): void {
    const upstream = this.#upstream;
    if (this.#done || upstream === undefined) return;
    this.#pacers?.download.read(datagram.length);
    if (upstream.record.bytesReceived === 0) {
      upstream.attempt.responded();
      upstream.record.firstByteMs = performance.now() - upstream.record.startedAt;
    }
    upstream.record.bytesReceived += datagram.length;
    this.#unanswered = [];
    this.#responses++;
    this.session.bytesSent += datagram.length;
    this.#touch();
    this.#client.reply(datagram);
    this.#testFinalize();
  }

  /** `ngx_stream_proxy_test_finalize()` for SOCK_DGRAM: every expected answer came ("udp done"). */
  #testFinalize(): void {
    const settings = this.#server.proxy;
    if (this.#done || settings === undefined || settings.responses === undefined) return;
    if (settings.requests > 0 && this.#requests < settings.requests) return;
    if (this.#responses < settings.responses * this.#requests || this.#queue.length > 0) return;
    const upstream = this.#upstream?.record;
    // Without the connection's context, as nginx writes it.
    this.#log.info(`udp done, packets from/to client:${this.#requests}/${this.#responses}, bytes from/to client:${this.session.bytesReceived}/${this.session.bytesSent}, bytes from/to upstream:${upstream?.bytesReceived ?? 0}/${upstream?.bytesSent ?? 0}`, this.session.id);
    this.#finish(200);
  }

  /** proxy_timeout between two datagrams, either way (ngx_stream_proxy_process_connection()). */
  #touch(): void {
    const timeoutMs = this.#server.proxy?.timeoutMs ?? 0;
    if (timeoutMs === 0 || this.#done) return;
    if (this.#idle !== undefined) {
      this.#idle.refresh();
      return;
    }
    this.#idle = setTimeout(() => {
      const settings = this.#server.proxy;
      const expected = settings?.responses;
      // A session that got every answer it expects times out successfully; one still waiting is a 502.
      if (expected === undefined || this.#responses >= expected * this.#requests) {
        this.#log.info(`udp timed out, ${this.#logContext}`, this.session.id);
        this.#finish(200);
        return;
      }
      const upstream = this.#upstream;
      this.#log.error(`upstream timed out (110: Connection timed out) while proxying connection, ${this.#logContext}${upstream === undefined ? '' : `, upstream: "${upstream.attempt.peer.name}"`}`, this.session.id);
      this.#finish(502);
    }, timeoutMs);
  }

  #release(): void {
    const detach = this.#detach;
    this.#detach = undefined;
    detach?.();
  }

  /**
   * Ends the session: closes the upstream socket, ends its attempt (`drained` when the worker cut
   * it short), gives back the limit_conn counts, writes the log line.
   */
  #finish(status: StreamStatus, outcome: 'ok' | 'drained' = 'ok'): void {
    if (this.#done) return;
    this.#done = true;
    this.session.status = status;
    this.session.endedAt = performance.now();
    if (this.#idle !== undefined) clearTimeout(this.#idle);
    this.#pacers?.upload.stop();
    this.#pacers?.download.stop();
    this.#answers = [];
    const upstream = this.#upstream;
    this.#upstream = undefined;
    if (upstream !== undefined) {
      upstream.socket.close();
      upstream.attempt.finish(outcome, status === 502 ? 'timeout' : '');
    }
    this.#limits.release();
    this.#release();
    logRequest(this.#server.loggers, this.session);
    channels.requestFinish.publishLazy(() => ({ protocol: 'udp', request: this.session }));
    for (const listener of this.#closeListeners.splice(0)) listener();
  }

  /** Calls `listener` once the session is over. */
  onClose(listener: () => void): void {
    if (this.#done) listener();
    else this.#closeListeners.push(listener);
  }

  /** Ends the session at once (fast shutdown, worker_shutdown_timeout). */
  destroy(): void {
    this.#finish(this.session.status, 'drained');
  }
}
