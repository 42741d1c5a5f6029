/**
 * nginx's `ngx_http_sub_filter_module`: `sub_filter`, `sub_filter_once`, `sub_filter_last_modified`
 * and `sub_filter_types`. The body of a response of one of the types (text/html by default) is
 * searched for the strings, caselessly, and each match replaced (sub-matcher.ts), whatever the
 * status and the Content-Encoding, as nginx's header filter asks neither. A level with `sub_filter`
 * lines of its own uses only those (nginx's merge); the strings and replacements may have
 * variables, a string evaluated per response (one that comes out empty is not looked for), a
 * replacement at its first match.
 */
import { Transform } from 'node:stream';
import { compileTemplate, isConstantTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import { toByteString } from '../core/byte-string.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, flagDirective, parseValue } from '../conf/values.js';
import { weakenEtag } from './gzip-filter.js';
import { parseMimeTypes, typeMatches, type MimeTypeSet } from './gzip-module.js';
import { headerOf, removeHeader, type FilterHead, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';
import { buildSubTables, SubMatcher, type SubMatch, type SubTables } from './sub-matcher.js';
import { checkVariables } from './variables.js';

/** One `sub_filter string replacement`; the string lowercased. */
export interface SubFilterPair {
  readonly match: Template;
  readonly replacement: Template;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    sub_filter: readonly SubFilterPair[];
    sub_filter_once: boolean;
    sub_filter_last_modified: boolean;
    sub_filter_types: MimeTypeSet;
  }
}

/** The most strings one level may have (nginx's index table holds a byte). */
const MAX_PAIRS = 255;

/** ngx_strlow(): ASCII only, the bytes above 127 as they are. */
function asciiLower(text: string): string {
  return text.replace(/[A-Z]+/g, (upper) => upper.toLowerCase());
}

/** ngx_http_sub_filter(): appends to the level's lines; nginx lowercases the string before compiling it, its variable names too. */
function parseSubFilter(args: readonly string[], ctx: DirectiveContext, previous: readonly SubFilterPair[] | undefined): readonly SubFilterPair[] {
  const [match = '', replacement = ''] = args;
  if (match === '') ctx.fail('empty search pattern');
  if ((previous?.length ?? 0) === MAX_PAIRS) ctx.fail(`number of search patterns exceeds ${MAX_PAIRS}`);
  return [...(previous ?? []), { match: parseValue(asciiLower(match), ctx), replacement: parseValue(replacement, ctx) }];
}

/** The sub filter's directives. */
export const httpSubFilterModule: ConfModule = {
  name: 'ngx_http_sub_filter_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'sub_filter',
      contexts: ['http', 'server', 'location'],
      args: [2],
      repeatable: true,
      syntax: 'string replacement;',
      summary: 'Replaces string (caselessly, with variables) in the body of responses of the sub_filter_types by replacement (with variables); several at once, the leftmost match first; inherited only by levels that have no sub_filter of their own.',
      default: () => [],
      defaultText: '—',
      parse: parseSubFilter,
    }),
    flagDirective('sub_filter_once', 'Replaces each string only where it first matches; off replaces every match.', true),
    flagDirective('sub_filter_last_modified', 'Keeps Last-Modified (and a weak ETag) on responses sub_filter changes; off removes both.', false),
    defineDirective({
      kind: 'value',
      name: 'sub_filter_types',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'mime-type ...;',
      summary: 'The MIME types sub_filter applies to, besides text/html; * for any.',
      default: () => parseMimeTypes([], 'text/html'),
      defaultText: 'sub_filter_types text/html;',
      parse: (args) => parseMimeTypes(args, 'text/html'),
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkVariables(http, blocksOf(http).flatMap((block) => (block.isSet('sub_filter') ? block.get('sub_filter').flatMap((pair) => [pair.match, pair.replacement]) : [])));
  },
};

/** A `sub_filter` line ready to run. */
interface CompiledPair {
  /** The string, when it has no variables. */
  readonly constant: Buffer | undefined;
  readonly match: CompiledTemplate<HttpRequest>;
  readonly replacement: CompiledTemplate<HttpRequest>;
}

interface SubSettings {
  readonly pairs: readonly CompiledPair[];
  /** The tables, built once when no string has variables (ngx_http_sub_merge_conf()). */
  readonly tables: SubTables | undefined;
  readonly once: boolean;
  readonly lastModified: boolean;
  readonly types: MimeTypeSet;
}

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');

/** The level's sub filter; undefined when it has no `sub_filter` lines. */
export function subFilterOf(block: ConfBlockView, table: VariableTable<HttpRequest>): OutputFilter | undefined {
  const lines = block.get('sub_filter');
  if (lines.length === 0) return undefined;
  const compile = (template: Template): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
  const pairs = lines.map((pair): CompiledPair => ({
    constant: isConstantTemplate(pair.match) ? Buffer.from(pair.match.parts.map((part) => (part.kind === 'text' ? part.text : '')).join(''), 'utf8') : undefined,
    match: compile(pair.match),
    replacement: compile(pair.replacement),
  }));
  const tables = pairs.every((pair) => pair.constant !== undefined) ? buildSubTables(pairs.map((pair, line) => ({ match: pair.constant as Buffer, line }))) : undefined;
  const settings: SubSettings = { pairs, tables, once: block.get('sub_filter_once'), lastModified: block.get('sub_filter_last_modified'), types: block.get('sub_filter_types') };
  return {
    name: 'sub',
    // A body sub_filter changes has no known length, so that nginx's range filter passes it whole.
    encodes: (head, request) => tablesFor(head, request, settings) !== undefined,
    header: (head, request) => subHeader(head, request, settings),
  };
}

/** ngx_http_sub_header_filter()'s tests, then the strings of this response; undefined when the filter lets it pass. */
function tablesFor(head: FilterHead, request: HttpRequest, settings: SubSettings): SubTables | undefined {
  if (head.framing === 0 || !typeMatches(settings.types, headerOf(head.headers, 'content-type'))) return undefined;
  if (settings.tables !== undefined) return settings.tables;
  const matches: SubMatch[] = [];
  settings.pairs.forEach((pair, line) => {
    const match = pair.constant ?? bytes(asciiLower(pair.match(request)));
    // ngx_http_sub_header_filter(): a string with variables that comes out empty is not looked for.
    if (match.length > 0) matches.push({ match, line });
  });
  return matches.length === 0 ? undefined : buildSubTables(matches);
}

/** ngx_http_sub_header_filter(): the head edited, and the body's transform. */
function subHeader(head: FilterHead, request: HttpRequest, settings: SubSettings): Transform | undefined {
  const tables = tablesFor(head, request, settings);
  if (tables === undefined) return undefined;
  // ngx_http_clear_content_length(), and Last-Modified and ETag cleared, or the ETag made weak with sub_filter_last_modified.
  removeHeader(head.headers, 'content-length');
  if (settings.lastModified) weakenEtag(head.headers);
  else {
    removeHeader(head.headers, 'last-modified');
    removeHeader(head.headers, 'etag');
  }
  if (head.headerOnly) return undefined;
  head.framing = 'chunked';
  return subTransform(new SubMatcher(tables, (line) => bytes((settings.pairs[line] as CompiledPair).replacement(request)), settings.once));
}

/** The body through the matcher, chunk by chunk. */
function subTransform(matcher: SubMatcher): Transform {
  return new Transform({
    transform(chunk: Buffer, _encoding, callback) {
      matcher.write(chunk, (data) => this.push(data));
      callback();
    },
    flush(callback) {
      matcher.end((data) => this.push(data));
      callback();
    },
  });
}
