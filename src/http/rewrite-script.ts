/**
 * The rewrite module's script engine: a block's `rewrite`, `set`, `if`, `break` and `return`,
 * compiled once per generation into codes that run in the order written, as
 * `ngx_http_rewrite_handler()` runs `ngx_http_script_*_code()` one after the other. An `if` in a
 * location carries its own level (nginx's nested location configuration): when its condition
 * holds, that level serves the request from then on (ngx_http_script_if_code()).
 */
import { statSync } from 'node:fs';
import { toByteString } from '../core/byte-string.js';
import type { ErrorLog } from '../core/log.js';
import { setLimitRate } from './limit-rate.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import { compileNginxRegex } from './regex.js';
import type { IfCondition } from './rewrite-condition.js';
import type { IfBlock, RewriteRule } from './rewrite-module.js';
import type { HttpRequest } from './request.js';

/** One compiled code; `L` is the level type of the generation (an `if` block's configuration). */
export type ScriptCode<L> =
  | { readonly kind: 'rewrite'; readonly rule: RewriteRule; readonly regex: RegExp; readonly parts: readonly ReplacementPart[] }
  | { readonly kind: 'set'; readonly name: string; readonly value: CompiledTemplate<HttpRequest> }
  | { readonly kind: 'break' }
  | { readonly kind: 'return'; readonly status: number; readonly text: CompiledTemplate<HttpRequest> | undefined }
  | { readonly kind: 'if'; readonly source: string; readonly test: (request: HttpRequest, out: ScriptLog) => boolean; readonly level: L | undefined; readonly codes: readonly ScriptCode<L>[] };

/** A piece of a rewrite replacement: literal bytes, a variable, or a capture (escaped in some places). */
type ReplacementPart =
  | { readonly kind: 'text'; readonly text: string }
  | { readonly kind: 'variable'; readonly get: CompiledTemplate<HttpRequest> }
  | { readonly kind: 'capture'; readonly index: number };

/** Where the script's notices and errors go. */
export interface ScriptLog {
  readonly log: ErrorLog;
  readonly connection: number;
  /** nginx's `, client: ..., request: ...` tail. */
  readonly where: () => string;
  /** `rewrite_log` of the level whose script runs. */
  readonly rewriteLog: boolean;
}

/** What a script decided. */
export type ScriptOutcome<L> = ScriptResult<L> & {
  /** Every `if` level that held, in order: a content handler one of them set stays (ngx_http_update_location_config()). */
  readonly matched: readonly L[];
};

type ScriptResult<L> =
  | { readonly kind: 'continue'; readonly level: L | undefined; readonly uriChanged: boolean }
  | { readonly kind: 'return'; readonly level: L | undefined; readonly status: number; readonly text: string | undefined }
  | { readonly kind: 'redirect'; readonly level: L | undefined; readonly status: number; readonly location: string }
  | { readonly kind: 'error'; readonly level: L | undefined };

/** Compiles a block's rewrite directives and `if` blocks into codes in the order written. */
export function compileScript<L>(block: ConfBlockView, table: VariableTable<HttpRequest>, levelOf: (block: ConfBlockView) => L): readonly ScriptCode<L>[] {
  const text = (template: Template): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const entries: { order: number; code: () => ScriptCode<L> }[] = [];
  if (block.isSet('rewrite')) {
    for (const rule of block.get('rewrite')) {
      entries.push({ order: rule.order, code: () => ({ kind: 'rewrite', rule, regex: compileNginxRegex(rule.source, false).regex, parts: replacementParts(rule.replacement, table) }) });
    }
  }
  if (block.isSet('set')) for (const rule of block.get('set')) entries.push({ order: rule.order, code: () => ({ kind: 'set', name: rule.name, value: text(rule.value) }) });
  if (block.isSet('break')) for (const order of block.get('break')) entries.push({ order, code: () => ({ kind: 'break' }) });
  const action = block.isSet('return') ? block.get('return') : undefined;
  if (action !== undefined) entries.push({ order: action.order ?? 0, code: () => ({ kind: 'return', status: action.status, text: action.text === undefined ? undefined : text(action.text) }) });
  for (const child of block.blocks) {
    if (child.name !== 'if') continue;
    const value = child.value as IfBlock;
    entries.push({
      order: value.order,
      code: () => ({
        kind: 'if',
        source: child.args.join(' '),
        test: compileCondition(value.condition, table),
        // ngx_http_rewrite_if(): an `if` in a server keeps the server's configuration.
        level: child.context === 'location_if' ? levelOf(child) : undefined,
        codes: compileScript(child, table, levelOf),
      }),
    });
  }
  return entries.sort((a, b) => a.order - b.order).map((entry) => entry.code());
}

function replacementParts(template: Template, table: VariableTable<HttpRequest>): ReplacementPart[] {
  return template.parts.map((part): ReplacementPart => {
    if (part.kind === 'text') return { kind: 'text', text: toByteString(part.text) };
    if (part.kind === 'capture') return { kind: 'capture', index: part.index };
    return { kind: 'variable', get: compileTemplate({ source: `$${part.name}`, parts: [part] }, table) };
  });
}

function compileCondition(condition: IfCondition, table: VariableTable<HttpRequest>): (request: HttpRequest, out: ScriptLog) => boolean {
  switch (condition.kind) {
    case 'variable': {
      const get = variableGetter(condition.name, table);
      // ngx_http_script_if_code(): false when empty or "0".
      return (r) => {
        const value = get(r);
        return value !== '' && value !== '0';
      };
    }
    case 'compare': {
      const get = variableGetter(condition.name, table);
      const value = compileTemplate(condition.value, table, { literal: toByteString });
      return (r) => (get(r) === value(r)) !== condition.negative;
    }
    case 'regex': {
      const get = variableGetter(condition.name, table);
      const regex = compileNginxRegex(condition.source, condition.caseless).regex;
      return (r, out) => {
        const line = get(r);
        regex.lastIndex = 0;
        const match = regex.exec(line);
        if (out.rewriteLog) out.log.write('notice', `"${condition.source}" ${match === null ? 'does not match' : 'matches'} "${line}"${out.where()}`, out.connection);
        // ngx_http_regex_exec(): a match sets $1..$9; ngx_http_script_regex_start_code() clears them on a miss.
        r.captures = match ?? undefined;
        return (match !== null) !== condition.negative;
      };
    }
    case 'file': {
      const value = compileTemplate(condition.value, table, { literal: toByteString });
      return (r) => fileTest(condition.test, Buffer.from(value(r), 'latin1').toString()) !== condition.negative;
    }
  }
}

function variableGetter(name: string, table: VariableTable<HttpRequest>): CompiledTemplate<HttpRequest> {
  const index = /^[0-9]+$/.test(name) ? Number(name) : undefined;
  return compileTemplate({ source: `$${name}`, parts: [index === undefined ? { kind: 'variable', name } : { kind: 'capture', index }] }, table);
}

/** ngx_http_script_file_code() with ngx_open_cached_file(): -f, -d, -e, -x. */
function fileTest(test: 'f' | 'd' | 'e' | 'x', path: string): boolean {
  const stat = statSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return false;
  if (test === 'f') return stat.isFile();
  if (test === 'd') return stat.isDirectory();
  if (test === 'e') return true;
  // ngx_is_exec(): the owner's execute bit, a directory's too.
  return (stat.mode & 0o100) !== 0;
}

/**
 * Runs codes for a request, as ngx_http_rewrite_handler() does: `if` switches the level of a
 * location when it holds, `break` and a flagged `rewrite` stop, `return` and redirects answer.
 */
export function runScript<L>(codes: readonly ScriptCode<L>[], request: HttpRequest, out: ScriptLog, start: L | undefined = undefined): ScriptOutcome<L> {
  const first = codes[0];
  // A script that begins with `return` (`location / { return 200; }`) answers at once: no state, no `if` held.
  if (first?.kind === 'return') return { kind: 'return', level: start, status: first.status, text: first.text?.(request), matched: NO_LEVELS };
  const state: ScriptState<L> = { level: start, uriChanged: false, matched: [] };
  const result = runCodes(codes, request, out, state);
  if (result === undefined) return { kind: 'continue', level: state.level, uriChanged: state.uriChanged, matched: state.matched };
  return { ...result, matched: state.matched };
}

/** The `matched` of a script no `if` held in. */
const NO_LEVELS: readonly never[] = Object.freeze([]);

interface ScriptState<L> {
  level: L | undefined;
  uriChanged: boolean;
  readonly matched: L[];
}

function runCodes<L>(codes: readonly ScriptCode<L>[], request: HttpRequest, out: ScriptLog, state: ScriptState<L>): ScriptResult<L> | undefined {
  for (const code of codes) {
    switch (code.kind) {
      case 'set':
        if (code.name === 'args') {
          // ngx_http_variable_set_args().
          request.args = code.value(request);
          request.hasArgs = true;
        } else if (code.name === 'limit_rate') setLimitRate(request, code.value(request), (message) => out.log.error(`${message}${out.where()}`, out.connection));
        else request.variables.set(code.name, code.value(request));
        break;
      case 'break':
        return { kind: 'continue', level: state.level, uriChanged: state.uriChanged };
      case 'return':
        return { kind: 'return', level: state.level, status: code.status, text: code.text?.(request) };
      case 'if':
        if (!code.test(request, out)) break;
        if (code.level !== undefined) {
          state.level = code.level;
          state.matched.push(code.level);
        }
        {
          const inner = runCodes(code.codes, request, out, state);
          if (inner !== undefined) return inner;
        }
        break;
      case 'rewrite': {
        const result = runRewrite(code, request, out, state);
        if (result !== undefined) return result;
        break;
      }
    }
  }
  return undefined;
}

function runRewrite<L>(code: Extract<ScriptCode<L>, { kind: 'rewrite' }>, request: HttpRequest, out: ScriptLog, state: ScriptState<L>): ScriptResult<L> | undefined {
  const { rule } = code;
  code.regex.lastIndex = 0;
  const match = code.regex.exec(request.uri);
  if (match === null) {
    if (out.rewriteLog) out.log.write('notice', `"${rule.source}" does not match "${request.uri}"${out.where()}`, out.connection);
    request.captures = undefined;
    return undefined;
  }
  if (out.rewriteLog) out.log.write('notice', `"${rule.source}" matches "${request.uri}"${out.where()}`, out.connection);
  request.captures = match;
  // ngx_http_script_copy_capture_code(): captures go escaped into the arguments (and a redirect)
  // when the client's URI was escaped, so that a decoded "&" or "?" does not split them.
  const quoted = /[%+]/.test(request.requestUri.split('?', 1)[0] ?? '');
  const redirect = rule.redirect !== undefined;
  let uri = '';
  let args: string | undefined;
  for (const part of code.parts) {
    if (part.kind === 'text') {
      // ngx_http_script_compile() with compile_args: the first "?" of the text starts the arguments.
      const at = redirect || args !== undefined ? -1 : part.text.indexOf('?');
      if (at === -1) {
        if (args === undefined) uri += part.text;
        else args += part.text;
      } else {
        uri += part.text.slice(0, at);
        args = part.text.slice(at + 1);
      }
      continue;
    }
    let value = part.kind === 'variable' ? part.get(request) : (match[part.index] ?? '');
    if (part.kind === 'capture' && (redirect || args !== undefined) && quoted) value = escapeArgs(value);
    if (args === undefined) uri += value;
    else args += value;
  }
  const originalArgs = request.args;
  if (redirect) {
    let location = unescapeRedirect(uri);
    // "&" only when the replacement's own text has a "?" (sc->args), whatever its variables bring.
    const ownArgs = code.parts.some((part) => part.kind === 'text' && part.text.includes('?'));
    if (!rule.dropArgs && originalArgs !== '') location += `${ownArgs ? '&' : '?'}${originalArgs}`;
    if (out.rewriteLog) out.log.write('notice', `rewritten redirect: "${location}"${out.where()}`, out.connection);
    return { kind: 'redirect', level: state.level, status: rule.redirect ?? 302, location };
  }
  // ngx_http_script_regex_end_code(): the original arguments follow the new ones, unless "?" ends the replacement.
  if (args !== undefined) {
    request.args = !rule.dropArgs && originalArgs !== '' ? `${args}&${originalArgs}` : args;
    request.hasArgs = true;
  } else if (rule.dropArgs) {
    request.args = '';
    request.hasArgs = false;
  }
  if (out.rewriteLog) out.log.write('notice', `rewritten data: "${uri}", args: "${request.args}"${out.where()}`, out.connection);
  if (uri === '') {
    out.log.error(`the rewritten URI has a zero length${out.where()}`, out.connection);
    return { kind: 'error', level: state.level };
  }
  request.uri = uri;
  request.internal = true;
  state.uriChanged = rule.stop !== 'break';
  if (rule.stop === 'break') return { kind: 'continue', level: state.level, uriChanged: false };
  if (rule.stop === 'last') return { kind: 'continue', level: state.level, uriChanged: true };
  return undefined;
}

/** ngx_escape_uri(NGX_ESCAPE_ARGS): space, `"#%&+;<>?\^\`{|}`, controls and bytes above 0x7e. */
function escapeArgs(value: string): string {
  return value.replace(/[\x00-\x20"#%&+;<>?\\^`{|}\x7f-\xff]/g, (ch) => `%${ch.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`);
}

/** ngx_unescape_uri(NGX_UNESCAPE_REDIRECT): up to a "?", %XX of a printable byte above "%" is decoded. */
function unescapeRedirect(value: string): string {
  const query = value.indexOf('?');
  const path = query === -1 ? value : value.slice(0, query);
  const decoded = path.replace(/%([0-9a-fA-F]{2})/g, (escaped, hex: string) => {
    const code = parseInt(hex, 16);
    return code > 0x25 && code < 0x7f ? String.fromCharCode(code) : escaped;
  });
  return query === -1 ? decoded : decoded + value.slice(query);
}
