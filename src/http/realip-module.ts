/**
 * nginx's `ngx_http_realip_module`: when a request comes from a trusted address
 * (`set_real_ip_from`), `$remote_addr` becomes the client address a header names
 * (`real_ip_header`), and `$remote_port` the port it names or empty; `$realip_remote_addr` and
 * `$realip_remote_port` keep the connection's. It runs in the post-read phase with the server's
 * settings and again in the preaccess phase with the location's, once per request.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { resolveHostSync } from '../core/hosts.js';
import { canonicalAddress, forwardedAddress, isTrusted, parseCidr, type TrustedBlock } from './realip.js';
import type { HttpRequest } from './request.js';

/** Where `real_ip_header` reads the client address from. */
export type RealIpHeader =
  | { readonly kind: 'x-real-ip' }
  | { readonly kind: 'x-forwarded-for' }
  | { readonly kind: 'proxy_protocol' }
  | { readonly kind: 'field'; readonly name: string };

declare module '../conf/registry.js' {
  interface DirectiveValues {
    set_real_ip_from: readonly TrustedBlock[];
    real_ip_header: RealIpHeader;
    real_ip_recursive: boolean;
  }
}

/** The realip settings of one level, compiled. */
export interface RealIpConfig {
  readonly from: readonly TrustedBlock[];
  readonly header: RealIpHeader;
  readonly recursive: boolean;
}

/** `ngx_http_realip_from()`. */
function parseFrom([text = '']: readonly string[], ctx: DirectiveContext, previous: readonly TrustedBlock[] | undefined): readonly TrustedBlock[] {
  const blocks = [...(previous ?? [])];
  if (text === 'unix:') return [...blocks, { family: 'unix' }];
  const cidr = parseCidr(text);
  if (cidr !== undefined) return [...blocks, cidr];
  const addresses = resolveHostSync(text);
  if (addresses.length === 0) ctx.fail(`host not found in set_real_ip_from "${text}"`);
  for (const address of addresses) {
    const block = isIPv4(address) || isIPv6(address) ? parseCidr(address) : undefined;
    if (block !== undefined) blocks.push(block);
  }
  return blocks;
}

/** `ngx_http_realip()`: the names nginx knows, else any request header field. */
function parseHeader([name = '']: readonly string[]): RealIpHeader {
  if (name === 'X-Real-IP') return { kind: 'x-real-ip' };
  if (name === 'X-Forwarded-For') return { kind: 'x-forwarded-for' };
  if (name === 'proxy_protocol') return { kind: 'proxy_protocol' };
  return { kind: 'field', name: name.toLowerCase() };
}

/** The first request header called `name` (nginx's `headers_in.x_real_ip` is the first one). */
function firstHeader(request: HttpRequest, name: string): string | undefined {
  const headers = request.head.headers;
  for (let i = 0; i < headers.length; i += 2) {
    if ((headers[i] as string).toLowerCase() === name) return headers[i + 1] as string;
  }
  return undefined;
}

/** `ngx_http_realip_handler()`: changes the request's client address once, if the source is trusted. */
export function applyRealIp(request: HttpRequest, config: RealIpConfig | undefined): void {
  if (config === undefined || request.realip) return;
  const header = config.header;
  let list: string | undefined;
  switch (header.kind) {
    case 'x-real-ip':
      list = firstHeader(request, 'x-real-ip');
      break;
    case 'x-forwarded-for':
      list = request.header('x-forwarded-for');
      break;
    case 'proxy_protocol': {
      // ngx_http_realip_handler(): the header's source address and port, if the peer is trusted.
      const proxied = request.connection.proxied;
      if (proxied === undefined || !isTrusted(request.connection.remoteAddress, config.from)) return;
      request.realip = true;
      // The header's text is $proxy_protocol_addr; $remote_addr is the address nginx parsed from it.
      request.remoteAddress = canonicalAddress(proxied.sourceAddress);
      request.remotePort = String(proxied.sourcePort);
      return;
    }
    case 'field':
      list = firstHeader(request, header.name);
      break;
  }
  if (list === undefined) return;
  const found = forwardedAddress(request.connection.remoteAddress, list, config.from, config.recursive);
  if (found === undefined) return;
  request.realip = true;
  request.remoteAddress = found.address;
  request.remotePort = found.port;
}

/** The realip settings of a level, or undefined when it trusts no address. */
export function compileRealIp(block: ConfBlockView): RealIpConfig | undefined {
  const from = block.get('set_real_ip_from');
  if (from.length === 0) return undefined;
  return { from, header: block.get('real_ip_header'), recursive: block.get('real_ip_recursive') };
}

const CONTEXTS = ['http', 'server', 'location'] as const;

/** The realip module's directives. */
export const httpRealIpModule: ConfModule = {
  name: 'ngx_http_realip_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'set_real_ip_from',
      contexts: CONTEXTS,
      args: [1],
      repeatable: true,
      syntax: 'address | CIDR | unix:;',
      summary: 'Trusts an address, block or host name (or every unix-socket client) to send the real client address in real_ip_header.',
      default: () => [],
      defaultText: '—',
      parse: parseFrom,
    }),
    defineDirective({
      kind: 'value',
      name: 'real_ip_header',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'field | X-Real-IP | X-Forwarded-For | proxy_protocol;',
      summary: 'The request header whose address replaces $remote_addr for trusted clients.',
      default: () => ({ kind: 'x-real-ip' }),
      defaultText: 'real_ip_header X-Real-IP;',
      parse: parseHeader,
    }),
    defineDirective({
      kind: 'value',
      name: 'real_ip_recursive',
      contexts: CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'With on, the client address is the last address of the header that is not trusted, rather than the last one.',
      default: () => false,
      defaultText: 'real_ip_recursive off;',
      parse: ([value]) => value === 'on',
    }),
  ],
};
