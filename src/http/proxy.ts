/**
 * The content handler of `proxy_pass` (nginx's ngx_http_proxy_module with ngx_http_upstream.c's
 * request cycle): read the client's body if buffering, pick a peer, reuse or open a connection,
 * send, pass the response back at the client's pace, retry on the next peer as
 * `proxy_next_upstream` allows, and never let a pooled connection the upstream closed become a
 * client's error.
 */
import type { Socket } from 'node:net';
import { recordUpstreamHead } from './variables.js';
import { beginUpstreamCycle, beginUpstreamState, failUpstreamState, type UpstreamState } from './upstream-states.js';
import type { ErrorLog } from '../core/log.js';
import { ChunkedParser } from './h1/chunked.js';
import { HttpParseError, type ResponseHead } from './h1/head-parser.js';
import type { HttpExchange } from './exchange.js';
import { UpstreamExchange, UpstreamFailure } from './h1/upstream-exchange.js';
import type { ClientConnection } from './connections.js';
import type { CompiledProxy } from './proxy-config.js';
import { headerOf } from './output-filter.js';
import { clientResponseHeaders, upstreamRequestHead } from './proxy-request.js';
import type { HttpRequest } from './request.js';
import { UpstreamConnection } from '../upstream/connection-pool.js';
import type { UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import { connectPeer } from '../upstream/peer-connect.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';

/** Methods nginx retries without `non_idempotent` (ngx_http_upstream_next: not POST, LOCK, PATCH). */
const NON_IDEMPOTENT = new Set(['POST', 'LOCK', 'PATCH']);

/** How much of a response is read ahead of a slow client with proxy_buffering on. */
const READ_AHEAD_BYTES = 1024 * 1024;

/** What a content handler that passes a request upstream (proxy_pass, grpc_pass) gets from the handler. */
export interface UpstreamContext {
  readonly exchange: HttpExchange;
  readonly request: HttpRequest;
  readonly conn: ClientConnection;
  readonly log: ErrorLog;
  /** Sends an error response the way the handler does (error_page, add_header, built-in page). */
  readonly fail: (status: number) => void;
  /** Sends the upstream's response head through the header filter (add_header). */
  readonly headers: (status: number, headers: string[]) => void;
}

/** What the proxy needs from the handler that called it. */
export interface ProxyContext extends UpstreamContext {
  readonly proxy: CompiledProxy;
  /** A Location starting with `/` made absolute (absolute_redirect, port_in_redirect, server_name_in_redirect). */
  readonly absoluteLocation: (location: string) => string;
}

/** Proxies one request. */
export function proxyRequest(ctx: ProxyContext): void {
  const { exchange, proxy } = ctx;
  const group = proxy.resolveGroup(ctx.request);
  if (group === undefined) {
    ctx.log.error(`no resolver defined to resolve ${proxy.dynamicHost(ctx.request)}${where(ctx)}`, ctx.conn.number);
    ctx.fail(502);
    return;
  }
  // A body read already (mirror_request_body on, nginx's r->preserve_body) goes as it was read.
  const read = ctx.request.requestBody;
  if (read !== undefined && !exchange.hasBody && proxy.passRequestBody && ctx.request.methodOverride === undefined) {
    new ProxyAttempts(ctx, group, [...read]).next();
    return;
  }
  if (!proxy.passRequestBody || !exchange.hasBody || ctx.request.methodOverride !== undefined) {
    // ngx_http_read_client_request_body() answers "Expect: 100-continue" even when the body is empty.
    if (proxy.passRequestBody && ctx.request.methodOverride === undefined) exchange.readBody(0, () => undefined, () => undefined);
    new ProxyAttempts(ctx, group, undefined).next();
    return;
  }
  // proxy_request_buffering off: the body goes upstream as it arrives. A chunked body needs
  // HTTP/1.1 to the upstream; with 1.0 nginx buffers it anyway, and so does hitless.
  const head = exchange.head as { contentLength?: number; chunked?: boolean };
  const length = typeof head.contentLength === 'number' && head.contentLength >= 0 && head.chunked !== true ? head.contentLength : -2;
  if (!proxy.requestBuffering && (length >= 0 || proxy.version === '1.1')) {
    new ProxyAttempts(ctx, group, 'stream', length).next();
    return;
  }
  const parts: Buffer[] = [];
  exchange.readBody(
    proxy.maxBodySize,
    (data) => parts.push(Buffer.from(data)),
    (err) => {
      if (err !== undefined) {
        const status = err instanceof HttpParseError ? err.status : 400;
        if (exchange.aborted) return;
        ctx.log.write(status === 413 ? 'error' : 'info', `${err.message}${where(ctx)}`, ctx.conn.number);
        exchange.keepAlive = false;
        ctx.fail(status);
        return;
      }
      ctx.request.requestBody = parts;
      new ProxyAttempts(ctx, group, parts).next();
    },
  );
}

/** One request's walk over the peers of a group: the HTTP/1 adapter of the upstream cycle. */
class ProxyAttempts {
  readonly #ctx: ProxyContext;
  readonly #group: UpstreamGroup<HttpRequest>;
  readonly #body: Buffer[] | undefined;
  readonly #bodyLength: number;
  /** The balancer's walk for this request (its hash, its tries), kept across retries. */
  readonly #cycle: UpstreamCycle<HttpRequest>;
  readonly #streaming: boolean;
  /** Set once a streamed body has started to flow: no other peer can be tried after that. */
  #bodyStarted = false;
  #head: string | undefined;
  #upstream: UpstreamExchange | undefined;
  /** Gives up the connect in progress, if any. */
  #cancelConnect: (() => void) | undefined;
  #done = false;
  /** The try in progress as the `$upstream_*` variables see it, and its connection's byte counts when it began. */
  #state: UpstreamState | undefined;
  #io: { readonly socket: Socket; readonly read: number; readonly written: number } | undefined;

  /**
   * `body` is the buffered request body, or `'stream'` to send it as it arrives (then
   * `streamLength` is its Content-Length, or -2 when it is chunked).
   */
  constructor(ctx: ProxyContext, group: UpstreamGroup<HttpRequest>, body: Buffer[] | undefined | 'stream', streamLength = -1) {
    this.#ctx = ctx;
    this.#group = group;
    this.#streaming = body === 'stream';
    this.#body = body === 'stream' ? undefined : body;
    this.#bodyLength = body === 'stream' ? streamLength : body === undefined ? -1 : body.reduce((sum, part) => sum + part.length, 0);
    this.#cycle = new UpstreamCycle('http', group, ctx.request, ctx.proxy);
    beginUpstreamCycle(ctx.request);
    if (!ctx.proxy.ignoreClientAbort) {
      ctx.exchange.onAbort(() => {
        this.#done = true;
        this.#cancelConnect?.();
        this.#upstream?.abort();
        // ngx_http_upstream_finalize_request() still counts the try's time and bytes.
        const current = this.#cycle.current;
        if (current !== undefined) this.#settleState(current);
        // The peer is given back here, once, whatever phase the attempt was in (nginx: peer.free()).
        this.#cycle.stop('aborted');
      });
    }
  }

  /** Tries the next peer, or answers 502 when none is left. */
  next(): void {
    if (this.#done) return;
    const { request } = this.#ctx;
    const attempt = this.#cycle.next();
    if (attempt === undefined) {
      this.#ctx.log.error(`no live upstreams while connecting to upstream${where(this.#ctx)}`, this.#ctx.conn.number);
      // ngx_http_upstream_connect(): NGX_BUSY records the group's name, and 502.
      failUpstreamState(beginUpstreamState(request, this.#group.name), 502);
      this.#finishWithError(502);
      return;
    }
    this.#state = beginUpstreamState(request, attempt.peer.name);
    this.#io = undefined;
    const pooled = this.#group.pool.acquire(this.#poolKey(attempt.peer));
    if (pooled === undefined) {
      this.#connect(attempt);
      return;
    }
    attempt.connected();
    this.#send(attempt, pooled);
  }

  #connect(attempt: UpstreamAttempt): void {
    const { proxy, request } = this.#ctx;
    const peer = attempt.peer;
    // proxy_pass https://: the handshake has its own proxy_connect_timeout, as in
    // ngx_http_upstream_ssl_init_connection(); a failure is `error` (or `timeout`) for
    // proxy_next_upstream and never falls back to plaintext.
    const tls = proxy.ssl === undefined ? undefined : { tls: proxy.ssl, name: proxy.sslName(request), certificate: proxy.sslCertificate(request) };
    const options = { protocol: 'http' as const, group: this.#group.name, timeoutMs: proxy.connectTimeoutMs, noDelay: true, keepAlive: proxy.socketKeepalive, budget: proxy.connections, ...(tls === undefined ? {} : { tls }) };
    this.#cancelConnect = connectPeer(peer, options, (result) => {
      this.#cancelConnect = undefined;
      if (!result.ok && result.local === true) {
        // worker_connections, or a certificate with variables that does not load
        // (ngx_http_upstream_ssl_init_connection()): 500, the peer is not at fault.
        if (result.certificate === true) this.#ctx.log.error(`${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        attempt.finish('aborted', result.certificate === true ? 'certificate' : 'worker_connections');
        this.#finishWithError(500);
        return;
      }
      if (!result.ok) {
        this.#failed(attempt, new UpstreamFailure(result.message, 'send', result.timedOut ? 'timeout' : 'error', true), false, false);
        return;
      }
      attempt.connected();
      this.#send(attempt, new UpstreamConnection(result.socket, peer.name, this.#poolKey(peer)));
    });
  }

  /** The pool key of a connection for this request: the peer, plus the TLS settings and name for https. */
  #poolKey(peer: Peer): string {
    const { proxy, request } = this.#ctx;
    if (proxy.ssl === undefined) return peer.name;
    const certificate = proxy.ssl.variableCertificate ? proxy.sslCertificate(request) : undefined;
    return `${peer.name} ${proxy.ssl.id} ${proxy.sslName(request)}${certificate === undefined ? '' : ` ${certificate.cert} ${certificate.key}`}`;
  }

  #send(attempt: UpstreamAttempt, connection: UpstreamConnection): void {
    if (this.#done) {
      this.#group.pool.release(connection, false);
      return;
    }
    const { request, proxy, exchange } = this.#ctx;
    const peer = attempt.peer;
    const state = this.#state;
    if (state !== undefined) state.connectMs = attempt.elapsedMs();
    this.#io = { socket: connection.socket, read: connection.socket.bytesRead, written: connection.socket.bytesWritten };
    this.#head ??= upstreamRequestHead(request, request.method, proxy.uriFor(request), proxy.version, proxy.setHeaders, proxy.passRequestHeaders, this.#bodyLength);
    let clientStarted = false;
    let tunnel = false;
    let decoder: ChunkedParser | undefined;
    const upstream = new UpstreamExchange(
      connection,
      request.method,
      {
        onHead: (head) => {
          if (state !== undefined) {
            state.status = head.status;
            state.headerMs = attempt.elapsedMs();
          }
          recordUpstreamHead(request, head);
          if (head.status === 101 && this.#ctx.conn.protocol.detach === undefined) {
            // HTTP/2 has no 101 (RFC 9113 section 8.6): an upstream that switches protocols is broken for this client.
            upstream.abort();
            attempt.finish('ok', 'http_101');
            this.#ctx.log.error(`upstream sent 101 to a request that cannot be tunnelled${where(this.#ctx, peer)}`, this.#ctx.conn.number);
            this.#finishWithError(502);
            return;
          }
          if (head.status === 101) {
            tunnel = true;
            this.#record(attempt, 'ok', 'upgrade');
            this.#tunnel(head, connection.socket);
            return;
          }
          if (this.#retryOnStatus(attempt, head, upstream)) return;
          attempt.responded();
          if (proxy.interceptErrors && head.status >= 300 && proxy.errorPageFor(head.status)) {
            upstream.abort();
            this.#record(attempt, 'ok', '');
            this.#finishWithError(head.status);
            return;
          }
          clientStarted = true;
          decoder = this.#writeHead(head, peer);
        },
        onData: (chunk) => {
          if (tunnel) {
            this.#ctx.conn.socket.write(chunk);
            return;
          }
          if (state !== undefined) state.responseLength += chunk.length;
          if (decoder !== undefined) {
            decoder.push(chunk, 0, (data) => this.#write(data, upstream));
            return;
          }
          this.#write(chunk, upstream);
        },
        onEnd: (reusable) => {
          if (tunnel) return;
          this.#record(attempt, 'ok', '');
          this.#group.pool.release(connection, reusable && proxy.upstreamKeepalive);
          this.#done = true;
          exchange.end();
        },
        onError: (failure) => {
          if (clientStarted) {
            // Part of the response is out: nginx can only cut the client's connection short.
            this.#record(attempt, 'failed', failure.kind, actionOf(failure.message, ' while reading upstream'));
            this.#ctx.log.error(`${failure.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
            this.#done = true;
            this.#ctx.conn.protocol.destroy();
            return;
          }
          // A reused connection the upstream closed before answering: retry on a fresh one, uncounted.
          const stale = connection.reused && failure.beforeResponse && failure.kind === 'error';
          this.#failed(attempt, failure, stale);
        },
      },
      { sendTimeoutMs: proxy.sendTimeoutMs, readTimeoutMs: proxy.readTimeoutMs },
    );
    this.#upstream = upstream;
    upstream.send(this.#head, this.#body);
    if (this.#streaming) this.#streamBody(connection);
  }

  /** Sends the client's body upstream as it arrives (proxy_request_buffering off). */
  #streamBody(connection: UpstreamConnection): void {
    const { exchange, proxy } = this.#ctx;
    const socket = connection.socket;
    const chunked = this.#bodyLength === -2;
    this.#bodyStarted = true;
    exchange.readBody(
      proxy.maxBodySize,
      (data) => {
        if (socket.destroyed) return;
        if (chunked) socket.write(`${data.length.toString(16)}\r\n`);
        const flushed = socket.write(data);
        if (chunked) socket.write('\r\n');
        // Back-pressure: a slow upstream holds the client back instead of the body piling up here.
        if (!flushed) pauseBodyUntilDrained(exchange, socket);
      },
      (err) => {
        if (err !== undefined) {
          // The upstream has a partial request: nothing can be done for it but to close it.
          socket.destroy();
          return;
        }
        if (chunked && !socket.destroyed) socket.write('0\r\n\r\n');
      },
    );
  }

  /** proxy_next_upstream http_5xx and friends: a retry before anything reached the client. */
  #retryOnStatus(attempt: UpstreamAttempt, head: ResponseHead, upstream: UpstreamExchange): boolean {
    const proxy = this.#ctx.proxy;
    const key = `http_${head.status}` as const;
    if (!proxy.nextUpstream.has(key as never) || !this.#mayRetry()) return false;
    upstream.abort();
    // nginx counts 500, 502, 503 and 504 as peer failures; 403, 404 and 429 only move on.
    this.#record(attempt, head.status >= 500 ? 'failed' : 'next', key, ' while reading response header from upstream');
    this.next();
    return true;
  }

  /**
   * Whether the next peer may be tried. `sent`: the request reached the failed peer; nginx holds a
   * POST, LOCK or PATCH back only then (ngx_http_upstream_next(): `u->request_sent` adds
   * NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT), so a failure to connect or to set up TLS, which sent
   * nothing, moves any request on.
   */
  #mayRetry(sent = true): boolean {
    const { proxy, exchange } = this.#ctx;
    if (this.#bodyStarted || !this.#cycle.mayRetry()) return false;
    return !sent || !NON_IDEMPOTENT.has(exchange.head.method) || proxy.nextUpstream.has('non_idempotent');
  }

  /** A failed try; `sent` is false when it failed before the request went out (connect, TLS handshake). */
  #failed(attempt: UpstreamAttempt, failure: UpstreamFailure, stale: boolean, sent = true): void {
    if (this.#done) return;
    const ctx = this.#ctx;
    if (stale && !this.#bodyStarted && (!NON_IDEMPOTENT.has(ctx.exchange.head.method) || ctx.proxy.nextUpstream.has('non_idempotent'))) {
      // Not the peer's fault and not a try: the same attempt, a new connection (nginx: u->peer.tries++).
      this.#connect(attempt);
      return;
    }
    this.#record(attempt, 'failed', failure.kind, actionOf(failure.message, ' while reading response header from upstream'));
    ctx.log.error(`${failure.message}${where(ctx, attempt.peer)}`, ctx.conn.number);
    failUpstreamState(this.#state, failure.kind === 'timeout' ? 504 : 502);
    const nextCase = failure.kind === 'invalid_header' ? 'invalid_header' : failure.kind;
    if (ctx.proxy.nextUpstream.has(nextCase) && this.#mayRetry(sent)) {
      this.next();
      return;
    }
    this.#finishWithError(failure.kind === 'timeout' ? 504 : 502);
  }

  /**
   * Ends an attempt and counts its time in $upstream_response_time; `action` is nginx's
   * "while ..." of the phase that failed, which its [warn] "upstream server temporarily disabled"
   * carries (the connection's log action when ngx_http_upstream_free_round_robin_peer() logs it).
   */
  #record(attempt: UpstreamAttempt, outcome: 'ok' | 'failed' | 'next', reason: string, action = ''): void {
    this.#settleState(attempt);
    if (attempt.finish(outcome, reason)) {
      this.#ctx.log.warn(`upstream server temporarily disabled${action}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    }
  }

  /** The try's response time and byte counts, once, when it ends. */
  #settleState(attempt: UpstreamAttempt): void {
    const state = this.#state;
    if (state === undefined || state.responseMs >= 0) return;
    state.responseMs = attempt.elapsedMs();
    const io = this.#io;
    if (io !== undefined) {
      state.bytesReceived = io.socket.bytesRead - io.read;
      state.bytesSent = io.socket.bytesWritten - io.written;
    }
  }

  #finishWithError(status: number): void {
    this.#done = true;
    if (this.#ctx.exchange.aborted) return;
    this.#ctx.fail(status);
  }

  /** Sends the client the response head; returns a decoder when a chunked body must be unchunked (HTTP/1.0 client). */
  #writeHead(head: ResponseHead, peer: Peer): ChunkedParser | undefined {
    const { exchange, proxy, request } = this.#ctx;
    const redirect = proxy.redirect;
    const headers = clientResponseHeaders(head, proxy.hide, proxy.pass, redirect === undefined ? undefined : { rewrite: (value) => redirect(value, request), absolute: this.#ctx.absoluteLocation });
    // What the balancer adds for the peer that answered (`sticky cookie`'s Set-Cookie).
    const added = this.#cycle.responseHeaders(peer);
    if (added !== undefined) headers.push(...added);
    const status = request.statusOverride ?? head.status;
    request.status = status;
    if (proxy.pass.has('server') || proxy.pass.has('date')) exchange.ownServerAndDate = true;
    this.#ctx.headers(status, headers);
    // ngx_http_upstream_process_charset(): X-Accel-Charset, hidden from the client, tells the charset filter what to send.
    const accelCharset = headerOf(head.headers, 'x-accel-charset');
    // ngx_http_upstream_process_limit_rate(): X-Accel-Limit-Rate (a number) paces the response;
    // ngx_http_upstream_send_response(): proxy_buffering off sends without pacing.
    const accelRate = headerOf(head.headers, 'x-accel-limit-rate');
    if (accelRate !== undefined && /^[0-9]+$/.test(accelRate)) request.limitRate = Number(accelRate);
    if (!proxy.buffering) request.limitRate = 0;
    const options = accelCharset === undefined ? undefined : { overrideCharset: accelCharset };
    const noBody = exchange.head.method === 'HEAD' || head.status === 204 || head.status === 304;
    if (noBody) {
      exchange.writeHead(status, headers, head.contentLength >= 0 ? head.contentLength : 0, options);
      return undefined;
    }
    if (head.contentLength >= 0) {
      exchange.writeHead(status, headers, head.contentLength, options);
      return undefined;
    }
    if (head.chunked && exchange.head.versionMinor === 1) {
      exchange.writeHead(status, headers, 'raw', options);
      return undefined;
    }
    exchange.writeHead(status, headers, 'chunked', options);
    return head.chunked ? new ChunkedParser({ fromUpstream: true }) : undefined;
  }

  /**
   * After a 101: both sockets leave HTTP and are joined byte for byte. A draining worker keeps the
   * tunnel until it ends or until worker_shutdown_timeout, as nginx keeps upgraded connections.
   */
  #tunnel(head: ResponseHead, upstreamSocket: Socket): void {
    const { exchange, conn, request } = this.#ctx;
    this.#done = true;
    request.status = 101;
    const upgrade = head.headers.findIndex((value, i) => i % 2 === 0 && value.toLowerCase() === 'upgrade');
    const headers = clientResponseHeaders(head, this.#ctx.proxy.hide, this.#ctx.proxy.pass, undefined);
    if (upgrade !== -1) headers.push('Upgrade', head.headers[upgrade + 1] as string);
    headers.push('Connection', 'upgrade');
    exchange.writeHead(101, headers, 0);
    const clientSocket = conn.socket;
    const early = conn.protocol.detach?.();
    exchange.end();
    if (early !== undefined) upstreamSocket.write(early);
    upstreamSocket.setTimeout(0);
    clientSocket.pipe(upstreamSocket);
    upstreamSocket.pipe(clientSocket);
    const close = (): void => {
      clientSocket.destroy();
      upstreamSocket.destroy();
    };
    clientSocket.once('close', close);
    upstreamSocket.once('close', close);
    upstreamSocket.on('error', close);
  }

  #write(chunk: Buffer, upstream: UpstreamExchange): void {
    const { exchange, proxy } = this.#ctx;
    if (exchange.aborted) return;
    const flushed = exchange.write(chunk);
    if (flushed) return;
    // proxy_buffering on reads ahead of a slow client, within a bound; off keeps the client's pace.
    if (proxy.buffering && exchange.pendingBytes < READ_AHEAD_BYTES) return;
    upstream.pause();
    exchange.onDrain(() => upstream.resume());
  }
}

/** Pauses the client's request body until `sink` (the upstream socket or stream) drains or closes. */
export function pauseBodyUntilDrained(exchange: HttpExchange, sink: NodeJS.EventEmitter): void {
  exchange.pauseBody();
  const resume = (): void => {
    sink.off('drain', resume);
    sink.off('close', resume);
    exchange.resumeBody();
  };
  sink.once('drain', resume);
  sink.once('close', resume);
}

/** The " while ..." part of an upstream failure's message, or `fallback` when it has none. */
function actionOf(message: string, fallback: string): string {
  const at = message.lastIndexOf(' while ');
  return at === -1 ? fallback : message.slice(at);
}

/** The tail nginx adds to upstream errors: `, client: ..., server: ..., request: "...", upstream: "...", host: "..."`. */
function where(ctx: ProxyContext, peer?: Peer): string {
  const { request, conn, proxy } = ctx;
  const host = request.header('host');
  const upstream = peer === undefined ? '' : `, upstream: "${proxy.scheme}://${peer.name}${proxy.uriFor(request)}"`;
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${upstream}${host === undefined ? '' : `, host: "${host}"`}`;
}
