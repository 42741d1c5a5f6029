/**
 * What the HTTP layer needs from a protocol: one request and its response (an HTTP/1 exchange or
 * an HTTP/2 stream), and the client connection that carries it. The handler and the proxy are
 * written against these, so that a protocol is only a new implementation of both.
 */
import type { Socket } from 'node:net';
import type { RequestLine } from './request.js';

/** How a response body is framed on the wire. */
export type Framing = number | 'chunked' | 'raw' | 'close';

/** A client connection, whatever its protocol. */
export interface ProtocolConnection {
  /** `$connection`. */
  readonly id: number;
  /** Requests received so far (`$connection_requests`). */
  readonly requests: number;
  /** When the connection was accepted (`Date.now()`): `$connection_time`, `keepalive_time`. */
  readonly startedAt?: number;
  readonly socket: Socket;
  /** Graceful: the next response says the connection closes (HTTP/1 `Connection: close`, HTTP/2 GOAWAY); idle ones close after `graceMs`. */
  drain(graceMs: number): void;
  /** Closes at once. */
  destroy(): void;
  /** Nothing in progress and nothing partly received: worker_connections may close it to make room (nginx's reusable connection). */
  readonly idle?: boolean;
  /** Calls `listener` once the connection has closed. */
  onClose(listener: () => void): void;
  /** Hands the socket to a tunnel after a 101; undefined when the protocol cannot (HTTP/2). */
  detach?(): Buffer | undefined;
}

/** How a response head is sent. */
export interface ResponseOptions {
  /** The body may be followed by trailer fields (HTTP/2 trailers, HTTP/1.1 chunked trailer section). Default false. */
  readonly trailers?: boolean;
  /** The head is the whole response: HTTP/2 ends the stream on it (a gRPC trailers-only response). Default false. */
  readonly endStream?: boolean;
  /** For the output filters: the length of the 200 a 206 was cut from by the content handler (nginx's range filter runs after them, so they see the 200). */
  readonly rangedFrom?: number;
  /** For the output filters: Last-Modified is a file's time, not a header from upstream (nginx's last_modified_time). Default false. */
  readonly fileTime?: boolean;
  /** For the output filters: the upstream's X-Accel-Charset, the charset the charset filter names instead (nginx's override_charset). */
  readonly overrideCharset?: string;
}

/** One request and its response. */
export interface HttpExchange {
  readonly head: RequestLine;
  readonly connection: ProtocolConnection;
  readonly headersSent: boolean;
  readonly aborted: boolean;
  readonly bodyBytesSent: number;
  /** True when the request has a body still to read. */
  readonly hasBody: boolean;
  keepAlive: boolean;
  keepaliveTimeoutMs: number;
  keepaliveHeaderSeconds: number | undefined;
  ownServerAndDate: boolean;
  /** The `Server` header's value for this response (server_tokens of the answering level); empty sends none. */
  serverHeader: string;
  /** `$pipe`: the request arrived pipelined behind another (HTTP/1 only). */
  readonly pipelined?: boolean;
  /** `chunked_transfer_encoding`: false ends a body of unknown length by closing (HTTP/1.1; HTTP/2 has no chunked). */
  chunkedAllowed: boolean;
  /** `http2_chunk_size`: the largest DATA frame of the response body (HTTP/2; HTTP/1 keeps it for the interface). */
  dataFrameSize: number;
  /** Bytes written but not yet taken by the client, for read-ahead limits. */
  readonly pendingBytes: number;
  readBody(limit: number, onData: (data: Buffer) => void, onEnd: (err: Error | undefined) => void): void;
  /** Stops delivering body bytes (back-pressure from where they go); the client is held back by TCP or HTTP/2 flow control. */
  pauseBody(): void;
  /** Delivers body bytes again after {@link pauseBody}. */
  resumeBody(): void;
  /** `options.trailers`: the response may end with trailer fields (gRPC's grpc-status); default false. */
  writeHead(status: number, headers: readonly string[], framing: Framing, options?: ResponseOptions): void;
  write(chunk: Buffer | string): boolean;
  onDrain(listener: () => void): void;
  /** Ends the response; `trailers` (flat name/value pairs) go out after the body where the framing can carry them. */
  end(chunk?: Buffer | string, trailers?: readonly string[]): void;
  respond(status: number, headers: readonly string[], body: Buffer | string): void;
  /**
   * Sends a 103 Early Hints with `headers` (flat name/value pairs) before the response head
   * (early_hints): HTTP/1.1 and HTTP/2 only. Absent where no hint can go (a mirror subrequest).
   */
  writeEarlyHints?(headers: readonly string[]): void;
  /**
   * ngx_http_discard_request_body() before a response the handler makes itself: the part of a
   * body nobody reads that has arrived already is parsed and dropped now, and an invalid chunk in
   * it is returned (the request's 400). Absent where a body cannot be malformed so.
   */
  discardBody?(): Error | undefined;
  onAbort(listener: () => void): void;
  onFinish(listener: () => void): void;
}
