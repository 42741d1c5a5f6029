/**
 * The chunked transfer coding (RFC 9112 section 7.1), parsed incrementally without copying: it
 * tells how many bytes of a buffer belong to the body and, when asked, hands over the data slices.
 * A proxy passes a chunked response through untouched and only needs to know where it ends; a
 * buffered request body is de-chunked and sent on with a Content-Length, as nginx does.
 */
import { HttpParseError } from './head-parser.js';

const enum State {
  Size,
  Extension,
  SizeLF,
  Data,
  DataCR,
  DataLF,
  TrailerStart,
  TrailerLine,
  TrailerLF,
  EndLF,
  Done,
}

const CR = 0x0d;
const LF = 0x0a;
/** Longest chunk-size line we accept (digits and extensions), as a bound against slow-drip abuse. */
const MAX_SIZE_LINE = 4096;
/** Most trailer bytes we accept. */
const MAX_TRAILER = 8192;

/** An incremental parser of one chunked body. */
export class ChunkedParser {
  #state = State.Size;
  #size = 0;
  #digits = 0;
  #lineBytes = 0;
  #trailerBytes = 0;
  readonly #status: number;
  readonly #who: string;

  /** `fromUpstream` selects the error status: 400 for a client's body, 502 for an upstream's. */
  constructor(options: { fromUpstream?: boolean } = {}) {
    this.#status = options.fromUpstream ? 502 : 400;
    this.#who = options.fromUpstream ? 'upstream sent' : 'client sent';
  }

  /** True once the last chunk and the trailer section have been read. */
  get done(): boolean {
    return this.#state === State.Done;
  }

  #fail(): never {
    throw new HttpParseError(this.#status, `${this.#who} invalid chunked body`);
  }

  /**
   * Reads from `buf` at `offset` and returns how many bytes belong to the body; fewer than offered
   * only when the body ended inside the buffer. `onData` receives each slice of chunk data.
   */
  push(buf: Buffer, offset = 0, onData?: (data: Buffer) => void): number {
    let pos = offset;
    const end = buf.length;
    while (pos < end && this.#state !== State.Done) {
      if (this.#state === State.Data) {
        const take = Math.min(this.#size, end - pos);
        if (onData !== undefined && take > 0) onData(buf.subarray(pos, pos + take));
        this.#size -= take;
        pos += take;
        if (this.#size === 0) this.#state = State.DataCR;
        continue;
      }
      const ch = buf[pos++] as number;
      switch (this.#state) {
        case State.Size: {
          const digit = hexValue(ch);
          if (digit !== -1) {
            if (++this.#digits > 15) this.#fail();
            this.#size = this.#size * 16 + digit;
          } else if (this.#digits === 0) {
            this.#fail();
          } else if (ch === CR) {
            this.#state = State.SizeLF;
          } else if (ch === LF) {
            this.#endSizeLine();
          } else if (ch === 0x3b /* ; */ || ch === 0x20 || ch === 0x09) {
            this.#state = State.Extension;
          } else {
            this.#fail();
          }
          break;
        }
        case State.Extension:
          if (++this.#lineBytes > MAX_SIZE_LINE) this.#fail();
          if (ch === CR) this.#state = State.SizeLF;
          else if (ch === LF) this.#endSizeLine();
          else if (ch < 0x20 && ch !== 0x09) this.#fail();
          break;
        case State.SizeLF:
          if (ch !== LF) this.#fail();
          this.#endSizeLine();
          break;
        case State.DataCR:
          if (ch === CR) this.#state = State.DataLF;
          else if (ch === LF) this.#state = State.Size;
          else this.#fail();
          break;
        case State.DataLF:
          if (ch !== LF) this.#fail();
          this.#state = State.Size;
          break;
        case State.TrailerStart:
          if (ch === CR) this.#state = State.EndLF;
          else if (ch === LF) this.#state = State.Done;
          else {
            this.#state = State.TrailerLine;
            this.#countTrailer();
          }
          break;
        case State.TrailerLine:
          this.#countTrailer();
          if (ch === CR) this.#state = State.TrailerLF;
          else if (ch === LF) this.#state = State.TrailerStart;
          break;
        case State.TrailerLF:
          if (ch !== LF) this.#fail();
          this.#state = State.TrailerStart;
          break;
        case State.EndLF:
          if (ch !== LF) this.#fail();
          this.#state = State.Done;
          break;
      }
    }
    return pos - offset;
  }

  #endSizeLine(): void {
    this.#digits = 0;
    this.#lineBytes = 0;
    this.#state = this.#size === 0 ? State.TrailerStart : State.Data;
  }

  #countTrailer(): void {
    if (++this.#trailerBytes > MAX_TRAILER) this.#fail();
  }
}

function hexValue(ch: number): number {
  if (ch >= 0x30 && ch <= 0x39) return ch - 0x30;
  if (ch >= 0x61 && ch <= 0x66) return ch - 0x57;
  if (ch >= 0x41 && ch <= 0x46) return ch - 0x37;
  return -1;
}
