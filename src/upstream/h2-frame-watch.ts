/**
 * The frames an HTTP/2 upstream sends for a stream after its END_STREAM, which node:http2 cannot
 * report: once both ends sent END_STREAM, nghttp2 closes a client's stream and forgets it, so a
 * RST_STREAM that follows reaches no on_stream_close_callback (nghttp2_session_close_stream()
 * finds no stream), and Http2Session::OnFrameReceive() ignores the RST_STREAM type; a DATA or
 * HEADERS frame for it is dropped as well. nginx fails the response for them in the same read
 * (ngx_http_proxy_v2_process_frames(), and grpc's twin): a RST_STREAM with an error code
 * ("upstream rejected request with error N"), a second RST_STREAM, or any frame but WINDOW_UPDATE
 * ("upstream sent frame for closed stream N").
 *
 * The watch sits between the session and its socket (node:http2 then reads through its
 * JSStreamSocket) and walks the 9-byte headers of what arrives before nghttp2 sees those bytes, so
 * that a frame in the same read as the END_STREAM is known before the stream's 'end'.
 */
import { Duplex } from 'node:stream';
import type { Socket } from 'node:net';

import { FrameFlag, FrameType } from '../core/h2-frames.js';

const DATA = FrameType.Data;
const HEADERS = FrameType.Headers;
const RST_STREAM = FrameType.RstStream;
const PUSH_PROMISE = FrameType.PushPromise;
const WINDOW_UPDATE = FrameType.WindowUpdate;
const CONTINUATION = FrameType.Continuation;
const END_STREAM = FrameFlag.EndStream;
const END_HEADERS = FrameFlag.EndHeaders;

/** A watched stream's state, as ngx_http_proxy_v2_ctx_t keeps `done` and `rst`. */
interface Watched {
  /** END_STREAM arrived (on a header block: once it ended). */
  done: boolean;
  /** A HEADERS frame with END_STREAM whose CONTINUATION frames are still coming. */
  endAfterHeaders: boolean;
  /** A RST_STREAM NO_ERROR arrived after `done`. */
  rst: boolean;
  readonly onLate: (message: string) => void;
}

/** A Duplex over an upstream session's socket that reports the frames nghttp2 drops for closed streams. */
export class H2FrameWatch extends Duplex {
  readonly #socket: Socket;
  readonly #watched = new Map<number, Watched>();
  /** The part of a frame header, or of a RST_STREAM's error code, that the last read cut. */
  #partial = Buffer.alloc(9);
  #partialLength = 0;
  /** Payload bytes of the current frame still to pass over. */
  #skip = 0;
  /** The stream whose RST_STREAM error code is being read, or 0. */
  #rstStream = 0;
  /** Payload bytes after that error code (a malformed RST_STREAM longer than 4). */
  #rstRest = 0;
  /** Where in the current read a header block ended: the session is given the read in parts cut there. */
  readonly #cuts: number[] = [];
  /** Parts of reads not yet given to the session. */
  readonly #queue: Buffer[] = [];
  #delivering = false;
  #ended = false;
  /** The current frame ends a header block: a cut where its payload ends. */
  #cutAfterFrame = false;

  constructor(socket: Socket) {
    super();
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#walk(chunk);
      let from = 0;
      for (const cut of this.#cuts) {
        if (cut > from) this.#queue.push(from === 0 && cut === chunk.length ? chunk : chunk.subarray(from, cut));
        from = cut;
      }
      this.#cuts.length = 0;
      if (from < chunk.length) this.#queue.push(from === 0 ? chunk : chunk.subarray(from));
      this.#deliver();
    });
    socket.on('end', () => {
      this.#ended = true;
      this.#deliver();
    });
    socket.on('error', (err: Error) => this.destroy(err));
    socket.on('close', () => this.destroy());
  }

  /**
   * Reports through `onLate`, in nginx's words, the first frame that makes stream `id`'s response
   * a failure after its END_STREAM; the returned function stops watching it.
   */
  watch(id: number, onLate: (message: string) => void): () => void {
    const watched: Watched = { done: false, endAfterHeaders: false, rst: false, onLate };
    this.#watched.set(id, watched);
    return () => {
      if (this.#watched.get(id) === watched) this.#watched.delete(id);
    };
  }

  /**
   * Gives the session the next part, the one after it a tick later. Through a JSStreamSocket the
   * session's JavaScript callbacks run inside one tick: a stream's 'response', which node:http2
   * emits on the next tick, would follow the 'data' of the DATA frames read with it, where on a
   * socket of its own (a callback scope a read) it comes first. A header block's end is a cut.
   */
  #deliver(): void {
    if (this.#delivering) return;
    const part = this.#queue.shift();
    if (part === undefined) {
      if (this.#ended) this.push(null);
      return;
    }
    if (!this.push(part)) this.#socket.pause();
    if (this.#queue.length === 0 && !this.#ended) return;
    this.#delivering = true;
    process.nextTick(() => {
      this.#delivering = false;
      this.#deliver();
    });
  }

  override _read(): void {
    this.#socket.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    this.#socket.write(chunk, callback);
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.#socket.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.#socket.destroy(err ?? undefined);
    callback(err);
  }

  /** Walks the frames of one read: their headers, and the error code of a watched RST_STREAM. */
  #walk(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.#skip > 0) {
        const n = Math.min(this.#skip, chunk.length - at);
        this.#skip -= n;
        at += n;
        this.#cutAt(at);
        continue;
      }
      const need = this.#rstStream > 0 ? 4 : 9;
      let bytes: Buffer;
      let from: number;
      if (this.#partialLength > 0 || chunk.length - at < need) {
        const n = Math.min(need - this.#partialLength, chunk.length - at);
        chunk.copy(this.#partial, this.#partialLength, at, at + n);
        this.#partialLength += n;
        at += n;
        if (this.#partialLength < need) return;
        bytes = this.#partial;
        from = 0;
        this.#partialLength = 0;
      } else {
        bytes = chunk;
        from = at;
        at += need;
      }
      if (this.#rstStream > 0) {
        const id = this.#rstStream;
        this.#rstStream = 0;
        this.#skip = this.#rstRest;
        this.#reset(id, bytes.readUInt32BE(from));
        continue;
      }
      this.#frame(bytes, from);
      this.#cutAt(at);
    }
  }

  #cutAt(at: number): void {
    if (this.#skip > 0 || !this.#cutAfterFrame) return;
    this.#cutAfterFrame = false;
    this.#cuts.push(at);
  }

  #frame(bytes: Buffer, from: number): void {
    const length = bytes.readUIntBE(from, 3);
    const type = bytes[from + 3] ?? 0;
    const flags = bytes[from + 4] ?? 0;
    const id = bytes.readUInt32BE(from + 5) & 0x7fffffff;
    const watched = id === 0 ? undefined : this.#watched.get(id);
    if (watched !== undefined && type === RST_STREAM && watched.done && length >= 4) {
      this.#rstStream = id;
      this.#rstRest = length - 4;
      return;
    }
    this.#skip = length;
    if ((type === HEADERS || type === CONTINUATION || type === PUSH_PROMISE) && (flags & END_HEADERS) !== 0) this.#cutAfterFrame = true;
    if (watched === undefined) return;
    if (watched.done) {
      // ngx_http_proxy_v2_process_frames(): only RST_STREAM and WINDOW_UPDATE may follow END_STREAM.
      if (type !== WINDOW_UPDATE && type !== RST_STREAM) this.#late(id, watched, `upstream sent frame for closed stream ${id}`);
      return;
    }
    if (type === DATA && (flags & END_STREAM) !== 0) watched.done = true;
    else if (type === HEADERS && (flags & END_STREAM) !== 0) {
      if ((flags & END_HEADERS) !== 0) watched.done = true;
      else watched.endAfterHeaders = true;
    } else if (type === CONTINUATION && watched.endAfterHeaders && (flags & END_HEADERS) !== 0) {
      watched.endAfterHeaders = false;
      watched.done = true;
    }
  }

  /** A RST_STREAM after END_STREAM: NO_ERROR once is a clean end, anything else fails the response. */
  #reset(id: number, code: number): void {
    const watched = this.#watched.get(id);
    if (watched === undefined) return;
    if (code !== 0) this.#late(id, watched, `upstream rejected request with error ${code}`);
    else if (watched.rst) this.#late(id, watched, `upstream sent frame for closed stream ${id}`);
    else watched.rst = true;
  }

  #late(id: number, watched: Watched, message: string): void {
    this.#watched.delete(id);
    watched.onLate(message);
  }
}
