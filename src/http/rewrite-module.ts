/**
 * nginx's `ngx_http_rewrite_module`: `rewrite`, `return`, `break`, `if`, `set`, `rewrite_log` and
 * `uninitialized_variable_warn`. Each block's rewrite directives form one script run in the order
 * written (nginx compiles them into one array of script codes); rewrite-script.ts compiles and runs
 * it. Like nginx's codes, a block's script is not inherited by inner blocks.
 */
import { parseNumber } from '../core/parse.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { flagDirective, parseValue } from '../conf/values.js';
import { compileConfigRegex } from './regex.js';
import { parseIfCondition, type IfCondition } from './rewrite-condition.js';
import { checkVariables, isBuiltinHttpVariable } from './variables.js';

// parseValue() moved to conf/values.ts, where upstream and stream modules reach it too.
export { parseValue };

/** `return code [text]`, `return code URL` or `return URL`. */
export interface ReturnAction {
  readonly status: number;
  /** The body text, or for 301, 302, 303, 307 and 308 the redirect URL; undefined when not given. */
  readonly text: Template | undefined;
  /** Its place among the block's rewrite directives (http only; a stream `return` has none). */
  readonly order?: number;
}

/** `rewrite regex replacement [flag]`. */
export interface RewriteRule {
  readonly order: number;
  readonly source: string;
  /** The named captures of the regex, which nginx also defines as variables. */
  readonly captures: readonly string[];
  /** The replacement without a final `?`. */
  readonly replacement: Template;
  /** A final `?` in the replacement: the original arguments are not appended. */
  readonly dropArgs: boolean;
  /** 301 (`permanent`), 302 (`redirect`, or a replacement starting with a scheme), or undefined. */
  readonly redirect: 301 | 302 | undefined;
  /** `last` (or a redirect): the script stops; `break`: it stops and the location stays. */
  readonly stop: 'last' | 'break' | undefined;
}

/** `set $name value`. */
export interface SetRule {
  readonly order: number;
  /** The variable name, lowercased, without `$`. */
  readonly name: string;
  readonly value: Template;
}

/** The value of an `if` block: its condition and place among the enclosing block's directives. */
export interface IfBlock {
  readonly order: number;
  readonly condition: IfCondition;
  /** The named captures of a `~` condition's regex. */
  readonly captures: readonly string[];
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    return: ReturnAction | undefined;
    rewrite: readonly RewriteRule[];
    set: readonly SetRule[];
    break: readonly number[];
    if: IfBlock;
    rewrite_log: boolean;
    uninitialized_variable_warn: boolean;
  }
}

/** Parses `return`, as `ngx_http_rewrite_return()` does; the first of a block is the one that can run. */
export function parseReturn(args: readonly string[], ctx: DirectiveContext, previous: ReturnAction | undefined): ReturnAction {
  const [code = '', text] = args;
  const status = parseNumber(code);
  let action: ReturnAction;
  if (status === undefined) {
    const isUrl = code.startsWith('http://') || code.startsWith('https://') || code.startsWith('$scheme');
    if (text !== undefined || !isUrl) ctx.fail(`invalid return code "${code}"`);
    action = { status: 302, text: parseValue(code, ctx), order: ctx.order };
  } else {
    if (status > 999) ctx.fail(`invalid return code "${code}"`);
    action = { status, text: text === undefined ? undefined : parseValue(text, ctx), order: ctx.order };
  }
  return previous ?? action;
}

/** Parses `rewrite`, as `ngx_http_rewrite()` does. */
function parseRewrite(args: readonly string[], ctx: DirectiveContext, previous: readonly RewriteRule[] | undefined): readonly RewriteRule[] {
  const [source = '', written = '', flag] = args;
  if (written === '') ctx.fail('empty replacement');
  const compiled = compileConfigRegex(source, false, ctx);
  const dropArgs = written.endsWith('?');
  const replacement = dropArgs ? written.slice(0, -1) : written;
  let redirect: RewriteRule['redirect'] = written.startsWith('http://') || written.startsWith('https://') || written.startsWith('$scheme') ? 302 : undefined;
  let stop: RewriteRule['stop'] = redirect === undefined ? undefined : 'last';
  if (flag !== undefined) {
    if (flag === 'last') stop = 'last';
    else if (flag === 'break') stop = 'break';
    else if (flag === 'redirect') [redirect, stop] = [302, 'last'];
    else if (flag === 'permanent') [redirect, stop] = [301, 'last'];
    else ctx.fail(`invalid parameter "${flag}"`);
  }
  const rule: RewriteRule = { order: ctx.order, source, captures: compiled.names, replacement: parseValue(replacement, ctx), dropArgs, redirect, stop };
  return [...(previous ?? []), rule];
}

/** Parses `set`, as `ngx_http_rewrite_set()` does: the variable is declared now, for the whole configuration. */
function parseSet(args: readonly string[], ctx: DirectiveContext, previous: readonly SetRule[] | undefined): readonly SetRule[] {
  const [variable = '', value = ''] = args;
  if (!variable.startsWith('$')) ctx.fail(`invalid variable name "${variable}"`);
  const name = variable.slice(1).toLowerCase();
  // ngx_http_add_variable(): a built-in variable may be set only when it is changeable ($args, $limit_rate).
  if (isBuiltinHttpVariable(name) && name !== 'args' && name !== 'limit_rate') ctx.fail(`the duplicate "${name}" variable`);
  return [...(previous ?? []), { order: ctx.order, name, value: parseValue(value, ctx) }];
}

const SCRIPT_CONTEXTS = ['server', 'location', 'server_if', 'location_if'] as const;
const FLAG_CONTEXTS = ['http', 'server', 'server_if', 'location', 'location_if'] as const;

/** The rewrite module's directives. */
export const httpRewriteModule: ConfModule = {
  name: 'ngx_http_rewrite_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'rewrite',
      contexts: SCRIPT_CONTEXTS,
      args: [2, 3],
      repeatable: true,
      inherit: false,
      syntax: 'regex replacement [flag];',
      summary: 'Changes the URI when the regex matches it ($1..$9 and named captures in the replacement): last re-finds the location, break stays in it, redirect (302) and permanent (301) answer with a redirect, as does a replacement starting with http://, https:// or $scheme; a final "?" drops the original arguments.',
      defaultText: '—',
      parse: parseRewrite,
    }),
    defineDirective({
      kind: 'value',
      name: 'return',
      contexts: SCRIPT_CONTEXTS,
      args: [1, 2],
      repeatable: true,
      inherit: false,
      syntax: 'code [text]; | code URL; | URL;',
      summary: 'Stops processing and answers with the code: the text (with variables) as the body, or for 301, 302, 303, 307 and 308 a redirect to the URL; a bare URL redirects with 302; 444 closes the connection without a response.',
      defaultText: '—',
      parse: parseReturn,
    }),
    defineDirective({
      kind: 'value',
      name: 'break',
      contexts: SCRIPT_CONTEXTS,
      args: [0],
      repeatable: true,
      inherit: false,
      syntax: ';',
      summary: 'Stops running the rewrite directives of the block; the request stays in the location.',
      defaultText: '—',
      parse: (_args, ctx, previous) => [...(previous ?? []), ctx.order],
    }),
    defineDirective({
      kind: 'block',
      name: 'if',
      contexts: ['server', 'location'],
      args: '1+',
      syntax: '(condition) { ... }',
      summary: 'Runs the block\'s rewrite directives when the condition holds ($var, =, !=, ~, ~*, !~, !~*, -f, -d, -e, -x and their ! forms); in a location, a true condition also makes the block\'s configuration (inherited from the location) serve the request.',
      block: (_args, ctx) => (ctx.context === 'server' ? 'server_if' : 'location_if'),
      parse: (args, ctx): IfBlock => {
        const condition = parseIfCondition(args, ctx);
        return { order: ctx.order, condition, captures: condition.kind === 'regex' ? condition.captures : [] };
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'set',
      contexts: SCRIPT_CONTEXTS,
      args: [2],
      repeatable: true,
      inherit: false,
      syntax: '$variable value;',
      summary: 'Sets the variable (declared for the whole configuration) to the value, in order with the other rewrite directives; $args changes the request\'s arguments, $limit_rate the rate the response is paced at (a size, else [error] "invalid $limit_rate").',
      defaultText: '—',
      parse: parseSet,
    }),
    flagDirective('rewrite_log', 'Logs the rewrite directives\' regex matches and results to the error log at notice level.', false, FLAG_CONTEXTS),
    flagDirective('uninitialized_variable_warn', 'Warns in the error log when a variable declared by set is read before it is set.', true, FLAG_CONTEXTS),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const templates: Template[] = [];
    for (const block of scriptBlocksOf(http)) {
      const action = block.isSet('return') ? block.get('return') : undefined;
      if (action?.text !== undefined) templates.push(action.text);
      if (block.isSet('rewrite')) for (const rule of block.get('rewrite')) templates.push(rule.replacement);
      if (block.isSet('set')) for (const rule of block.get('set')) templates.push(rule.value);
      if (block.name === 'if') {
        const { condition } = block.value as IfBlock;
        if (condition.kind === 'compare' || condition.kind === 'file') templates.push(condition.value);
        if (condition.kind !== 'file' && !/^[0-9]+$/.test(condition.name)) templates.push({ source: `$${condition.name}`, parts: [{ kind: 'variable', name: condition.name }] });
      }
    }
    checkVariables(http, templates);
  },
};

/** Every server, location and `if` block under `http`, where rewrite directives may stand. */
export function scriptBlocksOf(http: ConfBlockView): ConfBlockView[] {
  const all: ConfBlockView[] = [];
  const walk = (block: ConfBlockView): void => {
    for (const child of block.blocks) {
      if (child.name !== 'server' && child.name !== 'location' && child.name !== 'if') continue;
      all.push(child);
      walk(child);
    }
  };
  walk(http);
  return all;
}
