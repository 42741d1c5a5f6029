/**
 * nginx's `ngx_http_headers_module`: `add_header`. A level that has its own `add_header` lines
 * uses only those; a level without any inherits the enclosing level's (nginx's merge rule, which
 * surprises people: one `add_header` in a location drops every one from the server).
 */
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';

/** One `add_header name value [always]`. */
export interface AddHeader {
  readonly name: string;
  readonly value: Template;
  /** Send with every status, not only 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308. */
  readonly always: boolean;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    add_header: readonly AddHeader[];
  }
}

/** The statuses `add_header` without `always` applies to (ngx_http_headers_filter()). */
export const ADD_HEADER_STATUSES: ReadonlySet<number> = new Set([200, 201, 204, 206, 301, 302, 303, 304, 307, 308]);

// RFC 9110 section 5.6.2: a field name is a token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** Parses `add_header`, appending to the lines already given at this level. */
export function parseAddHeader(args: readonly string[], ctx: DirectiveContext, previous: readonly AddHeader[] | undefined): readonly AddHeader[] {
  const [name = '', value = '', flag] = args;
  if (flag !== undefined && flag !== 'always') ctx.fail(`invalid parameter "${flag}"`);
  // nginx would send whatever it was given; node:http refuses such a header at run time instead.
  if (!TOKEN.test(name)) ctx.fail(`invalid header name "${name}"`);
  if (/[\r\n]/.test(value)) ctx.fail(`invalid value "${value}"`);
  return [...(previous ?? []), { name, value: parseValue(value, ctx), always: flag === 'always' }];
}

/** The headers module's directives. */
export const httpHeadersModule: ConfModule = {
  name: 'ngx_http_headers_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'add_header',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [2, 3],
      repeatable: true,
      syntax: 'name value [always];',
      summary: 'Adds a response header (value with variables) to 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses, or to every response with always; inherited only by levels that have no add_header of their own.',
      default: () => [],
      defaultText: '—',
      parse: parseAddHeader,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkVariables(http, blocksOf(http).flatMap((block) => (block.isSet('add_header') ? block.get('add_header').map((h) => h.value) : [])));
  },
};
