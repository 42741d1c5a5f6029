/**
 * `resolver` and `resolver_timeout` as `ngx_resolver_create()` and the core modules read them: the
 * one value type that http, stream and the `upstream` blocks of both share.
 */
import { isIP } from 'node:net';
import { parseNumber, parseTime } from '../core/parse.js';
import type { DirectiveContext } from './registry.js';

/** One name server of `resolver`. */
export interface NameServer {
  readonly host: string;
  readonly port: number;
}

/** `resolver address ... [valid=time] [ipv4=on|off] [ipv6=on|off]`. */
export interface ResolverSetting {
  readonly servers: readonly NameServer[];
  /** `valid=`: how long an answer is used, in ms; undefined to use the answer's TTL. */
  readonly validMs: number | undefined;
  readonly ipv4: boolean;
  readonly ipv6: boolean;
}

declare module './registry.js' {
  interface DirectiveValues {
    resolver: ResolverSetting | undefined;
    resolver_timeout: number;
  }
}

/** `resolver`, as `ngx_resolver_create()` reads it. */
export function parseResolver(args: readonly string[], ctx: DirectiveContext): ResolverSetting {
  const servers: NameServer[] = [];
  let validMs: number | undefined;
  let ipv4 = true;
  let ipv6 = true;
  for (const arg of args) {
    if (arg.startsWith('valid=')) {
      validMs = parseTime(arg.slice(6), { seconds: true }) ?? ctx.fail(`invalid parameter: ${arg}`);
      continue;
    }
    if (arg.startsWith('ipv4=') || arg.startsWith('ipv6=')) {
      const setting = arg.slice(5);
      if (setting !== 'on' && setting !== 'off') ctx.fail(`invalid parameter: ${arg}`);
      if (arg.startsWith('ipv4=')) ipv4 = setting === 'on';
      else ipv6 = setting === 'on';
      continue;
    }
    servers.push(parseNameServer(arg, ctx));
  }
  if (!ipv4 && !ipv6) ctx.fail('"ipv4" and "ipv6" cannot both be "off"');
  if (servers.length === 0) ctx.fail('no name servers defined');
  return { servers, validMs, ipv4, ipv6 };
}

/** `address[:port]` of a name server (port 53 by default); a name must be an IP address here. */
function parseNameServer(text: string, ctx: DirectiveContext): NameServer {
  let host = text;
  let port = 53;
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) ctx.fail(`invalid host in resolver "${text}"`);
    host = text.slice(1, close);
    const rest = text.slice(close + 1);
    if (rest !== '') {
      if (!rest.startsWith(':')) ctx.fail(`invalid host in resolver "${text}"`);
      port = parsePort(rest.slice(1), text, ctx);
    }
  } else {
    const colon = text.lastIndexOf(':');
    if (colon !== -1 && text.indexOf(':') === colon) {
      host = text.slice(0, colon);
      port = parsePort(text.slice(colon + 1), text, ctx);
    }
  }
  // nginx would resolve a name server given by name once, at startup (ngx_parse_url()); hitless asks for an address.
  if (isIP(host) === 0) ctx.fail(`host not found in resolver "${text}"`);
  return { host, port };
}

function parsePort(text: string, url: string, ctx: DirectiveContext): number {
  const port = parseNumber(text);
  if (port === undefined || port < 1 || port > 65535) ctx.fail(`invalid port in resolver "${url}"`);
  return port;
}

