/**
 * nginx's `ngx_http_charset_filter_module`: `charset`, `source_charset` (names or `$variable`s,
 * evaluated per request), `override_charset`, `charset_types` and `charset_map` add `; charset=NAME`
 * to the Content-Type of the responses nginx adds it to and recode the body between two charsets
 * a `charset_map` block links (ngx_http_charset_header_filter(), _body_filter()). An upstream's
 * X-Accel-Charset names the charset to send instead, as nginx's r->headers_out.override_charset.
 */
import { ConfigError } from '../core/errors.js';
import type { Template, VariableTable } from '../core/variables.js';
import { blocksOf } from '../conf/values.js';
import type { ConfNode } from '../conf/parser.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { addCharsetMapLine, byteRecoder, emptyCharsetMap, fromUtf8Recoder, toUtf8Recoder, utf8Sequences, type CharsetMap } from './charset-tables.js';
import { parseMimeTypes, typeMatches, type MimeTypeSet } from './gzip-module.js';
import { headerOf, removeHeader, type FilterHead, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';
import { checkVariables } from './variables.js';

/** A charset as `charset` and `source_charset` name it: a name, or a variable evaluated per request. */
export type CharsetSetting = { readonly kind: 'name'; readonly name: string } | { readonly kind: 'variable'; readonly variable: string };

declare module '../conf/registry.js' {
  interface DirectiveValues {
    /** Undefined for `off`. */
    charset: CharsetSetting | undefined;
    source_charset: CharsetSetting | undefined;
    override_charset: boolean;
    charset_types: MimeTypeSet;
    charset_map: readonly CharsetMap[];
  }
}

/** ngx_http_charset_default_types[] (text/html is always in, as the docs say). */
const DEFAULT_TYPES = ['text/xml', 'text/plain', 'text/vnd.wap.wml', 'application/javascript', 'application/rss+xml'];

/** ngx_http_set_charset_slot(): `off` (charset only), `$variable`, or a name. */
function charsetSetting([value = '']: readonly string[], ctx: DirectiveContext, name: string): CharsetSetting | undefined {
  if (name === 'charset' && value === 'off') return undefined;
  if (!value.startsWith('$')) return { kind: 'name', name: value };
  // ngx_http_get_variable_index(): the rest of the word is the name.
  if (value.length === 1) ctx.fail('invalid variable name');
  return { kind: 'variable', variable: value.slice(1).toLowerCase() };
}

function sameCharset(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** ngx_http_charset_map_block(): one block, checked against those before it. */
function parseCharsetMap(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly CharsetMap[] | undefined): readonly CharsetMap[] {
  const [from = '', to = ''] = args;
  if (sameCharset(from, to)) ctx.fail(`"charset_map" between the same charsets "${from}" and "${to}"`);
  if (sameCharset(from, 'utf-8')) ctx.fail('"charset_map" with "utf-8" charset should be given in the second column');
  for (const map of previous ?? []) {
    if ((sameCharset(map.from, from) && sameCharset(map.to, to)) || (sameCharset(map.from, to) && sameCharset(map.to, from))) {
      ctx.fail(`duplicate "charset_map" between "${from}" and "${to}"`);
    }
  }
  const map = emptyCharsetMap(from, to);
  for (const node of nodes) {
    if (node.kind === 'error') throw node.error;
    const fail = (message: string): never => {
      throw new ConfigError(message, { file: node.file, line: node.line });
    };
    // ngx_conf_parse() with a handler: a block inside is refused; `include` is one more line.
    if (node.block !== undefined) fail('unexpected "{"');
    addCharsetMapLine(map, [node.name, ...node.args], fail);
  }
  return [...(previous ?? []), map];
}

/** The charset module's directives. */
export const httpCharsetModule: ConfModule = {
  name: 'ngx_http_charset_filter_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'charset',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1],
      syntax: 'charset | off;',
      summary: 'Adds "; charset=NAME" to the Content-Type of responses of the charset_types (none to a 301 or 302), recoding the body from source_charset (or the response\'s own charset) through a charset_map; a $variable is evaluated per request.',
      default: () => undefined,
      defaultText: 'charset off;',
      parse: (args, ctx) => charsetSetting(args, ctx, 'charset'),
    }),
    defineDirective({
      kind: 'value',
      name: 'source_charset',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1],
      syntax: 'charset;',
      summary: 'The charset of the response body when the response names none; one other than charset needs a charset_map between the two; a $variable is evaluated per request.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => charsetSetting(args, ctx, 'source_charset'),
    }),
    defineDirective({
      kind: 'value',
      name: 'override_charset',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1],
      syntax: 'on | off;',
      summary: 'Applies charset to responses that name a charset of their own too (a proxied Content-Type with charset=).',
      default: () => false,
      defaultText: 'override_charset off;',
      parse: ([value = ''], ctx) => (value === 'on' ? true : value === 'off' ? false : ctx.fail(`invalid value "${value}" in "override_charset" directive, it must be "on" or "off"`)),
    }),
    defineDirective({
      kind: 'value',
      name: 'charset_types',
      contexts: ['http', 'server', 'location'],
      args: '1+',
      syntax: 'mime-type ...;',
      summary: 'The MIME types charset applies to, besides text/html; * for any.',
      default: () => parseMimeTypes(DEFAULT_TYPES, 'text/html'),
      defaultText: 'charset_types text/html text/xml text/plain text/vnd.wap.wml application/javascript application/rss+xml;',
      parse: (args) => parseMimeTypes(args, 'text/html'),
    }),
    defineDirective({
      kind: 'raw-block',
      name: 'charset_map',
      contexts: ['http'],
      args: [2],
      repeatable: true,
      syntax: 'charset1 charset2 { ... }',
      summary: 'A table between two charsets, one "HH HH;" line per byte (hex codes below 0x80 map to themselves, other unmapped bytes become "?"); with utf-8 second, the right side is the utf-8 bytes in hex, and a character the table lacks becomes "&#N;".',
      default: () => [],
      defaultText: '—',
      parse: parseCharsetMap,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const maps = http.get('charset_map');
    const variables: Template[] = [];
    // ngx_http_charset_merge_loc_conf() and _postconfiguration(): two names paired with no table.
    for (const block of blocksOf(http)) {
      const charset = block.get('charset');
      const source = block.get('source_charset');
      for (const setting of [charset, source]) {
        if (setting?.kind === 'variable') variables.push({ source: `$${setting.variable}`, parts: [{ kind: 'variable', name: setting.variable }] });
      }
      if (charset?.kind !== 'name' || source?.kind !== 'name' || sameCharset(charset.name, source.name)) continue;
      if (recodingOf(maps, source.name, charset.name) === undefined) {
        throw new ConfigError(`no "charset_map" between the charsets "${source.name}" and "${charset.name}"`, undefined);
      }
    }
    checkVariables(http, variables);
  },
};

/** The recoding between two charsets a map links, either way; undefined when no map does. */
type Recoding = { readonly utf8: false; readonly table: readonly number[] } | { readonly utf8: 'to'; readonly table: readonly Buffer[] } | { readonly utf8: 'from'; readonly table: ReadonlyMap<number, number> };

/** ngx_http_charset_postconfiguration(): a map from `src` to `dst` or from `dst` to `src`; `sequences` gives a utf-8 map's buffers. */
function recodingOf(maps: readonly CharsetMap[], src: string, dst: string, sequences: (map: CharsetMap) => readonly Buffer[] = () => []): Recoding | undefined {
  for (const map of maps) {
    if (sameCharset(map.from, src) && sameCharset(map.to, dst)) {
      return map.utf8 ? { utf8: 'to', table: sequences(map) } : { utf8: false, table: map.fromTo as readonly number[] };
    }
    if (sameCharset(map.from, dst) && sameCharset(map.to, src)) {
      return map.utf8 ? { utf8: 'from', table: map.toFrom as ReadonlyMap<number, number> } : { utf8: false, table: map.toFrom as readonly number[] };
    }
  }
  return undefined;
}

/**
 * mcf->charsets: every name the configuration gives (charset_map blocks, then charset and
 * source_charset), lowercased, to the spelling nginx keeps (the first one, ngx_http_add_charset()).
 */
function knownCharsets(http: ConfBlockView): ReadonlyMap<string, string> {
  const known = new Map<string, string>();
  const add = (name: string): void => {
    if (!known.has(name.toLowerCase())) known.set(name.toLowerCase(), name);
  };
  for (const map of http.get('charset_map')) {
    add(map.from);
    add(map.to);
  }
  for (const block of blocksOf(http)) {
    for (const setting of [block.get('charset'), block.get('source_charset')]) if (setting?.kind === 'name') add(setting.name);
  }
  return known;
}

/** What the whole `http` block knows, shared by its levels: nginx's charset main conf. */
interface HttpCharsets {
  readonly maps: readonly CharsetMap[];
  readonly known: ReadonlyMap<string, string>;
  /** The utf-8 sequences of each map to utf-8, as buffers, made on first use. */
  readonly sequences: (map: CharsetMap) => readonly Buffer[];
}

/** Per `http` block (a frozen configuration's view), so that each level does not walk the whole block again. */
const httpCharsets = new WeakMap<ConfBlockView, HttpCharsets>();

function httpCharsetsOf(http: ConfBlockView): HttpCharsets {
  let charsets = httpCharsets.get(http);
  if (charsets === undefined) {
    charsets = { maps: http.get('charset_map'), known: knownCharsets(http), sequences: sequencesOf() };
    httpCharsets.set(http, charsets);
  }
  return charsets;
}

/** A level's charset settings, with what the whole `http` block knows. */
interface CharsetSettings extends HttpCharsets {
  readonly charset: CharsetSetting | undefined;
  readonly source: CharsetSetting | undefined;
  readonly override: boolean;
  readonly types: MimeTypeSet;
  readonly variables: VariableTable<HttpRequest>;
}

/** A variable charset not found: nginx's header filter returns NGX_ERROR, and the connection closes. */
class CharsetVariableError extends Error {
  constructor(variable: string) {
    super(`The charset variable "${variable}" is not found`);
    this.name = 'CharsetVariableError';
  }
}

/** The level's charset filter; undefined when neither charset nor a known charset for X-Accel-Charset can apply. */
export function charsetFilterOf(block: ConfBlockView, variables: VariableTable<HttpRequest>, log: (request: HttpRequest, message: string) => void): OutputFilter | undefined {
  let http: ConfBlockView | undefined = block;
  while (http !== undefined && http.name !== 'http') http = http.parent;
  if (http === undefined) return undefined;
  const charset = block.get('charset');
  const charsets = httpCharsetsOf(http);
  // X-Accel-Charset applies even with charset off, to a charset the configuration names.
  if (charset === undefined && charsets.known.size === 0) return undefined;
  const settings: CharsetSettings = { ...charsets, charset, source: block.get('source_charset'), override: block.get('override_charset'), types: block.get('charset_types'), variables };
  return {
    name: 'ngx_http_charset_filter_module',
    encodes: (head, request) => {
      try {
        const decision = decide(head, request, settings, () => undefined);
        return decision?.recoding !== undefined && decision.recoding.utf8 !== false;
      } catch {
        return false;
      }
    },
    header: (head, request) => applyDecision(head, decide(head, request, settings, (message) => log(request, message))),
  };
}

function sequencesOf(): (map: CharsetMap) => readonly Buffer[] {
  const made = new Map<CharsetMap, Buffer[]>();
  return (map) => {
    let buffers = made.get(map);
    if (buffers === undefined) made.set(map, (buffers = utf8Sequences(map)));
    return buffers;
  };
}

const CHARSET_PARAM = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;

/** What the header filter does to one response: the charset to name, whether the type loses its own, the body's recoding. */
interface CharsetDecision {
  readonly index: number;
  readonly dst: string;
  /** r->headers_out.content_type.len = content_type_len: the response's own charset parameter goes. */
  readonly truncate: boolean;
  readonly own: string | undefined;
  readonly recoding: Recoding | undefined;
}

function evaluate(setting: CharsetSetting, settings: CharsetSettings, request: HttpRequest): string {
  if (setting.kind === 'name') return settings.known.get(setting.name.toLowerCase()) ?? setting.name;
  const value = settings.variables.resolve(setting.variable)?.(request);
  if (value === undefined) throw new CharsetVariableError(setting.variable);
  return value;
}

/** ngx_http_charset_header_filter() with ngx_http_destination_charset() and ngx_http_source_charset(). */
function decide(head: FilterHead, request: HttpRequest, settings: CharsetSettings, log: (message: string) => void): CharsetDecision | undefined {
  const index = head.headers.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'content-type');
  if (index === -1) return undefined;
  const value = head.headers[index + 1] as string;
  if (value === '') return undefined;
  const param = CHARSET_PARAM.exec(value)?.[1];
  const own = param === undefined || param === '' ? undefined : param;
  let dst: string;
  const override = head.overrideCharset;
  if (override !== undefined && override !== '') {
    if (!settings.known.has(override.toLowerCase())) {
      log(`unknown charset "${override}" to override`);
      return undefined;
    }
    dst = override;
  } else {
    if (settings.charset === undefined) return undefined;
    // A response's own charset only with override_charset; else the type must be one of charset_types.
    if (own !== undefined) {
      if (!settings.override) return undefined;
    } else if (!typeMatches(settings.types, headerOf(head.headers, 'content-type'))) {
      return undefined;
    }
    dst = evaluate(settings.charset, settings, request);
  }
  const keep = { index: index + 1, dst, own };
  // The response's own charset, else source_charset; none (off) only names dst.
  const src = own ?? (settings.source === undefined ? undefined : evaluate(settings.source, settings, request));
  if (src === undefined) return { ...keep, truncate: false, recoding: undefined };
  const dstKnown = settings.known.has(dst.toLowerCase());
  const srcKnown = settings.known.has(src.toLowerCase());
  if (!dstKnown || !srcKnown) {
    // Two names the configuration does not know: the same name (ngx_strncasecmp() over dst's length) is no recoding.
    if (dstKnown !== srcKnown || src.length < dst.length || !sameCharset(src.slice(0, dst.length), dst)) return noMap(src, dst, log);
    return { ...keep, truncate: false, recoding: undefined };
  }
  if (sameCharset(src, dst)) return { ...keep, truncate: true, recoding: undefined };
  // An encoded body (gzip_static, a gzipped upstream) cannot be recoded: it goes as it is, charset and all.
  if ((headerOf(head.headers, 'content-encoding') ?? '') !== '') return undefined;
  const recoding = recodingOf(settings.maps, src, dst, settings.sequences);
  if (recoding === undefined) return noMap(src, dst, log);
  return { ...keep, truncate: true, recoding };
}

function noMap(src: string, dst: string, log: (message: string) => void): undefined {
  log(`no "charset_map" between the charsets "${src}" and "${dst}"`);
  return undefined;
}

/** ngx_http_set_charset() and ngx_http_charset_ctx(): the Content-Type, the framing, the body's transform. */
function applyDecision(head: FilterHead, decision: CharsetDecision | undefined): ReturnType<OutputFilter['header']> {
  if (decision === undefined) return undefined;
  const value = head.headers[decision.index] as string;
  const type = (value.split(';')[0] ?? value).trim();
  // None on a redirect (NN 4.x took it for the next page's).
  const redirect = head.status === 301 || head.status === 302;
  if (decision.truncate && decision.own !== undefined) head.headers[decision.index] = redirect ? type : `${type}; charset=${decision.dst}`;
  // ngx_http_header_filter() appends the charset only to a type without parameters, and not to one that keeps its own.
  else if (!redirect && decision.own === undefined && !value.includes(';')) head.headers[decision.index] = `${value}; charset=${decision.dst}`;
  const recoding = decision.recoding;
  if (recoding === undefined) return undefined;
  if (recoding.utf8 !== false) {
    // The length changes: ngx_http_clear_content_length().
    removeHeader(head.headers, 'content-length');
    head.framing = 'chunked';
    return recoding.utf8 === 'to' ? toUtf8Recoder(recoding.table) : fromUtf8Recoder(recoding.table);
  }
  if (typeof head.framing !== 'number') head.framing = 'chunked';
  return byteRecoder(recoding.table);
}
