/**
 * nginx's `ngx_http_v2_module`: HTTP/2 to clients. `http2` turns it on for an address; the other
 * settings are per connection, so the default server of the address a connection arrives on
 * decides them, as nginx reads them from the connection's `conf_ctx` (ngx_http_v2_init()).
 */
import { parseNumber } from '../core/parse.js';
import { defineDirective, type ConfModule } from '../conf/registry.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    http2: boolean;
    http2_max_concurrent_streams: number;
  }
}

/** nginx's `http2_max_concurrent_streams` default. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 128;

/** The `http2*` directives. */
export const httpV2Module: ConfModule = {
  name: 'ngx_http_v2_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'http2',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'HTTP/2 (nginx 1.25.1+): without ssl, prior-knowledge h2c next to HTTP/1.x on the same port, chosen by the client connection preface; the default server of an address:port decides, as does its listen ... http2.',
      default: () => false,
      defaultText: 'http2 off;',
      parse: (args) => args[0] === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'http2_max_concurrent_streams',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'number;',
      summary: 'How many streams one HTTP/2 connection may have open at once, announced in SETTINGS_MAX_CONCURRENT_STREAMS; the default server of the address decides.',
      default: () => DEFAULT_MAX_CONCURRENT_STREAMS,
      defaultText: 'http2_max_concurrent_streams 128;',
      parse: ([value = ''], ctx) => {
        const count = parseNumber(value);
        // SETTINGS values are 32-bit (RFC 9113 section 6.5.1).
        return count === undefined || count > 0xffff_ffff ? ctx.fail('"http2_max_concurrent_streams" directive invalid number') : count;
      },
    }),
  ],
};
