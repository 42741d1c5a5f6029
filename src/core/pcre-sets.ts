/**
 * The character sets of PCRE2's C-locale tables, as ranges of code units, and how a set is written
 * as a JavaScript class. Subjects are byte strings, so only 0..0xff occurs, but complements run to
 * 0xffff so that a class means the same on any string.
 */

/** Character sets are lists of [low, high] code unit ranges over 0..0xFFFF. */
export type Ranges = [number, number][];

export const MAX_UNIT = 0xffff;
export const DIGIT: Ranges = [[0x30, 0x39]];
export const WORD: Ranges = [[0x30, 0x39], [0x41, 0x5a], [0x5f, 0x5f], [0x61, 0x7a]];
// isspace() in the C locale, which PCRE2's default tables are made from (includes VT since 10.0).
export const SPACE: Ranges = [[0x09, 0x0d], [0x20, 0x20]];
// PCRE2's \h and \v below 256 (pcre2pattern "Generic character types").
export const HSPACE: Ranges = [[0x09, 0x09], [0x20, 0x20], [0xa0, 0xa0]];
export const VSPACE: Ranges = [[0x0a, 0x0d], [0x85, 0x85]];
export const NEWLINE: Ranges = [[0x0a, 0x0a]];

/** The POSIX classes of pcre2pattern, for the C locale. */
export const POSIX: Readonly<Record<string, Ranges>> = {
  alpha: [[0x41, 0x5a], [0x61, 0x7a]],
  lower: [[0x61, 0x7a]],
  upper: [[0x41, 0x5a]],
  alnum: [[0x30, 0x39], [0x41, 0x5a], [0x61, 0x7a]],
  ascii: [[0x00, 0x7f]],
  blank: [[0x09, 0x09], [0x20, 0x20]],
  cntrl: [[0x00, 0x1f], [0x7f, 0x7f]],
  digit: DIGIT,
  graph: [[0x21, 0x7e]],
  print: [[0x20, 0x7e]],
  punct: [[0x21, 0x2f], [0x3a, 0x40], [0x5b, 0x60], [0x7b, 0x7e]],
  space: SPACE,
  word: WORD,
  xdigit: [[0x30, 0x39], [0x41, 0x46], [0x61, 0x66]],
};

export function complement(ranges: Ranges): Ranges {
  const out: Ranges = [];
  let next = 0;
  for (const [low, high] of normalize(ranges)) {
    if (low > next) out.push([next, low - 1]);
    next = high + 1;
  }
  if (next <= MAX_UNIT) out.push([next, MAX_UNIT]);
  return out;
}

export function normalize(ranges: Ranges): Ranges {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Ranges = [];
  for (const [low, high] of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && low <= last[1] + 1) last[1] = Math.max(last[1], high);
    else out.push([low, high]);
  }
  return out;
}

/** Adds the other case of every ASCII letter, as PCRE2's C-locale case tables do (nothing above 0x7f folds). */
export function foldCase(ranges: Ranges): Ranges {
  const out: Ranges = [...ranges];
  for (const [low, high] of ranges) {
    for (const [from, to, shift] of [[0x41, 0x5a, 0x20], [0x61, 0x7a, -0x20]] as const) {
      const a = Math.max(low, from);
      const b = Math.min(high, to);
      if (a <= b) out.push([a + shift, b + shift]);
    }
  }
  return out;
}

export function escapeUnit(unit: number, inClass: boolean): string {
  if ((unit >= 0x30 && unit <= 0x39) || (unit >= 0x41 && unit <= 0x5a) || (unit >= 0x61 && unit <= 0x7a) || unit === 0x5f) {
    return String.fromCharCode(unit);
  }
  if (!inClass && unit >= 0x20 && unit < 0x7f && !'\\^$.|?*+()[]{}/'.includes(String.fromCharCode(unit))) {
    return String.fromCharCode(unit);
  }
  return unit <= 0xff ? `\\x${unit.toString(16).padStart(2, '0')}` : `\\u${unit.toString(16).padStart(4, '0')}`;
}

/** A JavaScript class for a set, negated when that is shorter. */
export function emitSet(ranges: Ranges): string {
  const set = normalize(ranges);
  const first = set[0];
  if (set.length === 1 && first !== undefined && first[0] === first[1]) return escapeUnit(first[0], false);
  if (set.length === 1 && first !== undefined && first[0] === 0 && first[1] === MAX_UNIT) return '[\\s\\S]';
  const other = complement(set);
  const [body, negated] = other.length < set.length ? [other, true] : [set, false];
  const text = body.map(([low, high]) => (low === high ? escapeUnit(low, true) : `${escapeUnit(low, true)}-${escapeUnit(high, true)}`)).join('');
  return `[${negated ? '^' : ''}${text}]`;
}
