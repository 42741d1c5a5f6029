/**
 * The condition of the rewrite module's `if`, parsed as `ngx_http_rewrite_if_condition()` does:
 * `($var)`, `($var = value)`, `($var != value)`, `($var ~ regex)` with `~*`, `!~`, `!~*`, and the
 * file tests `-f`, `-d`, `-e`, `-x` and their `!` forms, with nginx's messages for anything else.
 */
import type { Template } from '../core/variables.js';
import type { DirectiveContext } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { compileConfigRegex } from './regex.js';

/** A parsed `if` condition. */
export type IfCondition =
  | { readonly kind: 'variable'; readonly name: string }
  | { readonly kind: 'compare'; readonly name: string; readonly negative: boolean; readonly value: Template }
  | { readonly kind: 'regex'; readonly name: string; readonly negative: boolean; readonly source: string; readonly caseless: boolean; readonly captures: readonly string[] }
  | { readonly kind: 'file'; readonly test: 'f' | 'd' | 'e' | 'x'; readonly negative: boolean; readonly value: Template };

/** Parses the arguments of `if`, parentheses included. */
export function parseIfCondition(args: readonly string[], ctx: DirectiveContext): IfCondition {
  const words = [...args];
  const first = words[0] ?? '';
  if (!first.startsWith('(')) ctx.fail(`invalid condition "${first}"`);
  if (first === '(') words.shift();
  else words[0] = first.slice(1);
  const lastWord = words[words.length - 1] ?? '';
  // After "(" alone, the same word may be the last one: nginx checks the original last argument.
  const originalLast = args[args.length - 1] ?? '';
  if (!originalLast.endsWith(')')) ctx.fail(`invalid condition "${originalLast}"`);
  if (lastWord === ')') words.pop();
  else words[words.length - 1] = lastWord.slice(0, -1);
  const cur = words[0] ?? '';
  if (cur.length > 1 && cur.startsWith('$')) {
    if (words.length !== 1 && words.length !== 3) ctx.fail(`invalid condition "${cur}"`);
    const name = variableName(cur, ctx);
    if (words.length === 1) return { kind: 'variable', name };
    const op = words[1] ?? '';
    const operand = words[2] ?? '';
    if (op === '=' || op === '!=') return { kind: 'compare', name, negative: op === '!=', value: parseValue(operand, ctx) };
    if (op === '~' || op === '~*' || op === '!~' || op === '!~*') {
      const caseless = op.endsWith('*');
      const compiled = compileConfigRegex(operand, caseless, ctx);
      return { kind: 'regex', name, negative: op.startsWith('!'), source: operand, caseless, captures: compiled.names };
    }
    return ctx.fail(`unexpected "${op}" in condition`);
  }
  if ((cur.length === 2 && cur[0] === '-') || (cur.length === 3 && cur.startsWith('!-'))) {
    if (words.length !== 2) ctx.fail(`invalid condition "${cur}"`);
    const negative = cur.startsWith('!');
    const test = cur[negative ? 2 : 1];
    if (test !== 'f' && test !== 'd' && test !== 'e' && test !== 'x') return ctx.fail(`invalid condition "${cur}"`);
    return { kind: 'file', test, negative, value: parseValue(words[1] ?? '', ctx) };
  }
  return ctx.fail(`invalid condition "${cur}"`);
}

/** `$name` as `ngx_http_rewrite_variable()` takes it: the name after `$` (a `${name}` form unwrapped). */
function variableName(word: string, ctx: DirectiveContext): string {
  const template = parseValue(word, ctx);
  const [part] = template.parts;
  if (template.parts.length === 1 && part?.kind === 'variable') return part.name;
  if (template.parts.length === 1 && part?.kind === 'capture') return String(part.index);
  return ctx.fail(`invalid condition "${word}"`);
}
