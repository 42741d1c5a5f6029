/**
 * `early_hints` (ngx_http_core_module, nginx 1.29): whether a 103 Early Hints response an upstream
 * sends ahead of its final response is passed to the client. nginx's rules
 * (ngx_http_upstream_process_early_hints(), ngx_http_send_early_hints()): the hints go when one of
 * the directive's values is neither empty nor "0" (none by default), with the upstream's fields
 * minus those proxy_hide_header hides (Date, Server, X-Pad, X-Accel-* by default); HTTP/1.1 clients
 * get `HTTP/1.1 103 Early Hints`, HTTP/2 clients a HEADERS frame with `:status 103`, HTTP/1.0
 * clients nothing; a hint without fields is not sent; several hints may precede the response.
 */
import type { CompiledTemplate, Template } from '../core/variables.js';
import { defineDirective, type AnyDirectiveSpec } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import type { HttpExchange } from './exchange.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    early_hints: readonly Template[] | undefined;
  }
}

/** The `early_hints` directive, in ngx_http_core_module's table. */
export const EARLY_HINTS_DIRECTIVE: AnyDirectiveSpec = defineDirective({
  kind: 'value',
  name: 'early_hints',
  contexts: ['http', 'server', 'location'],
  args: '1+',
  syntax: 'string ...;',
  summary: 'Passes the 103 Early Hints an upstream sends (proxy_pass over HTTP/1.1 or HTTP/2, grpc_pass) to HTTP/1.1 and HTTP/2 clients when one of the values is neither empty nor "0".',
  default: () => undefined,
  defaultText: '—',
  parse: (args, ctx) => args.map((arg) => parseValue(arg, ctx)),
});

/** ngx_http_test_predicates(): true when one of the compiled values is neither empty nor "0"; never without any. */
export function earlyHintsPredicate<R>(values: readonly CompiledTemplate<R>[]): (request: R) => boolean {
  return (request) => values.some((value) => {
    const text = value(request);
    return text !== '' && text !== '0';
  });
}

/**
 * Sends the client one 103 with `fields` (flat name/value pairs, already filtered) when the
 * response has not started; an exchange that cannot send hints (a mirror subrequest) ignores it.
 */
export function passEarlyHints(exchange: HttpExchange, fields: readonly string[]): void {
  if (exchange.headersSent || exchange.aborted || fields.length === 0) return;
  exchange.writeEarlyHints?.(fields);
}
