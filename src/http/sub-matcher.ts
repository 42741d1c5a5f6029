/**
 * The search of nginx's sub filter (ngx_http_sub_parse() and ngx_http_sub_match()), as a stream:
 * several lowercased strings are looked for at once, caselessly, with a Horspool shift built on
 * the shortest string's length. At each position, from the left, the strings are tried in the
 * order nginx sorts them (by their byte at the shortest length minus one, then as configured),
 * and the first one that matches there wins; the search goes on after it. Across a chunk
 * boundary, only the bytes that begin a partial match are held back: at most the longest string
 * minus one byte. At the end of the body, what is held back goes out as it is, unsearched, as
 * nginx sends its `looked` buffer with the last one.
 */

/** One string to look for. */
export interface SubMatch {
  /** Lowercased (ASCII), not empty. */
  readonly match: Buffer;
  /** Which `sub_filter` line it is, for its replacement. */
  readonly line: number;
}

/** A line's replacement, asked the first time its string matches in a response (nginx's `ctx->sub[i]`). */
export type SubReplacement = (line: number) => Buffer;

/** The tables of one set of strings (ngx_http_sub_tables_t), built once per configuration when no string has variables. */
export interface SubTables {
  readonly matches: readonly SubMatch[];
  readonly min: number;
  readonly max: number;
  /** How far the window may move when its last byte is this one. */
  readonly shift: Uint8Array;
  /** The strings whose byte at `min - 1` is `c` are `matches[index[c]]` up to `matches[index[c + 1]]`. */
  readonly index: Uint16Array;
}

/** ASCII lowercase of one byte, as ngx_tolower(). */
function lower(byte: number): number {
  return byte >= 0x41 && byte <= 0x5a ? byte | 0x20 : byte;
}

/** ngx_http_sub_init_tables(): the strings sorted (stably) by their byte at the shortest length minus one. */
export function buildSubTables(strings: readonly SubMatch[]): SubTables {
  let min = Infinity;
  let max = 0;
  for (const { match } of strings) {
    min = Math.min(min, match.length);
    max = Math.max(max, match.length);
  }
  const at = min - 1;
  const matches = [...strings].sort((a, b) => (a.match[at] as number) - (b.match[at] as number));
  const span = Math.min(min, 255);
  const shift = new Uint8Array(256).fill(span);
  const index = new Uint16Array(257);
  let ch = 0;
  matches.forEach(({ match }, i) => {
    for (let j = 0; j < span; j++) {
      const c = match[at - j] as number;
      shift[c] = Math.min(shift[c] as number, j);
    }
    const c = match[at] as number;
    while (ch <= c) index[ch++] = i;
  });
  while (ch < 257) index[ch++] = matches.length;
  return { matches, min, max, shift, index };
}

const MATCH = 0;
const DECLINED = 1;
const PARTIAL = 2;

/** The body of one response through the strings of `tables`; `once` replaces each string only at its first match. */
export class SubMatcher {
  readonly #tables: SubTables;
  readonly #replacement: SubReplacement;
  readonly #once: boolean;
  /** The replacements evaluated so far; with `once`, a string that has one is not looked for again. */
  readonly #subs: (Buffer | undefined)[];
  #applied = 0;
  /** Every string was replaced once (sub_filter_once): the rest of the body passes. */
  #done = false;
  /** The bytes held back from the previous chunk. */
  #looked: Buffer = Buffer.alloc(0);
  /** The end of the window being looked at, from the start of {@link #looked}. */
  #offset: number;
  /** The string to go on with at {@link #offset}, after a partial match at a chunk's end. */
  #index = 0;

  constructor(tables: SubTables, replacement: SubReplacement, once: boolean) {
    this.#tables = tables;
    this.#replacement = replacement;
    this.#once = once;
    this.#subs = new Array<Buffer | undefined>(tables.matches.length).fill(undefined);
    this.#offset = tables.min - 1;
  }

  /** The bytes held back, at most the longest string minus one. */
  get pending(): number {
    return this.#looked.length;
  }

  /** Searches `chunk` (after what was held back) and sends out everything that can no longer be part of a match. */
  write(chunk: Buffer, push: (data: Buffer) => void): void {
    const data = this.#looked.length === 0 ? chunk : Buffer.concat([this.#looked, chunk]);
    if (this.#done) {
      this.#looked = Buffer.alloc(0);
      if (data.length > 0) push(data);
      return;
    }
    const { matches, min, shift, index } = this.#tables;
    let sent = 0;
    const send = (to: number): void => {
      if (to > sent) push(data.subarray(sent, to));
      sent = to;
    };
    let offset = this.#offset;
    scan: while (offset < data.length) {
      const c = lower(data[offset] as number);
      const step = shift[c] as number;
      if (step > 0) {
        offset += step;
        continue;
      }
      const start = offset - min + 1;
      for (let i = Math.max(index[c] as number, this.#index); i < (index[c + 1] as number); i++) {
        if (this.#once && this.#subs[i] !== undefined) continue;
        const match = matches[i] as SubMatch;
        const result = compare(data, start, match.match);
        if (result === DECLINED) continue;
        if (result === PARTIAL) {
          // Hold back from `start`, and go on with this string when more comes.
          this.#index = i;
          send(start);
          this.#hold(data, start, offset);
          return;
        }
        send(start);
        let sub = this.#subs[i];
        if (sub === undefined) {
          sub = this.#replacement(match.line);
          this.#subs[i] = sub;
        }
        if (sub.length > 0) push(sub);
        sent = start + match.match.length;
        offset += match.match.length;
        this.#index = 0;
        this.#applied++;
        if (this.#once && this.#applied === matches.length) {
          this.#done = true;
          send(data.length);
          this.#looked = Buffer.alloc(0);
          return;
        }
        continue scan;
      }
      offset++;
      this.#index = 0;
    }
    // What the last windows, not complete yet, hold may begin a match: nginx keeps it, and on a
    // flushed buffer (every one of a proxied body) sends the bytes where no string could begin
    // (the `flush` loop of ngx_http_sub_parse()). hitless does so with every chunk, so that a
    // stalled upstream's last bytes are not held back; the output is the same either way.
    let keep = offset - min + 1;
    while (keep < data.length && !matches.some(({ match }) => compare(data, keep, match) === PARTIAL)) keep++;
    send(keep);
    this.#hold(data, keep, keep + min - 1);
  }

  /** The end of the body: what was held back goes out unsearched (nginx sends `looked` with the last buffer). */
  end(push: (data: Buffer) => void): void {
    if (this.#looked.length > 0) push(this.#looked);
    this.#looked = Buffer.alloc(0);
  }

  #hold(data: Buffer, from: number, offset: number): void {
    this.#looked = Buffer.from(data.subarray(from));
    this.#offset = offset - from;
  }
}

/** ngx_http_sub_match(): the string at `start` caselessly, or PARTIAL when the data ends first. */
function compare(data: Buffer, start: number, match: Buffer): number {
  const n = Math.min(match.length, data.length - start);
  for (let k = 0; k < n; k++) {
    if (lower(data[start + k] as number) !== match[k]) return DECLINED;
  }
  return n === match.length ? MATCH : PARTIAL;
}
