/**
 * The server side of HTTP/2 connections on node:http2's core API (not the compatibility API, which
 * costs an object pair per request): one {@link H2Endpoint} per generation turns sockets into
 * sessions; each {@link H2Connection} hands its streams to the handler as {@link H2Exchange}s and
 * drains as nginx drains HTTP/2 on a graceful shutdown (ngx_http_v2_finalize_connection): GOAWAY
 * with the last stream it took (RFC 9113 section 6.8), the streams up to it finish, then it closes.
 */
import { connectionStats, type ConnectionStat } from '../../core/connection-stats.js';
import { constants, createServer, type Http2Server, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DEFAULT_MAX_HEADERS, HttpParseError } from '../h1/head-parser.js';
import { allocateConnectionId } from '../h1/server-connection.js';
import { specialPage, wireStatus } from '../responses.js';
import { DEFAULT_MAX_CONCURRENT_STREAMS, DEFAULT_PREREAD_SIZE, DEFAULT_WINDOW, MAX_FRAME_SIZE, MAX_WINDOW } from '../v2-module.js';
import { H2Exchange, requestLineOf, type H2Session } from './h2-exchange.js';
import type { FrameCounter } from './frame-counter.js';

/**
 * Settings of a connection, from the default server of the socket it arrived on: nginx reads them
 * from the connection's configuration, not from each request's location (ngx_http_v2_state_headers(),
 * ngx_http_v2_handle_connection()).
 */
export interface H2ConnectionOptions {
  /** The connection's place in the stub_status counters (core/connection-stats.ts); each stream counts as a request. */
  readonly stat?: ConnectionStat;
  /** `keepalive_timeout` in ms: how long a session without streams stays open (nginx 1.19.7+); 0 takes one stream. Default 75 s. */
  readonly keepaliveTimeoutMs?: number;
  /** `keepalive_requests`: the stream that reaches it is served, then GOAWAY (nginx 1.19.7+). Default 1000. */
  readonly keepaliveRequests?: number;
  /** `keepalive_time` in ms: a stream opened later than this after the connection began is the last one. Default 1 h. */
  readonly keepaliveTimeMs?: number;
  /** `client_header_timeout` in ms: the longest a header block (HEADERS without END_HEADERS, then CONTINUATION) may stay open. Default 60 s. */
  readonly headerTimeoutMs?: number;
  /** `client_body_timeout` in ms: the longest pause between two DATA frames of a request body. Default 60 s. */
  readonly bodyTimeoutMs?: number;
  /** `send_timeout` in ms: the longest a stream may wait on the client to take more of its response. Default 60 s. */
  readonly sendTimeoutMs?: number;
  /** `max_headers`: the most header fields a request may have, pseudo-headers and cookie crumbs aside. Default 1000. */
  readonly maxHeaders?: number;
  /** The page of a refused request (nginx's own, with server_tokens' signature). */
  readonly errorPage?: (status: number) => string;
  /** The `Server` header's value; empty sends none. Default `hitless`. */
  readonly serverHeader?: string;
  /** `http2_body_preread_size`, the SETTINGS_INITIAL_WINDOW_SIZE the endpoint announced. Default 64k. */
  readonly prereadSize?: number;
  /** Counts each stream's header block on the wire (`$request_length`); without it that size is not known. */
  readonly frameCounter?: FrameCounter;
}

/** The streams a connection must have had before the premature-reset rule judges it (Envoy's default is 500; a browser cancels a few). */
const RESET_MIN_STREAMS = 100;

/** How long a graceful close may wait for streams the client never finishes before the socket is closed. */
const CLOSE_GRACE_MS = 5_000;

/** Receives each request; must eventually end the exchange. */
export type H2RequestHandler = (exchange: H2Exchange) => void;

/** Reports an exception a handler threw. */
export type H2ErrorReporter = (error: Error) => void;

/**
 * Makes sessions of sockets that speak HTTP/2: after the h2c preface was seen (prior knowledge) or,
 * later, after TLS negotiated `h2` by ALPN. One Http2Server per generation carries the settings; it
 * never listens, sockets are handed to it.
 */
export class H2Endpoint {
  readonly #server: Http2Server;
  #accepted: ServerHttp2Session | undefined;

  /**
   * `maxConcurrentStreams` is `http2_max_concurrent_streams`, default 128. `maxHeaders` is
   * `max_headers`: node:http2 resets a stream past its own header-pair limit (128 by default),
   * so that limit is raised above max_headers, leaving room for pseudo-headers and cookie crumbs,
   * and the connection refuses past max_headers as nginx does. `prereadSize` is
   * `http2_body_preread_size`, default 64k: SETTINGS_INITIAL_WINDOW_SIZE, as nginx announces it
   * (ngx_http_v2_send_settings()); nghttp2 resets a stream that sends more before it is read.
   * SETTINGS_MAX_FRAME_SIZE is the largest, as nginx announces it: a client may send a header
   * block of 32 KiB in one HEADERS frame, and nghttp2 would refuse it past the default 16384
   * ("too large frame size", GOAWAY FRAME_SIZE_ERROR).
   */
  constructor(options: { maxConcurrentStreams?: number; maxHeaders?: number; prereadSize?: number } = {}) {
    this.#server = createServer({
      maxHeaderListPairs: (options.maxHeaders ?? DEFAULT_MAX_HEADERS) + 128,
      settings: { maxConcurrentStreams: options.maxConcurrentStreams ?? DEFAULT_MAX_CONCURRENT_STREAMS, initialWindowSize: options.prereadSize ?? DEFAULT_PREREAD_SIZE, maxFrameSize: MAX_FRAME_SIZE },
    });
    this.#server.on('session', (session: ServerHttp2Session) => {
      this.#accepted = session;
    });
  }

  /**
   * Starts HTTP/2 on `socket`; bytes already read must have been unshifted back into it, or be in
   * `transport`, a stream over the socket that node:http2 reads and writes instead.
   */
  accept(socket: Socket, handler: H2RequestHandler, options: H2ConnectionOptions = {}, onError?: H2ErrorReporter, transport?: Duplex): H2Connection {
    // node:http2 builds the session and emits 'session' synchronously inside 'connection'.
    this.#server.emit('connection', transport ?? socket);
    const session = this.#accepted;
    this.#accepted = undefined;
    if (session === undefined) throw new Error('node:http2 did not create a session');
    return new H2Connection(session, socket, handler, options, onError);
  }
}

/** One client connection speaking HTTP/2. */
export class H2Connection implements H2Session {
  /** `$connection`. */
  readonly id = allocateConnectionId();
  /** Streams opened so far (`$connection_requests`). */
  requests = 0;
  /** When the connection was accepted, for `$connection_time`. */
  readonly startedAt = Date.now();
  readonly socket: Socket;
  readonly session: ServerHttp2Session;
  readonly serverHeader: string;
  readonly bodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly #handler: H2RequestHandler;
  readonly #onError: H2ErrorReporter | undefined;
  readonly #keepaliveTimeoutMs: number;
  readonly #keepaliveRequests: number;
  readonly #maxHeaders: number;
  readonly #errorPage: (status: number) => string;
  readonly #keepaliveTimeMs: number;
  readonly #startedAt = Date.now();
  #open = 0;
  readonly #stat: ConnectionStat | undefined;
  /** The exchanges of the open streams, finished at once by a fast close. */
  readonly #exchanges = new Set<H2Exchange>();
  #draining = false;
  /** GOAWAY was sent (a drain, or keepalive_requests, keepalive_time): the session ends with its last stream. */
  #goingAway = false;
  #closed = false;
  #timer: NodeJS.Timeout | undefined;
  #closeListeners: (() => void)[] = [];
  readonly #headerTimeoutMs: number;
  /** The newest stream handed to the handler: nghttp2 has processed a newer one only while its header block is open. */
  #lastStreamId = 0;
  /** When the open header block was first seen, by the watch; undefined when none is open. */
  #blockSeenAt: number | undefined;
  #watch: NodeJS.Timeout | undefined;
  /** Streams closed, and of them those the client reset before any response (see #countReset). */
  #closedStreams = 0;
  #premature = 0;
  #calmed = false;
  readonly #prereadSize: number;
  /** The client acknowledged the first SETTINGS: its streams have the preread window. */
  #settingsAcked = false;
  /** The initial window was raised to the default once a body was read (see {@link openBodyWindow}). */
  #windowOpened = false;
  readonly #frameCounter: FrameCounter | undefined;

  constructor(session: ServerHttp2Session, socket: Socket, handler: H2RequestHandler, options: H2ConnectionOptions = {}, onError?: H2ErrorReporter) {
    this.session = session;
    this.socket = socket;
    this.#handler = handler;
    this.#onError = onError;
    this.#keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? 75_000;
    this.#stat = options.stat;
    this.#keepaliveRequests = options.keepaliveRequests ?? 1000;
    this.#keepaliveTimeMs = options.keepaliveTimeMs ?? 3_600_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 60_000;
    this.sendTimeoutMs = options.sendTimeoutMs ?? 60_000;
    this.serverHeader = options.serverHeader ?? 'hitless';
    this.#headerTimeoutMs = options.headerTimeoutMs ?? 60_000;
    this.#maxHeaders = options.maxHeaders ?? DEFAULT_MAX_HEADERS;
    this.#errorPage = options.errorPage ?? ((status) => specialPage(status) ?? '');
    this.#prereadSize = options.prereadSize ?? DEFAULT_PREREAD_SIZE;
    this.#frameCounter = options.frameCounter;
    session.once('localSettings', () => {
      this.#settingsAcked = true;
    });
    socket.setNoDelay(true);
    // ngx_http_v2_init(): the connection's receive window opens to the largest at once (a
    // WINDOW_UPDATE right after SETTINGS); each stream's own window still bounds what is buffered.
    session.setLocalWindowSize(MAX_WINDOW);
    session.on('stream', (stream: ServerHttp2Stream, _headers: unknown, flags: number, rawHeaders: string[]) => this.#onStream(stream, flags, rawHeaders));
    session.on('error', () => undefined); // a failed session ends in 'close'
    session.once('close', () => this.#onClose());
    // ngx_http_v2_read_handler(): the client closed its side ("client closed connection"): the
    // connection and its streams are finished at once. node:http2 would close the session and
    // leave the socket open.
    // The FIN may have come with the preface, before the session began (the sniffer read it):
    // the frames already read are processed first, as nginx's read loop does before it sees EOF.
    if (socket.readableEnded) setImmediate(() => this.destroy());
    else socket.once('end', () => this.destroy());
    // ngx_http_v2_init(): the first stream is awaited client_header_timeout, and its expiry is the
    // read handler's "client timed out", GOAWAY(PROTOCOL_ERROR); keepalive_timeout is the wait
    // between streams (ngx_http_v2_handle_connection()), so 0 still serves one stream.
    this.#disarm();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.requests > 0 || this.#open > 0 || this.session.destroyed) return;
      this.#timedOut();
    }, this.#headerTimeoutMs);
    this.#timer.unref();
    this.#startWatch();
  }

  /**
   * The connection's watch (see the dead-session probe inside), and client_header_timeout over HTTP/2 (slowloris by HEADERS without END_HEADERS, then silence or
   * a CONTINUATION byte at a time). node:http2 emits a stream only once its header block is whole,
   * and nothing before, but nghttp2's last processed stream id moves on at the HEADERS frame: a
   * newer id than the last stream handed over is an open block. The watch looks every eighth of
   * the timeout and closes the connection with GOAWAY(PROTOCOL_ERROR) once a block stayed open
   * the timeout (within an eighth), as nginx's read handler does when its header timer expires
   * (ngx_http_v2_read_handler(): "client timed out", ngx_http_v2_finalize_connection()).
   */
  #startWatch(): void {
    const period = Math.max(100, Math.floor(this.#headerTimeoutMs / 8));
    // From 0: the preface sniffer (or TLS) may have read every byte before the session began.
    let lastRead = 0;
    let lastWritten = -1;
    let stuckSince: number | undefined;
    this.#watch = setInterval(() => {
      if (this.session.destroyed) return;
      // send_timeout for the connection: frames queued and nothing written for that long. That is
      // a client that reads nothing, or a session nghttp2 ended after a connection error (its own
      // GOAWAY), which writes and reads no more while node:http2 says nothing of it; RFC 9113
      // section 5.4.1 says to close the connection then. Bytes that made no stream on an idle
      // session are answered with a PING, so that a dead idle session shows a queue too.
      const now = Date.now();
      const queued = (this.session.state.outboundQueueSize ?? 0) > 0;
      const written = this.socket.bytesWritten;
      if (queued && written === lastWritten) {
        stuckSince ??= now;
        if (now - stuckSince >= this.sendTimeoutMs) {
          this.destroy();
          return;
        }
      } else stuckSince = undefined;
      lastWritten = written;
      const read = this.socket.bytesRead;
      if (read !== lastRead) {
        lastRead = read;
        if (!queued && this.#open === 0) {
          try {
            this.session.ping(() => undefined);
          } catch {
            // Too many pings outstanding: the queue tells already.
          }
        }
      }
      const open = (this.session.state.lastProcStreamID ?? 0) > this.#lastStreamId;
      if (!open) {
        this.#blockSeenAt = undefined;
        return;
      }
      this.#blockSeenAt ??= now;
      if (now - this.#blockSeenAt < this.#headerTimeoutMs - period) return;
      this.#timedOut();
    }, period);
    this.#watch.unref();
  }

  /** ngx_http_v2_read_handler() when its timer expires: "client timed out", GOAWAY(PROTOCOL_ERROR), closed. */
  #timedOut(): void {
    this.#onError?.(new Error('client timed out (110: Connection timed out) while reading client request headers'));
    this.session.goaway(constants.NGHTTP2_PROTOCOL_ERROR);
    this.destroy();
  }

  /** True once {@link drain} was called. */
  get draining(): boolean {
    return this.#draining;
  }

  /** Streams in progress. */
  get openStreams(): number {
    return this.#open;
  }

  /** No stream in progress and no header block open: worker_connections may close it to make room. */
  get idle(): boolean {
    return this.#open === 0 && this.#blockSeenAt === undefined && !this.session.destroyed && (this.session.state.lastProcStreamID ?? 0) <= this.#lastStreamId;
  }

  /**
   * A request body is being read. nginx widens that stream's window then
   * (ngx_http_v2_read_request_body() sends WINDOW_UPDATE); node:http2 can only refill a stream's
   * window as it is read, never widen it (it has no per-stream WINDOW_UPDATE, and
   * Http2Session.setLocalWindowSize() is the connection's), so a preread size below the default
   * would leave such a body a few bytes per round trip, and none at 0. The connection's initial
   * window is raised to the default instead, once, which widens its streams' windows too.
   */
  openBodyWindow(): void {
    if (this.#windowOpened || this.#prereadSize >= DEFAULT_WINDOW || this.session.destroyed) return;
    this.#windowOpened = true;
    try {
      this.session.settings({ initialWindowSize: DEFAULT_PREREAD_SIZE });
    } catch {
      // Too many SETTINGS unacknowledged: the window stays as it is.
    }
  }

  #onStream(stream: ServerHttp2Stream, flags: number, rawHeaders: string[]): void {
    const id = stream.id ?? 0;
    if (id > this.#lastStreamId) this.#lastStreamId = id;
    const headBytes = this.#frameCounter?.take(id);
    const endStream = (flags & constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    // ngx_http_v2_state_headers(): before the client acknowledged SETTINGS it may still count on
    // the default window, which a smaller preread buffer cannot hold: a stream with a body is
    // refused, to be retried (RFC 9113 section 8.7).
    if (!this.#settingsAcked && !endStream && this.#prereadSize < DEFAULT_WINDOW) {
      stream.on('error', () => undefined);
      stream.close(constants.NGHTTP2_REFUSED_STREAM);
      return;
    }
    this.requests++;
    this.#open++;
    // ngx_http_v2_handle_connection(): reusable (waiting) only with no stream in progress.
    this.#stat?.set('none');
    const streamDone = connectionStats.stream();
    this.#disarm();
    const openedAt = Date.now();
    // ngx_http_v2_state_headers(): this stream is served, and GOAWAY tells the client it is the last.
    if (this.#keepaliveTimeoutMs === 0 || this.requests >= this.#keepaliveRequests || openedAt - this.#startedAt > this.#keepaliveTimeMs) this.#goAway();
    const exchange = new H2Exchange(this, stream, requestLineOf(rawHeaders, headBytes), endStream);
    this.#exchanges.add(exchange);
    // One listener for the stream's close (it comes once), in the order of the session's, the exchange's, then the set's work.
    stream.on('close', () => {
      streamDone();
      if (this.#open === 1) this.#stat?.set('waiting');
      this.#countReset(stream, openedAt);
      if (--this.#open === 0) this.#idle();
      exchange.streamClosed();
      this.#exchanges.delete(exchange);
    });
    if (exchange.head.counted > this.#maxHeaders) {
      this.#onError?.(new HttpParseError(494, 'client sent too many header lines'));
      exchange.respond(wireStatus(494), ['content-type', 'text/html'], this.#errorPage(494));
      return;
    }
    try {
      this.#handler(exchange);
    } catch (err) {
      this.#onError?.(err as Error);
      if (!exchange.headersSent) exchange.respond(500, [], '');
      else exchange.connection.destroy();
    }
  }

  /**
   * Rapid reset (CVE-2023-44487): Envoy's premature-reset rule. A stream the client resets within a
   * second of opening it is premature; once a connection has opened {@link RESET_MIN_STREAMS}
   * streams and at least half were premature, it gets GOAWAY(ENHANCE_YOUR_CALM) and is closed.
   * node:http2's own limit (nghttp2's reset rate limit, 1,000 at once then 33 a second) acts
   * later, and only per burst; this one counts the whole connection. hitless's own resets
   * (INTERNAL_ERROR) do not count.
   */
  #countReset(stream: ServerHttp2Stream, openedAt: number): void {
    this.#closedStreams++;
    const code = stream.rstCode;
    if (code !== undefined && code !== constants.NGHTTP2_NO_ERROR && code !== constants.NGHTTP2_INTERNAL_ERROR && Date.now() - openedAt < 1000) this.#premature++;
    if (this.#calmed || this.#closedStreams < RESET_MIN_STREAMS || this.#premature * 2 < this.#closedStreams || this.session.destroyed) return;
    this.#calmed = true;
    this.#onError?.(new Error(`client reset ${this.#premature} of ${this.#closedStreams} streams before their response: closing the connection`));
    this.session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    // The GOAWAY frame leaves on the next write of the session: close once it had that turn.
    setImmediate(() => this.destroy());
  }

  /** No stream is open: a session that sent GOAWAY is done; another waits keepalive_timeout for the next one. */
  #idle(): void {
    if (this.#goingAway) this.#close();
    else this.#arm(this.#keepaliveTimeoutMs);
  }

  #arm(ms: number): void {
    this.#disarm();
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#open === 0) this.#close();
    }, ms);
    this.#timer.unref();
  }

  #disarm(): void {
    if (this.#timer === undefined) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Starts draining: GOAWAY(NO_ERROR) now with the last stream taken, so that the client opens its
   * next streams elsewhere (streams above it were not processed and may be retried, RFC 9113
   * section 8.7). Streams in progress finish, then the session closes; an idle session closes
   * after `graceMs`, as an idle HTTP/1 connection does, unless the client closes it first.
   */
  drain(graceMs: number): void {
    if (this.#draining || this.#closed) return;
    this.#draining = true;
    const sent = this.#goAway();
    if (sent && this.#open === 0) this.#arm(graceMs);
  }

  /**
   * GOAWAY(NO_ERROR) with the last stream taken (node:http2 fills it in); nghttp2 then ignores
   * newer streams. Once; false when the session is already gone or going.
   */
  #goAway(): boolean {
    if (this.#goingAway || this.session.destroyed || this.session.closed) return false;
    this.#goingAway = true;
    this.session.goaway(constants.NGHTTP2_NO_ERROR);
    return true;
  }

  /**
   * Graceful close: node:http2 sends GOAWAY, waits for open streams, ends the socket. A stream the
   * handler never saw (a header block the client left open, or a session nghttp2 gave up on after
   * a connection error) would hold it open for ever: after {@link CLOSE_GRACE_MS} the socket closes.
   */
  #close(): void {
    this.#disarm();
    if (this.session.closed || this.session.destroyed) return;
    this.session.close();
    const grace = setTimeout(() => this.destroy(), CLOSE_GRACE_MS);
    grace.unref();
    this.session.once('close', () => clearTimeout(grace));
  }

  /**
   * Closes at once, whatever is in progress (fast shutdown, worker_shutdown_timeout). Each open
   * stream's request is finished now, as ngx_close_idle_connections() runs their handlers, so
   * that its log line is written before the generation's logs close.
   */
  destroy(): void {
    clearInterval(this.#watch);
    for (const exchange of [...this.#exchanges]) exchange.abort();
    this.#exchanges.clear();
    this.session.destroy();
    this.socket.destroy();
  }

  /** Calls `listener` once the session has closed. */
  onClose(listener: () => void): void {
    if (this.#closed) listener();
    else this.#closeListeners.push(listener);
  }

  #onClose(): void {
    this.#closed = true;
    clearInterval(this.#watch);
    this.#disarm();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }
}
