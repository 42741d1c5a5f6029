/**
 * One request to an upstream over HTTP/1.x and the reading of its response: the client half of
 * the proxy's fast path. Body bytes are handed on as they arrive (a chunked body keeps its framing,
 * so it can be passed through untouched), and the connection is reported reusable only when the
 * response was read to its exact end.
 */
import { ChunkedParser } from './chunked.js';
import { DEFAULT_HEAD_LIMITS, HttpParseError, parseResponseHead, type HeadLimits, type ResponseHead } from './head-parser.js';
import type { UpstreamConnection } from '../../upstream/connection-pool.js';
import { setTimeoutOnce } from '../../core/socket-timeout.js';
import { errnoText } from '../../core/errno.js';

// Defined with the upstream cycle, which every protocol's exchange reports to; re-exported for the http callers.
import { UpstreamFailure, type UpstreamFailurePhase } from '../../upstream/upstream-failure.js';

export { UpstreamFailure, type UpstreamFailurePhase };

/** What the proxy does with each part of the response. */
export interface UpstreamResponseHandlers {
  /** The final response head (1xx other than 101 are skipped); `rest` holds the body bytes already read. */
  onHead(head: ResponseHead): void;
  /** A 103 Early Hints before the response head. */
  onEarlyHints?(head: ResponseHead): void;
  /** Body bytes, chunked framing included when the response is chunked. */
  onData(chunk: Buffer): void;
  /** The response ended; `reusable` when the connection may carry another request. */
  onEnd(reusable: boolean): void;
  onError(failure: UpstreamFailure): void;
}

/** Timeouts of one exchange: `proxy_send_timeout` and `proxy_read_timeout`. */
export interface UpstreamTimeouts {
  readonly sendTimeoutMs: number;
  readonly readTimeoutMs: number;
  readonly limits?: HeadLimits;
}

const enum Phase {
  Sending,
  Head,
  Body,
  Done,
}

/** Runs one request/response on an upstream connection. */
export class UpstreamExchange {
  readonly connection: UpstreamConnection;
  readonly #handlers: UpstreamResponseHandlers;
  readonly #method: string;
  readonly #timeouts: UpstreamTimeouts;
  #phase = Phase.Sending;
  #buf: Buffer | undefined;
  #head: ResponseHead | undefined;
  #remaining = -1;
  #chunked: ChunkedParser | undefined;
  #untilClose = false;
  #gotBytes = false;

  constructor(connection: UpstreamConnection, method: string, handlers: UpstreamResponseHandlers, timeouts: UpstreamTimeouts) {
    this.connection = connection;
    this.#method = method;
    this.#handlers = handlers;
    this.#timeouts = timeouts;
    connection.requests++;
    connection.owner = {
      onData: (chunk) => this.#receive(chunk),
      onGone: (err, why) => (why === 'timeout' ? this.#timedOut() : this.#closed(err)),
    };
  }

  /** The response head, once received. */
  get head(): ResponseHead | undefined {
    return this.#head;
  }

  /** Writes the request head and body; the response is read as it comes. */
  send(head: string, body: readonly Buffer[] | undefined): void {
    const socket = this.connection.socket;
    socket.cork();
    socket.write(head, 'latin1');
    let flushed = true;
    for (const piece of body ?? []) flushed = socket.write(piece);
    socket.uncork();
    const waitForResponse = (): void => {
      if (this.#phase === Phase.Sending) this.#phase = Phase.Head;
      setTimeoutOnce(socket, this.#timeouts.readTimeoutMs);
    };
    if (flushed) waitForResponse();
    else {
      setTimeoutOnce(socket, this.#timeouts.sendTimeoutMs);
      socket.once('drain', waitForResponse);
    }
  }

  /** Stops reading (the client is slow); {@link resume} starts again. */
  pause(): void {
    this.connection.socket.pause();
  }

  resume(): void {
    this.connection.socket.resume();
  }

  /** Gives up: the connection is destroyed and no handler is called any more. */
  abort(): void {
    this.#phase = Phase.Done;
    this.#detach();
    this.connection.socket.destroy();
  }

  #receive(chunk: Buffer): void {
    this.#gotBytes = true;
    if (this.#phase === Phase.Done) return;
    if (this.#phase === Phase.Body) {
      this.#body(chunk);
      return;
    }
    this.#buf = this.#buf === undefined ? chunk : Buffer.concat([this.#buf, chunk]);
    this.#parseHead();
  }

  #parseHead(): void {
    for (;;) {
      const buf = this.#buf as Buffer;
      let head: ResponseHead | undefined;
      try {
        head = parseResponseHead(buf, 0, this.#timeouts.limits ?? DEFAULT_HEAD_LIMITS);
      } catch (err) {
        const reason = err instanceof HttpParseError ? err.message : String(err);
        this.#fail(new UpstreamFailure(`${reason} while reading response header from upstream`, 'header', 'invalid_header', false));
        return;
      }
      if (head === undefined) return;
      const rest = buf.subarray(head.headBytes);
      this.#buf = rest.length === 0 ? undefined : rest;
      if (head.status >= 100 && head.status < 200 && head.status !== 101) {
        // ngx_http_proxy_process_status_line(): a 103 may be passed on (early_hints); other interim responses never are.
        if (head.status === 103) this.#handlers.onEarlyHints?.(head);
        if (this.#buf === undefined) return;
        continue;
      }
      this.#startBody(head);
      return;
    }
  }

  #startBody(head: ResponseHead): void {
    this.#head = head;
    this.#phase = Phase.Body;
    const noBody = this.#method === 'HEAD' || head.status === 204 || head.status === 304 || head.status === 101;
    if (noBody) this.#remaining = 0;
    else if (head.chunked) this.#chunked = new ChunkedParser({ fromUpstream: true });
    else if (head.contentLength >= 0) this.#remaining = head.contentLength;
    else this.#untilClose = true;
    this.#handlers.onHead(head);
    if (this.#phase !== Phase.Body) return;
    const rest = this.#buf;
    this.#buf = undefined;
    if (head.status === 101) {
      // A tunnel: the caller takes over the socket; bytes already read go with it.
      this.#phase = Phase.Done;
      this.#detach();
      if (rest !== undefined) this.#handlers.onData(rest);
      this.#handlers.onEnd(false);
      return;
    }
    if (rest !== undefined) this.#body(rest);
    else if (this.#remaining === 0) this.#finish();
  }

  #body(chunk: Buffer): void {
    if (this.#untilClose) {
      this.#handlers.onData(chunk);
      return;
    }
    if (this.#chunked !== undefined) {
      let used: number;
      try {
        used = this.#chunked.push(chunk);
      } catch (err) {
        this.#fail(new UpstreamFailure(`${(err as Error).message} while reading upstream`, 'body', 'invalid_header', false));
        return;
      }
      if (used > 0) this.#handlers.onData(used === chunk.length ? chunk : chunk.subarray(0, used));
      if (this.#chunked.done) this.#finish(used === chunk.length);
      return;
    }
    const take = Math.min(this.#remaining, chunk.length);
    this.#remaining -= take;
    if (take > 0) this.#handlers.onData(take === chunk.length ? chunk : chunk.subarray(0, take));
    if (this.#remaining === 0) this.#finish(take === chunk.length);
  }

  #finish(clean = true): void {
    if (this.#phase === Phase.Done) return;
    this.#phase = Phase.Done;
    this.#detach();
    const head = this.#head as ResponseHead;
    const keepAlive = head.versionMinor === 1 ? !head.connection.includes('close') : head.connection.includes('keep-alive');
    this.#handlers.onEnd(clean && keepAlive && !this.#untilClose);
  }

  #closed(err: Error | undefined): void {
    if (this.#phase === Phase.Done) return;
    if (this.#phase === Phase.Body && this.#untilClose && err === undefined) {
      this.#phase = Phase.Done;
      this.#detach();
      this.#handlers.onEnd(false);
      return;
    }
    const phase: UpstreamFailurePhase = this.#phase === Phase.Sending ? 'send' : this.#phase === Phase.Head ? 'header' : 'body';
    const what = phase === 'body' ? 'upstream prematurely closed connection while reading upstream' : err !== undefined ? `${describe(err)} while ${phase === 'send' ? 'sending request to' : 'reading response header from'} upstream` : 'upstream prematurely closed connection while reading response header from upstream';
    this.#fail(new UpstreamFailure(what, phase, 'error', !this.#gotBytes, err === undefined ? undefined : { cause: err }));
  }

  #timedOut(): void {
    if (this.#phase === Phase.Done) return;
    const phase: UpstreamFailurePhase = this.#phase === Phase.Sending ? 'send' : this.#phase === Phase.Head ? 'header' : 'body';
    const what = phase === 'send' ? 'upstream timed out (110: Connection timed out) while sending request to upstream' : `upstream timed out (110: Connection timed out) while reading ${phase === 'header' ? 'response header from ' : ''}upstream`;
    this.#fail(new UpstreamFailure(what, phase, 'timeout', !this.#gotBytes));
  }

  #fail(failure: UpstreamFailure): void {
    this.#phase = Phase.Done;
    this.#detach();
    this.connection.socket.destroy();
    this.#handlers.onError(failure);
  }

  #detach(): void {
    this.connection.owner = undefined;
  }
}

function describe(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return `recv() failed (${errnoText(err)})`;
  if (code === 'EPIPE') return `writev() failed (${errnoText(err)})`;
  return err.message;
}
