/**
 * nginx's `ngx_http_charset_filter_module` without `charset_map`: `charset`, `source_charset`,
 * `override_charset` and `charset_types` add `; charset=NAME` to the Content-Type of the responses
 * nginx adds it to (ngx_http_charset_header_filter()). nginx recodes a body only through the
 * tables of a `charset_map` block, which hitless does not read (the directive is unknown): so a
 * recoding is what nginx does without a table, at `-t` for two names the configuration pairs
 * ("no "charset_map" between the charsets"), at run time for a response that names another
 * charset (the same line, at [error], and the response unchanged).
 */
import { ConfigError } from '../core/errors.js';
import { blocksOf } from '../conf/values.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { parseMimeTypes, typeMatches, type MimeTypeSet } from './gzip-module.js';
import { headerOf, type FilterHead, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    /** Undefined for `off`. */
    charset: string | undefined;
    source_charset: string | undefined;
    override_charset: boolean;
    charset_types: MimeTypeSet;
  }
}

/** ngx_http_charset_default_types[] (text/html is always in, as the docs say). */
const DEFAULT_TYPES = ['text/xml', 'text/plain', 'text/vnd.wap.wml', 'application/javascript', 'application/rss+xml'];

function charsetName([value = '']: readonly string[], ctx: DirectiveContext, name: string): string | undefined {
  if (name === 'charset' && value === 'off') return undefined;
  // ngx_http_set_charset_slot() takes $variable too; hitless compiles the filter without the variables.
  if (value.startsWith('$')) ctx.fail(`"${name}" with a variable is not supported by hitless`);
  return value;
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
      summary: 'Adds "; charset=NAME" to the Content-Type of responses of the charset_types (none to a 301 or 302); a response that names another charset is sent unchanged with nginx\'s "no charset_map" error, as charset_map (recoding) is not read by hitless.',
      default: () => undefined,
      defaultText: 'charset off;',
      parse: (args, ctx) => charsetName(args, ctx, 'charset'),
    }),
    defineDirective({
      kind: 'value',
      name: 'source_charset',
      contexts: ['http', 'server', 'location', 'location_if'],
      args: [1],
      syntax: 'charset;',
      summary: 'The charset of the response body; one other than charset needs a charset_map, which hitless does not read (-t says so in nginx\'s words).',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => charsetName(args, ctx, 'source_charset'),
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
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    // ngx_http_charset_merge_loc_conf() and _postconfiguration(): two names paired with no table.
    for (const block of blocksOf(http)) {
      const charset = block.get('charset');
      const source = block.get('source_charset');
      if (charset !== undefined && source !== undefined && !sameCharset(charset, source)) {
        throw new ConfigError(`no "charset_map" between the charsets "${source}" and "${charset}"`, undefined);
      }
    }
  },
};

function sameCharset(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/** A level's charset settings; undefined when `charset off`. */
interface CharsetSettings {
  readonly charset: string;
  readonly source: string | undefined;
  readonly override: boolean;
  readonly types: MimeTypeSet;
}

/** The level's charset filter; undefined with `charset off`. */
export function charsetFilterOf(block: ConfBlockView, log: (request: HttpRequest, message: string) => void): OutputFilter | undefined {
  const charset = block.get('charset');
  if (charset === undefined) return undefined;
  const settings: CharsetSettings = { charset, source: block.get('source_charset'), override: block.get('override_charset'), types: block.get('charset_types') };
  return { name: 'charset', header: (head, request) => charsetHeader(head, request, settings, log) };
}

const CHARSET_PARAM = /;\s*charset\s*=\s*"?([^";\s]*)"?/i;

function charsetHeader(head: FilterHead, request: HttpRequest, settings: CharsetSettings, log: (request: HttpRequest, message: string) => void): undefined {
  const index = head.headers.findIndex((name, i) => i % 2 === 0 && name.toLowerCase() === 'content-type');
  if (index === -1) return undefined;
  const value = head.headers[index + 1] as string;
  if (value === '') return undefined;
  const own = CHARSET_PARAM.exec(value)?.[1];
  // ngx_http_destination_charset(): a response's own charset only with override_charset; else the type must be one of charset_types.
  if (own !== undefined && own !== '') {
    if (!settings.override) return undefined;
  } else if (!typeMatches(settings.types, headerOf(head.headers, 'content-type'))) {
    return undefined;
  }
  // ngx_http_header_filter() appends the charset only to a type without parameters.
  if (own === undefined && value.includes(';')) return undefined;
  const dst = settings.charset;
  // ngx_http_source_charset(): the response's own, else source_charset.
  const src = own !== undefined && own !== '' ? own : settings.source;
  if (src !== undefined && !sameCharset(src, dst)) {
    log(request, `no "charset_map" between the charsets "${src}" and "${dst}"`);
    return undefined;
  }
  // ngx_http_set_charset(): none on a redirect (NN 4.x took it for the next page's).
  if (head.status === 301 || head.status === 302) return undefined;
  const type = value.split(';')[0]?.trim() ?? value;
  head.headers[index + 1] = `${type}; charset=${dst}`;
  return undefined;
}
