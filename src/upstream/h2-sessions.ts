/**
 * HTTP/2 sessions to upstream peers (grpc_pass, proxy_http_version 2), one per peer and TLS
 * identity, shared by every request of the worker: streams are multiplexed on it (RFC 9113 section
 * 5) where nginx keeps connections that carry one request at a time. An exclusive session (a proxy
 * or grpc_pass to a group without `keepalive`) carries one request and closes after it, as nginx
 * closes such a connection. A session that received GOAWAY or closed takes no new stream; the next
 * request opens a fresh one, while the streams the old one accepted finish on it. A session with
 * no stream closes after an idle timeout. Each session reads its socket through an H2FrameWatch,
 * which sees the frames nghttp2 drops for streams it closed (watchLateFrames()).
 */
import { connect, constants, type ClientHttp2Session, type ClientHttp2Stream, type ClientSessionOptions } from 'node:http2';
import type { Socket } from 'node:net';
import { H2FrameWatch } from './h2-frame-watch.js';

/** The default idle timeout of a session without streams: nginx's upstream `keepalive_timeout`. */
export const DEFAULT_H2_IDLE_TIMEOUT_MS = 60_000;

/** The outcome of opening the transport of a session (TCP, and TLS for grpcs). */
export type TransportResult<F> = { readonly ok: true; readonly socket: Socket } | { readonly ok: false; readonly failure: F };

/** A session ready for a stream, or why none could be had. */
export type SessionResult<F> = { readonly ok: true; readonly session: ClientHttp2Session; readonly reused: boolean } | { readonly ok: false; readonly failure: F };

interface Entry {
  readonly session: ClientHttp2Session;
  readonly key: string;
  /** What arrives on its socket, walked for frames nghttp2 drops (h2-frame-watch.ts). */
  readonly watch: H2FrameWatch;
  readonly createdAt: number;
  /** Streams it has carried. */
  requests: number;
  /** Not shared: closed once its streams are done. */
  readonly exclusive: boolean;
  /** True once a stream was counted on it. */
  used: boolean;
  /** keepalive_requests or keepalive_time reached: closed once its streams are done. */
  spent: boolean;
  streams: number;
  timer: NodeJS.Timeout | undefined;
}

/** The sessions of one upstream group. */
export class H2SessionPool<F = Error> {
  readonly #idleTimeoutMs: number;
  readonly #maxRequests: number;
  readonly #maxAgeMs: number;
  readonly #live = new Map<string, Entry>();
  readonly #entries = new Map<ClientHttp2Session, Entry>();
  /** Requests waiting on a transport being opened for their key: they share it. */
  readonly #opening = new Map<string, ((result: SessionResult<F>) => void)[]>();
  #closed = false;

  /**
   * `idleTimeoutMs`: how long a session without streams stays open (keepalive_timeout; default
   * 60 s); `maxRequests` and `maxAgeMs`: after that many streams or that long a session takes no
   * new stream (keepalive_requests, keepalive_time; default unlimited).
   */
  constructor(idleTimeoutMs = DEFAULT_H2_IDLE_TIMEOUT_MS, maxRequests = Infinity, maxAgeMs = Infinity) {
    this.#idleTimeoutMs = idleTimeoutMs > 0 ? idleTimeoutMs : DEFAULT_H2_IDLE_TIMEOUT_MS;
    this.#maxRequests = maxRequests > 0 ? maxRequests : Infinity;
    this.#maxAgeMs = maxAgeMs > 0 ? maxAgeMs : Infinity;
  }

  /** Live sessions (tests and metrics). */
  get size(): number {
    return this.#live.size;
  }

  /**
   * Hands `done` a session for `key`: the live one, or one on a transport `open` makes. Requests
   * that arrive while a transport is being opened wait for it instead of opening their own.
   * `exclusive`: a session of its own on a new transport, never shared, closed after its stream.
   */
  session(key: string, open: (done: (result: TransportResult<F>) => void) => void, done: (result: SessionResult<F>) => void, exclusive = false): void {
    if (exclusive) {
      open((result) => done(result.ok ? { ok: true, session: this.#wrap(key, result.socket, true), reused: false } : result));
      return;
    }
    const live = this.#live.get(key);
    if (live !== undefined && usable(live.session)) {
      done({ ok: true, session: live.session, reused: true });
      return;
    }
    if (live !== undefined) this.#live.delete(key);
    const waiting = this.#opening.get(key);
    if (waiting !== undefined) {
      waiting.push(done);
      return;
    }
    const waiters = [done];
    this.#opening.set(key, waiters);
    open((result) => {
      this.#opening.delete(key);
      if (!result.ok) {
        for (const waiter of waiters) waiter(result);
        return;
      }
      const session = this.#wrap(key, result.socket);
      for (const waiter of waiters) waiter({ ok: true, session, reused: false });
    });
  }

  /** Counts a stream on `session` until it closes, so that an idle session can be closed in time. */
  track(session: ClientHttp2Session, stream: { once(event: 'close', listener: () => void): unknown }): void {
    const entry = this.#entries.get(session);
    if (entry === undefined) return;
    entry.streams++;
    entry.used = true;
    // keepalive_requests, keepalive_time: a spent session finishes its streams and takes no more.
    if (++entry.requests >= this.#maxRequests || Date.now() - entry.createdAt >= this.#maxAgeMs) {
      entry.spent = true;
      if (this.#live.get(entry.key) === entry) this.#live.delete(entry.key);
    }
    if (entry.timer !== undefined) {
      clearTimeout(entry.timer);
      entry.timer = undefined;
    }
    stream.once('close', () => {
      if (--entry.streams === 0) this.#idle(entry);
    });
  }

  /**
   * Reports through `onLate`, in nginx's words, a frame that fails `stream`'s response after its
   * END_STREAM (a RST_STREAM with an error code, a second one, a frame but WINDOW_UPDATE), which
   * node:http2 never reports; the returned function stops watching, once the response is done.
   */
  watchLateFrames(session: ClientHttp2Session, stream: ClientHttp2Stream, onLate: (message: string) => void): () => void {
    const entry = this.#entries.get(session);
    if (entry === undefined) return () => undefined;
    let unwatch: (() => void) | undefined;
    let stopped = false;
    const start = (): void => {
      if (!stopped && stream.id !== undefined) unwatch = entry.watch.watch(stream.id, onLate);
    };
    // A stream gets its id once its HEADERS are submitted: at once on a connected session.
    if (stream.id !== undefined) start();
    else stream.once('ready', start);
    return () => {
      stopped = true;
      unwatch?.();
    };
  }

  /** Closes every session gracefully (their streams finish first); no new one is kept. */
  close(): void {
    this.#closed = true;
    for (const entry of this.#entries.values()) {
      if (entry.timer !== undefined) clearTimeout(entry.timer);
      if (!entry.session.closed && !entry.session.destroyed) entry.session.close();
    }
    this.#live.clear();
  }

  #wrap(key: string, socket: Socket, exclusive = false): ClientHttp2Session {
    // nginx's connection preface (ngx_http_grpc_connection_start, ngx_http_proxy_v2_connection_start)
    // says HEADER_TABLE_SIZE 0: a peer's HPACK dynamic table size update above it is a compression error.
    const watch = new H2FrameWatch(socket);
    const options: ClientSessionOptions = { createConnection: () => watch, settings: { enablePush: false } };
    const encrypted = (socket as { encrypted?: boolean }).encrypted === true;
    const session = connect(encrypted ? 'https://localhost' : 'http://localhost', options);
    const entry: Entry = { session, key, watch, createdAt: Date.now(), requests: 0, exclusive, used: false, spent: false, streams: 0, timer: undefined };
    this.#entries.set(session, entry);
    session.on('error', () => undefined); // its streams fail with it; the session ends in 'close'
    const forget = (): void => {
      if (this.#live.get(key) === entry) this.#live.delete(key);
    };
    session.once('goaway', forget);
    session.once('close', () => {
      forget();
      if (entry.timer !== undefined) clearTimeout(entry.timer);
      this.#entries.delete(session);
    });
    if (this.#closed) session.close();
    else if (exclusive) this.#idle(entry);
    else {
      this.#live.set(key, entry);
      this.#idle(entry);
    }
    return session;
  }

  #idle(entry: Entry): void {
    if (entry.streams > 0) return;
    if (this.#closed || entry.spent || (entry.used && entry.exclusive) || !usable(entry.session)) {
      if (!entry.session.closed && !entry.session.destroyed) entry.session.close();
      return;
    }
    entry.timer = setTimeout(() => {
      entry.timer = undefined;
      if (entry.streams === 0 && !entry.session.destroyed) entry.session.close();
    }, this.#idleTimeoutMs);
    entry.timer.unref();
  }
}

/**
 * Gives up a stream that reached its read timeout: RST_STREAM CANCEL, and the stream ends here even
 * when its session can no longer say so (node:http2 tells JavaScript nothing when nghttp2 sent
 * GOAWAY for a header block its HPACK decoder refused, and such a session never reports its streams
 * closed). The session takes no new stream (the others on it finish), as nginx does not keep a
 * connection that timed out.
 */
export function cancelTimedOutStream(session: ClientHttp2Session, stream: ClientHttp2Stream): void {
  stream.close(constants.NGHTTP2_CANCEL);
  stream.destroy();
  if (!session.closed) session.close();
}

/**
 * True when a session may take a new stream. node:http2 closes a session itself when GOAWAY
 * arrives (`closed`), and a failed one is `destroyed`; the 'goaway' listener also drops it from
 * the pool at once.
 */
function usable(session: ClientHttp2Session): boolean {
  return !session.closed && !session.destroyed;
}
