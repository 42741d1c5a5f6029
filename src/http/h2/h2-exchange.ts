/**
 * One HTTP/2 stream as an {@link HttpExchange}: the request's pseudo-header fields mapped onto the
 * request line the handler reads, the response head sent without the connection-specific fields
 * HTTP/2 forbids (RFC 9113 section 8.2.2), and an already chunked body (`'raw'` framing, from an
 * HTTP/1.1 upstream) de-chunked, since HTTP/2 frames bodies itself (RFC 9113 section 8.1).
 */
import type { OutgoingHttpHeaders } from 'node:http2';
import { constants, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { HttpExchange, ProtocolConnection, ResponseOptions } from '../exchange.js';
import { ChunkedParser } from '../h1/chunked.js';
import { HttpParseError } from '../h1/head-parser.js';
import { httpDate, responseHasNoBody } from '../h1/response-head.js';
import type { Framing } from '../exchange.js';
import type { RequestLine } from '../request.js';
import { DEFAULT_CHUNK_SIZE } from '../v2-module.js';

/** What an exchange needs of its session. */
export interface H2Session extends ProtocolConnection {
  /** The `Server` header's value; empty sends none. */
  readonly serverHeader: string;
  /** `client_body_timeout`, in ms. */
  readonly bodyTimeoutMs: number;
  /** `send_timeout`, in ms. */
  readonly sendTimeoutMs: number;
  /** When the connection was accepted: `$connection_time` and keepalive_time count from it, not from the stream. */
  readonly startedAt: number;
  /** A request body is being read: the stream's receive window must let it come (http2_body_preread_size). */
  openBodyWindow(): void;
}

/** Connection-specific fields a response must not carry in HTTP/2 (RFC 9113 section 8.2.2). */
const CONNECTION_SPECIFIC = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/** An HTTP/2 request head: HTTP/1.1's shape, `versionMajor` 2. */
export interface H2RequestLine extends RequestLine {
  readonly versionMajor: 2;
  /** The declared body length (`content-length`), or -1. */
  readonly contentLength: number;
  /** The fields `max_headers` counts (ngx_http_v2_state_process_header()): neither pseudo-headers nor cookie crumbs. */
  readonly counted: number;
  /** The header block's bytes on the wire, HPACK-encoded, as `$request_length` counts them; known only where it is in use. */
  readonly headBytes?: number;
}

/**
 * Maps a request's raw header list onto a request line. `:authority` becomes a leading `Host` (a
 * `host` field is then dropped, RFC 9113 section 8.3.1); `cookie` crumbs are joined with `; ` before
 * they go anywhere HTTP/1 (RFC 9113 section 8.2.3, ngx_http_v2_construct_cookie_header).
 */
export function requestLineOf(raw: readonly string[], headBytes?: number): H2RequestLine {
  let method = '';
  let target = '';
  let authority: string | undefined;
  let cookie: string | undefined;
  let contentLength = -1;
  let counted = 0;
  const headers: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i] as string;
    const value = raw[i + 1] as string;
    if (name.charCodeAt(0) === 0x3a) {
      if (name === ':method') method = value;
      else if (name === ':path') target = value;
      else if (name === ':authority') authority = value;
      continue;
    }
    if (name === 'cookie') {
      cookie = cookie === undefined ? value : `${cookie}; ${value}`;
      continue;
    }
    counted++;
    if (name === 'host' && authority !== undefined) continue;
    if (name === 'content-length') contentLength = /^\d{1,15}$/.test(value) ? Number(value) : -1;
    headers.push(name, value);
  }
  if (authority !== undefined) {
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === 'host') headers.splice(i, 2);
    headers.unshift('host', authority);
  }
  if (cookie !== undefined) headers.push('cookie', cookie);
  const head = { method, target, versionMinor: 1, versionMajor: 2, headers, contentLength, counted } as const;
  return headBytes === undefined ? head : { ...head, headBytes };
}

const CUT_SHORT = new Error('the response was cut short');

/**
 * RST_STREAM(INTERNAL_ERROR) at once. Not `Http2Stream.close(code)`: it first ends the writable
 * side, an empty DATA frame with END_STREAM, which tells the client that a response cut short is
 * whole (curl exits 0). `destroy(err)` resets without ending: Node's Http2Stream._destroy() sends
 * INTERNAL_ERROR for an error; the stream's 'error' listener takes it.
 */
function resetStream(stream: ServerHttp2Stream): void {
  if (!stream.destroyed) stream.destroy(CUT_SHORT);
}

/**
 * The connection as one stream sees it: everything is the session's except {@link destroy}, which
 * resets only this stream. The handler and the proxy call `destroy()` to cut a response short
 * (`return 444`, an upstream failing mid-body); nginx resets the stream then, not the connection
 * (ngx_http_v2_close_stream sends RST_STREAM with INTERNAL_ERROR).
 */
export class H2StreamConnection implements ProtocolConnection {
  readonly #session: H2Session;
  readonly #stream: ServerHttp2Stream;

  constructor(session: H2Session, stream: ServerHttp2Stream) {
    this.#session = session;
    this.#stream = stream;
  }

  get id(): number {
    return this.#session.id;
  }

  get requests(): number {
    return this.#session.requests;
  }

  get startedAt(): number {
    return this.#session.startedAt;
  }

  get socket(): Socket {
    return this.#session.socket;
  }

  drain(graceMs: number): void {
    this.#session.drain(graceMs);
  }

  /** Resets the stream (RST_STREAM INTERNAL_ERROR, never END_STREAM); the session's other streams go on. */
  destroy(): void {
    resetStream(this.#stream);
  }

  onClose(listener: () => void): void {
    this.#session.onClose(listener);
  }
}

/** One request and its response on an HTTP/2 stream. */
export class H2Exchange implements HttpExchange {
  readonly head: H2RequestLine;
  readonly connection: H2StreamConnection;
  readonly stream: ServerHttp2Stream;
  readonly #session: H2Session;
  /** The status sent, once the head is written. */
  status = 0;
  bodyBytesSent = 0;
  headersSent = false;
  aborted = false;
  finished = false;
  /** HTTP/2 has no per-request keep-alive: the session lives on; kept for the interface. */
  keepAlive = true;
  keepaliveTimeoutMs = 0;
  keepaliveHeaderSeconds: number | undefined;
  ownServerAndDate = false;
  /** Set from the session's default, then by the answering level (server_tokens). */
  serverHeader: string;
  /** HTTP/2 frames bodies itself; kept for the interface. */
  chunkedAllowed = true;
  /** `http2_chunk_size`, set by the answering level. */
  dataFrameSize = DEFAULT_CHUNK_SIZE;
  /** Body slices not yet handed to node:http2, when frames must be smaller than it would cut them (see #send). */
  #slices: Buffer[] = [];
  #sliceBytes = 0;
  /** A slice is with node:http2 and its write has not completed. */
  #sliceInFlight = false;
  /** end() came while slices waited: the last one ends the stream. */
  #endAfterSlices = false;
  #drainListeners: (() => void)[] = [];
  #noBody = false;
  /** Set when the head asked for trailers: node:http2 holds END_STREAM until they are sent. */
  #waitsForTrailers = false;
  #trailers: OutgoingHttpHeaders | undefined;
  #decoder: ChunkedParser | undefined;
  /** The request body: 'unread' until asked for, 'reading', then 'done' (read, discarded or failed). */
  #body: 'unread' | 'reading' | 'done';
  #bodyEnd: ((err: Error | undefined) => void) | undefined;
  /** client_body_timeout while the body is read, send_timeout while a write waits for the client. */
  #bodyTimer: NodeJS.Timeout | undefined;
  #sendTimer: NodeJS.Timeout | undefined;
  /** Bytes waiting at the last write or check, to tell a slow client from a stalled one. */
  #sendMark = 0;
  /** The body was given up on (413, 408): once the response is out, the rest is refused. */
  #bodyAbandoned = false;
  #abortListeners: (() => void)[] = [];
  #finishListeners: (() => void)[] = [];

  /** `endStream`: the HEADERS frame ended the stream, so there is no body. */
  constructor(session: H2Session, stream: ServerHttp2Stream, head: H2RequestLine, endStream: boolean) {
    this.#session = session;
    this.stream = stream;
    this.head = head;
    this.serverHeader = session.serverHeader;
    this.connection = new H2StreamConnection(session, stream);
    this.#body = endStream ? 'done' : 'unread';
    stream.on('error', ignore); // a reset stream ends in 'close', handled there
  }

  /** The stream closed: its session calls this from its one 'close' listener of the stream. */
  streamClosed(): void {
    this.#onClose();
  }

  get hasBody(): boolean {
    return this.#body !== 'done';
  }

  /** Bytes written but not yet taken by the session (flow control, the socket). */
  get pendingBytes(): number {
    return this.stream.writableLength + this.#sliceBytes;
  }

  onAbort(listener: () => void): void {
    this.#abortListeners.push(listener);
  }

  onFinish(listener: () => void): void {
    this.#finishListeners.push(listener);
  }

  /** Reads the request body; a body over `limit` bytes (0: no limit) ends with an HttpParseError of status 413. */
  readBody(limit: number, onData: (data: Buffer) => void, onEnd: (err: Error | undefined) => void): void {
    if (this.#body !== 'unread') {
      onEnd(undefined);
      return;
    }
    if (limit > 0 && this.head.contentLength > limit) {
      this.#failBody(onEnd, new HttpParseError(413, `client intended to send too large body: ${this.head.contentLength} bytes`));
      return;
    }
    this.#body = 'reading';
    this.#bodyEnd = onEnd;
    this.#session.openBodyWindow();
    let received = 0;
    const stream = this.stream;
    if (stream.readableEnded) {
      // An empty body's END_STREAM came and went while nobody read (limit_req delayed the
      // request): 'end' will not be emitted again.
      this.#body = 'done';
      this.#bodyEnd = undefined;
      onEnd(undefined);
      return;
    }
    this.#armBodyTimer();
    stream.on('data', (chunk: Buffer) => {
      if (this.#body !== 'reading') return;
      this.#armBodyTimer();
      received += chunk.length;
      if (limit > 0 && received > limit) {
        this.#bodyEnd = undefined;
        this.#failBody(onEnd, new HttpParseError(413, `client intended to send too large body: ${received} bytes`));
        return;
      }
      onData(chunk);
    });
    stream.once('end', () => {
      if (this.#body !== 'reading') return;
      this.#clearBodyTimer();
      this.#body = 'done';
      this.#bodyEnd = undefined;
      onEnd(undefined);
    });
  }

  /**
   * client_body_timeout: between two reads, not for the whole body. Paused reading (back-pressure
   * from an upstream) does not count against the client, as nginx only times a read it waits for.
   */
  #armBodyTimer(): void {
    this.#clearBodyTimer();
    this.#bodyTimer = setTimeout(() => {
      this.#bodyTimer = undefined;
      if (this.#body !== 'reading') return;
      if (this.stream.isPaused()) {
        this.#armBodyTimer();
        return;
      }
      const onEnd = this.#bodyEnd;
      this.#bodyEnd = undefined;
      // ngx_http_v2_read_client_request_body_handler(): 408, and the rest of the body is skipped.
      if (onEnd !== undefined) this.#failBody(onEnd, new HttpParseError(408, 'client timed out'));
    }, this.#session.bodyTimeoutMs);
    this.#bodyTimer.unref();
  }

  #clearBodyTimer(): void {
    if (this.#bodyTimer === undefined) return;
    clearTimeout(this.#bodyTimer);
    this.#bodyTimer = undefined;
  }

  /** Stops taking body bytes until {@link resumeBody}: flow control then holds the client back. */
  pauseBody(): void {
    if (this.#body === 'reading') this.stream.pause();
  }

  resumeBody(): void {
    if (this.#body === 'reading') this.stream.resume();
  }

  /** Gives up on the body; the rest is discarded so that the stream can close (flow control would stall it). */
  #failBody(onEnd: (err: Error | undefined) => void, err: Error): void {
    this.#clearBodyTimer();
    this.#body = 'done';
    this.#bodyAbandoned = true;
    this.#discard();
    onEnd(err);
  }

  #discard(): void {
    const stream = this.stream;
    stream.removeAllListeners('data');
    stream.on('data', () => undefined);
    stream.resume();
  }

  /** Sends the response head: `framing` only decides whether an already chunked body is de-chunked. */
  writeHead(status: number, headers: readonly string[], framing: Framing, options?: ResponseOptions): void {
    if (this.headersSent) throw new Error('response head already sent');
    this.headersSent = true;
    this.status = status;
    this.#noBody = responseHasNoBody(this.head.method, status) || options?.endStream === true;
    const out: OutgoingHttpHeaders = { ':status': status };
    const serverHeader = this.serverHeader;
    const own = this.ownServerAndDate;
    for (let i = 0; i < headers.length; i += 2) {
      const name = (headers[i] as string).toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const value = headers[i + 1] as string;
      const seen = out[name];
      if (seen === undefined) out[name] = value;
      else if (Array.isArray(seen)) seen.push(value);
      else out[name] = [String(seen), value];
    }
    if (serverHeader !== '' && (!own || out.server === undefined)) out.server = serverHeader;
    if (!own || out.date === undefined) out.date = httpDate();
    if (typeof framing === 'number' && status >= 200 && status !== 204 && status !== 304) out['content-length'] = framing;
    if (framing === 'raw' && !this.#noBody) this.#decoder = new ChunkedParser({ fromUpstream: true });
    if (this.stream.destroyed) return;
    const waitForTrailers = options?.trailers === true && !this.#noBody;
    if (waitForTrailers) {
      this.#waitsForTrailers = true;
      // Called once the last DATA frame is out; the trailers end the stream (RFC 9113 section 8.1).
      this.stream.once('wantTrailers', () => this.stream.sendTrailers(this.#trailers ?? {}));
    }
    try {
      this.stream.respond(out, { endStream: this.#noBody, waitForTrailers });
    } catch (err) {
      // node:http2 refuses a repeated single-value field (ERR_HTTP2_HEADER_SINGLE_VALUE): keep the first.
      if ((err as NodeJS.ErrnoException).code !== 'ERR_HTTP2_HEADER_SINGLE_VALUE') throw err;
      for (const [name, value] of Object.entries(out)) if (Array.isArray(value) && name !== 'set-cookie') out[name] = value[0];
      this.stream.respond(out, { endStream: this.#noBody, waitForTrailers });
    }
  }

  /** Writes body bytes; false means the client is slow and `onDrain` should be awaited. */
  write(chunk: Buffer | string): boolean {
    if (this.#noBody || chunk.length === 0 || this.stream.destroyed) return true;
    const decoder = this.#decoder;
    if (decoder === undefined) {
      const data = typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk;
      this.bodyBytesSent += data.length;
      return this.#waitIfFull(this.#send(data));
    }
    if (decoder.done) return true;
    let ok = true;
    try {
      decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk, 0, (data) => {
        this.bodyBytesSent += data.length;
        ok = this.#send(data);
      });
    } catch {
      this.connection.destroy(); // an invalid chunked body from upstream: the response cannot be completed
      return true;
    }
    return this.#waitIfFull(ok);
  }

  /**
   * http2_chunk_size. nghttp2 fills each DATA frame with all the bytes queued on the stream, up to
   * the peer's SETTINGS_MAX_FRAME_SIZE and the windows; node:http2 has no option for a smaller
   * frame (nghttp2's data_source_read_length_callback is not exposed). So when the chunk size is
   * below the frame size, the body is handed over one slice of that size at a time, the next once
   * the previous one's write completed (it is on the socket then, in a frame of its own), as
   * ngx_http_v2_send_chain() cuts frames of chunk_size. The last slice carries END_STREAM.
   */
  #send(data: Buffer): boolean {
    const stream = this.stream;
    const size = this.dataFrameSize;
    // nghttp2 cuts DATA at 16384 whatever the peer allows (NGHTTP2_DATA_PAYLOADLEN: node:http2 sets no read_length_callback).
    const frameSize = Math.min(stream.session?.remoteSettings.maxFrameSize ?? 16_384, 16_384);
    if (!this.#sliceInFlight && this.#slices.length === 0 && (size >= frameSize || data.length <= size)) {
      if (size >= frameSize) return stream.write(data);
      this.#writeSlice(data);
      return true;
    }
    for (let at = 0; at < data.length; at += size) this.#slices.push(data.subarray(at, at + size));
    this.#sliceBytes += data.length;
    if (!this.#sliceInFlight) this.#nextSlice();
    return this.#sliceBytes < stream.writableHighWaterMark;
  }

  #writeSlice(slice: Buffer): void {
    this.#sliceInFlight = true;
    this.stream.write(slice, (err) => {
      this.#sliceInFlight = false;
      if (err === undefined || err === null) this.#nextSlice();
    });
  }

  #nextSlice(): void {
    const stream = this.stream;
    if (stream.destroyed) {
      this.#slices = [];
      this.#sliceBytes = 0;
      return;
    }
    const slice = this.#slices.shift();
    if (slice === undefined) {
      if (this.#endAfterSlices) {
        this.#endAfterSlices = false;
        if (!stream.writableEnded) stream.end();
      }
      for (const listener of this.#drainListeners.splice(0)) listener();
      return;
    }
    this.#sliceBytes -= slice.length;
    if (this.#endAfterSlices && this.#slices.length === 0) {
      // Node shuts the stream right after a last chunk written by end(): END_STREAM on its frame.
      this.#endAfterSlices = false;
      stream.end(slice);
      for (const listener of this.#drainListeners.splice(0)) listener();
      return;
    }
    this.#writeSlice(slice);
  }

  /** True while body slices wait for their turn or one is being written. */
  get #slicing(): boolean {
    return this.#sliceInFlight || this.#slices.length > 0;
  }

  /**
   * send_timeout: a stream whose writes the client does not take (its flow-control window stays
   * shut, or the socket is full) is reset once no drain came within the timeout, as nginx closes a
   * stream whose write timed out (ngx_http_v2_close_stream(): RST_STREAM); the session goes on.
   */
  #waitIfFull(flushed: boolean): boolean {
    if (flushed) return true;
    this.#sendMark = this.pendingBytes;
    if (this.#sendTimer !== undefined) return false;
    this.onDrain(() => {
      clearTimeout(this.#sendTimer);
      this.#sendTimer = undefined;
    });
    this.#armSendTimer();
    return false;
  }

  #armSendTimer(): void {
    this.#sendTimer = setTimeout(() => {
      this.#sendTimer = undefined;
      const pending = this.pendingBytes;
      if (this.stream.destroyed || pending === 0) return;
      // Progress without a drain (none comes after end()): the client is slow, not stalled.
      if (pending < this.#sendMark) {
        this.#sendMark = pending;
        this.#armSendTimer();
        return;
      }
      if (!this.stream.closed) resetStream(this.stream);
    }, this.#session.sendTimeoutMs);
    this.#sendTimer.unref();
  }

  onDrain(listener: () => void): void {
    if (this.#slicing) this.#drainListeners.push(listener);
    else this.stream.once('drain', listener);
  }

  /** Ends the response (END_STREAM, on the trailers when the head asked for them); an unread request body is discarded. */
  end(chunk?: Buffer | string, trailers?: readonly string[]): void {
    if (this.finished) return;
    if (chunk !== undefined) this.write(chunk);
    this.finished = true;
    if (this.#waitsForTrailers && trailers !== undefined) this.#trailers = trailerFields(trailers);
    const stream = this.stream;
    if (this.#bodyAbandoned || this.#body === 'unread') {
      // RFC 9113 section 8.1: after a complete response, RST_STREAM(NO_ERROR) asks the client to stop
      // sending the body, as ngx_http_v2_close_stream() does for a stream still open for input
      // (a body given up on, or one the handler never read: a static file, a return).
      stream.once('finish', () => {
        if (!stream.closed && !stream.readableEnded) stream.close(constants.NGHTTP2_NO_ERROR);
      });
    }
    // Slices waiting: the last one ends the stream. Only one in flight: Node still puts END_STREAM
    // on its frame when end() comes in the same tick.
    if (this.#slices.length > 0) this.#endAfterSlices = true;
    else if (!stream.destroyed && !stream.writableEnded) stream.end();
    if (this.#body === 'unread') {
      this.#body = 'done';
      this.#discard();
    }
    // The request lasts until its response is out, as nginx frees an HTTP/2 request only once the
    // stream's queued frames were sent (ngx_http_v2_close_stream()): a limit_conn slot is held, and
    // the log line written, while flow control holds the rest of the body back.
    if (stream.destroyed || stream.writableFinished) this.#runFinish();
    else stream.on('finish', () => this.#runFinish()); // 'finish' comes once: no once() wrapper
  }

  /** ngx_http_v2_early_hints_filter(): a HEADERS frame with `:status 103` and the fields. */
  writeEarlyHints(headers: readonly string[]): void {
    if (this.headersSent || this.stream.destroyed || headers.length === 0) return;
    const out: OutgoingHttpHeaders = { ':status': 103 };
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = (headers[i] as string).toLowerCase();
      if (CONNECTION_SPECIFIC.has(name)) continue;
      const seen = out[name];
      const value = headers[i + 1] as string;
      if (seen === undefined) out[name] = value;
      else if (Array.isArray(seen)) seen.push(value);
      else out[name] = [String(seen), value];
    }
    this.stream.additionalHeaders(out);
  }

  /** Sends a whole response: head and body. */
  respond(status: number, headers: readonly string[], body: Buffer | string): void {
    const size = typeof body === 'string' ? Buffer.byteLength(body) : body.length;
    this.writeHead(status, headers, size);
    this.end(body);
  }

  #runFinish(): void {
    const listeners = this.#finishListeners;
    if (listeners.length === 0) return;
    this.#finishListeners = [];
    for (const listener of listeners) listener();
  }

  /** The stream closed: normally after END_STREAM both ways, else the client reset it or the session went away. */
  /** The connection is closing at once: the request ends as the stream's close would end it. */
  abort(): void {
    this.#onClose();
  }

  #onClose(): void {
    this.#clearBodyTimer();
    clearTimeout(this.#sendTimer);
    this.#sendTimer = undefined;
    const end = this.#bodyEnd;
    this.#bodyEnd = undefined;
    if (end !== undefined && this.#body === 'reading') {
      this.#body = 'done';
      end(new Error('client prematurely closed stream'));
    }
    if (this.finished) {
      this.#runFinish();
      return;
    }
    this.finished = true;
    this.aborted = true;
    for (const listener of this.#abortListeners.splice(0)) listener();
    this.#runFinish();
  }
}

/** The 'error' listener of a stream whose failure ends in its 'close'. */
function ignore(): void {}

/** Trailer fields for node:http2: lowercased, without pseudo-headers or connection-specific ones, repeats joined in a list. */
function trailerFields(trailers: readonly string[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (let i = 0; i < trailers.length; i += 2) {
    const name = (trailers[i] as string).toLowerCase();
    if (name.charCodeAt(0) === 0x3a || CONNECTION_SPECIFIC.has(name)) continue;
    const value = trailers[i + 1] as string;
    const seen = out[name];
    if (seen === undefined) out[name] = value;
    else if (Array.isArray(seen)) seen.push(value);
    else out[name] = [String(seen), value];
  }
  return out;
}
