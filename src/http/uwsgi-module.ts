/**
 * The directives of nginx's `ngx_http_uwsgi_module`: uwsgi_pass, the uwsgi packet's modifiers,
 * and the table it shares with fastcgi (fastcgi-module.ts's cgiDirectives). What they do at
 * request time is in fastcgi.ts, whose adapter speaks both protocols.
 */
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { parseNumber } from '../core/parse.js';
import { upstreamSslDirectives } from './proxy-module.js';
import { checkCgiTargets, cgiDirectives, parseFastcgiPass, type FastcgiPassTarget } from './fastcgi-module.js';

// Only the names of this module's own directives: the ones it shares with fastcgi are read under
// their fastcgi_ names' types (same values), which keeps DirectiveName within what tsc can represent.
declare module '../conf/registry.js' {
  interface DirectiveValues {
    uwsgi_pass: FastcgiPassTarget;
    uwsgi_modifier1: number;
    uwsgi_modifier2: number;
  }
}

/** `uwsgi_pass [uwsgi://|suwsgi://]address` (ngx_http_uwsgi_pass()): suwsgi:// is TLS with the uwsgi_ssl_* settings. */
function parseUwsgiPass([url = '']: readonly string[], ctx: DirectiveContext): FastcgiPassTarget {
  const lower = url.toLowerCase();
  const skip = lower.startsWith('uwsgi://') ? 8 : lower.startsWith('suwsgi://') ? 9 : 0;
  return { ...parseFastcgiPass([url.slice(skip)], ctx), source: url, tls: skip === 9 };
}

/** `uwsgi_modifier1` and `uwsgi_modifier2`: one byte of the packet header each. */
function modifier(name: 'uwsgi_modifier1' | 'uwsgi_modifier2', summary: string) {
  return defineDirective({
    kind: 'value',
    name: name as 'uwsgi_modifier1',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'number;',
    summary,
    default: () => 0,
    defaultText: `${name} 0;`,
    parse: ([value = ''], ctx) => {
      const number = parseNumber(value);
      return number !== undefined && number <= 255 ? number : ctx.fail(`"${name}" directive invalid number`);
    },
  });
}

/** The uwsgi module's directives. */
export const httpUwsgiModule: ConfModule = {
  name: 'ngx_http_uwsgi_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'uwsgi_pass',
      contexts: ['location', 'location_if'],
      args: [1],
      inherit: false,
      syntax: '[uwsgi://]address;',
      summary: 'Passes the request to a uwsgi server: host:port, unix:/path or an upstream group (with variables too); suwsgi:// is not supported.',
      defaultText: '—',
      parse: parseUwsgiPass,
    }),
    modifier('uwsgi_modifier1', 'The modifier1 byte of the uwsgi packet header (0: a WSGI request).'),
    modifier('uwsgi_modifier2', 'The modifier2 byte of the uwsgi packet header.'),
    ...cgiDirectives('uwsgi'),
    ...upstreamSslDirectives('uwsgi', 'suwsgi'),
  ],
  check: checkCgiTargets('uwsgi'),
};

