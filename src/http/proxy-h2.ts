/**
 * `proxy_http_version 2` (nginx 1.29's ngx_http_proxy_v2_module): the proxied request goes to the
 * upstream as an HTTP/2 stream, over TLS with ALPN h2 for `proxy_pass https://`, in cleartext with
 * prior knowledge otherwise. It rides the sessions grpc_pass uses (upstream/h2-sessions.ts): without
 * `keepalive` in the upstream block each request has a session of its own, closed when its stream
 * ends, as nginx closes the connection; with it, the group's sessions are kept and reused.
 *
 * What differs from HTTP/1.x is framing only: the request line becomes `:method`, `:scheme`,
 * `:path` and `:authority` (the Host proxy_set_header sets), connection-specific fields are never
 * sent (RFC 9113 section 8.2.2), the body goes in DATA frames with its Content-Length when known,
 * and the response's trailers are passed with `proxy_pass_trailers on`. The rest (proxy_set_header,
 * proxy_hide_header, proxy_redirect, proxy_next_upstream, proxy_intercept_errors, X-Accel-*) is the
 * proxy's.
 */
import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders } from 'node:http2';
import type { ResponseHead } from './h1/head-parser.js';
import { HttpParseError } from './h1/head-parser.js';
import { passEarlyHints } from './early-hints.js';
import { UpstreamFailure } from './h1/upstream-exchange.js';
import { accelCharsetOf, accelKeptHeaders, accelRedirectOf, applyAccelLimitRate, bufferingOf, carryFields, clientFieldsOf, pauseBodyUntilDrained, proxyRequest, type ProxyBody, type ProxyContext } from './proxy.js';
import { BODY_FILE_PIECE_BYTES, readBodyFile, resumeOnDrain, type SpoolFile } from './body-file.js';
import { clientResponseHeaders } from './proxy-request.js';
import { h2RequestHeaders, responseHeadOf } from './proxy-h2-fields.js';
import type { HttpRequest } from './request.js';
import { beginUpstreamCycle, beginUpstreamState, failUpstreamState, type UpstreamState } from './upstream-states.js';
import { recordUpstreamHead } from './variables.js';
import { errnoText } from '../core/errno.js';
import type { UpstreamGroup } from '../upstream/group.js';
import { cancelTimedOutStream, type TransportResult } from '../upstream/h2-sessions.js';
import type { Peer } from '../upstream/peer.js';
import { connectPeer } from '../upstream/peer-connect.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';


/** Methods nginx retries without `non_idempotent` (ngx_http_upstream_next: not POST, LOCK, PATCH). */
const NON_IDEMPOTENT = new Set(['POST', 'LOCK', 'PATCH']);

/** How much of a response is read ahead of a slow client with proxy_buffering on. */
const READ_AHEAD_BYTES = 1024 * 1024;

/** How much of a streamed request body is kept for `$request_body` (proxy_request_buffering off). */
const KEPT_BODY_BYTES = 1024 * 1024;

/** Proxies one request over HTTP/2: the body read as proxyRequest() reads it for every protocol, then sent in DATA frames. */
export function proxyH2Request(ctx: ProxyContext): void {
  proxyRequest(ctx, (c, group, body, streamLength) => new ProxyH2Attempts(c, group, body, streamLength).next());
}

/** One request's walk over the peers of a group: the HTTP/2 adapter of the proxy's upstream cycle. */
class ProxyH2Attempts {
  readonly #ctx: ProxyContext;
  readonly #group: UpstreamGroup<HttpRequest>;
  readonly #cycle: UpstreamCycle<HttpRequest>;
  /** The buffered body, or undefined when there is none or it is streamed. */
  readonly #body: Buffer | undefined;
  /** A body spooled to a file, read back from the start for each try. */
  readonly #bodyFile: SpoolFile | undefined;
  readonly #bodyLength: number;
  readonly #streaming: boolean;
  /** Set once a streamed body has started to flow: no other peer can be tried after that. */
  #bodyStarted = false;
  #stream: ClientHttp2Stream | undefined;
  /** proxy_buffering, or what the response's X-Accel-Buffering says. */
  #buffering: boolean;
  #done = false;
  #state: UpstreamState | undefined;

  /**
   * `body` is the buffered request body, `'stream'` to send it as it arrives (`streamLength` is
   * then its Content-Length, or -2 for a chunked one), or undefined when there is none.
   */
  constructor(ctx: ProxyContext, group: UpstreamGroup<HttpRequest>, body: ProxyBody, streamLength = -1) {
    this.#ctx = ctx;
    this.#group = group;
    this.#streaming = body === 'stream';
    this.#body = Array.isArray(body) ? Buffer.concat(body) : undefined;
    this.#bodyFile = body === 'stream' || Array.isArray(body) ? undefined : body;
    this.#bodyLength = body === 'stream' ? streamLength : (this.#body?.length ?? this.#bodyFile?.length ?? -1);
    this.#buffering = ctx.proxy.buffering;
    this.#cycle = new UpstreamCycle('http', group, ctx.request, ctx.proxy);
    beginUpstreamCycle(ctx.request);
    if (!ctx.proxy.ignoreClientAbort) {
      ctx.exchange.onAbort(() => {
        this.#done = true;
        const stream = this.#stream;
        if (stream !== undefined && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
        // ngx_http_upstream_finalize_request() still counts the try's time.
        const current = this.#cycle.current;
        const state = this.#state;
        if (current !== undefined && state !== undefined && state.responseMs < 0) state.responseMs = current.elapsedMs();
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
      failUpstreamState(beginUpstreamState(request, this.#group.name), 502);
      this.#finishWithError(502);
      return;
    }
    this.#state = beginUpstreamState(request, attempt.peer.name);
    this.#session(attempt, true);
  }

  /** The session for this try: the group's kept one with `keepalive`, else one of its own. */
  #session(attempt: UpstreamAttempt, retryStale: boolean): void {
    const { proxy, request } = this.#ctx;
    const peer = attempt.peer;
    const certificate = proxy.ssl?.variableCertificate === true ? proxy.sslCertificate(request) : undefined;
    const key = proxy.ssl === undefined ? peer.name : `${peer.name} ${proxy.ssl.id} ${proxy.sslName(request)}${certificate === undefined ? '' : ` ${certificate.cert} ${certificate.key}`}`;
    const exclusive = this.#group.pool.idleLimit === 0;
    this.#group.h2.session(key, (done) => this.#open(peer, done), (result) => {
      if (this.#done) {
        // The client went away while the session was being opened: one of its own is not kept.
        if (result.ok && exclusive) result.session.close();
        return;
      }
      if (!result.ok) {
        if (result.failure instanceof ConnectFailure && result.failure.local) {
          // worker_connections: ngx_http_upstream_connect() finalizes with 500, the peer is not at fault.
          attempt.finish('aborted', 'worker_connections');
          this.#finishWithError(500);
          return;
        }
        this.#failed(attempt, result.failure, false);
        return;
      }
      attempt.connected();
      if (this.#state !== undefined) this.#state.connectMs = attempt.elapsedMs();
      this.#send(attempt, result.session, result.reused && retryStale);
    }, exclusive);
  }

  /** TCP, then TLS with ALPN h2 for https, under proxy_connect_timeout. */
  #open(peer: Peer, done: (result: TransportResult<ConnectFailure>) => void): void {
    const { proxy, request } = this.#ctx;
    const tls = proxy.ssl === undefined ? undefined : { tls: proxy.ssl, name: proxy.sslName(request), certificate: proxy.sslCertificate(request), alpn: ['h2'] };
    // ngx_http_upstream_set_local(): a proxy_bind value that is no address is an [error], and binds none.
    const bind = proxy.bind(request);
    if (bind !== undefined && 'invalid' in bind) this.#ctx.log.error(`${bind.invalid}${where(this.#ctx)}`, this.#ctx.conn.number);
    const local = bind === undefined || 'invalid' in bind ? undefined : bind;
    const options = { protocol: 'http' as const, group: this.#group.name, timeoutMs: proxy.connectTimeoutMs, noDelay: true, keepAlive: proxy.socketKeepalive, budget: proxy.connections, local, ...(tls === undefined ? {} : { tls }) };
    connectPeer(peer, options, (result) => {
      if (result.ok) {
        done({ ok: true, socket: result.socket });
        return;
      }
      // bind() failed (crit) and a certificate with variables that does not load are this side's: 500.
      if (result.bindFailed === true) this.#ctx.log.write('crit', `${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
      else if (result.certificate === true) this.#ctx.log.error(`${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
      done({ ok: false, failure: new ConnectFailure(result.message, result.timedOut, result.local === true || result.bindFailed === true) });
    });
  }

  #send(attempt: UpstreamAttempt, session: ClientHttp2Session, reused: boolean): void {
    const { exchange, proxy, request } = this.#ctx;
    const peer = attempt.peer;
    const endStream = this.#streaming ? false : (this.#body?.length ?? this.#bodyFile?.length ?? 0) === 0;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(h2RequestHeaders(request, proxy, this.#bodyLength), { endStream });
    } catch (err) {
      if (reused) {
        this.#session(attempt, false);
        return;
      }
      this.#failed(attempt, new UpstreamFailure(`${(err as Error).message} while sending request to upstream`, 'send', 'error', true), true);
      return;
    }
    this.#stream = stream;
    this.#group.h2.track(session, stream);
    // ngx_http_proxy_v2_process_frames(): a frame after END_STREAM that fails the response, which
    // node:http2 does not report (upstream/h2-frame-watch.ts).
    let late: string | undefined;
    const unwatch = this.#group.h2.watchLateFrames(session, stream, (message) => {
      late ??= message;
    });
    // A stream given up (next upstream, intercepted error, X-Accel-Redirect) is no failure to judge.
    let abandoned = false;
    const abandon = (): void => {
      abandoned = true;
      unwatch();
    };
    if (this.#streaming) this.#streamBody(stream);
    else if (!endStream && this.#bodyFile !== undefined) this.#fileBody(this.#bodyFile, stream);
    else if (!endStream) stream.end(this.#body);
    let responded = false;
    let ended = false;
    let trailers: string[] | undefined;
    let streamError: Error | undefined;
    // proxy_buffering on: what one read of the session brought is passed on together, as nginx's
    // event pipe passes a read buffer; a reset in that same read leaves the part unsent.
    const batch: Buffer[] = [];
    let flushing = false;
    stream.setTimeout(proxy.readTimeoutMs, () => {
      if (ended || this.#done) return;
      streamError = Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' });
      cancelTimedOutStream(session, stream);
    });
    stream.on('error', (err: Error) => {
      streamError ??= err;
    });
    stream.on('response', (headers: IncomingHttpHeaders, _flags: number, raw: string[] | undefined) => {
      if (this.#done) return;
      responded = true;
      const head = responseHeadOf(headers, raw);
      if (this.#state !== undefined) {
        this.#state.status = head.status;
        this.#state.headerMs = attempt.elapsedMs();
      }
      recordUpstreamHead(request, head);
      if (this.#retryOnStatus(attempt, head, stream, abandon)) return;
      attempt.responded();
      if (proxy.interceptErrors && head.status >= 300 && proxy.errorPageFor(head.status)) {
        this.#abandon(stream, abandon);
        // ngx_http_upstream_intercept_errors(): a 401's WWW-Authenticate fields go with the error page.
        if (head.status === 401) carryFields(this.#ctx, head, 'www-authenticate');
        this.#record(attempt, 'ok', '');
        this.#finishWithError(head.status);
        return;
      }
      const accel = accelRedirectOf(this.#ctx, head);
      if (accel !== undefined) {
        this.#abandon(stream, abandon);
        this.#record(attempt, 'ok', '');
        this.#done = true;
        applyAccelLimitRate(this.#ctx, head);
        this.#ctx.accelRedirect(accel, accelKeptHeaders(this.#ctx, head));
        return;
      }
      this.#writeHead(head, peer);
    });
    // A 103 before the response (ngx_http_proxy_v2_process_header(): NGX_HTTP_UPSTREAM_EARLY_HINTS).
    stream.on('headers', (headers: IncomingHttpHeaders, _flags: number, raw: string[] | undefined) => {
      if (this.#done || Number(headers[':status']) !== 103 || !proxy.earlyHints(request)) return;
      passEarlyHints(exchange, clientResponseHeaders(responseHeadOf(headers, raw), proxy.hide, proxy.pass, undefined));
    });
    stream.on('trailers', (headers: IncomingHttpHeaders, _flags: number, raw: string[] | undefined) => {
      if (proxy.passTrailers) trailers = clientResponseHeaders(responseHeadOf(headers, raw), proxy.hide, proxy.pass, undefined);
    });
    // A RST_STREAM with an error code: node:http2 may still end the readable side, which is no success.
    const reset = (): boolean => stream.rstCode !== undefined && stream.rstCode !== constants.NGHTTP2_NO_ERROR;
    const flush = (): void => {
      flushing = false;
      if (this.#done || streamError !== undefined || reset() || late !== undefined) {
        batch.length = 0;
        // Ended, then failed before the last of the body went out: 'close' has nothing left to judge.
        if (ended && !this.#done) this.#failResponding(attempt, streamError, stream.rstCode, late);
        return;
      }
      const chunk = batch.length === 1 ? (batch[0] as Buffer) : Buffer.concat(batch);
      batch.length = 0;
      this.#write(chunk, stream);
      if (ended) this.#finish(attempt, trailers);
    };
    stream.on('data', (chunk: Buffer) => {
      if (this.#done || exchange.aborted) return;
      if (this.#state !== undefined) this.#state.responseLength += chunk.length;
      if (!this.#buffering) {
        // The watch walked the whole read first: what came with a late frame is not passed.
        if (late === undefined) this.#write(chunk, stream);
        return;
      }
      batch.push(chunk);
      if (!flushing) {
        flushing = true;
        setImmediate(flush);
      }
    });
    stream.once('end', () => {
      if (ended || abandoned || streamError !== undefined || reset()) return;
      ended = true;
      if (this.#done) {
        attempt.finish('aborted');
        return;
      }
      if (!responded) {
        this.#record(attempt, 'ok', '');
        this.#finishWithError(502);
        return;
      }
      // The rest of the batch goes first; a reset arriving with it turns the end into a failure.
      if (flushing) return;
      if (late !== undefined) this.#failResponding(attempt, undefined, constants.NGHTTP2_NO_ERROR, late);
      else this.#finish(attempt, trailers);
    });
    stream.once('close', () => {
      const code = stream.rstCode ?? constants.NGHTTP2_NO_ERROR;
      unwatch();
      if (ended || abandoned) return;
      ended = true;
      if (this.#done) {
        attempt.finish('aborted');
        return;
      }
      batch.length = 0;
      if (responded) {
        this.#failResponding(attempt, streamError, code);
        return;
      }
      // A stream the server did not process (REFUSED_STREAM: RFC 9113 section 8.7), or a kept
      // session that died under it, goes again on a fresh session, uncounted, once.
      const notProcessed = code === constants.NGHTTP2_REFUSED_STREAM;
      const stale = reused && session.destroyed && code !== constants.NGHTTP2_NO_ERROR && (streamError as NodeJS.ErrnoException | undefined)?.code !== 'ERR_HTTP2_STREAM_ERROR';
      if ((notProcessed || stale) && !this.#bodyStarted && this.#maySend()) {
        this.#session(attempt, false);
        return;
      }
      let failure: UpstreamFailure;
      if (streamError !== undefined && timedOut(streamError)) {
        failure = new UpstreamFailure('upstream timed out (110: Connection timed out) while reading response header from upstream', 'header', 'timeout', true);
      } else if (streamError !== undefined && (code === constants.NGHTTP2_NO_ERROR || session.destroyed)) {
        failure = new UpstreamFailure(describe(streamError, 'response header from upstream'), 'header', 'error', true);
      } else if (code === constants.NGHTTP2_NO_ERROR || session.destroyed) {
        failure = new UpstreamFailure('upstream prematurely closed connection while reading response header from upstream', 'header', 'error', true);
      } else {
        // ngx_http_proxy_v2_process_header(): a RST_STREAM before the response head.
        failure = new UpstreamFailure(`upstream rejected request with error ${code} while reading response header from upstream`, 'header', 'invalid_header', true);
      }
      this.#failed(attempt, failure, true);
    });
  }

  /** The upstream failed after its response head: only the client's connection (an HTTP/2 client's stream) can be cut short. */
  #failResponding(attempt: UpstreamAttempt, streamError: Error | undefined, code: number, late?: string): void {
    const kind = streamError !== undefined && timedOut(streamError) ? 'timeout' : 'error';
    this.#record(attempt, 'failed', kind, ' while reading upstream');
    let message: string;
    if (streamError !== undefined) message = describe(streamError, 'upstream');
    else if (late !== undefined) message = `${late} while reading upstream`;
    else message = `upstream reset stream with error ${code} while reading upstream`;
    this.#ctx.log.error(`${message}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    this.#done = true;
    this.#ctx.conn.protocol.destroy();
  }

  /** A complete response: the try is a success and the client's response ends, with the upstream's trailers if passed. */
  #finish(attempt: UpstreamAttempt, trailers: string[] | undefined): void {
    this.#record(attempt, 'ok', '');
    this.#done = true;
    this.#ctx.exchange.end(undefined, trailers);
  }

  /**
   * Sends the client's body upstream as it arrives (proxy_request_buffering off), keeping it for
   * $request_body. What one read of the client brought goes in one DATA frame, as nginx sends a
   * read buffer.
   */
  #streamBody(stream: ClientHttp2Stream): void {
    const { exchange, proxy, request } = this.#ctx;
    this.#bodyStarted = true;
    const kept: Buffer[] = [];
    let keptBytes = 0;
    const pending: Buffer[] = [];
    const flush = (): void => {
      if (pending.length === 0) return;
      const data = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
      pending.length = 0;
      // Back-pressure: a slow upstream holds the client back through flow control.
      if (!stream.destroyed && !stream.write(data)) pauseBodyUntilDrained(exchange, stream);
    };
    exchange.readBody(
      proxy.maxBodySize,
      (data) => {
        const copy = Buffer.from(data);
        if (keptBytes <= KEPT_BODY_BYTES) {
          kept.push(copy);
          keptBytes += copy.length;
        }
        if (pending.length === 0) queueMicrotask(flush);
        pending.push(copy);
      },
      (err) => {
        if (err === undefined) {
          if (keptBytes <= KEPT_BODY_BYTES) request.requestBody = kept;
          const rest = pending.length === 0 ? undefined : Buffer.concat(pending);
          pending.length = 0;
          if (!stream.destroyed) stream.end(rest);
          return;
        }
        pending.length = 0;
        // The upstream has a partial request: nothing can be done for it but to cancel it.
        if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
        if (this.#done || exchange.aborted || exchange.headersSent) return;
        this.#done = true;
        this.#cycle.stop('aborted');
        const status = err instanceof HttpParseError ? err.status : 400;
        this.#ctx.log.write(status === 413 ? 'error' : 'info', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
        exchange.keepAlive = false;
        this.#ctx.fail(status);
      },
    );
  }

  /** proxy_next_upstream http_5xx and friends: a retry before anything reached the client. */
  #retryOnStatus(attempt: UpstreamAttempt, head: ResponseHead, stream: ClientHttp2Stream, abandon: () => void): boolean {
    const proxy = this.#ctx.proxy;
    const key = `http_${head.status}` as const;
    if (!proxy.nextUpstream.has(key as never) || !this.#mayRetry(true)) return false;
    this.#abandon(stream, abandon);
    this.#record(attempt, head.status >= 500 ? 'failed' : 'next', key, ' while reading response header from upstream');
    this.next();
    return true;
  }

  /**
   * A body spooled to a file, read back in pieces into DATA frames as the stream takes them; a
   * retry reads it again from the start.
   */
  #fileBody(file: SpoolFile, stream: ClientHttp2Stream): void {
    const stopped = (): boolean => this.#done || stream.destroyed || this.#stream !== stream;
    readBodyFile(
      file,
      BODY_FILE_PIECE_BYTES,
      (data, resume) => {
        if (stream.write(data)) return true;
        resumeOnDrain(stream, resume);
        return false;
      },
      (err) => {
        if (err === undefined) {
          stream.end();
          return;
        }
        // ngx_read_file() failed: nginx's [crit], and the request ends with 500.
        this.#ctx.log.write('crit', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
        this.#done = true;
        stream.close(constants.NGHTTP2_CANCEL);
        this.#cycle.current?.finish('aborted', 'file');
        this.#finishWithError(500);
      },
      stopped,
    );
  }

  /** Whether a request that reached a peer may be sent to another (ngx_http_upstream_next()). */
  #maySend(): boolean {
    const { proxy, exchange } = this.#ctx;
    return !NON_IDEMPOTENT.has(exchange.head.method) || proxy.nextUpstream.has('non_idempotent');
  }

  /** Whether the next peer may be tried; `sent`: the request reached the failed peer. */
  #mayRetry(sent: boolean): boolean {
    if (this.#bodyStarted || !this.#cycle.mayRetry()) return false;
    return !sent || this.#maySend();
  }

  /** A failed try; `sent` is false when it failed before the stream was opened (connect, TLS handshake). */
  #failed(attempt: UpstreamAttempt, failure: UpstreamFailure, sent: boolean): void {
    if (this.#done) return;
    const ctx = this.#ctx;
    this.#record(attempt, 'failed', failure.kind, actionOf(failure.message, ' while reading response header from upstream'));
    ctx.log.error(`${failure.message}${where(ctx, attempt.peer)}`, ctx.conn.number);
    failUpstreamState(this.#state, failure.kind === 'timeout' ? 504 : 502);
    if (ctx.proxy.nextUpstream.has(failure.kind) && this.#mayRetry(sent)) {
      this.next();
      return;
    }
    this.#finishWithError(failure.kind === 'timeout' ? 504 : 502);
  }

  /** Ends an attempt and counts its time in $upstream_response_time. */
  #record(attempt: UpstreamAttempt, outcome: 'ok' | 'failed' | 'next', reason: string, action = ''): void {
    const state = this.#state;
    if (state !== undefined && state.responseMs < 0) state.responseMs = attempt.elapsedMs();
    if (attempt.finish(outcome, reason)) {
      this.#ctx.log.warn(`upstream server temporarily disabled${action}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    }
  }

  /**
   * Gives up a stream whose response is not passed on (next upstream, intercepted error); `abandon`
   * mutes its 'end' and 'close' listeners, which stay: node:http2 destroys a stream on its 'end',
   * and the session pool counts the stream out on its 'close'.
   */
  #abandon(stream: ClientHttp2Stream, abandon: () => void): void {
    abandon();
    stream.removeAllListeners('data');
    stream.removeAllListeners('trailers');
    stream.on('data', () => undefined);
    if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
  }

  #finishWithError(status: number): void {
    this.#done = true;
    if (this.#ctx.exchange.aborted) return;
    this.#ctx.fail(status);
  }

  /** Sends the client the response head, as the HTTP/1 proxy does (proxy.ts), with HTTP/2's framing. */
  #writeHead(head: ResponseHead, peer: Peer): void {
    const { exchange, proxy, request } = this.#ctx;
    const headers = clientFieldsOf(this.#ctx, head, peer);
    const added = this.#cycle.responseHeaders(peer);
    if (added !== undefined) headers.push(...added);
    const status = request.statusOverride ?? head.status;
    request.status = status;
    if (proxy.pass.has('server') || proxy.pass.has('date')) exchange.ownServerAndDate = true;
    this.#ctx.headers(status, headers);
    const accelCharset = accelCharsetOf(this.#ctx, head);
    applyAccelLimitRate(this.#ctx, head);
    this.#buffering = bufferingOf(this.#ctx, head);
    if (!this.#buffering) request.limitRate = 0;
    const options = { ...(accelCharset === undefined ? {} : { overrideCharset: accelCharset }), ...(proxy.passTrailers ? { trailers: true } : {}) };
    const noBody = exchange.head.method === 'HEAD' || head.status === 204 || head.status === 304;
    if (noBody) exchange.writeHead(status, headers, head.contentLength >= 0 ? head.contentLength : 0, options);
    else exchange.writeHead(status, headers, head.contentLength >= 0 ? head.contentLength : 'chunked', options);
  }

  #write(chunk: Buffer, stream: ClientHttp2Stream): void {
    const { exchange } = this.#ctx;
    if (exchange.aborted) return;
    if (exchange.write(chunk)) return;
    if (this.#buffering && exchange.pendingBytes < READ_AHEAD_BYTES) return;
    stream.pause();
    exchange.onDrain(() => stream.resume());
  }
}

/** A failure to open a session's transport; `local` when worker_connections refused it. */
class ConnectFailure extends UpstreamFailure {
  readonly local: boolean;

  constructor(message: string, timedOut: boolean, local: boolean) {
    super(message, 'send', timedOut ? 'timeout' : 'error', true);
    this.local = local;
  }
}

function timedOut(err: Error): boolean {
  return (err as NodeJS.ErrnoException).code === 'ETIMEDOUT';
}

/** nginx's words for a failure while reading `what`. */
function describe(err: Error, what: string): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ETIMEDOUT') return `upstream timed out (110: Connection timed out) while reading ${what}`;
  if (code === 'ECONNRESET') return `recv() failed (${errnoText(err)}) while reading ${what}`;
  return `upstream prematurely closed connection while reading ${what}`;
}

/** The " while ..." part of an upstream failure's message, or `fallback` when it has none. */
function actionOf(message: string, fallback: string): string {
  const at = message.lastIndexOf(' while ');
  return at === -1 ? fallback : message.slice(at);
}

/** The tail nginx adds to upstream errors. */
function where(ctx: ProxyContext, peer?: Peer): string {
  const { request, conn, proxy } = ctx;
  const host = request.header('host');
  const upstream = peer === undefined ? '' : `, upstream: "${proxy.scheme}://${peer.name}${proxy.uriFor(request)}"`;
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${upstream}${host === undefined ? '' : `, host: "${host}"`}`;
}
