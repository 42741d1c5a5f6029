/**
 * The directives of ngx_http_proxy_module that shape one request to the upstream and how its
 * response is read: `proxy_method`, `proxy_set_body`, `proxy_bind` (shared with the stream proxy),
 * `proxy_limit_rate` and `proxy_ignore_headers`. What they do at request time is in proxy.ts,
 * proxy-config.ts and upstream/peer-connect.ts.
 */
import { isIP } from 'node:net';
import { defineDirective, type AnyDirectiveSpec, type DirectiveContext } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { isConstantTemplate, type Template } from '../core/variables.js';
import { sizeValue, type SizeValue } from './limit-rate.js';
import type { LocalAddress } from '../upstream/peer-connect.js';

/** `proxy_bind address [transparent] | off`: the local address of connections to upstreams. */
export type ProxyBind =
  | { readonly kind: 'off' }
  | { readonly kind: 'address'; readonly address: LocalAddress; readonly transparent: boolean }
  | { readonly kind: 'value'; readonly value: Template; readonly transparent: boolean };


/** The response headers `proxy_ignore_headers` may name, lowercased. */
export const IGNORABLE_HEADERS: ReadonlySet<string> = new Set([
  'x-accel-redirect', 'x-accel-expires', 'x-accel-limit-rate', 'x-accel-buffering', 'x-accel-charset', 'expires', 'cache-control', 'set-cookie', 'vary',
]);

declare module '../conf/registry.js' {
  interface DirectiveValues {
    proxy_method: Template | undefined;
    proxy_set_body: Template | undefined;
    proxy_bind: ProxyBind | undefined;
    proxy_limit_rate: SizeValue;
    proxy_ignore_headers: ReadonlySet<string>;
  }
}

/**
 * ngx_parse_addr_port(): an IPv4 or IPv6 address (in brackets when a port follows), with an
 * optional port; undefined when it is not one (nginx takes no host names here).
 */
export function parseLocalAddress(text: string): LocalAddress | undefined {
  let host = text;
  let portText: string | undefined;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) return undefined;
      portText = rest.slice(1);
    }
    if (isIP(host) !== 6) return undefined;
  } else if (isIP(text) === 6) {
    host = text;
  } else {
    const colon = text.lastIndexOf(':');
    if (colon !== -1) {
      host = text.slice(0, colon);
      portText = text.slice(colon + 1);
    }
    if (isIP(host) !== 4) return undefined;
  }
  let port = 0;
  if (portText !== undefined) {
    if (!/^[0-9]{1,5}$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) return undefined;
    port = Number(portText);
  }
  return { host, port, name: text };
}

function parseBind(args: readonly string[], ctx: DirectiveContext): ProxyBind {
  const [address = '', flag] = args;
  if (args.length === 1 && address === 'off') return { kind: 'off' };
  if (flag !== undefined && flag !== 'transparent') ctx.fail(`invalid parameter "${flag}"`);
  const transparent = flag === 'transparent';
  if (transparent) {
    // IP_TRANSPARENT (Linux) needs setsockopt() before bind(), which Node's net module does not
    // expose: hitless cannot connect from a non-local address. Said at -t, never silently dropped.
    ctx.warn(`"transparent" of "${ctx.node.name}" is not supported by hitless (Node.js cannot set IP_TRANSPARENT on a socket): the address is bound without it, so only a local address works`);
  }
  const value = parseValue(address, ctx);
  if (!isConstantTemplate(value)) return { kind: 'value', value, transparent };
  const local = parseLocalAddress(address);
  if (local === undefined) ctx.fail(`invalid address "${address}"`);
  return { kind: 'address', address: local, transparent };
}

/**
 * proxy_bind, compiled for http requests or stream sessions (ngx_http_upstream_set_local(),
 * ngx_stream_proxy_set_local()): the address, undefined to bind none (off, or an empty value), or
 * nginx's [error] text for a value that is no address (then none is bound either).
 */
export function compileBind<T>(setting: ProxyBind | undefined, compile: (template: Template) => (context: T) => string): (context: T) => LocalAddress | undefined | { readonly invalid: string } {
  if (setting === undefined || setting.kind === 'off') return () => undefined;
  if (setting.kind === 'address') {
    const address = setting.address;
    return () => address;
  }
  const value = compile(setting.value);
  return (context) => {
    const evaluated = value(context);
    if (evaluated === '') return undefined;
    return parseLocalAddress(evaluated) ?? { invalid: `invalid local address "${evaluated}"` };
  };
}

/** `proxy_bind`, or the same directive under another module's name (fastcgi_bind, uwsgi_bind, scgi_bind). */
export function bindDirective(name: `${'proxy' | 'fastcgi' | 'uwsgi' | 'scgi'}_bind`): AnyDirectiveSpec {
  return defineDirective({
    kind: 'value',
    name: name as 'proxy_bind',
    contexts: ['http', 'server', 'location'],
    args: [1, 2],
    syntax: 'address [transparent] | off;',
    summary: 'The local IP address (and port) connections to upstreams are made from (variables allowed; an empty value binds none); off cancels an inherited one. transparent is a [warn] at -t and is not applied (Node.js cannot set IP_TRANSPARENT), so only a local address can be bound.',
    default: () => undefined,
    defaultText: '—',
    parse: parseBind,
  });
}

/** The directives, for ngx_http_proxy_module's table. */
export const PROXY_REQUEST_DIRECTIVES: readonly AnyDirectiveSpec[] = [
  defineDirective({
    kind: 'value',
    name: 'proxy_method',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'method;',
    summary: 'The method sent upstream instead of the request\'s own (variables allowed).',
    default: () => undefined,
    defaultText: '—',
    parse: ([value = ''], ctx) => parseValue(value, ctx),
  }),
  defineDirective({
    kind: 'value',
    name: 'proxy_set_body',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'value;',
    summary: 'The request body sent upstream instead of the client\'s (variables allowed); the client\'s body is read and dropped.',
    default: () => undefined,
    defaultText: '—',
    parse: ([value = ''], ctx) => parseValue(value, ctx),
  }),
  bindDirective('proxy_bind'),
  defineDirective({
    kind: 'value',
    name: 'proxy_limit_rate',
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'rate;',
    summary: 'Bytes per second at which a response is read from the upstream, per request (0: no limit); may hold variables, read when the response head has arrived.',
    default: () => ({ size: 0 }),
    defaultText: 'proxy_limit_rate 0;',
    parse: sizeValue,
  }),
  defineDirective({
    kind: 'value',
    name: 'proxy_ignore_headers',
    contexts: ['http', 'server', 'location'],
    args: '1+',
    syntax: 'field ...;',
    summary: 'Upstream response headers whose special meaning is ignored: X-Accel-Redirect, X-Accel-Limit-Rate, X-Accel-Buffering, X-Accel-Charset; X-Accel-Expires, Expires, Cache-Control, Set-Cookie and Vary only steer a cache, which hitless does not have.',
    default: () => new Set<string>(),
    defaultText: '—',
    parse: (args, ctx) => {
      const names = new Set<string>();
      for (const value of args) {
        // ngx_conf_set_bitmask_slot() compares without case.
        if (!IGNORABLE_HEADERS.has(value.toLowerCase())) ctx.fail(`invalid value "${value}"`);
        names.add(value.toLowerCase());
      }
      return names;
    },
  }),
];
