/**
 * nginx's `ngx_http_rewrite_module`, as far as hitless goes: `return`. A `return` in a server runs
 * before any location is chosen (nginx's server rewrite phase); one in a location runs once that
 * location is chosen. Like every rewrite directive it is not inherited by inner blocks, and the
 * first `return` of a block is the one that runs.
 */
import { parseNumber } from '../core/parse.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';

// parseValue() moved to conf/values.ts, where upstream and stream modules reach it too.
export { parseValue };

/** `return code [text]`, `return code URL` or `return URL`. */
export interface ReturnAction {
  readonly status: number;
  /** The body text, or for 301, 302, 303, 307 and 308 the redirect URL; undefined when not given. */
  readonly text: Template | undefined;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    return: ReturnAction | undefined;
  }
}


/** Parses `return`, as `ngx_http_rewrite_return()` does. */
export function parseReturn(args: readonly string[], ctx: DirectiveContext, previous: ReturnAction | undefined): ReturnAction {
  const [code = '', text] = args;
  const status = parseNumber(code);
  let action: ReturnAction;
  if (status === undefined) {
    const isUrl = code.startsWith('http://') || code.startsWith('https://') || code.startsWith('$scheme');
    if (text !== undefined || !isUrl) ctx.fail(`invalid return code "${code}"`);
    action = { status: 302, text: parseValue(code, ctx) };
  } else {
    if (status > 999) ctx.fail(`invalid return code "${code}"`);
    action = { status, text: text === undefined ? undefined : parseValue(text, ctx) };
  }
  return previous ?? action;
}

/** The rewrite module's directives. */
export const httpRewriteModule: ConfModule = {
  name: 'ngx_http_rewrite_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'return',
      contexts: ['server', 'location', 'server_if', 'location_if'],
      args: [1, 2],
      repeatable: true,
      inherit: false,
      syntax: 'code [text]; | code URL; | URL;',
      summary: 'Stops processing and answers with the code: the text (with variables) as the body, or for 301, 302, 303, 307 and 308 a redirect to the URL; a bare URL redirects with 302; 444 closes the connection without a response.',
      defaultText: '—',
      parse: parseReturn,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const templates: Template[] = [];
    for (const block of blocksOf(http)) {
      const action = block.isSet('return') ? block.get('return') : undefined;
      if (action?.text !== undefined) templates.push(action.text);
    }
    checkVariables(http, templates);
  },
};
