/**
 * Regular expressions written for nginx (PCRE2) compiled for JavaScript: `location ~`,
 * `server_name ~`, `map` (http and stream), `proxy_redirect ~`. The translation is core/pcre.ts;
 * patterns run over byte strings (see uri.ts), as PCRE without UTF mode runs over bytes.
 */
import { toByteString } from '../core/byte-string.js';
import { PcreSyntaxError, translatePcre } from '../core/pcre.js';
import type { DirectiveContext } from '../conf/registry.js';

/** A compiled nginx regex with the names of its named captures. */
export interface NginxRegex {
  readonly regex: RegExp;
  /** `(?<name>...)` and `(?P<name>...)` captures, lowercased, which nginx also exposes as `$name`. */
  readonly names: readonly string[];
  /** Why the backtracking guard does not cover this pattern (a backreference, a lookaround), or undefined. */
  readonly unprotected: string | undefined;
}

/**
 * Compiles a PCRE pattern as `ngx_regex_compile()` does (`caseless` for `~*`). Throws
 * {@link PcreSyntaxError} with nginx's `pcre2_compile() failed: ...` message.
 */
export function compileNginxRegex(source: string, caseless: boolean): NginxRegex {
  const translated = translatePcre(toByteString(source), { caseless });
  return { regex: new RegExp(translated.source, translated.flags), names: translated.names, unprotected: translated.unprotected };
}

/** The reason to report for a pattern that does not compile: nginx's `pcre2_compile() failed: ...` line. */
export function regexErrorReason(source: string, err: unknown): string {
  if (err instanceof PcreSyntaxError) return err.message;
  const message = err instanceof Error ? err.message : String(err);
  return `invalid regular expression "${source}": ${message.replace(/^Invalid regular expression: /, '')}`;
}

/**
 * Compiles a pattern of the configuration at the directive that holds it: a bad pattern fails the
 * configuration in nginx's words; one the backtracking guard cannot cover is accepted with a
 * warning (see docs/regex.md for why it is not refused).
 */
export function compileConfigRegex(source: string, caseless: boolean, ctx: Pick<DirectiveContext, 'fail' | 'warn'>): NginxRegex {
  let compiled: NginxRegex;
  try {
    compiled = compileNginxRegex(source, caseless);
  } catch (err) {
    return ctx.fail(regexErrorReason(source, err));
  }
  if (compiled.unprotected !== undefined) {
    ctx.warn(unprotectedReason(source, compiled.unprotected));
  }
  return compiled;
}

/** The warning for a pattern V8's linear-time engine cannot take over. */
export function unprotectedReason(source: string, why: string): string {
  return `regex "${source}" is not protected against catastrophic backtracking (it uses ${why}, which V8's linear-time engine cannot run)`;
}
