/**
 * nginx's `ngx_stream_pass_module` (1.25.5): `pass address;` hands the accepted connection to the
 * listening socket of this server that serves `address` (http's or stream's), as if it had been
 * accepted there: the usual way to route by SNI (ssl_preread) to local http servers.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';
import { defineDirective, type ConfModule } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { isConstantTemplate, type Template } from '../core/variables.js';
import type { ConnectionSlot } from '../core/connection-budget.js';
import type { ConnectionStat } from '../core/connection-stats.js';

/** An address `pass` names: what ngx_parse_url() with no_resolve gives. */
export type PassAddress =
  | { readonly family: 'unix'; readonly path: string; readonly name: string }
  | { readonly family: 'inet' | 'inet6'; readonly address: string; readonly port: number; readonly name: string };

/** `pass`'s value: an address, or a value with variables evaluated per session. */
export type PassTarget = { readonly address: PassAddress } | { readonly template: Template };

declare module '../conf/registry.js' {
  interface DirectiveValues {
    pass: PassTarget;
  }
}

/** The most passes of one connection (NGX_STREAM_PASS_MAX_PASSES): more is "stream pass cycle". */
export const MAX_PASSES = 10;

/** What a passed connection brings along: its worker_connections slot, its stub_status entry, how often it was passed. */
export interface PassedConnection {
  readonly slot: ConnectionSlot;
  readonly stat: ConnectionStat;
  readonly passes: number;
}

/** Hands a connection to the listening socket serving `address`; false when none does. */
export type PassTo = (address: PassAddress, socket: Socket, passed: PassedConnection) => boolean;

/**
 * `ngx_parse_url()` with `no_resolve` for `pass`: an IP address and port, `[IPv6]:port` or
 * `unix:/path`; a name has no addresses (nothing is resolved). Returns nginx's reason otherwise.
 */
export function parsePassAddress(url: string): PassAddress | { readonly error: string } {
  if (url.slice(0, 5).toLowerCase() === 'unix:') {
    const path = url.slice(5);
    if (path.length === 0) return { error: 'no path in the unix domain socket' };
    return { family: 'unix', path, name: url };
  }
  let host: string;
  let rest: string;
  if (url.startsWith('[')) {
    const close = url.indexOf(']');
    if (close === -1) return { error: 'invalid host' };
    host = url.slice(1, close);
    rest = url.slice(close + 1);
    if (!isIPv6(host)) return { error: 'invalid IPv6 address' };
    if (rest !== '' && !rest.startsWith(':')) return { error: 'invalid host' };
    rest = rest.slice(1);
  } else {
    const colon = url.lastIndexOf(':');
    host = colon === -1 ? url : url.slice(0, colon);
    rest = colon === -1 ? '' : url.slice(colon + 1);
  }
  if (host === '') return { error: 'no host' };
  if (rest === '') return isIPv4(host) || isIPv6(host) ? { error: 'has no port' } : { error: 'has no addresses' };
  const port = /^[0-9]{1,5}$/.test(rest) ? Number(rest) : NaN;
  if (!(port >= 1 && port <= 65535)) return { error: 'invalid port' };
  if (isIPv4(host)) return { family: 'inet', address: host, port, name: url };
  if (isIPv6(host)) {
    const address = new URL(`http://[${host}]/`).hostname.slice(1, -1);
    return { family: 'inet6', address, port, name: url };
  }
  return { error: 'has no addresses' };
}

/**
 * The keys of the listening sockets that serve `address`, in the order tried
 * (ngx_stream_pass_match()): the address itself, then its family's wildcard on the port.
 */
export function passKeys(address: PassAddress): string[] {
  if (address.family === 'unix') return [`unix:${address.path}`];
  if (address.family === 'inet') return [`${address.address}:${address.port}`, `*:${address.port}`];
  return [`[${address.address}]:${address.port}`, `[::]:${address.port}`];
}

/** `ngx_stream_pass_module`. */
export const streamPassModule: ConfModule = {
  name: 'ngx_stream_pass_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'pass',
      contexts: ['stream_server'],
      args: [1],
      inherit: false,
      syntax: 'address;',
      summary: 'Hands the connection, as accepted, to the listening socket of this configuration (http or stream) that serves the address (ip:port, [ipv6]:port, unix:path; or a value with variables); a session that read data in preread over TLS cannot be passed (500).',
      defaultText: '—',
      parse: ([url = ''], ctx): PassTarget => {
        const template = parseValue(url, ctx);
        if (!isConstantTemplate(template)) return { template };
        const address = parsePassAddress(url);
        if ('error' in address) {
          if (address.error === 'has no addresses' || address.error === 'has no port') return ctx.fail(`"pass" directive ${address.error}`);
          return ctx.fail(`${address.error} in "${url}" of the "pass" directive`);
        }
        return { address };
      },
    }),
  ],
};
