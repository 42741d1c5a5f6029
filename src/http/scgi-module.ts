/**
 * The directives of nginx's `ngx_http_scgi_module`: scgi_pass and the table it shares with fastcgi
 * and uwsgi (fastcgi-module.ts's cgiDirectives). What they do at request time is in fastcgi.ts,
 * whose adapter speaks the three protocols; the request's netstring is scgi-packet.ts's.
 */
import { defineDirective, type ConfModule } from '../conf/registry.js';
import { checkCgiTargets, cgiDirectives, parseFastcgiPass, type FastcgiPassTarget } from './fastcgi-module.js';

// Only scgi_pass: the directives it shares with fastcgi are read under their fastcgi_ names'
// types (same values), which keeps DirectiveName within what tsc can represent.
declare module '../conf/registry.js' {
  interface DirectiveValues {
    scgi_pass: FastcgiPassTarget;
  }
}

/** The scgi module's directives. */
export const httpScgiModule: ConfModule = {
  name: 'ngx_http_scgi_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'scgi_pass',
      contexts: ['location', 'location_if'],
      args: [1],
      inherit: false,
      syntax: 'address;',
      summary: 'Passes the request to an SCGI server: host:port, unix:/path or an upstream group (with variables too), as fastcgi_pass reads it.',
      defaultText: '—',
      // ngx_http_scgi_pass(): the address as fastcgi_pass reads it, no scheme.
      parse: parseFastcgiPass,
    }),
    ...cgiDirectives('scgi'),
  ],
  check: checkCgiTargets('scgi'),
};
