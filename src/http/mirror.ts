/**
 * The mirror subrequests of ngx_http_mirror_module at run time. {@link runMirror} is the
 * precontent handler (ngx_http_mirror_handler()): with `mirror_request_body on` it reads the
 * client's whole body first, then starts one background subrequest per `mirror` URI and lets the
 * main request go on to its content. A subrequest is an {@link HttpRequest} of its own that shares
 * the main request's head (method, headers, `$request`, `$request_uri`), args and body, and answers
 * into a {@link MirrorExchange}: a sink that takes the whole response and throws it away, never
 * touching the client's connection. Nothing waits on it: the client's response neither waits for
 * a mirror's upstream nor sees its failure. Subrequests are not logged (log_subrequest off).
 */
import type { Socket } from 'node:net';
import type { ErrorLog } from '../core/log.js';
import { ClientConnection } from './connections.js';
import type { Framing, HttpExchange, ProtocolConnection } from './exchange.js';
import { HttpParseError } from './h1/head-parser.js';
import type { CompiledMirror } from './mirror-module.js';
import { HttpRequest } from './request.js';

/** The client connection as a mirror subrequest sees it: its addresses and TLS, but nothing it can close or drain. */
class MirrorConnection implements ProtocolConnection {
  readonly #main: ProtocolConnection;
  readonly startedAt: number;

  constructor(main: ProtocolConnection) {
    this.#main = main;
    this.startedAt = main.startedAt ?? Date.now();
  }

  get id(): number {
    return this.#main.id;
  }

  get requests(): number {
    return this.#main.requests;
  }

  get socket(): Socket {
    return this.#main.socket;
  }

  drain(): void {
    // The client's connection is the main request's to drain.
  }

  destroy(): void {
    // A subrequest whose upstream failed mid-response has nothing to cut short (ngx_http_subrequest's header_only).
  }

  onClose(listener: () => void): void {
    this.#main.onClose(listener);
  }
}

/** Where a mirror subrequest's response goes: counted, then discarded (nginx's `sr->header_only = 1`). */
export class MirrorExchange implements HttpExchange {
  readonly head: HttpRequest['head'];
  readonly connection: ProtocolConnection;
  readonly aborted = false;
  /** The body the main request read (mirror_request_body on) is the subrequest's already: nothing to read here. */
  readonly hasBody = false;
  readonly pendingBytes = 0;
  keepAlive = true;
  keepaliveTimeoutMs = 0;
  keepaliveHeaderSeconds: number | undefined;
  ownServerAndDate = false;
  serverHeader = '';
  chunkedAllowed = true;
  dataFrameSize = 0;
  /** The status of the discarded response, 0 until its head came. */
  status = 0;
  #headersSent = false;
  #bodyBytes = 0;
  #finished = false;
  readonly #finishListeners: (() => void)[] = [];

  constructor(head: HttpRequest['head'], connection: ProtocolConnection) {
    this.head = head;
    this.connection = new MirrorConnection(connection);
  }

  get headersSent(): boolean {
    return this.#headersSent;
  }

  get bodyBytesSent(): number {
    return this.#bodyBytes;
  }

  readBody(_limit: number, _onData: (data: Buffer) => void, onEnd: (err: Error | undefined) => void): void {
    onEnd(undefined);
  }

  pauseBody(): void {
    // No body flows through a sink.
  }

  resumeBody(): void {
    // No body flows through a sink.
  }

  writeHead(status: number, _headers: readonly string[], _framing: Framing): void {
    this.status = status;
    this.#headersSent = true;
  }

  write(chunk: Buffer | string): boolean {
    this.#bodyBytes += chunk.length;
    return true;
  }

  onDrain(listener: () => void): void {
    // write() never refuses, so no drain is ever owed; called anyway, it resumes at once.
    queueMicrotask(listener);
  }

  end(chunk?: Buffer | string): void {
    if (chunk !== undefined) this.write(chunk);
    this.#finish();
  }

  respond(status: number, headers: readonly string[], body: Buffer | string): void {
    this.writeHead(status, headers, body.length);
    this.end(body);
  }

  onAbort(): void {
    // A background subrequest outlives the client (NGX_HTTP_SUBREQUEST_BACKGROUND): it is never aborted.
  }

  onFinish(listener: () => void): void {
    if (this.#finished) queueMicrotask(listener);
    else this.#finishListeners.push(listener);
  }

  #finish(): void {
    if (this.#finished) return;
    this.#finished = true;
    for (const listener of this.#finishListeners.splice(0)) listener();
  }
}

/** True for the exchange of a subrequest: a subrequest mirrors nothing itself (`r != r->main`). */
export function isSubrequest(exchange: HttpExchange): boolean {
  return exchange instanceof MirrorExchange;
}

/** A mirror subrequest, ready for its location's content. */
export interface MirrorSubrequest {
  readonly request: HttpRequest;
  readonly conn: ClientConnection;
  readonly exchange: MirrorExchange;
}

/**
 * ngx_http_subrequest(r, uri, &r->args, ..., NGX_HTTP_SUBREQUEST_BACKGROUND) with the main
 * request's method: the same head and headers, the main request's server, args, address and body;
 * `internal`, so an `internal` location takes it.
 */
export function mirrorSubrequest(main: HttpRequest, conn: ClientConnection, uri: string): MirrorSubrequest {
  const exchange = new MirrorExchange(main.head, conn.protocol);
  const subConn = new ClientConnection(exchange.connection, conn.hosts, { plainHttp: conn.plainHttp, proxied: conn.proxied });
  const request = new HttpRequest(main.head, subConn, Date.now());
  request.requestUri = main.requestUri;
  request.uri = uri;
  request.args = main.args;
  request.hasArgs = main.hasArgs;
  request.host = main.host;
  request.server = main.server;
  request.serverName = main.serverName;
  request.remoteAddress = main.remoteAddress;
  request.remotePort = main.remotePort;
  request.realip = main.realip;
  request.methodOverride = main.methodOverride;
  request.requestBody = main.requestBody;
  request.requestBodyFile = main.requestBodyFile;
  request.requestBodySpool = main.requestBodySpool;
  request.internal = true;
  return { request, conn: subConn, exchange };
}

/** What {@link runMirror} needs from the handler. */
export interface MirrorPhase {
  readonly log: ErrorLog;
  readonly connection: number;
  /** The tail of an error line about the request. */
  readonly where: () => string;
  /** Starts the subrequest to `uri`. */
  readonly spawn: (uri: string) => void;
  /** The content phase of the main request. */
  readonly proceed: () => void;
  /** Answers the main request with an error status (the body could not be read). */
  readonly fail: (status: number) => void;
}

/**
 * ngx_http_mirror_handler(): with `mirror_request_body on` the body is read whole first
 * (ngx_http_read_client_request_body(), client_max_body_size's 413 included) and kept for the
 * content phase (`r->preserve_body`); then the subrequests start, and the main request goes on.
 */
export function runMirror(mirror: CompiledMirror, request: HttpRequest, exchange: HttpExchange, phase: MirrorPhase): void {
  const start = (): void => {
    for (const uri of mirror.uris) phase.spawn(uri);
    phase.proceed();
  };
  if (!mirror.requestBody || request.requestBody !== undefined || !exchange.hasBody) {
    start();
    return;
  }
  const parts: Buffer[] = [];
  exchange.readBody(
    mirror.maxBodySize,
    (data) => parts.push(Buffer.from(data)),
    (err) => {
      if (exchange.aborted) return;
      if (err !== undefined) {
        const status = err instanceof HttpParseError ? err.status : 400;
        phase.log.write(status === 413 ? 'error' : 'info', `${err.message}${phase.where()}`, phase.connection);
        exchange.keepAlive = false;
        phase.fail(status);
        return;
      }
      request.requestBody = parts;
      start();
    },
  );
}
