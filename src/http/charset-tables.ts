/**
 * The tables of nginx's `charset_map` blocks and the recoding they drive
 * (ngx_http_charset_map_block(), ngx_http_charset_map() and the body filter's
 * ngx_http_charset_recode*() of ngx_http_charset_filter_module.c). A map between two one-byte
 * charsets is a byte table each way; a map to utf-8 gives each byte its utf-8 sequence, and the
 * way back is a table from code point (below 0x10000) to byte.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** One `charset_map FROM TO { ... }` block. */
export interface CharsetMap {
  /** The charset names as the block spells them. */
  readonly from: string;
  readonly to: string;
  /** `to` is utf-8: `fromTo` holds byte sequences, `toFrom` code points. */
  readonly utf8: boolean;
  /** One-byte map: the byte for each byte, FROM to TO. utf-8 map: the utf-8 sequence of each byte (arrays: the configuration is frozen, a Buffer cannot be). */
  readonly fromTo: readonly (number | readonly number[])[];
  /** One-byte map: the byte for each byte, TO to FROM. utf-8 map: the byte of each mapped code point. */
  readonly toFrom: readonly number[] | ReadonlyMap<number, number>;
}

/** The longest utf-8 sequence a map holds (nginx's NGX_UTF_LEN is 4, with a length byte). */
const UTF_LEN = 4;

/** What one line of a block may throw: nginx's message, at the line. */
export type LineFailure = (message: string) => never;

/** ngx_hextoi(): hexadecimal digits only, at least one; undefined for anything else. */
function hexToInt(text: string): number | undefined {
  if (text.length === 0 || !/^[0-9a-fA-F]+$/.test(text)) return undefined;
  const value = Number.parseInt(text, 16);
  return Number.isSafeInteger(value) ? value : undefined;
}

/** The tables of a new block before its lines: identity below 0x80 and '?' above, as nginx starts them. */
export function emptyCharsetMap(from: string, to: string): CharsetMap {
  const utf8 = to.toLowerCase() === 'utf-8';
  const question = 0x3f;
  if (utf8) {
    const fromTo: number[][] = [];
    for (let i = 0; i < 256; i++) fromTo.push([i < 0x80 ? i : question]);
    return { from, to, utf8, fromTo, toFrom: new Map() };
  }
  const fromTo: number[] = [];
  const toFrom: number[] = [];
  for (let i = 0; i < 256; i++) {
    fromTo.push(i < 0x80 ? i : question);
    toFrom.push(i < 0x80 ? i : question);
  }
  return { from, to, utf8, fromTo, toFrom };
}

/** ngx_http_charset_map(): one `XX YY;` (or `XX UTF8HEX;`) line of the block, into `map`. */
export function addCharsetMapLine(map: CharsetMap, words: readonly string[], fail: LineFailure): void {
  if (words.length !== 2) fail('invalid parameters number');
  const [left = '', right = ''] = words;
  const src = hexToInt(left);
  if (src === undefined || src > 255) fail(`invalid value "${left}"`);
  const fromTo = map.fromTo as (number | readonly number[])[];
  if (map.utf8) {
    // At most three bytes (NGX_UTF_LEN - 1), each two hex digits, decoding to a character below 0x10000.
    if (Math.floor(right.length / 2) > UTF_LEN - 1) fail(`invalid value "${right}"`);
    const bytes: number[] = [];
    for (let i = 0; i < right.length; i += 2) {
      const byte = hexToInt(right.slice(i, i + 2));
      if (byte === undefined || right.length - i < 2) fail(`invalid value "${right}"`);
      bytes.push(byte);
    }
    const sequence = Buffer.from(bytes);
    const decoded = sequence.length === 0 ? INVALID : decodeUtf8(sequence, 0, sequence.length);
    if (decoded.code > 0xffff) fail(`invalid value "${right}"`);
    fromTo[src as number] = bytes;
    (map.toFrom as Map<number, number>).set(decoded.code, src as number);
    return;
  }
  const dst = hexToInt(right);
  if (dst === undefined || dst > 255) fail(`invalid value "${right}"`);
  fromTo[src as number] = dst as number;
  (map.toFrom as number[])[dst as number] = src as number;
}

/** ngx_utf8_decode()'s two failures: an invalid sequence, and one the buffer ends inside. */
const INVALID_CODE = 0xffffffff;
const INCOMPLETE_CODE = 0xfffffffe;
const INVALID = { code: INVALID_CODE, length: 1 };
/** Above it a decoded value is no character: `?` (nginx's "invalid utf"). */
const MAX_CODE = 0x10ffff;

/**
 * ngx_utf8_decode(): the character at `at` and the bytes it takes. An invalid sequence takes the
 * bytes read up to the one that broke it (a continuation byte missing takes that byte too);
 * an incomplete one takes none.
 */
export function decodeUtf8(data: Uint8Array, at: number, end: number): { code: number; length: number } {
  let u = data[at] as number;
  let len: number;
  let valid: number;
  if (u >= 0xf8) return INVALID;
  if (u >= 0xf0) {
    u &= 0x07;
    valid = 0xffff;
    len = 3;
  } else if (u >= 0xe0) {
    u &= 0x0f;
    valid = 0x7ff;
    len = 2;
  } else if (u >= 0xc2) {
    u &= 0x1f;
    valid = 0x7f;
    len = 1;
  } else {
    return INVALID;
  }
  if (end - at - 1 < len) return { code: INCOMPLETE_CODE, length: 0 };
  let p = at + 1;
  while (len > 0) {
    const i = data[p++] as number;
    if (i < 0x80) return { code: INVALID_CODE, length: p - at };
    u = ((u << 6) | (i & 0x3f)) >>> 0;
    len--;
  }
  return { code: u > valid ? u : INVALID_CODE, length: p - at };
}

/** ngx_http_charset_recode(): a one-byte charset to another, byte for byte. */
export function byteRecoder(table: readonly number[]): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const out = Buffer.allocUnsafe(chunk.length);
      for (let i = 0; i < chunk.length; i++) out[i] = table[chunk[i] as number] as number;
      callback(null, out);
    },
  });
}

/** The utf-8 sequences of a map to utf-8, as buffers for {@link toUtf8Recoder}. */
export function utf8Sequences(map: CharsetMap): Buffer[] {
  return map.fromTo.map((sequence) => Buffer.from(sequence as readonly number[]));
}

/** ngx_http_charset_recode_to_utf8(): each byte becomes the utf-8 sequence the map gives it (at most three bytes). */
export function toUtf8Recoder(table: readonly Buffer[]): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      if (chunk.every((byte) => byte < 0x80)) {
        callback(null, chunk);
        return;
      }
      const out = Buffer.allocUnsafe(chunk.length * (UTF_LEN - 1));
      let length = 0;
      for (const byte of chunk) {
        if (byte < 0x80) out[length++] = byte;
        else length += (table[byte] as Buffer).copy(out, length);
      }
      callback(null, out.subarray(0, length));
    },
  });
}

/** Output bytes per input byte from utf-8, at most: "&#2047;" is seven for two (the saved character has its own room). */
const FROM_UTF8_GROWTH = 4;

/**
 * ngx_http_charset_recode_from_utf8(): a character the map has becomes its byte, another below
 * 0x110000 becomes `&#N;`, an invalid sequence `?`. A character cut by the end of a chunk waits
 * (at most three bytes) for the next; one cut by the end of the body is dropped, as nginx drops it.
 */
export function fromUtf8Recoder(table: ReadonlyMap<number, number>): Transform {
  let saved = Buffer.alloc(0);
  return new Transform({
    transform(input: Buffer, _encoding, callback: TransformCallback) {
      let chunk = input;
      const out = Buffer.allocUnsafe((chunk.length + UTF_LEN) * FROM_UTF8_GROWTH);
      let length = 0;
      const character = (code: number): void => {
        // An invalid sequence, or a value above U+10FFFF: "?" (nginx's "invalid utf").
        if (code > MAX_CODE) out[length++] = 0x3f;
        else {
          const byte = code < 0x10000 ? table.get(code) : undefined;
          if (byte === undefined || byte === 0) length += out.write(`&#${code};`, length, 'latin1');
          else out[length++] = byte;
        }
      };
      if (saved.length > 0) {
        // The saved bytes and what this chunk adds to them, up to one whole character.
        const take = Math.min(UTF_LEN - saved.length, chunk.length);
        const joined = Buffer.concat([saved, chunk.subarray(0, take)]);
        const decoded = decodeUtf8(joined, 0, joined.length);
        if (decoded.code === INCOMPLETE_CODE && joined.length < UTF_LEN) {
          saved = joined;
          callback();
          return;
        }
        character(decoded.code);
        // An invalid sequence takes at least the saved bytes.
        const used = decoded.code > MAX_CODE ? Math.max(decoded.length, saved.length) : decoded.length;
        chunk = chunk.subarray(used - saved.length);
        saved = Buffer.alloc(0);
      }
      let i = 0;
      while (i < chunk.length) {
        const byte = chunk[i] as number;
        if (byte < 0x80) {
          out[length++] = byte;
          i++;
          continue;
        }
        const decoded = decodeUtf8(chunk, i, chunk.length);
        if (decoded.code === INCOMPLETE_CODE) {
          saved = Buffer.from(chunk.subarray(i));
          break;
        }
        character(decoded.code);
        i += decoded.length;
      }
      if (length === 0) callback();
      else callback(null, out.subarray(0, length));
    },
  });
}
