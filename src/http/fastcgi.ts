/**
 * The content handler of `fastcgi_pass` (nginx's ngx_http_fastcgi_module on ngx_http_upstream.c's
 * request cycle): the FastCGI adapter of upstream/request-cycle.ts. The request goes as
 * BEGIN_REQUEST, the PARAMS stream (fastcgi_param, then the client's headers as HTTP_*) and the
 * body in STDIN records, streamed with back-pressure when fastcgi_request_buffering is off, else
 * read whole first (past client_body_buffer_size into a file under client_body_temp_path, which
 * it is then sent from in pieces, as nginx's temp file is); the
 * STDOUT stream's CGI head becomes the HTTP response as ngx_http_fastcgi_process_header() makes
 * it (Status:, a Location: without Status: is a 302), through the proxy's response-side helpers;
 * STDERR is logged as nginx logs it; END_REQUEST ends the response, and with fastcgi_keep_conn on
 * the connection goes back to the group's keepalive pool. uwsgi_pass and scgi_pass use the same
 * adapter with their own request (uwsgi-packet.ts, scgi-packet.ts) and no records: the server's
 * HTTP or CGI head, then the body to the close.
 */
import { beginUpstreamCycle, beginUpstreamState, failUpstreamState, type UpstreamState } from './upstream-states.js';
import type { CompiledFastcgi } from './fastcgi-config.js';
import { BODY_FILE_PIECE_BYTES, readBodyFile, resumeOnDrain, type BodyFileSettings, type SpoolFile } from './body-file.js';
import { beginRequest, paramsRecords, RecordReader, RecordType, stdinEnd, stdinRecords, type RecordSink } from './fastcgi-records.js';
import { uwsgiPacket } from './uwsgi-packet.js';
import { scgiPacket } from './scgi-packet.js';
import type { ResponseHead } from './h1/head-parser.js';
import { UpstreamFailure } from './h1/upstream-exchange.js';
import { headerOf } from './output-filter.js';
import { actionOf, KEPT_ON_ACCEL_REDIRECT, pauseBodyUntilDrained, readBuffered, type UpstreamContext } from './proxy.js';
import { clientResponseHeaders } from './proxy-request.js';
import type { HttpRequest } from './request.js';
import { recordUpstreamHead } from './variables.js';
import { UpstreamConnection } from '../upstream/connection-pool.js';
import type { Peer } from '../upstream/peer.js';
import type { UpstreamGroup } from '../upstream/group.js';
import { connectPeer } from '../upstream/peer-connect.js';
import { UpstreamCycle, type UpstreamAttempt } from '../upstream/request-cycle.js';
import { setTimeoutOnce } from '../core/socket-timeout.js';
import { ReadPacer } from './read-pacer.js';
import { errnoText } from '../core/errno.js';

/** Methods nginx retries without `non_idempotent` (ngx_http_upstream_next: not POST, LOCK, PATCH). */
const NON_IDEMPOTENT = new Set(['POST', 'LOCK', 'PATCH']);
/** How much of a response is read ahead of a slow client with fastcgi_buffering on. */
const READ_AHEAD_BYTES = 1024 * 1024;
/** The largest CGI response head: beyond it nginx's "upstream sent too big header" (see the fastcgi_buffer_size knob). */
const MAX_HEAD_BYTES = 32 * 1024;

/** What the fastcgi handler needs from the handler that called it. */
export interface FastcgiContext extends UpstreamContext {
  readonly fastcgi: CompiledFastcgi;
  /** An X-Accel-Redirect: the internal redirect to `target`, with the upstream headers it keeps. */
  readonly accelRedirect: (target: string, carried: string[]) => void;
  /** Where a buffered body goes to a file (client_body_in_file_only, client_body_buffer_size, client_body_temp_path). */
  readonly bodyFile: BodyFileSettings;
}


/** Passes one request to a FastCGI server. */
export function fastcgiRequest(ctx: FastcgiContext): void {
  const { exchange, fastcgi, request } = ctx;
  const group = fastcgi.groupFor(request);
  if ('error' in group) {
    ctx.log.error(`${group.error}${where(ctx)}`, ctx.conn.number);
    ctx.fail(group.status);
    return;
  }
  // ngx_http_fastcgi_handler() makes a fresh module context: $fastcgi_script_name is computed again from the URI now.
  request.fastcgiSplit = undefined;
  const read = request.requestBody;
  if (read !== undefined && !exchange.hasBody) {
    new FastcgiAttempts(ctx, group, fastcgi.passRequestBody ? [...read] : []).next();
    return;
  }
  // A body read into a file before an internal redirect: sent from that file again.
  const spooled = request.requestBodySpool;
  if (spooled !== undefined && !exchange.hasBody) {
    new FastcgiAttempts(ctx, group, fastcgi.passRequestBody ? spooled : []).next();
    return;
  }
  if (!fastcgi.passRequestBody || !exchange.hasBody || request.methodOverride !== undefined) {
    if (fastcgi.passRequestBody && request.methodOverride === undefined) exchange.readBody(0, () => undefined, () => undefined);
    new FastcgiAttempts(ctx, group, []).next();
    return;
  }
  // fastcgi_request_buffering off: STDIN records as the body arrives, a chunked one too (FastCGI
  // frames it itself). uwsgi and SCGI announce the body's length first: a body of unknown length
  // (chunked, or HTTP/2 without content-length) is read whole all the same (ngx_http_uwsgi_handler(),
  // ngx_http_scgi_handler(): no request_body_no_buffering for r->headers_in.chunked).
  if (!fastcgi.requestBuffering && (fastcgi.protocol === 'fastcgi' || request.header('content-length') !== undefined)) {
    new FastcgiAttempts(ctx, group, 'stream').next();
    return;
  }
  // ngx_http_read_client_request_body(): in memory up to client_body_buffer_size, past it in a temporary file.
  readBuffered(ctx, fastcgi.maxBodySize, (body) => new FastcgiAttempts(ctx, group, body).next(), false);
}

/** The CGI response head being read from STDOUT, and what followed it. */
interface HeadReading {
  parts: Buffer[];
  bytes: number;
}

/** One request's walk over the peers of a group: the FastCGI adapter of the upstream cycle. */
class FastcgiAttempts {
  readonly #ctx: FastcgiContext;
  readonly #cycle: UpstreamCycle<HttpRequest>;
  readonly #group: UpstreamGroup<HttpRequest>;
  /** The buffered body (in memory or in a file), or `'stream'` to send it as it arrives. */
  readonly #body: Buffer[] | SpoolFile | 'stream';
  #bodyStarted = false;
  #bodySent = false;
  #done = false;
  #connection: UpstreamConnection | undefined;
  #cancelConnect: (() => void) | undefined;
  #state: UpstreamState | undefined;
  /** True while written request bytes wait for the kernel (fastcgi_send_timeout applies). */
  #sending = false;
  /** How the current response flows to the client. */
  #flow: ResponseFlow | undefined;

  constructor(ctx: FastcgiContext, group: UpstreamGroup<HttpRequest>, body: Buffer[] | SpoolFile | 'stream') {
    this.#ctx = ctx;
    this.#group = group;
    this.#body = body;
    this.#cycle = new UpstreamCycle(ctx.fastcgi.protocol, group, ctx.request, ctx.fastcgi);
    beginUpstreamCycle(ctx.request);
    // fastcgi_ignore_client_abort on: the server's request goes on, its response read and dropped.
    if (ctx.fastcgi.ignoreClientAbort) {
      ctx.exchange.onAbort(() => {
        this.#flow?.release();
        this.#flow?.stop();
      });
      return;
    }
    ctx.exchange.onAbort(() => {
      this.#done = true;
      this.#flow?.stop();
      this.#cancelConnect?.();
      this.#connection?.socket.destroy();
      this.#cycle.stop('aborted');
    });
  }

  /** Tries the next peer, or answers 502 when none is left. */
  next(): void {
    if (this.#done) return;
    const { request, fastcgi } = this.#ctx;
    const attempt = this.#cycle.next();
    if (attempt === undefined) {
      this.#ctx.log.error(`no live upstreams while connecting to upstream${where(this.#ctx)}`, this.#ctx.conn.number);
      failUpstreamState(beginUpstreamState(request, this.#group.name), 502);
      this.#finishWithError(502);
      return;
    }
    this.#state = beginUpstreamState(request, attempt.peer.name);
    const pooled = fastcgi.keepConn ? this.#group.pool.acquire(attempt.peer.name) : undefined;
    if (pooled !== undefined) {
      attempt.connected();
      this.#send(attempt, pooled);
      return;
    }
    this.#connect(attempt);
  }

  #connect(attempt: UpstreamAttempt): void {
    const { fastcgi } = this.#ctx;
    const peer = attempt.peer;
    // suwsgi://: the handshake has its own uwsgi_connect_timeout, as for proxy_pass https://.
    const tls = fastcgi.tls === undefined ? undefined : { tls: fastcgi.tls, name: fastcgi.sslName(this.#ctx.request), certificate: fastcgi.sslCertificate(this.#ctx.request) };
    // ngx_http_upstream_set_local(): a fastcgi_bind value that is no address is an [error], and binds none.
    const bind = fastcgi.bind(this.#ctx.request);
    if (bind !== undefined && 'invalid' in bind) this.#ctx.log.error(`${bind.invalid}${where(this.#ctx)}`, this.#ctx.conn.number);
    const local = bind === undefined || 'invalid' in bind ? undefined : bind;
    const options = { protocol: fastcgi.protocol, group: this.#group.name, timeoutMs: fastcgi.connectTimeoutMs, noDelay: true, keepAlive: fastcgi.socketKeepalive, local, ...(tls === undefined ? {} : { tls }) };
    this.#cancelConnect = connectPeer(peer, options, (result) => {
      this.#cancelConnect = undefined;
      if (!result.ok && result.bindFailed === true) {
        // ngx_event_connect_peer(): bind() failed is logged at crit, and the request ends with 500.
        this.#ctx.log.write('crit', `${result.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        attempt.finish('aborted', 'bind');
        this.#finishWithError(500);
        return;
      }
      if (!result.ok) {
        if (result.local === true) {
          attempt.finish('aborted', 'worker_connections');
          this.#finishWithError(500);
          return;
        }
        this.#failed(attempt, new UpstreamFailure(result.message, 'send', result.timedOut ? 'timeout' : 'error', true), false);
        return;
      }
      attempt.connected();
      this.#send(attempt, new UpstreamConnection(result.socket, peer.name));
    });
  }

  /** The PARAMS of this request: fastcgi_param, then the client's headers as HTTP_* (ngx_http_fastcgi_create_request()). */
  #params(): [string, string][] {
    const { request, fastcgi } = this.#ctx;
    const out: [string, string][] = [];
    for (const param of fastcgi.params) {
      const value = param.value(request);
      if (param.ifNotEmpty && value === '') continue;
      out.push([param.name, value]);
    }
    if (!fastcgi.passRequestHeaders) return out;
    // Fields of one name go as one parameter, joined with ", " (Cookie with "; "), as nginx 1.23.0 joins them.
    const joined = new Map<string, { value: string; separator: string }>();
    const headers = request.head.headers;
    for (let i = 0; i < headers.length; i += 2) {
      const name = headers[i] as string;
      // ngx_http_fastcgi_create_request(): a name with characters other than letters, digits, "-" (and "_") is not passed.
      if (!/^[A-Za-z0-9_-]+$/.test(name)) continue;
      const key = `HTTP_${name.toUpperCase().replace(/-/g, '_')}`;
      if (fastcgi.paramHeaders.has(key)) continue;
      const value = headers[i + 1] as string;
      const seen = joined.get(key);
      if (seen === undefined) joined.set(key, { value, separator: name.toLowerCase() === 'cookie' ? '; ' : ', ' });
      else seen.value += `${seen.separator}${value}`;
    }
    for (const [key, { value }] of joined) out.push([key, value]);
    return out;
  }

  #send(attempt: UpstreamAttempt, connection: UpstreamConnection): void {
    if (this.#done) {
      this.#group.pool.release(connection, false);
      return;
    }
    const { fastcgi, exchange, request } = this.#ctx;
    const peer = attempt.peer;
    const state = this.#state;
    if (state !== undefined) state.connectMs = attempt.elapsedMs();
    const socket = connection.socket;
    const io = { read: socket.bytesRead, written: socket.bytesWritten };
    this.#connection = connection;
    connection.requests++;
    const reused = connection.reused;
    let head: HeadReading | undefined = { parts: [], bytes: 0 };
    let clientStarted = false;
    let ended = false;
    const settle = (): void => {
      if (state === undefined || state.responseMs >= 0) return;
      state.responseMs = attempt.elapsedMs();
      state.bytesReceived = socket.bytesRead - io.read;
      state.bytesSent = socket.bytesWritten - io.written;
    };
    const record = (outcome: 'ok' | 'failed' | 'next', reason: string, action = ''): void => {
      settle();
      if (attempt.finish(outcome, reason)) this.#ctx.log.warn(`upstream server temporarily disabled${action}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
    };
    const flow = new ResponseFlow(socket, fastcgi.buffering);
    this.#flow = flow;
    const stop = (): void => {
      ended = true;
      flow.stop();
      connection.owner = undefined;
      socket.destroy();
    };
    // The end of the response, once what the pacer (fastcgi_limit_rate) still holds has gone.
    const finish = (): void => flow.end(() => exchange.end());
    const fail = (failure: UpstreamFailure): void => {
      if (ended) return;
      stop();
      if (clientStarted) {
        record('failed', failure.kind, actionOf(failure.message, ' while reading upstream'));
        this.#ctx.log.error(`${failure.message}${where(this.#ctx, peer)}`, this.#ctx.conn.number);
        this.#done = true;
        this.#ctx.conn.protocol.destroy();
        return;
      }
      // A pooled connection the server closed before answering: a fresh one, uncounted (nginx: u->peer.tries++).
      if (reused && failure.kind === 'error' && head !== undefined && head.bytes === 0 && !this.#bodyStarted && !this.#done) {
        this.#connect(attempt);
        return;
      }
      this.#failedAfterSend(attempt, failure, record);
    };
    const sink: RecordSink = {
      content: (type, data, last) => {
        if (ended) return;
        if (type === RecordType.Stderr) {
          if (this.#stderr(data, head !== undefined)) fail(new UpstreamFailure('upstream sent invalid header while reading response header from upstream', 'header', 'invalid_header', true));
          return;
        }
        if (head === undefined) {
          if (data.length > 0) flow.push(data, (chunk) => this.#write(chunk, flow));
          if (state !== undefined) state.responseLength += data.length;
          return;
        }
        if (data.length === 0 && last) {
          fail(new UpstreamFailure('upstream prematurely closed FastCGI stdout while reading response header from upstream', 'header', 'invalid_header', true));
          return;
        }
        head.bytes += data.length;
        // The common case, the whole head in one read: parsed where it is, no copy.
        let all = data;
        if (head.parts.length > 0) {
          head.parts.push(data);
          all = Buffer.concat(head.parts);
        }
        const end = headEnd(all);
        if (end === undefined) {
          if (all.length > MAX_HEAD_BYTES) fail(new UpstreamFailure('upstream sent too big header while reading response header from upstream', 'header', 'invalid_header', true));
          else head.parts = [head.parts.length === 0 ? Buffer.from(all) : all];
          return;
        }
        const parsed = fastcgi.protocol === 'fastcgi' ? parseCgiHead(all.subarray(0, end.head)) : parseHttpOrCgiHead(all.subarray(0, end.head));
        if (typeof parsed === 'string') {
          fail(new UpstreamFailure(`${parsed} while reading response header from upstream`, 'header', 'invalid_header', true));
          return;
        }
        head = undefined;
        const outcome = this.#onHead(attempt, parsed, record, () => stop(), flow);
        if (outcome === 'stopped') return;
        clientStarted = true;
        if (request.method === 'HEAD') {
          // nginx reads no body for HEAD (r->header_only): the response ends with its head, and the
          // connection, with the rest of the response still in it, cannot be reused.
          stop();
          record('ok', '');
          this.#done = true;
          exchange.end();
          return;
        }
        const rest = all.subarray(end.body);
        if (rest.length > 0) {
          if (state !== undefined) state.responseLength += rest.length;
          flow.push(rest, (chunk) => this.#write(chunk, flow));
        }
      },
      endRequest: () => {
        if (ended) return;
        if (head !== undefined) {
          fail(new UpstreamFailure('upstream prematurely closed FastCGI request while reading response header from upstream', 'header', 'invalid_header', true));
          return;
        }
        ended = true;
        connection.owner = undefined;
        record('ok', '');
        this.#done = true;
        // Not held for the client or the rate any longer: all of the response has been read.
        flow.release();
        // With FCGI_KEEP_CONN the server keeps the connection; it goes back once the whole request was sent.
        this.#group.pool.release(connection, fastcgi.keepConn && this.#bodySent);
        finish();
      },
      invalid: (message) => fail(new UpstreamFailure(`${message} while reading response header from upstream`, 'header', 'invalid_header', true)),
    };
    // uwsgi and SCGI have no records: all the server sends is the response, to the close.
    const reader = fastcgi.protocol === 'fastcgi' ? new RecordReader(sink) : undefined;
    connection.owner = {
      onData: (chunk) => (reader === undefined ? sink.content(RecordType.Stdout, chunk, false) : reader.push(chunk)),
      onGone: (err, why) => {
        if (ended) return;
        if (why === 'timeout') {
          const phase = this.#sending ? 'sending request to upstream' : head === undefined ? 'reading upstream' : 'reading response header from upstream';
          fail(new UpstreamFailure(`upstream timed out (110: Connection timed out) while ${phase}`, 'header', 'timeout', true));
          return;
        }
        if (err !== undefined) {
          fail(new UpstreamFailure(`recv() failed (${errnoText(err)}) while reading ${head === undefined ? 'upstream' : 'response header from upstream'}`, 'header', 'error', true));
          return;
        }
        if (head === undefined && !fastcgi.keepConn) {
          // A server that closes after its STDOUT without END_REQUEST: nginx takes the close as the end (u->length -1).
          ended = true;
          connection.owner = undefined;
          record('ok', '');
          this.#done = true;
          flow.release();
          socket.destroy();
          finish();
          return;
        }
        fail(new UpstreamFailure(`upstream prematurely closed connection while reading ${head === undefined ? 'upstream' : 'response header from upstream'}`, 'header', 'error', true));
      },
    };
    socket.cork();
    if (fastcgi.protocol === 'uwsgi') {
      const packet = uwsgiPacket(this.#params(), fastcgi.modifier1, fastcgi.modifier2);
      if (typeof packet === 'string') {
        socket.uncork();
        stop();
        attempt.finish('aborted', 'too big');
        this.#ctx.log.write('alert', `${packet}${where(this.#ctx)}`, this.#ctx.conn.number);
        this.#finishWithError(500);
        return;
      }
      this.#writeUpstream(socket, packet);
    } else if (fastcgi.protocol === 'scgi') {
      this.#writeUpstream(socket, scgiPacket(this.#params(), scgiContentLength(request)));
    } else {
      this.#writeUpstream(socket, beginRequest(fastcgi.keepConn));
      for (const record of paramsRecords(this.#params())) this.#writeUpstream(socket, record);
    }
    const body = this.#body;
    if (body === 'stream') {
      // The body bytes read with the head (nginx's preread) go out in the write of BEGIN_REQUEST and PARAMS.
      this.#streamBody(socket)();
    } else if (!Array.isArray(body)) {
      this.#bodySent = false;
      this.#fileBody(socket, body, () => ended);
    } else {
      for (const part of body) for (const piece of this.#bodyRecords(part)) this.#writeUpstream(socket, piece);
      if (fastcgi.protocol === 'fastcgi') this.#writeUpstream(socket, stdinEnd());
      this.#bodySent = true;
    }
    socket.uncork();
  }

  /**
   * A body kept in a file, read back in pieces and written as the connection takes them (a slow
   * server holds the reading back); for a retry on the next peer it is read again from the start.
   */
  #fileBody(socket: UpstreamConnection['socket'], body: SpoolFile, ended: () => boolean): void {
    const stopped = (): boolean => ended() || socket.destroyed || this.#done;
    readBodyFile(
      body,
      BODY_FILE_PIECE_BYTES,
      (data, resume) => {
        const records = this.#bodyRecords(data);
        if (this.#writeUpstream(socket, records.length === 1 ? (records[0] as Buffer) : Buffer.concat(records))) return true;
        resumeOnDrain(socket, resume);
        return false;
      },
      (err) => {
        if (err !== undefined) {
          // ngx_read_file() failed: nginx's [crit], and the request ends with 500.
          this.#ctx.log.write('crit', `${err.message}${where(this.#ctx)}`, this.#ctx.conn.number);
          socket.destroy();
          this.#finishWithError(500);
          return;
        }
        if (this.#ctx.fastcgi.protocol === 'fastcgi') this.#writeUpstream(socket, stdinEnd());
        this.#bodySent = true;
      },
      stopped,
    );
  }

  /** Body bytes as they go: STDIN records for FastCGI, as they are for uwsgi and SCGI. */
  #bodyRecords(data: Buffer): Buffer[] {
    return this.#ctx.fastcgi.protocol === 'fastcgi' ? stdinRecords(data) : [data];
  }

  /**
   * Writes to the FastCGI server under fastcgi_send_timeout until the kernel has taken all that
   * was written; then fastcgi_read_timeout runs (ngx_http_upstream_send_request()'s two timers).
   */
  #writeUpstream(socket: UpstreamConnection['socket'], data: Buffer): boolean {
    const { sendTimeoutMs, readTimeoutMs } = this.#ctx.fastcgi;
    this.#sending = true;
    setTimeoutOnce(socket, sendTimeoutMs);
    return socket.write(data, () => {
      // Not once the response ended: the connection may be idle in the pool, under keepalive_timeout.
      if (socket.writableLength > 0 || socket.destroyed || this.#done) return;
      this.#sending = false;
      setTimeoutOnce(socket, readTimeoutMs);
    });
  }

  /**
   * The client's body in STDIN records as it arrives; a slow FastCGI server holds the client back.
   * Returns what writes the bytes read so far now.
   */
  #streamBody(socket: UpstreamConnection['socket']): () => void {
    const { exchange, fastcgi } = this.#ctx;
    if (this.#bodyStarted) return () => undefined;
    this.#bodyStarted = true;
    // $request_body: what fits in client_body_buffer_size is kept, as nginx's one buffer holds it.
    const kept: Buffer[] = [];
    let keptBytes = 0;
    // The pieces one read of the client's socket gave (delivered together, before a microtask
    // runs) go in one write, as nginx writes the records of one buffer chain at once.
    let pending: Buffer[] = [];
    const flush = (last: boolean): void => {
      const records = pending.flatMap((piece) => this.#bodyRecords(piece));
      pending = [];
      if (last && fastcgi.protocol === 'fastcgi') records.push(stdinEnd());
      if (records.length === 0 || socket.destroyed) return;
      // Back-pressure: a slow FastCGI server holds the client back instead of the body piling up here.
      if (!this.#writeUpstream(socket, records.length === 1 ? (records[0] as Buffer) : Buffer.concat(records))) pauseBodyUntilDrained(exchange, socket);
    };
    exchange.readBody(
      fastcgi.maxBodySize,
      (data) => {
        if (keptBytes + data.length <= fastcgi.bodyBufferSize) kept.push(Buffer.from(data));
        keptBytes += data.length;
        if (socket.destroyed) return;
        pending.push(Buffer.from(data));
        if (pending.length === 1) queueMicrotask(() => flush(false));
      },
      (err) => {
        if (err !== undefined) {
          socket.destroy();
          return;
        }
        this.#bodySent = true;
        if (keptBytes <= fastcgi.bodyBufferSize) this.#ctx.request.requestBody = kept;
        flush(true);
      },
    );
    return () => flush(false);
  }

  /**
   * A STDERR record: logged as nginx logs it (trailing CR, LF, "." and spaces dropped); true when
   * it names a fastcgi_catch_stderr string before the response head, which makes the head invalid.
   */
  #stderr(data: Buffer, beforeHead: boolean): boolean {
    let end = data.length;
    while (end > 0) {
      const byte = data[end - 1];
      if (byte !== 0x0a && byte !== 0x0d && byte !== 0x2e && byte !== 0x20) break;
      end--;
    }
    const text = data.toString('latin1', 0, end);
    const ctx = this.#ctx;
    ctx.log.error(`FastCGI sent in stderr: "${text}" while reading ${beforeHead ? 'response header from upstream' : 'upstream'}${where(ctx, this.#cycle.current?.peer)}`, ctx.conn.number);
    return beforeHead && ctx.fastcgi.catchStderr.some((pattern) => text.includes(pattern));
  }

  /** The CGI head is in: retry, intercept, X-Accel-Redirect, or the client's response head. */
  #onHead(
    attempt: UpstreamAttempt,
    head: ResponseHead,
    record: (outcome: 'ok' | 'failed' | 'next', reason: string, action?: string) => void,
    stop: () => void,
    flow: ResponseFlow,
  ): 'stopped' | 'sent' {
    const { fastcgi, request, exchange } = this.#ctx;
    const state = this.#state;
    if (state !== undefined) {
      state.status = head.status;
      state.headerMs = attempt.elapsedMs();
    }
    recordUpstreamHead(request, head);
    const key = `http_${head.status}` as const;
    if (fastcgi.nextUpstream.has(key as never) && this.#mayRetry()) {
      stop();
      record(head.status >= 500 ? 'failed' : 'next', key, ' while reading response header from upstream');
      this.next();
      return 'stopped';
    }
    attempt.responded();
    if (fastcgi.interceptErrors && head.status >= 300 && fastcgi.errorPageFor(head.status)) {
      stop();
      // ngx_http_upstream_intercept_errors(): a 401's WWW-Authenticate fields go with the error page.
      if (head.status === 401) {
        const kept: string[] = [];
        for (let i = 0; i < head.headers.length; i += 2) if ((head.headers[i] as string).toLowerCase() === 'www-authenticate') kept.push(head.headers[i] as string, head.headers[i + 1] as string);
        if (kept.length > 0) request.carriedHeaders = [...(request.carriedHeaders ?? []), ...kept];
      }
      record('ok', '');
      this.#finishWithError(head.status);
      return 'stopped';
    }
    const accel = fastcgi.ignoreHeaders.has('x-accel-redirect') ? undefined : headerOf(head.headers, 'x-accel-redirect');
    if (accel !== undefined) {
      stop();
      record('ok', '');
      this.#done = true;
      const kept: string[] = [];
      for (let i = 0; i < head.headers.length; i += 2) {
        if (KEPT_ON_ACCEL_REDIRECT.has((head.headers[i] as string).toLowerCase())) kept.push(head.headers[i] as string, head.headers[i + 1] as string);
      }
      this.#ctx.accelRedirect(accel, kept);
      return 'stopped';
    }
    const peer = attempt.peer;
    const headers = clientResponseHeaders(head, fastcgi.hide, fastcgi.pass, undefined, {
      duplicate: (message) => this.#ctx.log.warn(`${message}${where(this.#ctx, peer)}`, this.#ctx.conn.number),
    });
    const added = this.#cycle.responseHeaders(peer);
    if (added !== undefined) headers.push(...added);
    const status = request.statusOverride ?? head.status;
    request.status = status;
    if (fastcgi.pass.has('server') || fastcgi.pass.has('date')) exchange.ownServerAndDate = true;
    this.#ctx.headers(status, headers);
    const accelCharset = fastcgi.ignoreHeaders.has('x-accel-charset') ? undefined : headerOf(head.headers, 'x-accel-charset');
    if (!fastcgi.ignoreHeaders.has('x-accel-limit-rate')) {
      const rate = headerOf(head.headers, 'x-accel-limit-rate');
      if (rate !== undefined && /^[0-9]+$/.test(rate)) request.limitRate = Number(rate);
    }
    const accelBuffering = fastcgi.ignoreHeaders.has('x-accel-buffering') ? undefined : headerOf(head.headers, 'x-accel-buffering')?.toLowerCase();
    flow.buffering = accelBuffering === 'yes' ? true : accelBuffering === 'no' ? false : fastcgi.buffering;
    if (!flow.buffering) request.limitRate = 0;
    // fastcgi_limit_rate, read now (it may name $upstream_http_*): only a buffered response is paced, as in nginx's event pipe.
    if (flow.buffering) {
      const rate = fastcgi.limitRate(request);
      if (typeof rate !== 'number') this.#ctx.log.error(`${rate.invalid}${where(this.#ctx)}`, this.#ctx.conn.number);
      else if (rate > 0) flow.pace(rate, (chunk) => this.#write(chunk, flow));
    }
    const options = accelCharset === undefined ? undefined : { overrideCharset: accelCharset };
    const noBody = exchange.head.method === 'HEAD' || head.status === 204 || head.status === 304;
    exchange.writeHead(status, headers, noBody ? (head.contentLength >= 0 ? head.contentLength : 0) : head.contentLength >= 0 ? head.contentLength : 'chunked', options);
    return 'sent';
  }

  #write(chunk: Buffer, flow: ResponseFlow): void {
    const { exchange } = this.#ctx;
    if (exchange.aborted) return;
    if (exchange.write(chunk)) return;
    if (flow.buffering && exchange.pendingBytes < READ_AHEAD_BYTES) return;
    flow.hold('client', true);
    exchange.onDrain(() => flow.hold('client', false));
  }

  /** Whether the next peer may be tried: never once a streamed body began, POST and friends only with non_idempotent. */
  #mayRetry(sent = true): boolean {
    const { fastcgi, exchange } = this.#ctx;
    if (this.#bodyStarted || !this.#cycle.mayRetry()) return false;
    return !sent || !NON_IDEMPOTENT.has(exchange.head.method) || fastcgi.nextUpstream.has('non_idempotent');
  }

  /** A try that failed before the request went out (connect). */
  #failed(attempt: UpstreamAttempt, failure: UpstreamFailure, sent: boolean): void {
    if (this.#done) return;
    const ctx = this.#ctx;
    if (attempt.finish('failed', failure.kind)) ctx.log.warn(`upstream server temporarily disabled${actionOf(failure.message, '')}${where(ctx, attempt.peer)}`, ctx.conn.number);
    if (this.#state !== undefined && this.#state.responseMs < 0) this.#state.responseMs = attempt.elapsedMs();
    ctx.log.error(`${failure.message}${where(ctx, attempt.peer)}`, ctx.conn.number);
    this.#retryOrFail(failure, sent);
  }

  #failedAfterSend(attempt: UpstreamAttempt, failure: UpstreamFailure, record: (outcome: 'failed', reason: string, action?: string) => void): void {
    if (this.#done) return;
    record('failed', failure.kind, actionOf(failure.message, ' while reading response header from upstream'));
    this.#ctx.log.error(`${failure.message}${where(this.#ctx, attempt.peer)}`, this.#ctx.conn.number);
    this.#retryOrFail(failure, true);
  }

  #retryOrFail(failure: UpstreamFailure, sent: boolean): void {
    failUpstreamState(this.#state, failure.kind === 'timeout' ? 504 : 502);
    if (this.#ctx.fastcgi.nextUpstream.has(failure.kind) && this.#mayRetry(sent)) {
      this.next();
      return;
    }
    this.#finishWithError(failure.kind === 'timeout' ? 504 : 502);
  }

  #finishWithError(status: number): void {
    this.#done = true;
    if (this.#ctx.exchange.aborted) return;
    this.#ctx.fail(status);
  }
}

/**
 * The response's bytes on their way to the client: read ahead of a slow client with buffering
 * on, paced by fastcgi_limit_rate (a {@link ReadPacer}); the server's socket is paused while the
 * client or the rate holds it back, and read again once neither does.
 */
class ResponseFlow {
  readonly #socket: UpstreamConnection['socket'];
  buffering: boolean;
  #pacer: ReadPacer | undefined;
  #heldForClient = false;
  #heldForRate = false;
  #released = false;

  constructor(socket: UpstreamConnection['socket'], buffering: boolean) {
    this.#socket = socket;
    this.buffering = buffering;
  }

  /** Paces what follows at `rate` bytes per second. */
  pace(rate: number, deliver: (chunk: Buffer) => void): void {
    this.#pacer = new ReadPacer(rate, deliver, (held) => this.hold('rate', held));
  }

  /** Response body bytes read from the server. */
  push(chunk: Buffer, deliver: (chunk: Buffer) => void): void {
    if (this.#pacer === undefined) deliver(chunk);
    else this.#pacer.push(chunk);
  }

  hold(why: 'client' | 'rate', held: boolean): void {
    if (this.#released) return;
    const before = this.#heldForClient || this.#heldForRate;
    if (why === 'client') this.#heldForClient = held;
    else this.#heldForRate = held;
    const after = this.#heldForClient || this.#heldForRate;
    if (after && !before) this.#socket.pause();
    else if (!after && before) this.#socket.resume();
  }

  /** The whole response was read (or the client went away): the socket is not held any longer. */
  release(): void {
    if (this.#released) return;
    this.#released = true;
    if (this.#heldForClient || this.#heldForRate) this.#socket.resume();
  }

  /** `then` once all that was read has gone on. */
  end(then: () => void): void {
    if (this.#pacer === undefined) then();
    else this.#pacer.end(then);
  }

  /** Drops what the pacer holds (the response ended otherwise). */
  stop(): void {
    this.#pacer?.stop();
  }
}

/** Where the CGI head ends (the empty line, CRLF or bare LF) and the body begins; undefined until it has arrived. */
function headEnd(data: Buffer): { head: number; body: number } | undefined {
  for (let i = 0; i < data.length; i++) {
    if (data[i] !== 0x0a) continue;
    // An empty line: LF right at the start, or LF after LF / CRLF.
    if (i === 0) return { head: 0, body: 1 };
    if (data[i - 1] === 0x0a) return { head: i, body: i + 1 };
    if (data[i - 1] === 0x0d && (i === 1 || data[i - 2] === 0x0a)) return { head: i - 1, body: i + 1 };
  }
  return undefined;
}

/** The CGI head as a response head (ngx_http_fastcgi_process_header()), or nginx's message for a bad one. */
function parseCgiHead(data: Buffer): ResponseHead | string {
  const headers: string[] = [];
  let status: string | undefined;
  let location = false;
  let contentLength = -1;
  for (const raw of data.toString('latin1').split('\n')) {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    if (line === '') continue;
    const colon = line.indexOf(':');
    if (colon <= 0 || !/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(line.slice(0, colon))) return `upstream sent invalid header: "${line}"`;
    const name = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    const key = name.toLowerCase();
    if (key === 'status') status ??= value;
    else if (key === 'location') location = true;
    else if (key === 'content-length' && /^[0-9]+$/.test(value)) contentLength = Number(value);
    headers.push(name, value);
  }
  let code = 200;
  let reason = 'OK';
  if (status !== undefined) {
    code = /^[0-9]{3}/.test(status) ? Number(status.slice(0, 3)) : Number.NaN;
    if (!Number.isInteger(code) || code < 100) return `upstream sent invalid status "${status}"`;
    reason = status.slice(3).trim();
  } else if (location) {
    code = 302;
    reason = 'Moved Temporarily';
  }
  return { status: code, reason, versionMinor: 1, headers, contentLength, chunked: false, connection: [], headBytes: data.length };
}

/**
 * A uwsgi or SCGI server's head: an HTTP status line and fields (ngx_http_uwsgi_process_status_line(),
 * ngx_http_scgi_process_status_line()); without a status line nginx reads it as a CGI head (a
 * Status: field, or a Location: making it a 302), and so does hitless.
 */
function parseHttpOrCgiHead(data: Buffer): ResponseHead | string {
  const text = data.toString('latin1');
  const lineEnd = text.indexOf('\n');
  const first = (lineEnd === -1 ? text : text.slice(0, lineEnd)).replace(/\r$/, '');
  const status = /^HTTP\/1\.[0-9]+ ([0-9]{3})(?: (.*))?$/.exec(first);
  if (status === null) return parseCgiHead(data);
  const rest = parseCgiHead(data.subarray(lineEnd + 1));
  if (typeof rest === 'string') return rest;
  return { ...rest, status: Number(status[1]), reason: status[2] ?? '' };
}

/**
 * The CONTENT_LENGTH of an SCGI request (ngx_http_scgi_create_request()): the client's
 * Content-Length, or the length of a body of unknown length read whole (content_length_n, which
 * ngx_http_request_body_chunked_filter() counts up); 0 without a body.
 */
function scgiContentLength(request: HttpRequest): number {
  const field = request.header('content-length');
  if (field !== undefined && /^[0-9]+$/.test(field)) return Number(field);
  return request.requestBody?.reduce((sum, part) => sum + part.length, 0) ?? request.requestBodySpool?.length ?? 0;
}

/** The tail nginx adds to upstream errors: `, client: ..., server: ..., request: "...", upstream: "fastcgi://...", host: "..."`. */
function where(ctx: FastcgiContext, peer?: Peer): string {
  const { request, conn } = ctx;
  const host = request.header('host');
  const upstream = peer === undefined ? '' : `, upstream: "${ctx.fastcgi.tls === undefined ? ctx.fastcgi.protocol : 'suwsgi'}://${peer.name}${peer.name.startsWith('unix:') ? ':' : ''}"`;
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${upstream}${host === undefined ? '' : `, host: "${host}"`}`;
}
