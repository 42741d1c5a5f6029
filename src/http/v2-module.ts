/**
 * nginx's `ngx_http_v2_module`: HTTP/2 to clients. `http2` turns it on for an address; the other
 * settings are per connection, so the default server of the address a connection arrives on
 * decides them, as nginx reads them from the connection's `conf_ctx` (ngx_http_v2_init()).
 */
import { parseNumber, parseSize } from '../core/parse.js';
import { defineDirective, type ConfModule } from '../conf/registry.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    http2: boolean;
    http2_max_concurrent_streams: number;
    http2_body_preread_size: number;
    http2_chunk_size: number;
  }
}

/** nginx's `http2_max_concurrent_streams` default. */
export const DEFAULT_MAX_CONCURRENT_STREAMS = 128;

/** nginx's `http2_body_preread_size` default: each stream's initial receive window. */
export const DEFAULT_PREREAD_SIZE = 65_536;

/**
 * hitless's `http2_chunk_size` default: nghttp2's own largest DATA frame, so that a body is framed
 * by nghttp2 without slicing. nginx's is 8k; cutting frames that small costs a large body about
 * 1.8 times the time over loopback (slices go one write at a time), for no difference a client sees.
 */
export const DEFAULT_CHUNK_SIZE = 16 * 1024;

/** HTTP/2's initial window (RFC 9113 section 6.9.2), NGX_HTTP_V2_DEFAULT_WINDOW. */
export const DEFAULT_WINDOW = 65_535;

/** The largest flow-control window (RFC 9113 section 6.9.1), NGX_HTTP_V2_MAX_WINDOW. */
export const MAX_WINDOW = 2 ** 31 - 1;

/** The largest frame payload (RFC 9113 section 4.2), NGX_HTTP_V2_MAX_FRAME_SIZE. */
export const MAX_FRAME_SIZE = 2 ** 24 - 1;

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
    defineDirective({
      kind: 'value',
      name: 'http2_body_preread_size',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'size;',
      summary:
        "Each stream's initial receive window, announced in SETTINGS_INITIAL_WINDOW_SIZE: what a client may send of a request body before it is read; more is answered with RST_STREAM(FLOW_CONTROL_ERROR), and below 65535 a stream with a body opened before the client acknowledged the SETTINGS is refused (REFUSED_STREAM). nginx then widens the window of a stream whose body it reads; node:http2 has no per-stream WINDOW_UPDATE, so below 65535 hitless warns and raises the connection's initial window to 65536 once a request body on it is read. The default server of the address decides.",
      default: () => DEFAULT_PREREAD_SIZE,
      defaultText: 'http2_body_preread_size 64k;',
      parse: ([value = ''], ctx) => {
        const size = parseSize(value) ?? ctx.fail('"http2_body_preread_size" directive invalid value');
        // ngx_http_v2_preread_size().
        if (size > MAX_WINDOW) ctx.fail(`the maximum body preread buffer size is ${MAX_WINDOW}`);
        if (size < DEFAULT_WINDOW) {
          ctx.warn(
            `"http2_body_preread_size" below ${DEFAULT_WINDOW} holds only until a request body is read on the connection: node:http2 cannot widen one stream's window (it has no per-stream WINDOW_UPDATE), so hitless then raises the connection's SETTINGS_INITIAL_WINDOW_SIZE to ${DEFAULT_PREREAD_SIZE}`,
          );
        }
        return size;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'http2_chunk_size',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'size;',
      summary: 'The largest DATA frame a response body is cut into (the peer\'s SETTINGS_MAX_FRAME_SIZE and the flow-control windows may cut it smaller). hitless\'s default is 16k, nghttp2\'s own frame, where nginx\'s is 8k: slicing a body into 8k frames makes it about 1.8 times slower to send; set 8k for nginx\'s frames.',
      default: () => DEFAULT_CHUNK_SIZE,
      defaultText: 'http2_chunk_size 16k;',
      parse: ([value = ''], ctx) => {
        const size = parseSize(value) ?? ctx.fail('"http2_chunk_size" directive invalid value');
        // ngx_http_v2_chunk_size(): zero is refused, more than a frame can carry is cut down.
        if (size === 0) ctx.fail('the http2 chunk size cannot be zero');
        return Math.min(size, MAX_FRAME_SIZE);
      },
    }),
  ],
};
