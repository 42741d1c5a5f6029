/**
 * The content handler of `grpc_pass` (nginx's ngx_http_grpc_module): the request goes to a gRPC
 * server as an HTTP/2 stream, on a session of its own (closed after it, as nginx closes the
 * connection) or, with `keepalive` in the group, on the peer's shared session (multiplexed where
 * nginx would use cached connections one request at a time), its body streamed as it arrives (nginx
 * never buffers gRPC request bodies), and the response's headers, DATA and trailers (grpc-status,
 * grpc-message) come back at the client's pace. A client that goes away cancels the upstream stream
 * (RST_STREAM CANCEL). Failing before a response: 502 (504 on a timeout), or the next peer as
 * grpc_next_upstream allows; failing after it: the client's stream is reset.
 */
import { constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import type { CompiledGrpc } from './grpc-config.js';
import { UpstreamFailure } from './h1/upstream-exchange.js';
import { HttpParseError } from './h1/head-parser.js';
import { pauseBodyUntilDrained, type UpstreamContext } from './proxy.js';
import { upstreamUri } from './proxy-request.js';
import { passEarlyHints } from './early-hints.js';
import type { HttpRequest } from './request.js';
import { BODY_FILE_PIECE_BYTES, readBodyFile, resumeOnDrain, type SpoolFile } from './body-file.js';
import { cancelTimedOutStream, type TransportResult } from '../upstream/h2-sessions.js';
import type { Peer } from '../upstream/peer.js';
import { connectPeer } from '../upstream/peer-connect.js';
import { errnoText } from '../core/errno.js';
import { beginUpstreamCycle, beginUpstreamState, failUpstreamState, type UpstreamState } from './upstream-states.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';

/** The failure of a grpc_ssl_certificate with variables that does not load: this side's, answered with 500. */
class CertificateFailure extends UpstreamFailure {}

/** Methods nginx retries without `non_idempotent` (ngx_http_upstream_next: not POST, LOCK, PATCH). */
const NON_IDEMPOTENT = new Set(['POST', 'LOCK', 'PATCH']);

/** How much of a request body is kept to send again when a stream was refused unprocessed. */
const REPLAY_LIMIT_BYTES = 1024 * 1024;

/** Response headers never passed: nginx's grpc hide list, and what HTTP/2 frames itself. */
const HIDDEN_RESPONSE_HEADERS: ReadonlySet<string> = new Set([
  'date', 'server', 'x-accel-expires', 'x-accel-redirect', 'x-accel-limit-rate', 'x-accel-buffering', 'x-accel-charset',
  'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'content-length', 'upgrade', 'te', 'trailer',
]);

/** Request headers HTTP/2 forbids (RFC 9113 section 8.2.2) that no default grpc_set_header covers. */
const FORBIDDEN_REQUEST_HEADERS: ReadonlySet<string> = new Set(['http2-settings']);

/** What the grpc handler needs from the handler that called it. */
export interface GrpcContext extends UpstreamContext {
  readonly grpc: CompiledGrpc;
}

/** Passes one request to a gRPC server. */
export function grpcRequest(ctx: GrpcContext): void {
  new GrpcAttempts(ctx).next();
}

/** One request's walk over the peers of a group: the HTTP/2 adapter of the upstream cycle. */
class GrpcAttempts {
  readonly #ctx: GrpcContext;
  /** Placed by the balancer with the request, as HTTP is: ip_hash, hash and sticky see the client. */
  readonly #cycle: UpstreamCycle<HttpRequest>;
  /**
   * The client's body as sent so far, kept until a response arrives so that a stream the upstream
   * did not process (REFUSED_STREAM, GOAWAY) can be sent again; `replayable` is false once it grew
   * past REPLAY_LIMIT_BYTES or a response came.
   */
  readonly #body = { reading: false, ended: false, replayable: true, parts: [] as Buffer[], bytes: 0 };
  #stream: ClientHttp2Stream | undefined;
  /** A body read before the request came here, kept in a file (request.requestBodySpool). */
  #spooled: SpoolFile | undefined;
  #done = false;
  /** Whether the request has a body, fixed before a first try starts reading it. */
  readonly #hasBody: boolean;

  /** The try in progress as the `$upstream_*` variables see it (no byte counts: streams share a session). */
  #state: UpstreamState | undefined;

  constructor(ctx: GrpcContext) {
    this.#ctx = ctx;
    this.#hasBody = ctx.exchange.hasBody && ctx.request.methodOverride === undefined;
    // A body read already (mirror_request_body on, nginx's r->preserve_body) goes as it was read.
    const read = ctx.request.requestBody;
    if (read !== undefined && !ctx.exchange.hasBody && ctx.request.methodOverride === undefined) {
      this.#hasBody = read.length > 0;
      Object.assign(this.#body, { reading: true, ended: true, parts: [...read], bytes: read.reduce((sum, part) => sum + part.length, 0) });
    } else if (ctx.request.requestBodySpool !== undefined && !ctx.exchange.hasBody && ctx.request.methodOverride === undefined) {
      // Read before into a file (proxy_pass past client_body_buffer_size, then error_page): it is
      // sent from the file.
      this.#spooled = ctx.request.requestBodySpool;
      this.#hasBody = this.#spooled.length > 0;
    }
    this.#cycle = new UpstreamCycle('grpc', ctx.grpc.group, ctx.request, ctx.grpc);
    beginUpstreamCycle(ctx.request);
    ctx.exchange.onAbort(() => {
      this.#done = true;
      // The client went away: the gRPC server learns it from RST_STREAM CANCEL, as gRPC expects.
      const stream = this.#stream;
      if (stream !== undefined && !stream.closed) stream.close(constants.NGHTTP2_CANCEL);
      this.#cycle.stop('aborted');
    });
  }

  /** Tries the next peer, or answers 502 when none is left. */
  next(): void {
    if (this.#done) return;
    const { request } = this.#ctx;
    const attempt = this.#cycle.next();
    if (attempt === undefined) {
      this.#ctx.log.error(`no live upstreams while connecting to upstream${where(this.#ctx)}`, this.#ctx.conn.number);
      this.#finishWithError(502);
      return;
    }
    this.#state = beginUpstreamState(request, attempt.peer.name);
    this.#session(attempt, true);
  }

  /**
   * Gets the peer's session and starts the stream on it; `retryStale` allows one retry on a fresh
   * session. With `keepalive` in the group, the group's session to the peer, shared (its streams
   * multiplexed); without it, one of the request's own, closed after its stream, as nginx closes
   * the connection of a gRPC request to a group without a keepalive cache.
   */
  #session(attempt: UpstreamAttempt, retryStale: boolean): void {
    const { grpc, request } = this.#ctx;
    const peer = attempt.peer;
    const certificate = grpc.tls?.variableCertificate === true ? grpc.sslCertificate(request) : undefined;
    const key = grpc.tls === undefined ? peer.name : `${peer.name} ${grpc.tls.id} ${grpc.sslName(request)}${certificate === undefined ? '' : ` ${certificate.cert} ${certificate.key}`}`;
    const exclusive = grpc.group.pool.idleLimit === 0;
    grpc.group.h2.session(key, (done) => this.#open(peer, done), (result) => {
      if (this.#done) {
        // The client went away while the session was being opened: one of its own is not kept.
        if (result.ok && exclusive) result.session.close();
        return;
      }
      if (!result.ok && result.failure instanceof CertificateFailure) {
        // A grpc_ssl_certificate with variables that does not load: 500, the peer is not at fault.
        this.#ctx.log.error(`${result.failure.message}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
        attempt.finish('aborted', 'certificate');
        this.#finishWithError(500);
        return;
      }
      if (!result.ok) {
        this.#failed(attempt, result.failure, false);
        return;
      }
      attempt.connected();
      if (this.#state !== undefined) this.#state.connectMs = attempt.elapsedMs();
      this.#send(attempt, result.session, result.reused && retryStale);
    }, exclusive);
  }

  /** Opens the transport of a new session: TCP, then TLS with ALPN h2 for grpcs, under grpc_connect_timeout. */
  #open(peer: Peer, done: (result: TransportResult<UpstreamFailure>) => void): void {
    const { grpc, request } = this.#ctx;
    const tls = grpc.tls === undefined ? undefined : { tls: grpc.tls, name: grpc.sslName(request), alpn: ['h2'], certificate: grpc.sslCertificate(request) };
    const options = { protocol: 'grpc' as const, group: grpc.group.name, timeoutMs: grpc.connectTimeoutMs, noDelay: true, keepAlive: grpc.socketKeepalive, ...(tls === undefined ? {} : { tls }) };
    // Not cancelled when the client goes away: other requests may be waiting for the same session.
    connectPeer(peer, options, (result) => {
      if (result.ok) done({ ok: true, socket: result.socket });
      else if (result.certificate === true) done({ ok: false, failure: new CertificateFailure(result.message, 'send', 'error', true) });
      else done({ ok: false, failure: new UpstreamFailure(result.message, 'send', result.timedOut ? 'timeout' : 'error', true) });
    });
  }

  /** Opens the stream, relays the body up and the response down. */
  #send(attempt: UpstreamAttempt, session: ClientHttp2Session, reused: boolean): void {
    const { exchange, grpc } = this.#ctx;
    const peer = attempt.peer;
    const hasBody = this.#hasBody;
    let stream: ClientHttp2Stream;
    try {
      stream = session.request(this.#requestHeaders(), { endStream: !hasBody });
    } catch (err) {
      // A session that just went away (ERR_HTTP2_GOAWAY_SESSION, ERR_HTTP2_INVALID_SESSION): a fresh one, once.
      if (reused) {
        this.#session(attempt, false);
        return;
      }
      this.#failed(attempt, new UpstreamFailure(`${(err as Error).message} while sending request to upstream`, 'send', 'error', true), false);
      return;
    }
    this.#stream = stream;
    grpc.group.h2.track(session, stream);
    // ngx_http_grpc_filter(): a frame after END_STREAM that fails the response, which node:http2
    // does not report (upstream/h2-frame-watch.ts).
    let late: string | undefined;
    const unwatch = grpc.group.h2.watchLateFrames(session, stream, (message) => {
      late ??= message;
    });
    // An intercepted error's stream is given up: its 'close' is no failure to judge.
    let closed = false;
    if (hasBody) this.#sendBody(stream);
    const upstreamStart = Date.now();
    let responded = false;
    let ended = false;
    let trailers: string[] | undefined;
    let streamError: Error | undefined;
    stream.setTimeout(grpc.readTimeoutMs, () => {
      if (ended || this.#done) return;
      streamError = Object.assign(new Error('upstream timed out'), { code: 'ETIMEDOUT' });
      cancelTimedOutStream(session, stream);
    });
    stream.on('error', (err: Error) => {
      streamError ??= err;
    });
    stream.on('response', (headers: IncomingHttpHeaders) => {
      if (this.#done) return;
      responded = true;
      this.#body.replayable = false;
      this.#body.parts = [];
      const status = Number(headers[':status']);
      const header = attempt.responded();
      if (this.#state !== undefined) {
        this.#state.status = status;
        this.#state.headerMs = header;
      }
      if (grpc.interceptErrors && status >= 300 && grpc.errorPageFor(status)) {
        unwatch();
        closed = true;
        this.#close(stream, attempt, upstreamStart);
        this.#finishWithError(status);
        return;
      }
      this.#writeHead(status, headers, stream.endAfterHeaders, attempt.peer);
    });
    // ngx_http_grpc_process_header(): a 103 before the response, passed as early_hints says.
    stream.on('headers', (headers: IncomingHttpHeaders) => {
      if (this.#done || Number(headers[':status']) !== 103 || !grpc.earlyHints(this.#ctx.request)) return;
      passEarlyHints(exchange, responseFields(headers, grpc.hide, grpc.pass));
    });
    stream.on('trailers', (headers: IncomingHttpHeaders) => {
      trailers = responseFields(headers, grpc.hide, grpc.pass);
    });
    stream.on('data', (chunk: Buffer) => {
      // The watch walked the whole read first: what came with a late frame is not passed, as
      // nginx's non-buffered cycle sends nothing of a read its input filter failed.
      if (this.#done || exchange.aborted || late !== undefined) return;
      if (this.#state !== undefined) this.#state.responseLength += chunk.length;
      if (exchange.write(chunk)) return;
      stream.pause();
      exchange.onDrain(() => stream.resume());
    });
    stream.once('end', () => {
      // A stream cancelled for grpc_read_timeout ends its readable side too: 'close' judges it, as the failure it is.
      if (ended || closed || streamError !== undefined) return;
      ended = true;
      if (this.#done) {
        attempt.finish('aborted');
        return;
      }
      if (late !== undefined && responded) {
        // The body is out, but not its end: only the client's stream (or connection) can be cut short.
        this.#record(attempt, 'failed', 'error', upstreamStart);
        this.#ctx.log.error(`${late} while reading upstream${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        this.#done = true;
        this.#ctx.conn.protocol.destroy();
        return;
      }
      this.#record(attempt, 'ok', '', upstreamStart);
      this.#done = true;
      if (!responded) {
        // END_STREAM without a response head cannot happen on a sound session; treat it as a reset.
        this.#ctx.fail(502);
        return;
      }
      exchange.end(undefined, trailers);
    });
    stream.once('close', () => {
      unwatch();
      if (ended || closed) return;
      ended = true;
      if (this.#done) {
        attempt.finish('aborted');
        return;
      }
      const code = stream.rstCode ?? constants.NGHTTP2_NO_ERROR;
      if (responded) {
        // Part of the response is out: only the client's stream (or connection) can be cut short.
        this.#record(attempt, 'failed', streamError !== undefined && timedOut(streamError) ? 'timeout' : 'error', upstreamStart);
        this.#ctx.log.error(`${streamError !== undefined ? describe(streamError, 'upstream') : `upstream reset stream with error ${code}`}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        this.#done = true;
        this.#ctx.conn.protocol.destroy();
        return;
      }
      // A stream the server did not process (REFUSED_STREAM, or above the last stream of its
      // GOAWAY: RFC 9113 section 8.7) may go again whatever its method; a shared session that
      // died under a request without an answer may, as a stale keep-alive connection may in nginx.
      // Either goes on a fresh session, uncounted, once.
      const notProcessed = code === constants.NGHTTP2_REFUSED_STREAM;
      const stale = reused && session.destroyed && code !== constants.NGHTTP2_NO_ERROR && !isPeerReset(streamError) && mayResend(exchange.head.method, grpc.nextUpstream);
      if ((notProcessed || stale) && this.#canReplay()) {
        this.#session(attempt, false);
        return;
      }
      let failure: UpstreamFailure;
      if (streamError !== undefined && timedOut(streamError)) {
        failure = new UpstreamFailure('upstream timed out (110: Connection timed out) while reading response header from upstream', 'header', 'timeout', true);
      } else if (streamError !== undefined && code === constants.NGHTTP2_NO_ERROR) {
        failure = new UpstreamFailure(describe(streamError, 'response header from upstream'), 'header', 'error', true);
      } else {
        // ngx_http_grpc_process_header(): a RST_STREAM before the response head.
        failure = new UpstreamFailure(`upstream rejected request with error ${code} while reading response header from upstream`, 'header', 'invalid_header', true);
      }
      this.#failed(attempt, failure, true, upstreamStart);
    });
  }

  /** `:method`, `:scheme`, `:path`, `:authority`, the grpc_set_header fields, then the client's (ngx_http_grpc_create_request()). */
  #requestHeaders(): OutgoingHttpHeaders {
    const { request, grpc } = this.#ctx;
    const out: OutgoingHttpHeaders = {
      ':method': request.method,
      ':scheme': grpc.tls === undefined ? 'http' : 'https',
      ':path': upstreamUri(request, undefined, ''),
      ':authority': grpc.host?.(request) || grpc.authority,
    };
    const replaced = new Set<string>();
    for (const header of grpc.setHeaders) {
      replaced.add(header.key);
      if (header.key === 'host') continue;
      const value = header.value(request);
      if (value !== '') out[header.key] = value;
    }
    const headers = request.head.headers;
    for (let i = 0; i < headers.length; i += 2) {
      const key = (headers[i] as string).toLowerCase();
      if (replaced.has(key) || FORBIDDEN_REQUEST_HEADERS.has(key) || key.charCodeAt(0) === 0x3a) continue;
      const value = headers[i + 1] as string;
      const seen = out[key];
      if (seen === undefined) out[key] = value;
      else if (Array.isArray(seen)) seen.push(value);
      else out[key] = [String(seen), value];
    }
    return out;
  }

  /**
   * A body from its file, to the current stream with back-pressure; kept for a second stream as
   * a body from the client is (up to REPLAY_LIMIT_BYTES).
   */
  #sendSpooled(file: SpoolFile): void {
    const body = this.#body;
    readBodyFile(
      file,
      BODY_FILE_PIECE_BYTES,
      (data, resume) => {
        this.#keep(data);
        const current = this.#stream;
        if (current === undefined || current.destroyed || current.write(data)) return true;
        resumeOnDrain(current, resume);
        return false;
      },
      (err) => {
        const current = this.#stream;
        if (err === undefined) {
          body.ended = true;
          if (current !== undefined && !current.destroyed) current.end();
          return;
        }
        if (current !== undefined && !current.closed) current.close(constants.NGHTTP2_CANCEL);
        if (this.#done || this.#ctx.exchange.headersSent) return;
        this.#done = true;
        // ngx_read_file() failed: nginx's [crit], and the request ends with 500.
        this.#cycle.stop('aborted');
        this.#ctx.log.write('crit', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
        this.#ctx.fail(500);
      },
      () => this.#done,
    );
  }

  /** Keeps `data` for a second stream while the body sent so far is within REPLAY_LIMIT_BYTES. */
  #keep(data: Buffer): void {
    const body = this.#body;
    if (!body.replayable) return;
    body.parts.push(Buffer.from(data));
    body.bytes += data.length;
    if (body.bytes > REPLAY_LIMIT_BYTES) {
      body.replayable = false;
      body.parts = [];
    }
  }

  /** True when the body sent so far (if any) can be sent again on another stream. */
  #canReplay(): boolean {
    return !this.#body.reading || this.#body.replayable;
  }

  /**
   * The client's body, to the current stream as it arrives (nginx's grpc_pass never buffers it:
   * request_body_no_buffering); on a second stream, what was already read goes first.
   */
  #sendBody(stream: ClientHttp2Stream): void {
    const body = this.#body;
    if (body.reading) {
      for (const part of body.parts) stream.write(part);
      if (body.ended) stream.end();
      return;
    }
    body.reading = true;
    if (this.#spooled !== undefined) {
      this.#sendSpooled(this.#spooled);
      return;
    }
    const { exchange, grpc } = this.#ctx;
    // The newest chunk waits for the event loop's turn: node:http2 emits a DATA frame's END_STREAM
    // ('end') a few ticks after its bytes, so that a chunk written at once would leave in a frame
    // of its own and END_STREAM in an empty one after it. Held back, a client's last DATA frame
    // goes upstream as one DATA frame with END_STREAM, as nginx forwards it.
    let held: Buffer | undefined;
    let flush: NodeJS.Immediate | undefined;
    const send = (): void => {
      flush = undefined;
      const data = held;
      held = undefined;
      const current = this.#stream;
      // Back-pressure: a slow gRPC server holds the client back through flow control instead
      // of the body piling up here. The client's DATA waits until the upstream stream drains.
      if (data !== undefined && current !== undefined && !current.destroyed && !current.write(data)) pauseBodyUntilDrained(exchange, current);
    };
    exchange.readBody(
      grpc.maxBodySize,
      (data) => {
        this.#keep(data);
        if (held !== undefined) send();
        held = data;
        flush ??= setImmediate(send);
      },
      (err) => {
        clearImmediate(flush);
        flush = undefined;
        const current = this.#stream;
        const last = held;
        held = undefined;
        if (err === undefined) {
          body.ended = true;
          if (current !== undefined && !current.destroyed) current.end(last);
          return;
        }
        if (current !== undefined && !current.closed) current.close(constants.NGHTTP2_CANCEL);
        if (this.#done || exchange.aborted || exchange.headersSent) return;
        this.#done = true;
        // The client's body failed (too large, cut short): the attempt ends with the request.
        this.#cycle.stop('aborted');
        const status = err instanceof HttpParseError ? err.status : 400;
        this.#ctx.log.write(status === 413 ? 'error' : 'info', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
        exchange.keepAlive = false;
        this.#ctx.fail(status);
      },
    );
  }

  /** Sends the client the response head; trailers are expected unless the head ended the stream. */
  #writeHead(status: number, upstreamHeaders: IncomingHttpHeaders, endStream: boolean, peer: Peer): void {
    const { exchange, grpc, request } = this.#ctx;
    const headers = responseFields(upstreamHeaders, grpc.hide, grpc.pass);
    // What the balancer adds for the peer that answered (`sticky cookie`'s Set-Cookie), as for proxy_pass.
    const added = this.#cycle.responseHeaders(peer);
    if (added !== undefined) headers.push(...added);
    const finalStatus = request.statusOverride ?? status;
    request.status = finalStatus;
    if (grpc.pass.has('server') || grpc.pass.has('date')) exchange.ownServerAndDate = true;
    this.#ctx.headers(finalStatus, headers);
    const length = Number(upstreamHeaders['content-length'] ?? Number.NaN);
    // gRPC is proxied unbuffered (ngx_http_grpc_create_loc_conf()), which ngx_http_upstream_send_response() sends unpaced.
    request.limitRate = 0;
    // ngx_http_upstream_process_charset(): X-Accel-Charset, hidden from the client, tells the charset filter what to send.
    const accelCharset = upstreamHeaders['x-accel-charset'];
    const options = typeof accelCharset === 'string' ? { trailers: true, overrideCharset: accelCharset } : { trailers: true };
    if (endStream) exchange.writeHead(finalStatus, headers, 'chunked', { endStream: true });
    else exchange.writeHead(finalStatus, headers, Number.isSafeInteger(length) && length >= 0 ? length : 'chunked', options);
  }

  /** Gives up on a stream that answered (grpc_intercept_errors): cancelled, a success for its peer. */
  #close(stream: ClientHttp2Stream, attempt: UpstreamAttempt, start: number): void {
    // Its 'end' and 'close' listeners stay: node:http2 destroys a stream on its 'end', and the
    // session pool counts the stream out on its 'close'.
    stream.removeAllListeners('data');
    stream.on('data', () => undefined);
    if (!stream.closed) stream.close(constants.NGHTTP2_CANCEL);
    this.#record(attempt, 'ok', '', start);
  }

  /**
   * grpc_next_upstream: nginx never buffers a gRPC request body (request_body_no_buffering), so a
   * request that reached a server is never passed to the next one (ngx_http_upstream_next()); the
   * cases that apply are failures to connect or to set up TLS, for any method.
   */
  #mayRetry(sent: boolean): boolean {
    return !sent && this.#cycle.mayRetry();
  }

  /** A failed try; `sent` when the request had gone out on a stream. */
  #failed(attempt: UpstreamAttempt, failure: UpstreamFailure, sent: boolean, start = Date.now()): void {
    if (this.#done) return;
    const ctx = this.#ctx;
    this.#record(attempt, 'failed', failure.kind, start);
    ctx.log.error(`${failure.message}${where(ctx, attempt.peer)}`, ctx.conn.number);
    failUpstreamState(this.#state, failure.kind === 'timeout' ? 504 : 502);
    if (ctx.grpc.nextUpstream.has(failure.kind) && this.#mayRetry(sent)) {
      this.next();
      return;
    }
    this.#finishWithError(failure.kind === 'timeout' ? 504 : 502);
  }

  /** Ends an attempt and counts its time in $upstream_response_time. */
  #record(attempt: UpstreamAttempt, outcome: 'ok' | 'failed', reason: string, start: number): void {
    if (this.#state !== undefined && this.#state.responseMs < 0) this.#state.responseMs = Date.now() - start;
    if (attempt.finish(outcome, reason)) {
      this.#ctx.log.warn(`upstream server temporarily disabled${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    }
  }

  #finishWithError(status: number): void {
    this.#done = true;
    if (this.#ctx.exchange.aborted) return;
    this.#ctx.fail(status);
  }
}

/** True when a request with this method may be sent again (nginx: not POST, LOCK, PATCH without non_idempotent). */
function mayResend(method: string, next: ReadonlySet<string>): boolean {
  return !NON_IDEMPOTENT.has(method) || next.has('non_idempotent');
}

/** Response header (or trailer) fields as flat pairs, without pseudo-headers and hidden ones. */
function responseFields(headers: IncomingHttpHeaders, hide: ReadonlySet<string>, pass: ReadonlySet<string>): string[] {
  const out: string[] = [];
  for (const [name, value] of Object.entries(headers)) {
    if (name.charCodeAt(0) === 0x3a || value === undefined) continue;
    if ((HIDDEN_RESPONSE_HEADERS.has(name) || hide.has(name)) && !pass.has(name)) continue;
    if (Array.isArray(value)) for (const item of value) out.push(name, item);
    else out.push(name, String(value));
  }
  return out;
}

/** True when the stream failed because the server reset it (not because the session went away). */
function isPeerReset(err: Error | undefined): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ERR_HTTP2_STREAM_ERROR';
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

/** The tail nginx adds to upstream errors: `, client: ..., server: ..., request: "...", upstream: "grpc://...", host: "..."`. */
function where(ctx: GrpcContext, peer?: Peer): string {
  const { request, conn, grpc } = ctx;
  const host = request.header('host');
  const upstream = peer === undefined ? '' : `, upstream: "${grpc.scheme}://${peer.name}"`;
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${upstream}${host === undefined ? '' : `, host: "${host}"`}`;
}
