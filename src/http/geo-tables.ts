/**
 * The two lookup tables of nginx's geo module (ngx_http_geo_module.c): networks (CIDR blocks,
 * longest prefix wins, as `ngx_radix32tree_find()` and `ngx_radix128tree_find()` answer) and
 * IPv4 ranges (`ranges`), kept as nginx keeps them, per /16 block of sorted, disjoint pieces, so
 * that adding, splitting, deleting and the "overlaps" error behave as `ngx_http_geo_add_range()`.
 */

/** Networks of one family, by prefix length, then by the masked address. */
export class CidrTable {
  /** Prefix length -> masked address (hex of the bytes) -> value. */
  readonly #byPrefix = new Map<number, Map<string, string>>();
  /** The prefix lengths in use, longest first. */
  #prefixes: number[] = [];

  /** Inserts a block; returns the old value when the very block had one (nginx's NGX_BUSY), which is replaced. */
  insert(bytes: readonly number[], prefix: number, value: string): string | undefined {
    let table = this.#byPrefix.get(prefix);
    if (table === undefined) {
      table = new Map();
      this.#byPrefix.set(prefix, table);
      this.#prefixes = [...this.#byPrefix.keys()].sort((a, b) => b - a);
    }
    const key = maskedKey(bytes, prefix);
    const old = table.get(key);
    table.set(key, value);
    return old;
  }

  /** True when the block itself had a value, now removed (`ngx_radix32tree_delete()`). */
  delete(bytes: readonly number[], prefix: number): boolean {
    return this.#byPrefix.get(prefix)?.delete(maskedKey(bytes, prefix)) ?? false;
  }

  /** The value of the longest block holding the address. */
  find(bytes: readonly number[] | Uint8Array): string | undefined {
    for (const prefix of this.#prefixes) {
      const found = this.#byPrefix.get(prefix)?.get(maskedKey(bytes, prefix));
      if (found !== undefined) return found;
    }
    return undefined;
  }

  /** True when the block itself has a value. */
  has(bytes: readonly number[], prefix: number): boolean {
    return this.#byPrefix.get(prefix)?.has(maskedKey(bytes, prefix)) ?? false;
  }
}

/** The first `prefix` bits of the address, as hex, the rest cleared. */
function maskedKey(bytes: readonly number[] | Uint8Array, prefix: number): string {
  let key = '';
  for (let i = 0; i * 8 < prefix; i++) {
    const left = Math.min(8, prefix - i * 8);
    key += (((bytes[i] as number) & (0xff << (8 - left))) & 0xff).toString(16).padStart(2, '0');
  }
  return `${prefix}/${key}`;
}

interface RangePiece {
  start: number;
  end: number;
  value: string;
}

/** What adding a range found: an exact duplicate (with the old value), or a piece it overlaps. */
export type RangeAddResult = { readonly duplicate: string } | { readonly overlaps: string } | undefined;

/** IPv4 ranges, per /16 block: each block's pieces sorted and disjoint. */
export class RangeTable {
  readonly #blocks = new Map<number, RangePiece[]>();

  /**
   * `ngx_http_geo_add_range()`: a range inside a piece splits it, one equal to a piece replaces its
   * value (reported as a duplicate), one crossing a piece's edge is refused with that piece.
   */
  add(start: number, end: number, value: string): RangeAddResult {
    let result: RangeAddResult;
    for (const [high, s0, e0] of pieces(start, end)) {
      let list = this.#blocks.get(high);
      if (list === undefined) {
        list = [];
        this.#blocks.set(high, list);
      }
      const s = s0;
      const e = e0;
      let placed = false;
      for (let i = list.length - 1; i >= 0; i--) {
        const range = list[i] as RangePiece;
        if (e < range.start) continue;
        if (s > range.end) list.splice(i + 1, 0, { start: s, end: e, value });
        else if (s === range.start && e === range.end) {
          result ??= { duplicate: range.value };
          range.value = value;
        } else if (s > range.start && e < range.end) {
          list.splice(i + 1, 0, { start: s, end: e, value }, { start: e + 1, end: range.end, value: range.value });
          range.end = s - 1;
        } else if (s === range.start && e < range.end) {
          list.splice(i, 0, { start: s, end: e, value });
          range.start = e + 1;
        } else if (s > range.start && e === range.end) {
          list.splice(i + 1, 0, { start: s, end: e, value });
          range.end = s - 1;
        } else {
          const at = (n: number): string => `${high >> 8}.${high & 0xff}.${n >> 8}.${n & 0xff}`;
          return { overlaps: `${at(range.start)}-${at(range.end)}` };
        }
        placed = true;
        break;
      }
      if (!placed) list.unshift({ start: s, end: e, value });
    }
    return result;
  }

  /** `ngx_http_geo_delete_range()`: removes the pieces equal to the range's; false when some were not there. */
  delete(start: number, end: number): boolean {
    let all = true;
    for (const [high, s, e] of pieces(start, end)) {
      const list = this.#blocks.get(high);
      const i = list?.findIndex((range) => range.start === s && range.end === e) ?? -1;
      if (list === undefined || i === -1) all = false;
      else list.splice(i, 1);
    }
    return all;
  }

  /** The value of the range holding the address (a uint32), if any. */
  find(address: number): string | undefined {
    const list = this.#blocks.get(address >>> 16);
    if (list === undefined) return undefined;
    const low = address & 0xffff;
    for (const range of list) if (low >= range.start && low <= range.end) return range.value;
    return undefined;
  }
}

/** The /16 blocks a range covers, each with the low 16 bits it covers there. */
function* pieces(start: number, end: number): Generator<[high: number, start: number, end: number]> {
  for (let n = start; n <= end; n = (n + 0x10000) - ((n + 0x10000) % 0x10000)) {
    const high = Math.floor(n / 0x10000);
    const s = n === start ? n % 0x10000 : 0;
    const e = n - (n % 0x10000) + 0xffff > end ? end % 0x10000 : 0xffff;
    yield [high, s, e];
    if (high === 0xffff) break;
  }
}
