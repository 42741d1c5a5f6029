/**
 * The size of each request's header block as it came on the wire, for `$request_length` over
 * HTTP/2. nginx counts the header block fragment of the HEADERS frame (its payload without the pad
 * length, the padding and the priority fields) and the payloads of the CONTINUATION frames after
 * it (ngx_http_v2_state_headers(): `request_length = h2c->state.length`;
 * ngx_http_v2_handle_continuation(): `request_length += len`), then the body's bytes; no frame
 * header. node:http2 hands over decoded fields only, whose HPACK size cannot be told from them, so
 * the bytes are scanned on their way to nghttp2: frame headers only, a payload is skipped unread,
 * except the pad length of a padded HEADERS frame.
 */

import { FRAME_HEADER_SIZE, FrameFlag, FrameType } from '../../core/h2-frames.js';

const HEADERS = FrameType.Headers;
const CONTINUATION = FrameType.Continuation;
const END_HEADERS = FrameFlag.EndHeaders;
const PADDED = FrameFlag.Padded;
const PRIORITY = FrameFlag.Priority;

/** Scans the frames a client sends (after the preface) and keeps the header block size of each new stream until it is taken. */
export class FrameCounter {
  /** Header block bytes of the streams not taken yet, by stream id, in the order they opened. */
  readonly #blocks = new Map<number, number>();
  /** A frame header split across reads. */
  readonly #head = Buffer.alloc(FRAME_HEADER_SIZE);
  #headHave = 0;
  /** Payload bytes of the current frame still to skip. */
  #left = 0;
  /** The current frame is a padded HEADERS whose pad length byte is still to come: its stream id. */
  #padFor = 0;
  #padLength = 0;
  /** The stream whose header block is open (no END_HEADERS yet); 0 when none. */
  #open = 0;
  /** The newest stream a HEADERS frame opened: a later HEADERS on an older stream is trailers, not counted. */
  #newest = 0;

  /** Reads one chunk of the client's bytes, in order. */
  scan(chunk: Buffer): void {
    const end = chunk.length;
    let at = 0;
    while (at < end) {
      if (this.#left > 0) {
        if (this.#padFor !== 0) {
          this.#padded(chunk[at] as number);
        }
        const n = Math.min(this.#left, end - at);
        this.#left -= n;
        at += n;
        continue;
      }
      if (this.#headHave === 0 && end - at >= FRAME_HEADER_SIZE) {
        this.#frame(chunk, at);
        at += FRAME_HEADER_SIZE;
        continue;
      }
      const n = Math.min(FRAME_HEADER_SIZE - this.#headHave, end - at);
      chunk.copy(this.#head, this.#headHave, at, at + n);
      this.#headHave += n;
      at += n;
      if (this.#headHave < FRAME_HEADER_SIZE) return;
      this.#headHave = 0;
      this.#frame(this.#head, 0);
    }
  }

  /**
   * The header block bytes of stream `id`, once: the entries of streams older than it go too (a
   * stream nghttp2 refused before it was handed over never is taken).
   */
  take(id: number): number | undefined {
    const bytes = this.#blocks.get(id);
    for (const key of this.#blocks.keys()) {
      if (key > id) break;
      this.#blocks.delete(key);
    }
    return bytes;
  }

  #frame(bytes: Buffer, at: number): void {
    const length = (bytes[at] as number) * 65536 + (bytes[at + 1] as number) * 256 + (bytes[at + 2] as number);
    const type = bytes[at + 3] as number;
    const flags = bytes[at + 4] as number;
    this.#left = length;
    if (type === HEADERS) {
      const id = bytes.readUInt32BE(at + 5) & 0x7fffffff;
      if (id <= this.#newest) return;
      this.#newest = id;
      this.#open = (flags & END_HEADERS) === 0 ? id : 0;
      const fields = length - ((flags & PRIORITY) !== 0 ? 5 : 0);
      if ((flags & PADDED) === 0) this.#blocks.set(id, Math.max(0, fields));
      else if (length > 0) {
        this.#padFor = id;
        this.#padLength = fields - 1;
      }
    } else if (type === CONTINUATION && this.#open !== 0) {
      const id = bytes.readUInt32BE(at + 5) & 0x7fffffff;
      if (id !== this.#open) return;
      this.#blocks.set(id, (this.#blocks.get(id) ?? 0) + length);
      if ((flags & END_HEADERS) !== 0) this.#open = 0;
    }
  }

  /** The pad length byte of a padded HEADERS frame: the fragment is what is left without it and the padding. */
  #padded(pad: number): void {
    this.#blocks.set(this.#padFor, Math.max(0, this.#padLength - pad));
    this.#padFor = 0;
  }
}
