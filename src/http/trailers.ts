/**
 * nginx's `add_trailer` (ngx_http_headers_filter_module.c, ngx_http_trailers_filter()): fields
 * sent after the body, for the statuses add_header takes (every status with `always`). As nginx's
 * chunked filter does for `r->expect_trailers`, an HTTP/1.1 response that will carry trailers is
 * sent chunked even when its length is known; HTTP/2 sends them in a HEADERS frame; HTTP/1.0, a
 * HEAD, 204 and 304 carry none.
 */
import type { Framing, HttpExchange, ResponseOptions } from './exchange.js';
import { ChunkedParser } from './h1/chunked.js';
import type { CompiledHeader } from './generation.js';
import { ADD_HEADER_STATUSES } from './headers-module.js';
import type { HttpRequest } from './request.js';

/** True when one of `trailers` applies to a response of `status` (ngx_http_headers_filter() sets expect_trailers). */
function expectsTrailers(trailers: readonly CompiledHeader[], status: number): boolean {
  const safe = ADD_HEADER_STATUSES.has(status);
  return trailers.some((trailer) => trailer.always || safe);
}

/** The trailer fields for `status`: each applicable one whose value is not empty. */
export function trailerFields(trailers: readonly CompiledHeader[], request: HttpRequest, status: number): string[] {
  const safe = ADD_HEADER_STATUSES.has(status);
  const out: string[] = [];
  // A trailer's value may read those before it ($sent_trailer_name), as nginx's list grows.
  request.sentTrailers = out;
  for (const trailer of trailers) {
    if (!trailer.always && !safe) continue;
    const value = trailer.value(request);
    if (value !== '' && !/[\r\n]/.test(value)) out.push(trailer.name, value);
  }
  return out;
}

/**
 * The exchange a level with `add_trailer` answers through: the head asks for trailers (chunked on
 * HTTP/1.1), and the end sends the level's trailers after any the content handler gives.
 */
export function withTrailers(exchange: HttpExchange, trailers: readonly CompiledHeader[], request: HttpRequest): HttpExchange {
  let status = 0;
  let expected = false;
  // A body passed through already chunked (proxy, HTTP/1.1 upstream) is de-chunked and chunked
  // again, so that the last chunk can carry the trailers, as nginx always re-chunks.
  let decoder: ChunkedParser | undefined;
  const writeHead = (code: number, headers: readonly string[], framing: Framing, options?: ResponseOptions): void => {
    status = code;
    // ngx_http_chunked_header_filter(): no body, no trailers.
    expected = expectsTrailers(trailers, code) && request.method !== 'HEAD' && code >= 200 && code !== 204 && code !== 304;
    if (!expected) {
      exchange.writeHead(code, headers, framing, options);
      return;
    }
    const h2 = exchange.head.versionMajor === 2;
    // HTTP/1.1 with chunked_transfer_encoding on: chunked, the length dropped (ngx_http_clear_content_length()).
    const chunked = !h2 && (typeof framing === 'number' || framing === 'raw') && exchange.head.versionMinor === 1 && exchange.chunkedAllowed;
    if (chunked && framing === 'raw') decoder = new ChunkedParser({ fromUpstream: true });
    exchange.writeHead(code, headers, chunked ? 'chunked' : framing, h2 ? { ...options, trailers: true } : options);
  };
  const write = (chunk: Buffer | string): boolean => {
    if (decoder === undefined) return exchange.write(chunk);
    let ok = true;
    try {
      if (!decoder.done) decoder.push(typeof chunk === 'string' ? Buffer.from(chunk, 'latin1') : chunk, 0, (data) => (ok = exchange.write(data) && ok));
    } catch {
      // An invalid chunked body from upstream: the response cannot be completed.
      exchange.connection.destroy();
    }
    return ok;
  };
  const end = (chunk?: Buffer | string, given?: readonly string[]): void => {
    if (!expected) {
      exchange.end(chunk, given);
      return;
    }
    if (chunk !== undefined) write(chunk);
    exchange.end(undefined, [...(given ?? []), ...trailerFields(trailers, request, status)]);
  };
  const respond = (code: number, headers: readonly string[], body: Buffer | string): void => {
    writeHead(code, headers, typeof body === 'string' ? Buffer.byteLength(body) : body.length);
    end(body);
  };
  const own: Partial<HttpExchange> = { writeHead, write, end, respond };
  // The exchange's own state (keepAlive, headersSent, ...) stays on it: reads and writes go through.
  return new Proxy(exchange, {
    get(target, key, receiver) {
      if (key in own) return own[key as keyof HttpExchange];
      const value: unknown = Reflect.get(target, key);
      void receiver;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
    set(target, key, value) {
      return Reflect.set(target, key, value);
    },
  });
}
