/**
 * nginx's `ngx_http_headers_module`: `add_header`. A level that has its own `add_header` lines
 * uses only those; a level without any inherits the enclosing level's (nginx's merge rule, which
 * surprises people: one `add_header` in a location drops every one from the server).
 */
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';
import { isConstantTemplate } from '../core/variables.js';
import { parseExpires, type ExpiresSetting } from './expires.js';

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
    add_trailer: readonly AddHeader[];
    expires: ExpiresSetting;
  }
}

/** The statuses `add_header` without `always` applies to (ngx_http_headers_filter()). */
export const ADD_HEADER_STATUSES: ReadonlySet<number> = new Set([200, 201, 204, 206, 301, 302, 303, 304, 307, 308]);

// RFC 9110 section 5.6.2: a field name is a token.
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Adds one `add_header` field to `headers` (flat name/value pairs) as ngx_http_headers_filter()'s
 * handlers do: ETag and Last-Modified replace the response's own field in place, and an empty
 * value removes it (ngx_http_set_response_header()); any other field is appended unless empty.
 */
export function addHeaderField(headers: string[], name: string, value: string): void {
  const lower = name.toLowerCase();
  if (lower !== 'etag' && lower !== 'last-modified') {
    if (value !== '') headers.push(name, value);
    return;
  }
  let at = -1;
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === lower) {
      at = i;
      break;
    }
  }
  if (value === '') {
    if (at !== -1) headers.splice(at, 2);
  } else if (at !== -1) {
    headers[at] = name;
    headers[at + 1] = value;
  } else headers.push(name, value);
}

/** Parses `add_header`, appending to the lines already given at this level. */
export function parseAddHeader(args: readonly string[], ctx: DirectiveContext, previous: readonly AddHeader[] | undefined): readonly AddHeader[] {
  const [name = '', value = '', flag] = args;
  if (flag !== undefined && flag !== 'always') ctx.fail(`invalid parameter "${flag}"`);
  // nginx would send whatever it was given; node:http refuses such a header at run time instead.
  if (!TOKEN.test(name)) ctx.fail(`invalid header name "${name}"`);
  if (/[\r\n]/.test(value)) ctx.fail(`invalid value "${value}"`);
  return [...(previous ?? []), { name, value: parseValue(value, ctx), always: flag === 'always' }];
}

/** `ngx_http_headers_expires()`: `expires [modified] time | epoch | max | off`, or a value with variables. */
export function parseExpiresDirective(args: readonly string[], ctx: DirectiveContext): ExpiresSetting {
  if (args.length === 2 && args[0] !== 'modified') ctx.fail('"expires" directive invalid value');
  const modified = args.length === 2;
  const text = args[args.length - 1] ?? '';
  const value = parseValue(text, ctx);
  if (!isConstantTemplate(value)) return { modified, value };
  const rule = parseExpires(text, modified);
  if ('error' in rule) ctx.fail(`"expires" directive ${rule.error}`);
  return { rule };
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
    defineDirective({
      kind: 'value',
      name: 'add_trailer',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [2, 3],
      repeatable: true,
      syntax: 'name value [always];',
      summary: 'Adds a trailer field after the body of 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses (every one with always): HTTP/1.1 responses are then sent chunked, HTTP/2 ones end with a HEADERS frame; HTTP/1.0 responses carry none. Inherited as add_header is.',
      default: () => [],
      defaultText: '—',
      parse: parseAddHeader,
    }),
    defineDirective({
      kind: 'value',
      name: 'expires',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1, 2],
      syntax: '[modified] time | epoch | max | off;',
      summary: 'Sets Expires and Cache-Control on 200, 201, 204, 206, 301, 302, 303, 304, 307 and 308 responses: time after the request, or after Last-Modified with modified, @time of day, negative for no-cache, epoch, max; a value with variables is parsed per request.',
      default: () => ({ rule: { kind: 'off', seconds: 0 } }),
      defaultText: 'expires off;',
      parse: parseExpiresDirective,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkVariables(http, blocksOf(http).flatMap((block) => (block.isSet('add_header') ? block.get('add_header').map((h) => h.value) : [])));
    checkVariables(http, blocksOf(http).flatMap((block) => (block.isSet('add_trailer') ? block.get('add_trailer').map((h) => h.value) : [])));
    checkVariables(http, blocksOf(http).flatMap((block) => {
      const expires = block.isSet('expires') ? block.get('expires') : undefined;
      return expires !== undefined && 'value' in expires ? [expires.value] : [];
    }));
  },
};
