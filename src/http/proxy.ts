/**
 * The content handler of `proxy_pass` (nginx's ngx_http_proxy_module with ngx_http_upstream.c's
 * request cycle): read the client's body if buffering, pick a peer, reuse or open a connection,
 * send, pass the response back at the client's pace, retry on the next peer as
 * `proxy_next_upstream` allows, and never let a pooled connection the upstream closed become a
 * client's error.
 */
import type { Socket } from 'node:net';
import { recordUpstreamHead } from './variables.js';
import { BodySpool, BODY_FILE_PIECE_BYTES, readBodyFile, resumeOnDrain, type BodyFileSettings, type SpoolFile } from './body-file.js';
import { beginUpstreamCycle, beginUpstreamState, failUpstreamState, type UpstreamState } from './upstream-states.js';
import type { ErrorLog } from '../core/log.js';
import { ChunkedParser } from './h1/chunked.js';
import { HttpParseError, type ResponseHead } from './h1/head-parser.js';
import type { HttpExchange } from './exchange.js';
import { UpstreamExchange, UpstreamFailure } from './h1/upstream-exchange.js';
import type { ClientConnection } from './connections.js';
import type { CompiledProxy } from './proxy-config.js';
import { headerOf } from './output-filter.js';
import { clientResponseHeaders, upstreamRequestHead } from './proxy-request.js';
import { passEarlyHints } from './early-hints.js';
import type { HttpRequest } from './request.js';
import { UpstreamConnection } from '../upstream/connection-pool.js';
import type { UpstreamGroup } from '../upstream/group.js';
import type { Peer } from '../upstream/peer.js';
import { connectPeer } from '../upstream/peer-connect.js';
import { ReadPacer } from './read-pacer.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';

/** Methods nginx retries without `non_idempotent` (ngx_http_upstream_next: not POST, LOCK, PATCH). */
const NON_IDEMPOTENT = new Set(['POST', 'LOCK', 'PATCH']);


/** How much of a response is read ahead of a slow client with proxy_buffering on. */
const READ_AHEAD_BYTES = 1024 * 1024;

/** What a content handler that passes a request upstream (proxy_pass, grpc_pass) gets from the handler. */
export interface UpstreamContext {
  readonly exchange: HttpExchange;
  readonly request: HttpRequest;
  readonly conn: ClientConnection;
  readonly log: ErrorLog;
  /** Sends an error response the way the handler does (error_page, add_header, built-in page). */
  readonly fail: (status: number) => void;
  /** Sends the upstream's response head through the header filter (add_header). */
  readonly headers: (status: number, headers: string[]) => void;
}

/**
 * The upstream headers an X-Accel-Redirect keeps: those ngx_http_upstream_headers_in marks
 * `redirect` (ngx_http_upstream_process_headers() copies them before the internal redirect).
 */
export const KEPT_ON_ACCEL_REDIRECT: ReadonlySet<string> = new Set(['content-type', 'set-cookie', 'content-disposition', 'cache-control', 'expires', 'accept-ranges']);

/** What the proxy needs from the handler that called it. */
export interface ProxyContext extends UpstreamContext {
  readonly proxy: CompiledProxy;
  /** A Location starting with `/` made absolute (absolute_redirect, port_in_redirect, server_name_in_redirect). */
  readonly absoluteLocation: (location: string) => string;
  /** Where a buffered body goes to a file (client_body_in_file_only, client_body_buffer_size). */
  readonly bodyFile: BodyFileSettings;
  /**
   * An upstream's X-Accel-Redirect: the internal redirect to `target` (a URI or `@name`), with
   * the upstream headers an internal redirect keeps.
   */
  readonly accelRedirect: (target: string, carried: string[]) => void;
}

/**
 * Starts a request's walk over the group's peers with the body as read: the buffered parts, the
 * file it was spooled to (read back from the start for each try), `'stream'` to send it as it arrives (then `streamLength` is its Content-Length, or -2 when it is
 * chunked), or undefined for none. HTTP/1.x's is {@link ProxyAttempts}; HTTP/2's is in proxy-h2.ts.
 */
export type StartAttempts = (ctx: ProxyContext, group: UpstreamGroup<HttpRequest>, body: ProxyBody, streamLength?: number) => void;

/** A request body as the proxy sends it: in memory, in a spooled file, streamed, or none. */
export type ProxyBody = Buffer[] | SpoolFile | undefined | 'stream';

const startHttp1: StartAttempts = (ctx, group, body, streamLength) => new ProxyAttempts(ctx, group, body, streamLength).next();

/**
 * Proxies one request: the request body read (buffered, into a file, streamed, replaced by
 * proxy_set_body) as nginx's proxy handler reads it, whatever protocol then carries it upstream.
 */
export function proxyRequest(ctx: ProxyContext, start: StartAttempts = startHttp1): void {
  const { exchange, proxy } = ctx;
  const badUrl = proxy.invalidPrefix(ctx.request);
  if (badUrl !== undefined) {
    ctx.log.error(`invalid URL prefix in "${badUrl}"${where(ctx)}`, ctx.conn.number);
    ctx.fail(500);
    return;
  }
  const group = proxy.resolveGroup(ctx.request);
  if (group === undefined) {
    ctx.log.error(`no resolver defined to resolve ${proxy.dynamicHost(ctx.request)}${where(ctx)}`, ctx.conn.number);
    ctx.fail(502);
    return;
  }
  const read = ctx.request.requestBody;
  const setBody = proxy.setBody;
  if (setBody !== undefined) {
    // proxy_set_body: the client's body is read (client_max_body_size applies) and dropped.
    const send = (): void => start(ctx, group, [Buffer.from(setBody(ctx.request), 'latin1')]);
    if (read !== undefined || !exchange.hasBody || ctx.request.methodOverride !== undefined) send();
    else exchange.readBody(proxy.maxBodySize, () => undefined, (err) => (err === undefined ? send() : bodyFailed(ctx, err)));
    return;
  }
  // A body read already (mirror_request_body on, nginx's r->preserve_body; a proxy_pass before an
  // internal redirect) goes as it was read, also when error_page made the method GET: nginx keeps
  // r->request_body and ngx_http_upstream_init_request() sends its bufs.
  if (read !== undefined && !exchange.hasBody && proxy.passRequestBody) {
    start(ctx, group, [...read]);
    return;
  }
  // A body spooled to a file before an internal redirect: sent from that file again.
  const spooled = ctx.request.requestBodySpool;
  if (spooled !== undefined && !exchange.hasBody && proxy.passRequestBody) {
    start(ctx, group, spooled);
    return;
  }
  // ngx_http_proxy_handler() reads the body whether it is passed or not: with client_body_in_file_only
  // a backend told $request_body_file (proxy_pass_request_body off) reads the file.
  if (!proxy.passRequestBody && exchange.hasBody && ctx.bodyFile.inFileOnly !== 'off') {
    readBuffered(ctx, proxy.maxBodySize, () => start(ctx, group, undefined), true);
    return;
  }
  if (!proxy.passRequestBody || !exchange.hasBody || ctx.request.methodOverride !== undefined) {
    // ngx_http_read_client_request_body() answers "Expect: 100-continue" even when the body is empty.
    if (proxy.passRequestBody && ctx.request.methodOverride === undefined) exchange.readBody(0, () => undefined, () => undefined);
    start(ctx, group, undefined);
    return;
  }
  // proxy_request_buffering off: the body goes upstream as it arrives. A chunked body needs
  // HTTP/1.1 (or HTTP/2's DATA frames) to the upstream; with 1.0 nginx buffers it anyway, and so does hitless.
  const head = exchange.head as { contentLength?: number; chunked?: boolean };
  const length = typeof head.contentLength === 'number' && head.contentLength >= 0 && head.chunked !== true ? head.contentLength : -2;
  if (!proxy.requestBuffering && (length >= 0 || proxy.version !== '1.0')) {
    start(ctx, group, 'stream', length);
    return;
  }
  readBuffered(ctx, proxy.maxBodySize, (body) => start(ctx, group, body), false);
}

/**
 * Reads the whole body (ngx_http_read_client_request_body()): in memory while it fits in
 * client_body_buffer_size, past it (or with client_body_in_file_only) spooled to a temporary file
 * as it arrives ({@link BodySpool}: nginx's [warn], the file unlinked at once unless kept), which
 * `$request_body_file` names and `$request_body` then does not show. `fileOnly`: the body is read
 * only for its file (proxy_pass_request_body off).
 */
export function readBuffered(ctx: UpstreamContext & { readonly bodyFile: BodyFileSettings }, maxBodySize: number, proceed: (body: Buffer[] | SpoolFile) => void, fileOnly: boolean): void {
  const { exchange, request } = ctx;
  const spool = new BodySpool(ctx.bodyFile, (level, message) => ctx.log.write(level, `${message}${requestWhere(ctx)}`, ctx.conn.number));
  exchange.onAbort(() => spool.abort());
  exchange.readBody(
    maxBodySize,
    (data) => {
      if (spool.push(data)) return;
      // The file is behind by more than a buffer: the client waits for the disk.
      exchange.pauseBody();
      spool.ondrain = () => exchange.resumeBody();
    },
    (err) => {
      if (err !== undefined) {
        spool.abort();
        bodyFailed(ctx, err);
        return;
      }
      spool.end().then(
        (body) => {
          if (exchange.aborted) {
            if ('file' in body) body.file.release();
            return;
          }
          if ('parts' in body) {
            if (!fileOnly) request.requestBody = body.parts;
            proceed(body.parts);
            return;
          }
          const written = body.file;
          exchange.onFinish(() => written.release());
          request.requestBodyFile = written.path;
          request.requestBodySpool = written;
          proceed(written);
        },
        (failure: unknown) => {
          if (exchange.aborted) return;
          ctx.log.write('crit', `${failure instanceof Error ? failure.message : String(failure)}${requestWhere(ctx)}`, ctx.conn.number);
          exchange.keepAlive = false;
          ctx.fail(500);
        },
      );
    },
  );
}

/** A client body that could not be read: 413 past client_max_body_size, else the parser's status. */
export function bodyFailed(ctx: UpstreamContext, err: Error): void {
  const status = err instanceof HttpParseError ? err.status : 400;
  if (ctx.exchange.aborted) return;
  ctx.log.write(status === 413 ? 'error' : 'info', `${err.message}${requestWhere(ctx)}`, ctx.conn.number);
  ctx.exchange.keepAlive = false;
  ctx.fail(status);
}

/** One request's walk over the peers of a group: the HTTP/1 adapter of the upstream cycle. */
class ProxyAttempts {
  readonly #ctx: ProxyContext;
  readonly #group: UpstreamGroup<HttpRequest>;
  readonly #body: Buffer[] | undefined;
  /** A body spooled to a file, read back from the start for each try. */
  readonly #bodyFile: SpoolFile | undefined;
  readonly #bodyLength: number;
  /** The balancer's walk for this request (its hash, its tries), kept across retries. */
  readonly #cycle: UpstreamCycle<HttpRequest>;
  readonly #streaming: boolean;
  /** Set once a streamed body has started to flow: no other peer can be tried after that. */
  #bodyStarted = false;
  /** Set once a streamed body (or this try's file body) has gone upstream whole; until then the connection cannot be reused. */
  #bodySent = false;
  #head: string | undefined;
  #upstream: UpstreamExchange | undefined;
  /** Gives up the connect in progress, if any. */
  #cancelConnect: (() => void) | undefined;
  #done = false;
  /** The try in progress as the `$upstream_*` variables see it, and its connection's byte counts when it began. */
  #state: UpstreamState | undefined;
  #io: { readonly socket: Socket; readonly read: number; readonly written: number } | undefined;
  /** proxy_buffering for this response (X-Accel-Buffering may change it). */
  #buffering = true;
  /** proxy_limit_rate's pacing of this response, if any. */
  #pacer: ReadPacer | undefined;
  /** Why reading from the upstream is paused: the client is slow, proxy_limit_rate. */
  #heldForClient = false;
  #heldForRate = false;

  /**
   * `body` is the buffered request body, or `'stream'` to send it as it arrives (then
   * `streamLength` is its Content-Length, or -2 when it is chunked).
   */
  constructor(ctx: ProxyContext, group: UpstreamGroup<HttpRequest>, body: ProxyBody, streamLength = -1) {
    this.#ctx = ctx;
    this.#group = group;
    this.#streaming = body === 'stream';
    this.#body = Array.isArray(body) ? body : undefined;
    this.#bodyFile = body === 'stream' || Array.isArray(body) ? undefined : body;
    this.#bodyLength = body === 'stream' ? streamLength : body === undefined ? -1 : Array.isArray(body) ? body.reduce((sum, part) => sum + part.length, 0) : body.length;
    this.#cycle = new UpstreamCycle('http', group, ctx.request, ctx.proxy);
    beginUpstreamCycle(ctx.request);
    if (!ctx.proxy.ignoreClientAbort) {
      ctx.exchange.onAbort(() => {
        this.#done = true;
        this.#cancelConnect?.();
        this.#upstream?.abort();
        this.#pacer?.stop();
        // ngx_http_upstream_finalize_request() still counts the try's time and bytes.
        const current = this.#cycle.current;
        if (current !== undefined) this.#settleState(current);
        // The peer is given back here, once, whatever phase the attempt was in (nginx: peer.free()).
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
      // ngx_http_upstream_connect(): NGX_BUSY records the group's name, and 502.
      failUpstreamState(beginUpstreamState(request, this.#group.name), 502);
      this.#finishWithError(502);
      return;
    }
    this.#state = beginUpstreamState(request, attempt.peer.name);
    this.#io = undefined;
    const pooled = this.#group.pool.acquire(this.#poolKey(attempt.peer));
    if (pooled === undefined) {
      this.#connect(attempt);
      return;
    }
    attempt.connected();
    this.#send(attempt, pooled);
  }

  #connect(attempt: UpstreamAttempt): void {
    const { proxy, request } = this.#ctx;
    const peer = attempt.peer;
    // proxy_pass https://: the handshake has its own proxy_connect_timeout, as in
    // ngx_http_upstream_ssl_init_connection(); a failure is `error` (or `timeout`) for
    // proxy_next_upstream and never falls back to plaintext.
    const tls = proxy.ssl === undefined ? undefined : { tls: proxy.ssl, name: proxy.sslName(request), certificate: proxy.sslCertificate(request) };
    // ngx_http_upstream_set_local(): a proxy_bind value that is no address is an [error], and binds none.
    const bind = proxy.bind(request);
    if (bind !== undefined && 'invalid' in bind) this.#ctx.log.error(`${bind.invalid}${where(this.#ctx)}`, this.#ctx.conn.number);
    const local = bind === undefined || 'invalid' in bind ? undefined : bind;
    const options = { protocol: 'http' as const, group: this.#group.name, timeoutMs: proxy.connectTimeoutMs, noDelay: true, keepAlive: proxy.socketKeepalive, budget: proxy.connections, local, ...(tls === undefined ? {} : { tls }) };
    this.#cancelConnect = connectPeer(peer, options, (result) => {
      this.#cancelConnect = undefined;
      if (!result.ok && result.bindFailed === true) {
        // ngx_event_connect_peer(): bind() failed is logged at crit, and the request ends with 500.
        this.#ctx.log.write('crit', `${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        attempt.finish('aborted', 'bind');
        this.#finishWithError(500);
        return;
      }
      if (!result.ok && result.local === true) {
        // worker_connections, or a certificate with variables that does not load
        // (ngx_http_upstream_ssl_init_connection()): 500, the peer is not at fault.
        if (result.certificate === true) this.#ctx.log.error(`${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        attempt.finish('aborted', result.certificate === true ? 'certificate' : 'worker_connections');
        this.#finishWithError(500);
        return;
      }
      if (!result.ok) {
        this.#failed(attempt, new UpstreamFailure(result.message, 'send', result.timedOut ? 'timeout' : 'error', true), false, false);
        return;
      }
      attempt.connected();
      this.#send(attempt, new UpstreamConnection(result.socket, peer.name, this.#poolKey(peer)));
    });
  }

  /** The pool key of a connection for this request: the peer, plus the TLS settings and name for https. */
  #poolKey(peer: Peer): string {
    const { proxy, request } = this.#ctx;
    if (proxy.ssl === undefined) return peer.name;
    const certificate = proxy.ssl.variableCertificate ? proxy.sslCertificate(request) : undefined;
    return `${peer.name} ${proxy.ssl.id} ${proxy.sslName(request)}${certificate === undefined ? '' : ` ${certificate.cert} ${certificate.key}`}`;
  }

  #send(attempt: UpstreamAttempt, connection: UpstreamConnection): void {
    if (this.#done) {
      this.#group.pool.release(connection, false);
      return;
    }
    const { request, proxy, exchange } = this.#ctx;
    const peer = attempt.peer;
    const state = this.#state;
    if (state !== undefined) state.connectMs = attempt.elapsedMs();
    this.#io = { socket: connection.socket, read: connection.socket.bytesRead, written: connection.socket.bytesWritten };
    this.#head ??= upstreamRequestHead(request, proxy.method?.(request) ?? request.method, proxy.uriFor(request), proxy.version, proxy.setHeaders, proxy.passRequestHeaders, this.#bodyLength);
    let clientStarted = false;
    let tunnel = false;
    let decoder: ChunkedParser | undefined;
    const upstream = new UpstreamExchange(
      connection,
      request.method,
      {
        onHead: (head) => {
          if (state !== undefined) {
            state.status = head.status;
            state.headerMs = attempt.elapsedMs();
          }
          recordUpstreamHead(request, head);
          if (head.status === 101 && this.#ctx.conn.protocol.detach === undefined) {
            // HTTP/2 has no 101 (RFC 9113 section 8.6): an upstream that switches protocols is broken for this client.
            upstream.abort();
            attempt.finish('ok', 'http_101');
            this.#ctx.log.error(`upstream sent 101 to a request that cannot be tunnelled${where(this.#ctx, peer)}`, this.#ctx.conn.number);
            this.#finishWithError(502);
            return;
          }
          // ngx_http_proxy_process_header(): a 101 upgrades only a request that asked to (r->headers_in.upgrade);
          // to any other it is a response like another, whose body is read until the upstream closes.
          if (head.status === 101 && request.header('upgrade') !== undefined) {
            tunnel = true;
            this.#record(attempt, 'ok', 'upgrade');
            this.#tunnel(head, connection.socket);
            return;
          }
          // nginx keeps neither connection of a 101 it does not tunnel (u->keepalive = 0; the client's
          // ends with the upstream's, at proxy_read_timeout when the upstream holds it).
          if (head.status === 101) exchange.keepAlive = false;
          if (this.#retryOnStatus(attempt, head, upstream)) return;
          attempt.responded();
          if (proxy.interceptErrors && head.status >= 300 && proxy.errorPageFor(head.status)) {
            upstream.abort();
            // ngx_http_upstream_intercept_errors(): a 401's WWW-Authenticate fields go with the error page.
            if (head.status === 401) carryFields(this.#ctx, head, 'www-authenticate');
            this.#record(attempt, 'ok', '');
            this.#finishWithError(head.status);
            return;
          }
          // ngx_http_upstream_process_headers(): X-Accel-Redirect ends this upstream request and
          // redirects internally, unless proxy_ignore_headers names it.
          const accel = accelRedirectOf(this.#ctx, head);
          if (accel !== undefined) {
            upstream.abort();
            this.#record(attempt, 'ok', '');
            this.#done = true;
            applyAccelLimitRate(this.#ctx, head);
            this.#ctx.accelRedirect(accel, accelKeptHeaders(this.#ctx, head));
            return;
          }
          clientStarted = true;
          decoder = this.#writeHead(head, peer);
          this.#pacer = this.#limitRate(upstream);
        },
        onEarlyHints: (hints) => {
          if (proxy.earlyHints(request)) passEarlyHints(exchange, clientResponseHeaders(hints, proxy.hide, proxy.pass, undefined));
        },
        onData: (chunk) => {
          if (tunnel) {
            this.#ctx.conn.socket.write(chunk);
            return;
          }
          if (state !== undefined) state.responseLength += chunk.length;
          const pacer = this.#pacer;
          const pass = pacer === undefined ? (data: Buffer) => this.#write(data, upstream) : (data: Buffer) => pacer.push(data);
          if (decoder !== undefined) {
            decoder.push(chunk, 0, pass);
            return;
          }
          pass(chunk);
        },
        onEnd: (reusable) => {
          if (tunnel) return;
          this.#record(attempt, 'ok', '');
          // An upstream that answered before the whole streamed body reached it would read the rest
          // of the body as the next request (nginx: keepalive only once the request was sent).
          this.#group.pool.release(connection, reusable && proxy.upstreamKeepalive && ((!this.#streaming && this.#bodyFile === undefined) || this.#bodySent));
          this.#done = true;
          if (this.#pacer === undefined) exchange.end();
          else this.#pacer.end(() => exchange.end());
        },
        onError: (failure) => {
          if (clientStarted) {
            // Part of the response is out: nginx can only cut the client's connection short.
            this.#record(attempt, 'failed', failure.kind, actionOf(failure.message, ' while reading upstream'));
            this.#ctx.log.error(`${failure.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
            this.#done = true;
            this.#pacer?.stop();
            this.#ctx.conn.protocol.destroy();
            return;
          }
          // A reused connection the upstream closed before answering: retry on a fresh one, uncounted.
          const stale = connection.reused && failure.beforeResponse && failure.kind === 'error';
          this.#failed(attempt, failure, stale);
        },
      },
      { sendTimeoutMs: proxy.sendTimeoutMs, readTimeoutMs: proxy.readTimeoutMs },
    );
    this.#upstream = upstream;
    // A streamed body's bytes read with the head (nginx's preread) go out in the head's write.
    if (this.#streaming) connection.socket.cork();
    upstream.send(this.#head, this.#body);
    if (this.#streaming) {
      this.#streamBody(connection)();
      connection.socket.uncork();
    } else if (this.#bodyFile !== undefined) {
      this.#fileBody(this.#bodyFile, upstream);
    }
  }

  /**
   * A body spooled to a file, read back in pieces and written as the connection takes them (a
   * slow upstream holds the reading back); a retry on the next peer reads it again from the start.
   */
  #fileBody(file: SpoolFile, upstream: UpstreamExchange): void {
    const socket = upstream.connection.socket;
    this.#bodySent = false;
    const stopped = (): boolean => this.#done || socket.destroyed || this.#upstream !== upstream;
    readBodyFile(
      file,
      BODY_FILE_PIECE_BYTES,
      (data, resume) => {
        if (socket.write(data)) return true;
        resumeOnDrain(socket, resume);
        return false;
      },
      (err) => {
        if (err === undefined) {
          this.#bodySent = true;
          return;
        }
        // ngx_read_file() failed: nginx's [crit], and the request ends with 500.
        this.#ctx.log.write('crit', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
        upstream.abort();
        this.#cycle.current?.finish('aborted', 'file');
        this.#finishWithError(500);
      },
      stopped,
    );
  }

  /**
   * Sends the client's body upstream as it arrives (proxy_request_buffering off). Returns what
   * writes a chunk of the bytes read so far now, for the preread to go with the head.
   */
  #streamBody(connection: UpstreamConnection): () => void {
    const { exchange, proxy } = this.#ctx;
    const socket = connection.socket;
    const chunked = this.#bodyLength === -2;
    this.#bodyStarted = true;
    // $request_body: nginx reads an unbuffered body into its client_body_buffer_size buffer, which
    // holds all of a body that fits in it; a longer one is not kept.
    const kept: Buffer[] = [];
    let keptBytes = 0;
    // A chunked body goes as one chunk per read of the client's socket, as nginx's
    // ngx_http_proxy_body_output_filter() frames each buffer: the pieces the client's one read
    // gave (delivered together, before a microtask runs) are one chunk, written in one piece.
    let pending: Buffer[] = [];
    const writeChunk = (): void => {
      const chunk = chunkOf();
      if (chunk !== undefined) writeUpstream(chunk);
    };
    const chunkOf = (): Buffer | undefined => {
      if (pending.length === 0) return undefined;
      const data = Buffer.concat(pending);
      pending = [];
      return Buffer.concat([Buffer.from(`${data.length.toString(16)}\r\n`, 'latin1'), data, Buffer.from('\r\n', 'latin1')]);
    };
    const writeUpstream = (data: Buffer): void => {
      if (socket.destroyed) return;
      // Back-pressure: a slow upstream holds the client back instead of the body piling up here.
      if (!socket.write(data)) pauseBodyUntilDrained(exchange, socket);
    };
    exchange.readBody(
      proxy.maxBodySize,
      (data) => {
        if (keptBytes + data.length <= proxy.bodyBufferSize) kept.push(Buffer.from(data));
        keptBytes += data.length;
        if (!chunked) {
          writeUpstream(data);
          return;
        }
        pending.push(Buffer.from(data));
        if (pending.length === 1) queueMicrotask(writeChunk);
      },
      (err) => {
        if (err !== undefined) {
          // The upstream has a partial request: nothing can be done for it but to close it.
          socket.destroy();
          return;
        }
        if (keptBytes <= proxy.bodyBufferSize) this.#ctx.request.requestBody = kept;
        this.#bodySent = true;
        if (chunked) {
          const chunk = chunkOf();
          const last = Buffer.from('0\r\n\r\n', 'latin1');
          writeUpstream(chunk === undefined ? last : Buffer.concat([chunk, last]));
        }
      },
    );
    return writeChunk;
  }

  /** proxy_next_upstream http_5xx and friends: a retry before anything reached the client. */
  #retryOnStatus(attempt: UpstreamAttempt, head: ResponseHead, upstream: UpstreamExchange): boolean {
    const proxy = this.#ctx.proxy;
    const key = `http_${head.status}` as const;
    if (!proxy.nextUpstream.has(key as never) || !this.#mayRetry()) return false;
    upstream.abort();
    // nginx counts 500, 502, 503 and 504 as peer failures; 403, 404 and 429 only move on.
    this.#record(attempt, head.status >= 500 ? 'failed' : 'next', key, ' while reading response header from upstream');
    this.next();
    return true;
  }

  /**
   * Whether the next peer may be tried. `sent`: the request reached the failed peer; nginx holds a
   * POST, LOCK or PATCH back only then (ngx_http_upstream_next(): `u->request_sent` adds
   * NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT), so a failure to connect or to set up TLS, which sent
   * nothing, moves any request on.
   */
  #mayRetry(sent = true): boolean {
    const { proxy, exchange } = this.#ctx;
    if (this.#bodyStarted || !this.#cycle.mayRetry()) return false;
    return !sent || !NON_IDEMPOTENT.has(exchange.head.method) || proxy.nextUpstream.has('non_idempotent');
  }

  /** A failed try; `sent` is false when it failed before the request went out (connect, TLS handshake). */
  #failed(attempt: UpstreamAttempt, failure: UpstreamFailure, stale: boolean, sent = true): void {
    if (this.#done) return;
    const ctx = this.#ctx;
    if (stale && !this.#bodyStarted && (!NON_IDEMPOTENT.has(ctx.exchange.head.method) || ctx.proxy.nextUpstream.has('non_idempotent'))) {
      // Not the peer's fault and not a try: the same attempt, a new connection (nginx: u->peer.tries++).
      this.#connect(attempt);
      return;
    }
    this.#record(attempt, 'failed', failure.kind, actionOf(failure.message, ' while reading response header from upstream'));
    ctx.log.error(`${failure.message}${where(ctx, attempt.peer)}`, ctx.conn.number);
    failUpstreamState(this.#state, failure.kind === 'timeout' ? 504 : 502);
    const nextCase = failure.kind === 'invalid_header' ? 'invalid_header' : failure.kind;
    if (ctx.proxy.nextUpstream.has(nextCase) && this.#mayRetry(sent)) {
      this.next();
      return;
    }
    this.#finishWithError(failure.kind === 'timeout' ? 504 : 502);
  }

  /**
   * Ends an attempt and counts its time in $upstream_response_time; `action` is nginx's
   * "while ..." of the phase that failed, which its [warn] "upstream server temporarily disabled"
   * carries (the connection's log action when ngx_http_upstream_free_round_robin_peer() logs it).
   */
  #record(attempt: UpstreamAttempt, outcome: 'ok' | 'failed' | 'next', reason: string, action = ''): void {
    this.#settleState(attempt);
    if (attempt.finish(outcome, reason)) {
      this.#ctx.log.warn(`upstream server temporarily disabled${action}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    }
  }

  /** The try's response time and byte counts, once, when it ends. */
  #settleState(attempt: UpstreamAttempt): void {
    const state = this.#state;
    if (state === undefined || state.responseMs >= 0) return;
    state.responseMs = attempt.elapsedMs();
    const io = this.#io;
    if (io !== undefined) {
      state.bytesReceived = io.socket.bytesRead - io.read;
      state.bytesSent = io.socket.bytesWritten - io.written;
    }
  }

  #finishWithError(status: number): void {
    this.#done = true;
    if (this.#ctx.exchange.aborted) return;
    this.#ctx.fail(status);
  }

  /** Sends the client the response head; returns a decoder when a chunked body must be unchunked (HTTP/1.0 client). */
  #writeHead(head: ResponseHead, peer: Peer): ChunkedParser | undefined {
    const { exchange, proxy, request } = this.#ctx;
    const headers = clientFieldsOf(this.#ctx, head, peer);
    // What the balancer adds for the peer that answered (`sticky cookie`'s Set-Cookie).
    const added = this.#cycle.responseHeaders(peer);
    if (added !== undefined) headers.push(...added);
    const status = request.statusOverride ?? head.status;
    request.status = status;
    if (proxy.pass.has('server') || proxy.pass.has('date')) exchange.ownServerAndDate = true;
    this.#ctx.headers(status, headers);
    const accelCharset = accelCharsetOf(this.#ctx, head);
    applyAccelLimitRate(this.#ctx, head);
    this.#buffering = bufferingOf(this.#ctx, head);
    // ngx_http_upstream_send_response(): proxy_buffering off sends without pacing.
    if (!this.#buffering) request.limitRate = 0;
    const options = accelCharset === undefined ? undefined : { overrideCharset: accelCharset };
    const noBody = exchange.head.method === 'HEAD' || head.status === 204 || head.status === 304;
    if (noBody) {
      exchange.writeHead(status, headers, head.contentLength >= 0 ? head.contentLength : 0, options);
      return undefined;
    }
    if (head.contentLength >= 0) {
      exchange.writeHead(status, headers, head.contentLength, options);
      return undefined;
    }
    if (head.chunked && exchange.head.versionMinor === 1) {
      exchange.writeHead(status, headers, 'raw', options);
      return undefined;
    }
    exchange.writeHead(status, headers, 'chunked', options);
    return head.chunked ? new ChunkedParser({ fromUpstream: true }) : undefined;
  }

  /**
   * After a 101: both sockets leave HTTP and are joined byte for byte. A draining worker keeps the
   * tunnel until it ends or until worker_shutdown_timeout, as nginx keeps upgraded connections.
   */
  #tunnel(head: ResponseHead, upstreamSocket: Socket): void {
    const { exchange, conn, request } = this.#ctx;
    this.#done = true;
    request.status = 101;
    const upgrade = head.headers.findIndex((value, i) => i % 2 === 0 && value.toLowerCase() === 'upgrade');
    const headers = clientResponseHeaders(head, this.#ctx.proxy.hide, this.#ctx.proxy.pass, undefined);
    if (upgrade !== -1) headers.push('Upgrade', head.headers[upgrade + 1] as string);
    headers.push('Connection', 'upgrade');
    exchange.writeHead(101, headers, 0);
    const clientSocket = conn.socket;
    let closed = false;
    const listeners: (() => void)[] = [];
    const tunnel = {
      bytesToClient: 0,
      onClose: (listener: () => void): void => {
        if (closed) listener();
        else listeners.push(listener);
      },
    };
    // Set before the exchange ends: its log line waits for the tunnel to close.
    request.tunnel = tunnel;
    const early = conn.protocol.detach?.();
    // The head is out (detach flushed it): what the client is written from here on is the tunnel's,
    // $body_bytes_sent being nginx's bytes sent less the header's.
    const base = clientSocket.bytesWritten;
    exchange.end();
    if (early !== undefined) upstreamSocket.write(early);
    upstreamSocket.setTimeout(0);
    clientSocket.pipe(upstreamSocket);
    upstreamSocket.pipe(clientSocket);
    const close = (): void => {
      clientSocket.destroy();
      upstreamSocket.destroy();
      if (closed) return;
      closed = true;
      tunnel.bytesToClient = clientSocket.bytesWritten - base;
      for (const listener of listeners.splice(0)) listener();
    };
    clientSocket.once('close', close);
    upstreamSocket.once('close', close);
    upstreamSocket.on('error', close);
  }

  #write(chunk: Buffer, upstream: UpstreamExchange): void {
    const { exchange } = this.#ctx;
    if (exchange.aborted) return;
    const flushed = exchange.write(chunk);
    if (flushed) return;
    // proxy_buffering on reads ahead of a slow client, within a bound; off keeps the client's pace.
    if (this.#buffering && exchange.pendingBytes < READ_AHEAD_BYTES) return;
    this.#holdUpstream(upstream, 'client', true);
    exchange.onDrain(() => this.#holdUpstream(upstream, 'client', false));
  }

  /** Pauses reading from the upstream while the client or proxy_limit_rate holds it. */
  #holdUpstream(upstream: UpstreamExchange, why: 'client' | 'rate', held: boolean): void {
    const before = this.#heldForClient || this.#heldForRate;
    if (why === 'client') this.#heldForClient = held;
    else this.#heldForRate = held;
    const after = this.#heldForClient || this.#heldForRate;
    if (after && !before) upstream.pause();
    else if (!after && before) upstream.resume();
  }

  /**
   * proxy_limit_rate, read once the head is in (it may read $upstream_http_*); only a buffered
   * response is paced, as in nginx, where the limit belongs to the event pipe.
   */
  #limitRate(upstream: UpstreamExchange): ReadPacer | undefined {
    if (!this.#buffering) return undefined;
    const rate = this.#ctx.proxy.limitRate(this.#ctx.request);
    if (typeof rate !== 'number') {
      this.#ctx.log.error(`${rate.invalid}${where(this.#ctx)}`, this.#ctx.conn.number);
      return undefined;
    }
    if (rate === 0) return undefined;
    return new ReadPacer(rate, (data) => this.#write(data, upstream), (held) => this.#holdUpstream(upstream, 'rate', held));
  }

}

/**
 * The client's fields of an upstream response head (ngx_http_upstream_process_headers()), for
 * HTTP/1.x and HTTP/2 upstreams alike: the hidden and passed ones, proxy_redirect, the
 * proxy_cookie_* rules, Upgrade only to HTTP/1 clients, and a repeated once-only field's [warn].
 */
export function clientFieldsOf(ctx: ProxyContext, head: ResponseHead, peer: Peer): string[] {
  const { proxy, request } = ctx;
  const redirect = proxy.redirect;
  const cookies = proxy.cookies;
  return clientResponseHeaders(
    head,
    proxy.hide,
    proxy.pass,
    redirect === undefined ? undefined : { rewrite: (value) => redirect(value, request), absolute: ctx.absoluteLocation },
    {
      cookies: cookies === undefined ? undefined : (value) => cookies(value, request),
      passUpgrade: request.head.versionMajor !== 2 && !proxy.hide.has('upgrade'),
      duplicate: (message) => ctx.log.warn(`${message}${where(ctx, peer)}`, ctx.conn.number),
    },
  );
}

/** X-Accel-Redirect's target: the response ends this upstream request and redirects internally, unless proxy_ignore_headers names it. */
export function accelRedirectOf(ctx: ProxyContext, head: ResponseHead): string | undefined {
  return ctx.proxy.ignoreHeaders.has('x-accel-redirect') ? undefined : headerOf(head.headers, 'x-accel-redirect');
}

/** ngx_http_upstream_process_charset(): X-Accel-Charset, hidden from the client, tells the charset filter what to send. */
export function accelCharsetOf(ctx: ProxyContext, head: ResponseHead): string | undefined {
  return ctx.proxy.ignoreHeaders.has('x-accel-charset') ? undefined : headerOf(head.headers, 'x-accel-charset');
}

/** ngx_http_upstream_process_buffering(): X-Accel-Buffering yes or no overrides proxy_buffering. */
export function bufferingOf(ctx: ProxyContext, head: ResponseHead): boolean {
  const accel = ctx.proxy.ignoreHeaders.has('x-accel-buffering') ? undefined : headerOf(head.headers, 'x-accel-buffering')?.toLowerCase();
  return accel === 'yes' ? true : accel === 'no' ? false : ctx.proxy.buffering;
}

/** ngx_http_upstream_process_limit_rate(): X-Accel-Limit-Rate, a number, paces the response to the client. */
export function applyAccelLimitRate(ctx: ProxyContext, head: ResponseHead): void {
  if (ctx.proxy.ignoreHeaders.has('x-accel-limit-rate')) return;
  const accelRate = headerOf(head.headers, 'x-accel-limit-rate');
  if (accelRate !== undefined && /^[0-9]+$/.test(accelRate)) ctx.request.limitRate = Number(accelRate);
}

/** Keeps the upstream's `name` fields for the response an internal redirect leads to. */
export function carryFields(ctx: ProxyContext, head: ResponseHead, name: string): void {
  const kept: string[] = [];
  for (let i = 0; i < head.headers.length; i += 2) {
    if ((head.headers[i] as string).toLowerCase() === name) kept.push(head.headers[i] as string, head.headers[i + 1] as string);
  }
  if (kept.length > 0) ctx.request.carriedHeaders = [...(ctx.request.carriedHeaders ?? []), ...kept];
}

/** The headers an X-Accel-Redirect keeps, Set-Cookie rewritten by the proxy_cookie_* rules. */
export function accelKeptHeaders(ctx: ProxyContext, head: ResponseHead): string[] {
  const { proxy, request } = ctx;
  const kept: string[] = [];
  for (let i = 0; i < head.headers.length; i += 2) {
    const name = head.headers[i] as string;
    const key = name.toLowerCase();
    if (!KEPT_ON_ACCEL_REDIRECT.has(key)) continue;
    const value = head.headers[i + 1] as string;
    kept.push(name, key === 'set-cookie' && proxy.cookies !== undefined ? proxy.cookies(value, request) ?? value : value);
  }
  return kept;
}

/** Pauses the client's request body until `sink` (the upstream socket or stream) drains or closes. */
export function pauseBodyUntilDrained(exchange: HttpExchange, sink: NodeJS.EventEmitter): void {
  exchange.pauseBody();
  const resume = (): void => {
    sink.off('drain', resume);
    sink.off('close', resume);
    exchange.resumeBody();
  };
  sink.once('drain', resume);
  sink.once('close', resume);
}

/** The " while ..." part of an upstream failure's message, or `fallback` when it has none. */
export function actionOf(message: string, fallback: string): string {
  const at = message.lastIndexOf(' while ');
  return at === -1 ? fallback : message.slice(at);
}

/** The tail nginx adds to upstream errors: `, client: ..., server: ..., request: "...", upstream: "...", host: "..."`. */
/** The end of an error log line about a request with no peer yet, as every upstream module writes it. */
function requestWhere(ctx: UpstreamContext): string {
  const { request, conn } = ctx;
  const host = request.header('host');
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${host === undefined ? '' : `, host: "${host}"`}`;
}

function where(ctx: ProxyContext, peer?: Peer): string {
  const { request, conn, proxy } = ctx;
  const host = request.header('host');
  const upstream = peer === undefined ? '' : `, upstream: "${proxy.scheme}://${peer.name}${proxy.uriFor(request)}"`;
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${upstream}${host === undefined ? '' : `, host: "${host}"`}`;
}
