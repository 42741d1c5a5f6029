/**
 * The output filter chain, nginx's `ngx_http_top_header_filter` / `ngx_http_top_body_filter`: an
 * {@link HttpExchange} that every content handler (return and error pages, static files, proxy,
 * grpc) writes its response to. Its `writeHead` lets each filter of the answering level change the
 * status, headers and framing and put a transform on the body (gzip, charset); `write`/`end` pass
 * the body through those transforms, and the client's back-pressure travels back through them to
 * the handler (a transform's buffer fills, `write` returns false, the handler waits on `onDrain`).
 */
import { Transform, type TransformCallback } from 'node:stream';
import type { Framing, HttpExchange, ProtocolConnection, ResponseOptions } from './exchange.js';
import { ChunkedParser } from './h1/chunked.js';
import type { HttpRequest } from './request.js';
import { pacerFor, type LimitRate } from './limit-rate.js';
import type { RequestLine } from './request.js';

/** The response head as the filters see it, before it goes out; a filter may change any of it. */
export interface FilterHead {
  status: number;
  /** Flat name/value pairs; a filter edits the array in place. */
  readonly headers: string[];
  /** A number is a known Content-Length; a filter that changes the body's length sets `'chunked'`. */
  framing: Framing;
  /**
   * The response has no body (204, 304, 1xx): nginx's `r->header_only` as the filters see it. A
   * HEAD response is not header-only here: nginx sets that for HEAD in ngx_http_header_filter(),
   * after gzip and charset, which therefore change a HEAD response's headers as a GET's.
   */
  readonly headerOnly: boolean;
  /** Last-Modified is a file's time (nginx's `last_modified_time`, not a header `ngx_http_gzip_ok()` sees). */
  readonly fileTime: boolean;
  /** The upstream's X-Accel-Charset (nginx's `override_charset`): the charset the charset filter sends instead. */
  readonly overrideCharset: string | undefined;
}

/** One output filter of a level (compiled from its directives). */
export interface OutputFilter {
  /** nginx's module name, for diagnostics. */
  readonly name: string;
  /**
   * The header filter: may edit `head`; returns a transform for the body, or undefined to pass it
   * as it is. Throwing is nginx's NGX_ERROR from a header filter: the connection is closed.
   */
  header(head: FilterHead, request: HttpRequest): Transform | undefined;
  /** Whether {@link header} would re-encode this response, asked before a content handler cuts ranges; it changes nothing. */
  encodes?(head: FilterHead, request: HttpRequest): boolean;
}

/** A level with no filters. */
export const NO_FILTERS: readonly OutputFilter[] = Object.freeze([]);

/** The first value of response header `name` (lowercase) in flat pairs, or undefined. */
export function headerOf(headers: readonly string[], name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === name) return headers[i + 1];
  }
  return undefined;
}

/** Removes every response header `name` (lowercase) from flat pairs. */
export function removeHeader(headers: string[], name: string): void {
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if ((headers[i] as string).toLowerCase() === name) headers.splice(i, 2);
  }
}

/** An already chunked upstream body ('raw' framing) unchunked, so that a filter sees the payload. */
function dechunk(): Transform {
  const parser = new ChunkedParser({ fromUpstream: true });
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (parser.done) {
        callback();
        return;
      }
      try {
        parser.push(chunk, 0, (data) => this.push(data));
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

/** The exchange handlers write to: the protocol's exchange behind the level's filters. */
export class FilteredExchange implements HttpExchange {
  readonly #inner: HttpExchange;
  readonly #request: HttpRequest;
  /** The filters of the level that answers; the handler sets them with the level's other settings. */
  filters: readonly OutputFilter[] = NO_FILTERS;
  /** The answering level's limit_rate and limit_rate_after: the write filter, after every other. */
  limitRate: LimitRate | undefined = undefined;
  /** Where the body goes in, when a filter transforms it; undefined passes writes straight through. */
  #first: Transform | undefined;
  #last: Transform | undefined;
  #trailers: readonly string[] | undefined;
  #sentHeaders: readonly string[] | undefined;

  constructor(inner: HttpExchange, request: HttpRequest) {
    this.#inner = inner;
    this.#request = request;
  }

  get head(): RequestLine {
    return this.#inner.head;
  }
  get connection(): ProtocolConnection {
    return this.#inner.connection;
  }
  get headersSent(): boolean {
    return this.#inner.headersSent;
  }
  get aborted(): boolean {
    return this.#inner.aborted;
  }
  /** The bytes on the wire (compressed), as nginx's `$body_bytes_sent`. */
  get bodyBytesSent(): number {
    return this.#inner.bodyBytesSent;
  }
  get hasBody(): boolean {
    return this.#inner.hasBody;
  }
  get pipelined(): boolean {
    return this.#inner.pipelined === true;
  }
  get keepAlive(): boolean {
    return this.#inner.keepAlive;
  }
  set keepAlive(value: boolean) {
    this.#inner.keepAlive = value;
  }
  get keepaliveTimeoutMs(): number {
    return this.#inner.keepaliveTimeoutMs;
  }
  set keepaliveTimeoutMs(value: number) {
    this.#inner.keepaliveTimeoutMs = value;
  }
  get keepaliveHeaderSeconds(): number | undefined {
    return this.#inner.keepaliveHeaderSeconds;
  }
  set keepaliveHeaderSeconds(value: number | undefined) {
    this.#inner.keepaliveHeaderSeconds = value;
  }
  get ownServerAndDate(): boolean {
    return this.#inner.ownServerAndDate;
  }
  set ownServerAndDate(value: boolean) {
    this.#inner.ownServerAndDate = value;
  }
  get serverHeader(): string {
    return this.#inner.serverHeader;
  }
  set serverHeader(value: string) {
    this.#inner.serverHeader = value;
  }
  get chunkedAllowed(): boolean {
    return this.#inner.chunkedAllowed;
  }
  set chunkedAllowed(value: boolean) {
    this.#inner.chunkedAllowed = value;
  }
  get dataFrameSize(): number {
    return this.#inner.dataFrameSize;
  }
  set dataFrameSize(value: number) {
    this.#inner.dataFrameSize = value;
  }
  /** The response headers as the level's filters left them (undefined when no filter saw them: as written). */
  get sentHeaders(): readonly string[] | undefined {
    return this.#sentHeaders;
  }
  /** What the client has not taken yet, the bytes waiting inside the filters included. */
  get pendingBytes(): number {
    const first = this.#first;
    if (first === undefined) return this.#inner.pendingBytes;
    return this.#inner.pendingBytes + first.writableLength + (this.#last?.readableLength ?? 0);
  }

  readBody(limit: number, onData: (data: Buffer) => void, onEnd: (err: Error | undefined) => void): void {
    this.#inner.readBody(limit, onData, onEnd);
  }
  pauseBody(): void {
    this.#inner.pauseBody();
  }
  resumeBody(): void {
    this.#inner.resumeBody();
  }

  /** The header filters of the level, then the protocol's head. */
  writeHead(status: number, headers: readonly string[], framing: Framing, options?: ResponseOptions): void {
    const pacer = options?.endStream === true ? undefined : pacerFor(this.#request, this.limitRate);
    if ((this.filters.length === 0 && pacer === undefined) || options?.endStream === true) {
      this.#inner.writeHead(status, headers, framing, options);
      return;
    }
    // A range cut from a 200 by the content handler: nginx's range filter runs after the others, which saw the 200.
    const ranged = options?.rangedFrom;
    const head: FilterHead = { status: ranged === undefined ? status : 200, headers: [...headers], framing: ranged ?? framing, headerOnly: status === 204 || status === 304 || status < 200, fileTime: options?.fileTime === true, overrideCharset: options?.overrideCharset };
    const transforms: Transform[] = [];
    try {
      for (const filter of this.filters) {
        const transform = filter.header(head, this.#request);
        if (transform !== undefined) transforms.push(transform);
      }
    } catch {
      for (const transform of transforms) transform.destroy();
      this.#inner.connection.destroy();
      return;
    }
    if (ranged !== undefined) {
      head.status = status;
      head.framing = framing;
    }
    this.#sentHeaders = head.headers;
    if (transforms.length > 0 && framing === 'raw') transforms.unshift(dechunk());
    // Paced last, as nginx's write filter is: the bytes as they go to the client (a raw chunked body as it is).
    if (pacer !== undefined) transforms.push(pacer);
    this.#inner.writeHead(head.status, head.headers, head.framing, options);
    if (transforms.length === 0) return;
    // HEAD: the head is the filtered one, and there is no body to transform.
    if (this.#inner.head.method === 'HEAD') for (const transform of transforms) transform.destroy();
    else this.#pipe(transforms);
  }

  /** Links the transforms and drains the last one into the protocol, paused while the client is slow. */
  #pipe(transforms: Transform[]): void {
    const first = transforms[0] as Transform;
    let last = first;
    for (const next of transforms.slice(1)) {
      last.on('error', (err) => next.destroy(err));
      last = last.pipe(next);
    }
    this.#first = first;
    this.#last = last;
    const inner = this.#inner;
    last.on('data', (data: Buffer) => {
      if (data.length === 0 || inner.write(data)) return;
      last.pause();
      inner.onDrain(() => last.resume());
    });
    last.once('end', () => inner.end(undefined, this.#trailers));
    // A broken transform (an invalid chunked body from upstream, zlib failing) cannot complete the response.
    last.once('error', () => inner.connection.destroy());
    inner.onAbort(() => {
      for (const transform of transforms) transform.destroy();
    });
  }

  write(chunk: Buffer | string): boolean {
    const first = this.#first;
    if (first === undefined) return this.#inner.write(chunk);
    if (first.destroyed || chunk.length === 0) return true;
    return first.write(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  }

  onDrain(listener: () => void): void {
    const first = this.#first;
    if (first === undefined) this.#inner.onDrain(listener);
    else if (first.writableNeedDrain) first.once('drain', listener);
    else queueMicrotask(listener);
  }

  end(chunk?: Buffer | string, trailers?: readonly string[]): void {
    const first = this.#first;
    if (first === undefined) {
      this.#inner.end(chunk, trailers);
      return;
    }
    this.#trailers = trailers;
    if (first.destroyed || first.writableEnded) return;
    if (chunk === undefined || chunk.length === 0) first.end();
    else first.end(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk);
  }

  writeEarlyHints(headers: readonly string[]): void {
    this.#inner.writeEarlyHints?.(headers);
  }

  discardBody(): Error | undefined {
    return this.#inner.discardBody?.();
  }

  respond(status: number, headers: readonly string[], body: Buffer | string): void {
    if (this.filters.length === 0 && this.limitRate === undefined && this.#request.limitRate === undefined) {
      this.#inner.respond(status, headers, body);
      return;
    }
    this.writeHead(status, headers, typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    this.end(body);
  }

  onAbort(listener: () => void): void {
    this.#inner.onAbort(listener);
  }
  onFinish(listener: () => void): void {
    this.#inner.onFinish(listener);
  }
}
