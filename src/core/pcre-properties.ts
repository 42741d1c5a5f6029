/**
 * PCRE2's Unicode property escapes (`\p{N}`, `\pL`, `\P{Lu}`, `\p{^N}`) as nginx compiles them:
 * 8-bit, without PCRE2_UTF or PCRE2_UCP (`ngx_regex_compile()`), so a subject byte is read as the
 * Latin-1 code point of the same value and a property matches the bytes whose code point has it
 * (pcre2pattern(3), "Unicode character properties": in non-UTF 8-bit mode, characters are
 * 0-255). hitless's subjects are byte strings (one UTF-16 unit per byte), so a property becomes an
 * explicit set of units 0..0xff, computed here from JavaScript's own Unicode data for exactly
 * those code points. Only the general categories, `L&` and `Any` are taken; script names
 * (`\p{Greek}`) and PCRE's special `X` properties are refused by the translator.
 */
import type { Ranges } from './pcre-sets.js';

/** The general categories PCRE2 names, one or two letters. */
const CATEGORIES = [
  'C', 'Cc', 'Cf', 'Cn', 'Co', 'Cs',
  'L', 'Ll', 'Lm', 'Lo', 'Lt', 'Lu',
  'M', 'Mc', 'Me', 'Mn',
  'N', 'Nd', 'Nl', 'No',
  'P', 'Pc', 'Pd', 'Pe', 'Pf', 'Pi', 'Po', 'Ps',
  'S', 'Sc', 'Sk', 'Sm', 'So',
  'Z', 'Zl', 'Zp', 'Zs',
] as const;

/** The categories whose members change under caseless matching (PCRE does not fold a property). */
export const CASED_CATEGORIES: ReadonlySet<string> = new Set(['Ll', 'Lu', 'Lt']);

/** The units 0..0xff whose Latin-1 code point matches `test`, as ranges. */
function rangesOf(test: (unit: number) => boolean): Ranges {
  const ranges: Ranges = [];
  for (let unit = 0; unit <= 0xff; unit++) {
    if (!test(unit)) continue;
    const last = ranges[ranges.length - 1];
    if (last !== undefined && last[1] === unit - 1) last[1] = unit;
    else ranges.push([unit, unit]);
  }
  return ranges;
}

/**
 * The canonical name of a property as PCRE2 10.4x reads it (case, spaces, hyphens and underscores
 * ignored; `L&` and `Any` besides the general categories), or undefined when hitless does not take it.
 */
export function propertyName(text: string): string | undefined {
  const loose = text.replace(/[\s_-]/g, '').toLowerCase();
  if (loose === 'any') return 'Any';
  if (loose === 'l&' || loose === 'lc') return 'L&';
  return CATEGORIES.find((name) => name.toLowerCase() === loose);
}

/** The units 0..0xff that have property `name` (a name {@link propertyName} returned). */
export function propertyRanges(name: string): Ranges {
  if (name === 'Any') return [[0, 0xff]];
  // The pattern is built from the fixed table above, never from configuration text.
  const category = name === 'L&' ? 'LC' : name;
  if (!(CATEGORIES as readonly string[]).includes(name) && category !== 'LC') throw new Error(`unknown property ${name}`);
  const pattern = new RegExp(`^\\p{${category}}$`, 'u');
  return rangesOf((unit) => pattern.test(String.fromCharCode(unit)));
}
