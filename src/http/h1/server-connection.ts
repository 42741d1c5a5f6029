/**
 * The server side of an HTTP/1.x connection over a raw socket: the fast path that node:http's
 * generality costs too much for. One exchange at a time, pipelined requests held until their turn,
 * request bodies read only when the handler asks and discarded otherwise (as nginx's
 * ngx_http_discard_request_body does), keep-alive, lingering close, and the drain behaviour that
 * makes reloads invisible: a draining connection answers its next request with
 * `Connection: close` instead of closing under a client that is sending.
 */
import type { ConnectionStat } from '../../core/connection-stats.js';
import type { Socket } from 'node:net';
import { ChunkedParser } from './chunked.js';
import { DEFAULT_HEAD_LIMITS, HttpParseError, parseRequestHead, type HeadLimits, type RequestHead } from './head-parser.js';
import { httpDate, responseHasNoBody, statusLine } from './response-head.js';
import { specialPage, wireStatus } from '../responses.js';
import { setTimeoutOnce } from '../../core/socket-timeout.js';
import type { Framing, HttpExchange, ProtocolConnection } from '../exchange.js';

/** Settings of a connection, from the default server of the socket it arrived on. */
export interface H1ConnectionOptions {
  readonly limits?: HeadLimits;
  /** The connection's place in the stub_status counters (core/connection-stats.ts). */
  readonly stat?: ConnectionStat;
  /** `client_header_timeout`, in ms. Default 60 s. */
  readonly headerTimeoutMs?: number;
  /** `client_body_timeout`, in ms. Default 60 s. */
  readonly bodyTimeoutMs?: number;
  /** `send_timeout`, in ms. Default 60 s. */
  readonly sendTimeoutMs?: number;
  /** `keepalive_timeout`, in ms; 0 disables keep-alive. Default 75 s. */
  readonly keepaliveTimeoutMs?: number;
  /** `keepalive_requests`. Default 1000. */
  readonly keepaliveRequests?: number;
  /** `lingering_timeout`, in ms. Default 5 s. */
  readonly lingeringTimeoutMs?: number;
  /** `lingering_time`, in ms: the longest a lingering close reads. Default 30 s. */
  readonly lingeringTimeMs?: number;
  /** `lingering_close`. Default `on`. */
  readonly lingeringClose?: 'off' | 'on' | 'always';
  /** `reset_timedout_connection`: a request that timed out ends with RST. Default false. */
  readonly resetTimedout?: boolean;
  /** The `Server` header's value; empty sends none. Default `hitless`. */
  readonly serverHeader?: string;
  /** The page sent with a status the connection answers by itself (400, 414...). */
  readonly errorPage?: (status: number) => string;
  /**
   * The header lines (`Name: value`, no CRLF) added to such a page: the default server's
   * `add_header ... always` (ngx_http_finalize_request() answers with its configuration).
   */
  readonly refusedHeaders?: (status: number) => string[];
}

/** Receives each request; must eventually end the exchange (or the connection is closed). */
export type H1RequestHandler = (exchange: H1Exchange) => void;

/** Reports a request the connection refused before any handler saw it. */
export type H1ErrorReporter = (connection: H1ServerConnection, error: HttpParseError | Error, head: RequestHead | undefined) => void;

const enum Phase {
  Head,
  Exchange,
  Tunnel,
  Closing,
  Closed,
}

export type { Framing };

let nextConnectionId = 1;

/** A new `$connection` number, shared with the other protocols so that numbers stay unique within the worker. */
export function allocateConnectionId(): number {
  return nextConnectionId++;
}

/** One client connection speaking HTTP/1.x. */
export class H1ServerConnection implements ProtocolConnection {
  readonly socket: Socket;
  /** nginx's `$connection`: a serial number unique within the worker. */
  readonly id = nextConnectionId++;
  /** Requests received on this connection so far (`$connection_requests`). */
  requests = 0;
  /** When the connection was accepted, for `$connection_time`. */
  readonly startedAt = Date.now();
  readonly #handler: H1RequestHandler;
  readonly #onError: H1ErrorReporter | undefined;
  readonly #limits: HeadLimits;
  readonly #stat: ConnectionStat | undefined;
  readonly #headerTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  readonly keepaliveTimeoutMs: number;
  readonly keepaliveRequests: number;
  readonly #lingeringTimeoutMs: number;
  readonly #lingeringTimeMs: number;
  readonly #lingeringClose: 'off' | 'on' | 'always';
  readonly #resetTimedout: boolean;
  /** When the lingering close began, for lingering_time. */
  #lingerStarted = 0;
  readonly serverHeader: string;
  readonly #errorPage: (status: number) => string;
  readonly #refusedHeaders: ((status: number) => string[]) | undefined;
  #phase = Phase.Head;
  /** The keep-alive timeout of the location that answered last (nginx times keep-alive per location). */
  #idleTimeoutMs: number;
  #buf: Buffer | undefined;
  #exchange: H1Exchange | undefined;
  #draining = false;
  #drainTimer: NodeJS.Timeout | undefined;
  /**
   * When the head being read began (the accept, then each next request's first byte):
   * client_header_timeout bounds the whole head from there, as nginx's read timer is set once
   * (ngx_http_read_request_header() adds it only when unset), not re-armed by each byte.
   */
  #headSince = Date.now();
  #graceMs = 0;
  #closeListeners: (() => void)[] = [];
  /** The next request was already received when the last response finished (nginx's hc->pipeline). */
  #nextPipelined = false;

  constructor(socket: Socket, handler: H1RequestHandler, options: H1ConnectionOptions = {}, onError?: H1ErrorReporter) {
    this.socket = socket;
    this.#handler = handler;
    this.#onError = onError;
    this.#limits = options.limits ?? DEFAULT_HEAD_LIMITS;
    this.#stat = options.stat;
    this.#headerTimeoutMs = options.headerTimeoutMs ?? 60_000;
    this.bodyTimeoutMs = options.bodyTimeoutMs ?? 60_000;
    this.sendTimeoutMs = options.sendTimeoutMs ?? 60_000;
    this.keepaliveTimeoutMs = options.keepaliveTimeoutMs ?? 75_000;
    this.keepaliveRequests = options.keepaliveRequests ?? 1000;
    this.#lingeringTimeoutMs = options.lingeringTimeoutMs ?? 5000;
    this.#lingeringTimeMs = options.lingeringTimeMs ?? 30_000;
    this.#lingeringClose = options.lingeringClose ?? 'on';
    this.#resetTimedout = options.resetTimedout ?? false;
    this.serverHeader = options.serverHeader ?? 'hitless';
    this.#errorPage = options.errorPage ?? errorPage;
    this.#refusedHeaders = options.refusedHeaders;
    this.#idleTimeoutMs = this.keepaliveTimeoutMs;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => this.#onData(chunk));
    socket.on('timeout', () => this.#onTimeout());
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.#onClose());
    socket.setTimeout(this.#headerTimeoutMs);
  }

  /** True once {@link drain} was called. */
  get draining(): boolean {
    return this.#draining;
  }

  /** True when no request is in progress and none is partly received. */
  get idle(): boolean {
    return this.#phase === Phase.Head && this.#buf === undefined;
  }

  /** Calls `listener` once the socket has closed. */
  onClose(listener: () => void): void {
    if (this.#phase === Phase.Closed) listener();
    else this.#closeListeners.push(listener);
  }

  /**
   * Starts draining: the response in progress, or the next request to arrive within `graceMs`,
   * is answered with `Connection: close`; an idle connection closes after `graceMs`.
   */
  drain(graceMs: number): void {
    // A tunnel is left alone: it lives until it ends or until worker_shutdown_timeout.
    if (this.#draining || this.#phase >= Phase.Tunnel) return;
    this.#draining = true;
    this.#graceMs = graceMs;
    if (this.idle) this.#armGrace();
  }

  /** Closes the connection after the grace period if no request has begun by then. */
  #armGrace(): void {
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    this.#drainTimer = setTimeout(() => {
      this.#drainTimer = undefined;
      if (this.idle) this.#close();
    }, this.#graceMs);
    this.#drainTimer.unref();
  }

  /** Closes at once, whatever is in progress (fast shutdown). */
  destroy(): void {
    this.socket.destroy();
  }

  #onData(chunk: Buffer): void {
    if (this.#phase === Phase.Closing) {
      this.lingerRead(); // lingering close: read and discard
      return;
    }
    if (this.#phase >= Phase.Tunnel) return;
    if (this.#buf === undefined && this.#phase === Phase.Head && this.requests > 0) this.#headSince = Date.now();
    // ngx_http_wait_request_handler(): the first bytes make a request, reading its head.
    if (this.#buf === undefined && this.#phase === Phase.Head) this.#stat?.request();
    this.#buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    if (this.#phase === Phase.Head) this.#parseNext();
    else this.#exchange?.onInput();
  }

  /**
   * Hands the socket over to a tunnel (an upgrade such as WebSocket, after a 101): HTTP stops
   * reading it, and the bytes the client already sent past the request head are returned.
   */
  detach(): Buffer | undefined {
    this.#phase = Phase.Tunnel;
    // The 101's head must leave before whatever the tunnel writes.
    this.#exchange?.flushHead();
    this.#exchange = undefined;
    this.socket.removeAllListeners('data');
    this.socket.removeAllListeners('timeout');
    this.socket.setTimeout(0);
    const rest = this.#buf;
    this.#buf = undefined;
    return rest;
  }

  /** @internal Takes up to `max` buffered bytes, for the exchange's body reader. */
  takeInput(max: number): Buffer | undefined {
    const buf = this.#buf;
    if (buf === undefined) return undefined;
    if (buf.length <= max) {
      this.#buf = undefined;
      return buf;
    }
    this.#buf = buf.subarray(max);
    return buf.subarray(0, max);
  }

  /** @internal Gives back bytes the body reader took but that belong to the next request. */
  untakeInput(rest: Buffer): void {
    if (rest.length === 0) return;
    this.#buf = this.#buf === undefined ? rest : Buffer.concat([rest, this.#buf]);
  }

  #parseNext(): void {
    const buf = this.#buf;
    if (buf === undefined) {
      setTimeoutOnce(this.socket, this.#draining ? 0 : this.#idleTimeoutMs);
      return;
    }
    let head: RequestHead | undefined;
    try {
      head = parseRequestHead(buf, 0, this.#limits);
    } catch (err) {
      this.#refuse(err as HttpParseError);
      return;
    }
    if (head === undefined) {
      // What is left of client_header_timeout: a client dribbling a byte at a time (slowloris)
      // is cut at the deadline, however often it sends.
      const left = this.#headSince + this.#headerTimeoutMs - Date.now();
      if (left <= 0) this.#onTimeout();
      else setTimeoutOnce(this.socket, left);
      return;
    }
    this.#buf = head.headBytes === buf.length ? undefined : buf.subarray(head.headBytes);
    this.requests++;
    this.#phase = Phase.Exchange;
    // ngx_http_process_request(): the head is read, the response is being written.
    this.#stat?.set('writing');
    // The idle timer stays armed while the handler works: #onTimeout ignores it unless the
    // exchange is reading a body or waiting on a slow client. Re-arming it per request costs more.
    const exchange = new H1Exchange(this, head);
    exchange.pipelined = this.#nextPipelined;
    this.#nextPipelined = false;
    this.#exchange = exchange;
    try {
      this.#handler(exchange);
    } catch (err) {
      this.#onError?.(this, err as Error, head);
      if (!exchange.headersSent) exchange.respond(500, [], '');
      else this.socket.destroy();
    }
  }

  #refuse(err: HttpParseError): void {
    this.#onError?.(this, err, undefined);
    const body = this.#errorPage(err.status);
    const extra = (this.#refusedHeaders?.(err.status) ?? []).map((line) => `${line}\r\n`).join('');
    this.socket.write(
      `${statusLine(wireStatus(err.status))}${this.serverHeader ? `Server: ${this.serverHeader}\r\n` : ''}Date: ${httpDate()}\r\nContent-Type: text/html\r\nContent-Length: ${body.length}\r\nConnection: close\r\n${extra}\r\n${body}`,
    );
    this.#buf = undefined;
    // ngx_http_process_request_headers() sets r->lingering_close for a refused head: the client may still be sending.
    this.#close(true);
  }

  /** @internal Called by the exchange once its response is written and its body consumed. */
  exchangeDone(exchange: H1Exchange, keepAlive: boolean): void {
    if (this.#exchange !== exchange) return;
    this.#exchange = undefined;
    if (!keepAlive || this.#phase !== Phase.Exchange) {
      this.#close(exchange.hasBody || this.#buf !== undefined);
      return;
    }
    this.#phase = Phase.Head;
    // ngx_http_set_keepalive(): a pipelined request begins at once, else the connection waits.
    if (this.#buf === undefined) this.#stat?.set('waiting');
    else this.#stat?.request();
    if (this.#draining && this.#buf === undefined) {
      this.#armGrace(); // the next request within the grace period is answered with Connection: close
      return;
    }
    this.#idleTimeoutMs = exchange.keepaliveTimeoutMs;
    this.#nextPipelined = this.#buf !== undefined;
    // A pipelined head is being read from now on.
    this.#headSince = Date.now();
    this.#parseNext();
  }

  /** Whether the response being written may keep the connection open. */
  mayKeepAlive(): boolean {
    return !this.#draining && this.keepaliveTimeoutMs > 0 && this.requests < this.keepaliveRequests;
  }

  /**
   * Closes as ngx_http_finalize_connection() does: with a lingering close (FIN, then read and
   * discard until the client closes, lingering_timeout passes without data, or lingering_time is
   * over) when lingering_close is always, or on and the client may still be sending
   * (`clientMaySend`: an unread body, pipelined bytes); else at once, once the response is out.
   */
  #close(clientMaySend = false): void {
    if (this.#phase >= Phase.Closing) return;
    this.#phase = Phase.Closing;
    // The request is freed; a lingering close is neither reading, writing nor waiting.
    this.#stat?.set('none');
    const linger = this.#lingeringClose === 'always' || (this.#lingeringClose === 'on' && (clientMaySend || this.#buf !== undefined));
    if (!linger) {
      this.socket.destroySoon();
      return;
    }
    this.#lingerStarted = Date.now();
    this.socket.end();
    this.socket.setTimeout(Math.min(this.#lingeringTimeoutMs, this.#lingeringTimeMs));
  }

  #onTimeout(): void {
    if (this.#phase === Phase.Exchange) {
      this.#exchange?.onTimeout();
      return;
    }
    if (this.#phase === Phase.Head && this.idle && this.#draining) return;
    if (this.#phase === Phase.Closing) {
      // lingering_timeout passed without data, or lingering_time is over.
      this.socket.destroy();
      return;
    }
    // client_header_timeout on a partly received head: nginx's timed-out request, logged at info; an idle keep-alive connection is not one.
    if (this.#phase === Phase.Head && this.#buf !== undefined) {
      this.#onError?.(this, new Error('client timed out (110: Connection timed out) while reading client request headers'), undefined);
      this.timedOut();
    } else this.socket.destroy();
  }

  /** @internal A request timed out: reset_timedout_connection sends RST (SO_LINGER 0, as nginx sets it), else the socket closes. */
  timedOut(): void {
    if (this.#resetTimedout && typeof this.socket.resetAndDestroy === 'function') this.socket.resetAndDestroy();
    else this.socket.destroy();
  }

  /** @internal Data arrived during a lingering close: read and dropped, while lingering_time lasts. */
  lingerRead(): void {
    const left = this.#lingeringTimeMs - (Date.now() - this.#lingerStarted);
    if (left <= 0) this.socket.destroy();
    else setTimeoutOnce(this.socket, Math.min(this.#lingeringTimeoutMs, left));
  }

  #onClose(): void {
    this.#phase = Phase.Closed;
    if (this.#drainTimer) clearTimeout(this.#drainTimer);
    const exchange = this.#exchange;
    this.#exchange = undefined;
    exchange?.onClientGone();
    for (const listener of this.#closeListeners.splice(0)) listener();
  }
}

function flushHead(exchange: H1Exchange): void {
  exchange.flushHead();
}

function uncorkExchange(exchange: H1Exchange): void {
  exchange.uncork();
}

/** The largest first body chunk sent in one string with the response head. */
const SMALL_BODY = 16 * 1024;

/** nginx's built-in error page for a status. */
function errorPage(status: number): string {
  return specialPage(status) ?? '';
}

/** One request and its response on an {@link H1ServerConnection}. */
export class H1Exchange implements HttpExchange {
  readonly connection: H1ServerConnection;
  readonly head: RequestHead;
  /** `performance.now()` when the head was parsed, for `$request_time`. */
  readonly startedAt = performance.now();
  /** The status sent, once the head is written. */
  status = 0;
  /** Body bytes written (`$body_bytes_sent`). */
  bodyBytesSent = 0;
  /** All bytes written (`$bytes_sent`). */
  bytesSent = 0;
  headersSent = false;
  finished = false;
  /** Set false by a handler to close the connection after this response. */
  keepAlive: boolean;
  /** How long the connection may idle after this response (the answering location's keepalive_timeout). */
  keepaliveTimeoutMs: number;
  /** Leave out the `Server` and `Date` headers this connection adds, because `headers` brings its own (proxy_pass_header). */
  ownServerAndDate = false;
  /** The `Server` header's value for this response (the answering level's server_tokens); empty sends none. */
  serverHeader: string;
  /** `chunked_transfer_encoding`: false sends a body of unknown length to the close instead. */
  chunkedAllowed = true;
  /** HTTP/2's `http2_chunk_size`; kept for the interface. */
  dataFrameSize = 0;
  /** `$pipe`: the request was received while the one before it was answered. */
  pipelined = false;
  /** De-chunks an already chunked body ('raw') for a client that cannot take chunked. */
  #decoder: ChunkedParser | undefined;
  /** `keepalive_timeout`'s second value: sent as `Keep-Alive: timeout=N` with a kept-alive response. */
  keepaliveHeaderSeconds: number | undefined;
  #finishListeners: (() => void)[] = [];
  #framing: Framing = 0;
  #noBody = false;
  /** The response head, written with the first piece of body or at the end of this tick. */
  #pendingHead: string | undefined;
  /** True from a body write until the end of its tick: the socket is corked (see `write`). */
  #corked = false;
  #keepAliveSent = false;
  /** Remaining Content-Length body bytes; -1 when chunked or none. */
  #bodyRemaining: number;
  #chunked: ChunkedParser | undefined;
  #bodyDone: boolean;
  #bodySink: ((data: Buffer) => void) | undefined;
  #bodyEnd: ((err: Error | undefined) => void) | undefined;
  #responded = false;
  #abortListeners: (() => void)[] = [];

  constructor(connection: H1ServerConnection, head: RequestHead) {
    this.connection = connection;
    this.head = head;
    this.keepAlive = head.versionMinor === 1 ? !head.connection.includes('close') : head.connection.includes('keep-alive');
    this.keepaliveTimeoutMs = connection.keepaliveTimeoutMs;
    this.keepaliveHeaderSeconds = undefined;
    this.serverHeader = connection.serverHeader;
    this.#bodyRemaining = head.chunked ? -1 : Math.max(head.contentLength, 0);
    this.#chunked = head.chunked ? new ChunkedParser() : undefined;
    this.#bodyDone = !head.chunked && this.#bodyRemaining === 0;
  }

  /** True once the client went away before the response finished. */
  aborted = false;

  /** Calls `listener` if the client goes away before the response is finished. */
  onAbort(listener: () => void): void {
    this.#abortListeners.push(listener);
  }

  /** Calls `listener` once, when the response has been handed to the socket or the client went away (the log phase). */
  onFinish(listener: () => void): void {
    this.#finishListeners.push(listener);
  }

  #runFinish(): void {
    for (const listener of this.#finishListeners.splice(0)) listener();
  }

  /** Bytes written to the socket but not yet taken by the client. */
  get pendingBytes(): number {
    return this.connection.socket.writableLength;
  }

  /** True when the request has a body still to read. */
  get hasBody(): boolean {
    return !this.#bodyDone;
  }

  /**
   * Reads the request body: `onData` receives each piece (de-chunked), `onEnd` the outcome. A body
   * over `limit` bytes ends with an HttpParseError of status 413.
   */
  readBody(limit: number, onData: (data: Buffer) => void, onEnd: (err: Error | undefined) => void): void {
    if (this.#bodyDone) {
      // ngx_http_read_client_request_body() tests the expectation before it looks at the length.
      this.#sendContinue();
      onEnd(undefined);
      return;
    }
    if (!this.#chunked && limit > 0 && this.#bodyRemaining > limit) {
      onEnd(new HttpParseError(413, `client intended to send too large body: ${this.#bodyRemaining} bytes`));
      return;
    }
    let received = 0;
    this.#bodySink = (data) => {
      received += data.length;
      if (limit > 0 && received > limit) {
        this.#finishBody(new HttpParseError(413, `client intended to send too large chunked body: ${received} bytes`));
        return;
      }
      onData(data);
    };
    this.#bodyEnd = onEnd;
    this.#sendContinue();
    setTimeoutOnce(this.connection.socket, this.connection.bodyTimeoutMs);
    this.onInput();
  }

  /**
   * ngx_http_discard_request_body_filter() on what was read with the head: a chunked body the
   * handler does not read is parsed as far as it has arrived, so that an invalid chunk there
   * answers 400 before the response (the rest is discarded after it, as before).
   */
  discardBody(): Error | undefined {
    const chunked = this.#chunked;
    if (chunked === undefined || this.#bodyDone || this.#bodySink !== undefined || this.#bodyEnd !== undefined) return undefined;
    for (;;) {
      const chunk = this.connection.takeInput(Number.MAX_SAFE_INTEGER);
      if (chunk === undefined) return undefined;
      let used: number;
      try {
        used = chunked.push(chunk, 0, undefined);
      } catch (err) {
        this.keepAlive = false;
        this.#bodyDone = true;
        return err as Error;
      }
      this.connection.untakeInput(chunk.subarray(used));
      if (chunked.done) {
        this.#bodyDone = true;
        return undefined;
      }
      if (used < chunk.length) return undefined;
    }
  }

  #continueSent = false;

  /** ngx_http_test_expect(): one `100 Continue` to an HTTP/1.1 `Expect: 100-continue`, before the body is read. */
  #sendContinue(): void {
    if (this.#continueSent || !this.head.expectContinue || this.head.versionMinor !== 1) return;
    this.#continueSent = true;
    this.connection.socket.write('HTTP/1.1 100 Continue\r\n\r\n');
  }

  /** Stops reading the socket while the body is read; TCP holds the client back. */
  pauseBody(): void {
    if (this.#bodyEnd === undefined) return;
    this.#bodyPaused = true;
    this.connection.socket.pause();
  }

  resumeBody(): void {
    if (!this.#bodyPaused) return;
    this.#bodyPaused = false;
    if (this.#bodyEnd !== undefined && this.connection.socket.isPaused()) this.connection.socket.resume();
  }

  /** Set while {@link pauseBody} holds the client: client_body_timeout is not the client's fault then. */
  #bodyPaused = false;

  #finishBody(err: Error | undefined): void {
    const end = this.#bodyEnd;
    this.#bodySink = undefined;
    this.#bodyEnd = undefined;
    if (err === undefined) this.#bodyDone = true;
    else this.keepAlive = false;
    end?.(err);
  }

  /** @internal New bytes arrived while this exchange is current. */
  onInput(): void {
    if (this.#bodyDone) {
      // Pipelined bytes of the next request: hold them; pause reading if they pile up.
      if (!this.finished) this.connection.socket.pause();
      return;
    }
    const sink = this.#bodySink;
    const discarding = this.#responded;
    if (sink === undefined && !discarding) return;
    const deliver = discarding ? undefined : sink;
    for (;;) {
      const chunk = this.connection.takeInput(this.#chunked ? Number.MAX_SAFE_INTEGER : this.#bodyRemaining);
      if (chunk === undefined) return;
      if (this.#chunked) {
        let used: number;
        try {
          used = this.#chunked.push(chunk, 0, deliver);
        } catch (err) {
          this.#finishBody(err as Error);
          return;
        }
        this.connection.untakeInput(chunk.subarray(used));
        if (this.#chunked.done) break;
      } else {
        this.#bodyRemaining -= chunk.length;
        deliver?.(chunk);
        if (this.#bodyRemaining === 0) break;
      }
      if (this.#bodySink === undefined && !discarding) return;
    }
    if (discarding) {
      this.#bodyDone = true;
      this.#complete();
    } else this.#finishBody(undefined);
  }

  #waitingOnClient = false;

  /** @internal The socket's timer fired during this exchange: only a body read or a slow client counts. */
  onTimeout(): void {
    if (this.#bodyEnd !== undefined && this.#bodyPaused) {
      // A fired inactivity timer stays quiet until set again.
      this.connection.socket.setTimeout(this.connection.bodyTimeoutMs);
      return;
    }
    if (this.#bodyEnd !== undefined) {
      this.#finishBody(new HttpParseError(408, 'client timed out'));
      return;
    }
    if (this.#waitingOnClient) this.connection.timedOut();
  }

  /** @internal The client closed the connection. */
  onClientGone(): void {
    if (this.#bodyEnd !== undefined) this.#finishBody(new Error('client closed connection while sending request body'));
    if (this.finished) return;
    this.aborted = true;
    for (const listener of this.#abortListeners.splice(0)) listener();
    this.#runFinish();
  }

  /**
   * Writes the status line and headers. `headers` is flat (`[name, value, ...]`) and must not hold
   * framing or connection headers; `framing` is the body length, `'chunked'` to have writes chunked,
   * `'raw'` when the caller writes an already chunked body, or `'close'` to end it by closing.
   */
  writeHead(status: number, headers: readonly string[], framing: Framing): void {
    if (this.headersSent) throw new Error('response head already sent');
    this.headersSent = true;
    this.status = status;
    this.#noBody = responseHasNoBody(this.head.method, status);
    const connection = this.connection;
    if ((framing === 'chunked' || framing === 'raw') && (this.head.versionMinor === 0 || !this.chunkedAllowed)) {
      // HTTP/1.0, or chunked_transfer_encoding off: the body ends with the connection
      // (ngx_http_chunked_header_filter()); an already chunked one is de-chunked on the way.
      if (framing === 'raw' && !this.#noBody) this.#decoder = new ChunkedParser({ fromUpstream: true });
      framing = 'close';
    }
    if (this.head.http09 === true) {
      // ngx_http_header_filter(): an HTTP/0.9 response is its body alone, ended by the close.
      this.#framing = 'close';
      this.#keepAliveSent = false;
      return;
    }
    const keepAlive = this.keepAlive && connection.mayKeepAlive() && framing !== 'close';
    this.#framing = framing;
    this.#keepAliveSent = keepAlive;
    let head = statusLine(status);
    if (this.ownServerAndDate) {
      const has = (name: string): boolean => headers.some((value, i) => i % 2 === 0 && value.toLowerCase() === name);
      if (this.serverHeader !== '' && !has('server')) head += `Server: ${this.serverHeader}\r\n`;
      if (!has('date')) head += `Date: ${httpDate()}\r\n`;
    } else {
      if (this.serverHeader !== '') head += `Server: ${this.serverHeader}\r\n`;
      head += `Date: ${httpDate()}\r\n`;
    }
    for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
    if (typeof framing === 'number') {
      if (status !== 304 && status !== 204 && status >= 200) head += `Content-Length: ${framing}\r\n`;
    } else if ((framing === 'chunked' || framing === 'raw') && !this.#noBody) {
      head += 'Transfer-Encoding: chunked\r\n';
    }
    if (keepAlive && this.keepaliveHeaderSeconds !== undefined) head += `Keep-Alive: timeout=${this.keepaliveHeaderSeconds}\r\n`;
    if (status >= 200) head += keepAlive ? 'Connection: keep-alive\r\n\r\n' : 'Connection: close\r\n\r\n';
    else head += '\r\n';
    this.bytesSent += head.length;
    // Hold the head until the first piece of body or the end of this tick, so that they leave in
    // one write: one string for a small body, which is cheaper than a writev of head and body.
    this.#pendingHead = head;
    process.nextTick(flushHead, this);
  }

  /** @internal Ends the cork `write` put on the socket for the rest of its tick. */
  uncork(): void {
    if (!this.#corked) return;
    this.#corked = false;
    this.connection.socket.uncork();
  }

  /** @internal Writes the held response head, if any (before anything else goes to the socket). */
  flushHead(): void {
    const head = this.#pendingHead;
    if (head === undefined) return;
    this.#pendingHead = undefined;
    this.connection.socket.write(head, 'latin1');
  }

  /** Writes body bytes; false means the client is slow and `onDrain` should be awaited. */
  write(chunk: Buffer | string): boolean {
    if (this.#noBody || chunk.length === 0) return true;
    const decoder = this.#decoder;
    if (decoder !== undefined) {
      this.#decoder = undefined;
      let ok = true;
      try {
        if (!decoder.done) decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk, 0, (data) => { ok = this.write(data); });
      } catch {
        this.connection.destroy(); // an invalid chunked body from upstream: the response cannot be completed
      }
      this.#decoder = decoder;
      return ok;
    }
    const socket = this.connection.socket;
    const head = this.#pendingHead;
    if (head !== undefined && this.#framing !== 'chunked' && typeof chunk !== 'string' && chunk.length <= SMALL_BODY) {
      // Head and a small first chunk as one latin1 string: one write(2), no WriteWrap array.
      this.#pendingHead = undefined;
      this.bodyBytesSent += chunk.length;
      this.bytesSent += chunk.length;
      const ok = socket.write(head + chunk.toString('latin1'), 'latin1');
      if (!ok) {
        this.#waitingOnClient = true;
        setTimeoutOnce(socket, this.connection.sendTimeoutMs);
      }
      return ok;
    }
    // A chunked body's head, the pieces written in this tick and its end leave in one writev, as
    // Node's http.OutgoingMessage corks its socket until the next tick: a FastCGI response whose
    // STDOUT and END_REQUEST come in one read is then one segment to the client, not three. (A
    // Content-Length body's first piece already goes in one string with the head.)
    if (this.#framing === 'chunked' && !this.#corked) {
      this.#corked = true;
      socket.cork();
      process.nextTick(uncorkExchange, this);
    }
    this.flushHead();
    const size = typeof chunk === 'string' ? Buffer.byteLength(chunk) : chunk.length;
    this.bodyBytesSent += size;
    let ok: boolean;
    if (this.#framing === 'chunked') {
      socket.write(`${size.toString(16)}\r\n`);
      socket.write(chunk);
      ok = socket.write('\r\n');
      this.bytesSent += size + size.toString(16).length + 4;
    } else {
      ok = socket.write(chunk);
      this.bytesSent += size;
    }
    if (!ok) {
      this.#waitingOnClient = true;
      setTimeoutOnce(socket, this.connection.sendTimeoutMs);
    }
    return ok;
  }

  /** Calls `listener` once the client has taken what was written. */
  onDrain(listener: () => void): void {
    this.connection.socket.once('drain', () => {
      this.#waitingOnClient = false;
      listener();
    });
  }

  /**
   * Ends the response, optionally with a last piece of body. `trailers` go in the chunked trailer
   * section (RFC 9112 section 7.1.2); other framings cannot carry them and drop them.
   */
  end(chunk?: Buffer | string, trailers?: readonly string[]): void {
    if (this.finished) return;
    if (chunk !== undefined) this.write(chunk);
    this.flushHead();
    this.finished = true;
    if (this.#framing === 'chunked' && !this.#noBody) {
      let last = '0\r\n';
      for (let i = 0; i < (trailers?.length ?? 0); i += 2) last += `${(trailers as readonly string[])[i]}: ${(trailers as readonly string[])[i + 1]}\r\n`;
      last += '\r\n';
      this.connection.socket.write(last, 'latin1');
      this.bytesSent += last.length;
    }
    this.#responded = true;
    this.#runFinish();
    if (this.#bodyDone || !this.#keepAliveSent) this.#complete();
    else if (this.#bodyEnd === undefined) this.onInput(); // discard the unread body, then go on
  }

  /** ngx_http_early_hints_filter(): `HTTP/1.1 103 Early Hints` and the fields, to an HTTP/1.1 client only. */
  writeEarlyHints(headers: readonly string[]): void {
    if (this.headersSent || this.head.versionMinor !== 1 || headers.length === 0) return;
    let head = 'HTTP/1.1 103 Early Hints\r\n';
    for (let i = 0; i + 1 < headers.length; i += 2) head += `${headers[i] as string}: ${headers[i + 1] as string}\r\n`;
    head += '\r\n';
    this.bytesSent += Buffer.byteLength(head, 'latin1');
    this.connection.socket.write(head, 'latin1');
  }

  /** Sends a whole response: head and body in one write. */
  respond(status: number, headers: readonly string[], body: Buffer | string): void {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    const socket = this.connection.socket;
    socket.cork();
    this.writeHead(status, headers, size);
    this.end(body);
    socket.uncork();
  }

  #complete(): void {
    const connection = this.connection;
    if (connection.socket.isPaused()) connection.socket.resume();
    connection.exchangeDone(this, this.#keepAliveSent && this.keepAlive);
  }
}
