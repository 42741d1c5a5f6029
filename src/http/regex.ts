/**
 * Regular expressions written for nginx (PCRE) compiled for JavaScript: `location ~`, `server_name ~`.
 * Patterns run over byte strings (see uri.ts), as PCRE without UTF mode runs over bytes.
 */
import { toByteString } from '../core/byte-string.js';

/** A compiled nginx regex with the names of its named captures. */
export interface NginxRegex {
  readonly regex: RegExp;
  /** `(?<name>...)` and `(?P<name>...)` captures, which nginx also exposes as `$name`. */
  readonly names: readonly string[];
}

/**
 * Compiles a PCRE pattern: `(?P<name>` becomes `(?<name>`, `(?P=name)` becomes `\k<name>`, and a
 * leading `(?i)` becomes the `i` flag. Throws the engine's SyntaxError for an invalid pattern.
 */
export function compileNginxRegex(source: string, caseless: boolean): NginxRegex {
  let pattern = source.replace(/\(\?P</g, '(?<').replace(/\(\?P=(\w+)\)/g, '\\k<$1>');
  let flags = caseless ? 'i' : '';
  if (pattern.startsWith('(?i)')) {
    pattern = pattern.slice(4);
    flags = 'i';
  }
  const regex = new RegExp(toByteString(pattern), flags);
  const names = [...pattern.matchAll(/\(\?<([A-Za-z_][A-Za-z0-9_]*)>/g)].map((m) => (m[1] as string).toLowerCase());
  return { regex, names };
}

/** nginx's wording for a pattern that does not compile: `invalid regular expression "x": reason`. */
export function regexErrorReason(source: string, err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return `invalid regular expression "${source}": ${message.replace(/^Invalid regular expression: /, '')}`;
}
