/**
 * The structure of nginx's `ngx_http_module` and `ngx_http_core_module`: the `http` block, virtual
 * `server` blocks and `location` blocks, with nginx's rules for location modifiers and nesting.
 */
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';

/** How a location matches a URI, from its modifier (`=`, `^~`, `~`, `~*`, `@name` or none). */
export interface LocationMatch {
  readonly kind: 'exact' | 'prefix' | 'prefix-noregex' | 'regex' | 'named';
  /** The URI prefix, exact URI, regular expression source or name as written (without modifier). */
  readonly name: string;
  /** For `~*`: match without regard to case. */
  readonly caseless: boolean;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    http: undefined;
    location: undefined;
  }
}

/** Splits a location's arguments into its modifier and name, as `ngx_http_core_location()` does. */
export function parseLocationMatch(args: readonly string[], ctx: DirectiveContext): LocationMatch {
  let match: LocationMatch;
  if (args.length === 2) {
    const [modifier = '', name = ''] = args;
    switch (modifier) {
      case '=':
        match = { kind: 'exact', name, caseless: false };
        break;
      case '^~':
        match = { kind: 'prefix-noregex', name, caseless: false };
        break;
      case '~':
        match = { kind: 'regex', name, caseless: false };
        break;
      case '~*':
        match = { kind: 'regex', name, caseless: true };
        break;
      default:
        ctx.fail(`invalid location modifier "${modifier}"`);
    }
  } else {
    const [name = ''] = args;
    if (name.startsWith('=')) match = { kind: 'exact', name: name.slice(1), caseless: false };
    else if (name.startsWith('^~')) match = { kind: 'prefix-noregex', name: name.slice(2), caseless: false };
    else if (name.startsWith('~*')) match = { kind: 'regex', name: name.slice(2), caseless: true };
    else if (name.startsWith('~')) match = { kind: 'regex', name: name.slice(1), caseless: false };
    else if (name.startsWith('@')) match = { kind: 'named', name, caseless: false };
    else match = { kind: 'prefix', name, caseless: false };
  }
  if (match.kind === 'regex') {
    try {
      new RegExp(match.name, match.caseless ? 'i' : '');
    } catch (err) {
      ctx.fail(`invalid regular expression "${match.name}": ${(err as Error).message.replace(/^Invalid regular expression: /, '')}`);
    }
  }
  const outer = ctx.enclosing?.name === 'location' ? (ctx.enclosing.value as LocationMatch) : undefined;
  if (outer !== undefined) {
    if (outer.kind === 'exact') ctx.fail(`location "${match.name}" cannot be inside the exact location "${outer.name}"`);
    if (outer.kind === 'named') ctx.fail(`location "${match.name}" cannot be inside the named location "${outer.name}"`);
    if (match.kind === 'named') ctx.fail(`named location "${match.name}" can be on the server level only`);
    if (match.kind !== 'regex' && !match.name.startsWith(outer.name)) {
      ctx.fail(`location "${match.name}" is outside location "${outer.name}"`);
    }
  }
  return match;
}

/** The `http`, `server` and `location` blocks. */
export const httpCoreModule: ConfModule = {
  name: 'ngx_http_core_module',
  directives: [
    defineDirective({
      kind: 'block',
      name: 'http',
      contexts: ['main'],
      args: [0],
      block: 'http',
      unique: true,
      syntax: '{ ... }',
      summary: 'The HTTP server: its virtual servers, upstream groups and shared settings.',
    }),
    defineDirective({
      kind: 'block',
      name: 'server',
      contexts: ['http'],
      args: [0],
      block: 'server',
      syntax: '{ ... }',
      summary: 'A virtual server, chosen by the address a connection arrives on and the requested host name.',
    }),
    defineDirective({
      kind: 'block',
      name: 'location',
      contexts: ['server', 'location'],
      args: [1, 2],
      block: 'location',
      syntax: '[ = | ~ | ~* | ^~ ] uri { ... } | @name { ... }',
      summary: 'Settings for requests whose URI matches: exact (=), longest prefix (^~ stops regex search), or regular expression (~, ~* caseless), in nginx\'s order.',
      parse: parseLocationMatch,
    }),
  ],
};
