/**
 * The `listen` directive (`ngx_http_core_listen()` and `ngx_parse_url()`), and how servers are
 * grouped by address:port into listening sockets (`ngx_http_add_listen()`,
 * `ngx_http_optimize_servers()`, `ngx_http_init_listening()`), with nginx's error messages.
 */
import { isIPv4, isIPv6 } from 'node:net';
import { ConfigError } from '../core/errors.js';
import { resolveHostSync } from '../core/hosts.js';
import { parseNumber, parseSize, parseTime } from '../core/parse.js';
import type { ConfBlockView, DirectiveContext } from '../conf/registry.js';
import type { HitlessConfig } from '../conf/model.js';

/** One listening address of a server, with its parameters. `listen localhost` yields one per address. */
export interface HttpListen {
  readonly file: string;
  readonly line: number;
  /** True for the `*:80` (or `*:8000`) a server without `listen` gets. */
  readonly implicit: boolean;
  readonly family: 'inet' | 'inet6' | 'unix';
  /** The IP address in canonical form (`0.0.0.0` for `*`), or the socket path. */
  readonly address: string;
  /** 0 for a unix socket. */
  readonly port: number;
  readonly wildcard: boolean;
  /** The address as nginx prints it in messages: `0.0.0.0:80`, `[::1]:80`, `unix:/path`. */
  readonly addrText: string;
  readonly defaultServer: boolean;
  /** Parameters that belong to the socket were given (nginx's `lsopt.set`); only one server may. */
  readonly set: boolean;
  /** The socket is bound on its own even when a wildcard on the same port exists. */
  readonly bind: boolean;
  readonly backlog: number;
  readonly rcvbuf: number | undefined;
  readonly sndbuf: number | undefined;
  readonly ipv6only: boolean;
  readonly reuseport: boolean;
  readonly deferred: boolean;
  readonly fastopen: number | undefined;
  readonly soKeepalive: string | undefined;
  readonly ssl: boolean;
  readonly http2: boolean;
  readonly proxyProtocol: boolean;
  /** A datagram socket (stream's `listen ... udp`). */
  readonly udp: boolean;
}

/** One listening socket the master owns: what to bind, and the key that identifies it across reloads. */
export interface ListenSpec {
  /** Stable identity across reloads: `127.0.0.1:8080`, `[::1]:8080`, `*:8080`, `unix:/path`. */
  readonly key: string;
  readonly host?: string;
  readonly port?: number;
  /** For `listen unix:/path`. */
  readonly path?: string;
  readonly ipv6only: boolean;
  readonly backlog: number;
  /** A UDP socket (stream's `listen ... udp`); its key starts with `udp:`. */
  readonly udp?: boolean;
}

/** nginx's `NGX_LISTEN_BACKLOG` on Linux. */
export const DEFAULT_BACKLOG = 511;

type Address = Pick<HttpListen, 'family' | 'address' | 'port' | 'wildcard' | 'addrText'>;

function inetAddress(address: string, port: number): Address {
  const wildcard = address === '0.0.0.0';
  return { family: 'inet', address, port, wildcard, addrText: `${address}:${port}` };
}

function inet6Address(address: string, port: number): Address {
  const canonical = new URL(`http://[${address}]/`).hostname.slice(1, -1);
  return { family: 'inet6', address: canonical, port, wildcard: canonical === '::', addrText: `[${canonical}]:${port}` };
}

/** `ngx_inet_addr()`: four decimal octets, nothing else. */
function isDottedQuad(text: string): boolean {
  return isIPv4(text) && text.split('.').every((octet) => /^[0-9]{1,3}$/.test(octet));
}

function parsePort(text: string): number | undefined {
  const port = parseNumber(text);
  return port === undefined || port < 1 || port > 65535 ? undefined : port;
}

/** The ports `PORT` or `FIRST-LAST` names (a range is `listen`'s own, ngx_parse_inet_url() with `u.listen`). */
type PortRange = readonly [first: number, last: number];

function parsePortRange(text: string, invalid: (what: string) => never): PortRange {
  const dash = text.indexOf('-');
  if (dash === -1) {
    const port = parsePort(text) ?? invalid('invalid port');
    return [port, port];
  }
  const last = parsePort(text.slice(dash + 1)) ?? invalid('invalid port');
  const first = parsePort(text.slice(0, dash)) ?? invalid('invalid port');
  if (first > last) invalid('invalid port range');
  return [first, last];
}

/** One address per port of the range, as ngx_inet_add_addr() makes them. */
function eachPort(range: PortRange, address: (port: number) => Address): Address[] {
  const [first, last] = range;
  const addresses: Address[] = [];
  for (let port = first; port <= last; port++) addresses.push(address(port));
  return addresses;
}

/** `ngx_parse_url()` with `u.listen = 1`: every address the first argument of `listen` names. */
function parseListenAddress(url: string, defaultPort: number, fail: (reason: string) => never): Address[] {
  const invalid = (what: string): never => fail(`${what} in "${url}" of the "listen" directive`);
  if (url.slice(0, 5).toLowerCase() === 'unix:') {
    const path = url.slice(5);
    if (path.length === 0) invalid('no path in the unix domain socket');
    if (Buffer.byteLength(path) + 1 > 108) invalid('too long path in the unix domain socket');
    return [{ family: 'unix', address: path, port: 0, wildcard: false, addrText: url }];
  }
  if (url.startsWith('[')) {
    const close = url.indexOf(']');
    if (close === -1) invalid('invalid host');
    const rest = url.slice(close + 1);
    if (rest.includes('/')) invalid('invalid host');
    let ports: PortRange = [defaultPort, defaultPort];
    if (rest.length > 0) {
      if (!rest.startsWith(':')) invalid('invalid host');
      ports = parsePortRange(rest.slice(1), invalid);
    }
    const host = url.slice(1, close);
    if (host.length === 0) invalid('no host');
    if (!isIPv6(host)) invalid('invalid IPv6 address');
    return eachPort(ports, (port) => inet6Address(host, port));
  }
  if (url.includes('/') || url.includes('?')) invalid('invalid host');
  const colon = url.indexOf(':');
  let host = url;
  let ports: PortRange = [defaultPort, defaultPort];
  if (colon !== -1) {
    ports = parsePortRange(url.slice(colon + 1), invalid);
    host = url.slice(0, colon);
  } else if (/^[0-9]+(-[0-9]+)?$/.test(url)) {
    // A bare port or port range; anything else (a name with a dash too) is a host.
    return eachPort(parsePortRange(url, invalid), (port) => inetAddress('0.0.0.0', port));
  }
  if (host.length === 0) invalid('no host');
  if (host === '*') return eachPort(ports, (port) => inetAddress('0.0.0.0', port));
  if (isDottedQuad(host)) return eachPort(ports, (port) => inetAddress(host, port));
  const ips = resolveHostSync(host);
  if (ips.length === 0) invalid('host not found');
  return ips.flatMap((ip) => eachPort(ports, (port) => (isIPv4(ip) ? inetAddress(ip, port) : inet6Address(ip, port))));
}

const PROTOCOL_DEFAULTS = { ssl: false, http2: false, proxyProtocol: false, udp: false };

/** Parses one `listen` directive into one entry per address, appended to the server's earlier ones. */
export function parseListen(args: readonly string[], ctx: DirectiveContext, previous: readonly HttpListen[] | undefined): readonly HttpListen[] {
  const [url = '', ...params] = args;
  const addresses = parseListenAddress(url, 80, ctx.fail);
  const opts = {
    defaultServer: false, set: false, bind: false, backlog: DEFAULT_BACKLOG, rcvbuf: undefined as number | undefined,
    sndbuf: undefined as number | undefined, ipv6only: true, reuseport: false, deferred: false,
    fastopen: undefined as number | undefined, soKeepalive: undefined as string | undefined, ...PROTOCOL_DEFAULTS,
  };
  for (const param of params) {
    const eq = param.indexOf('=');
    const name = eq === -1 ? param : param.slice(0, eq + 1);
    const value = eq === -1 ? '' : param.slice(eq + 1);
    const socketOption = (): void => {
      opts.set = true;
      opts.bind = true;
    };
    switch (name) {
      case 'default_server':
      case 'default':
        opts.defaultServer = true;
        break;
      case 'bind':
        socketOption();
        break;
      case 'backlog=':
        socketOption();
        opts.backlog = parseNumber(value) ?? 0;
        if (opts.backlog === 0) ctx.fail(`invalid backlog "${param}"`);
        break;
      case 'rcvbuf=':
      case 'sndbuf=': {
        socketOption();
        const size = parseSize(value) ?? ctx.fail(`invalid ${name.slice(0, -1)} "${param}"`);
        if (name === 'rcvbuf=') opts.rcvbuf = size;
        else opts.sndbuf = size;
        break;
      }
      case 'fastopen=':
        socketOption();
        opts.fastopen = parseNumber(value) ?? ctx.fail(`invalid fastopen "${param}"`);
        break;
      case 'deferred':
        socketOption();
        opts.deferred = true;
        break;
      case 'reuseport':
        socketOption();
        opts.reuseport = true;
        break;
      case 'ipv6only=':
        // nginx matches "ipv6only=o" and then reports the rest from the "o" on.
        if (value !== 'on' && value !== 'off') {
          if (!value.startsWith('o')) ctx.fail(`invalid parameter "${param}"`);
          ctx.fail(`invalid ipv6only flags "${value}"`);
        }
        socketOption();
        opts.ipv6only = value === 'on';
        break;
      case 'so_keepalive=':
        if (value !== 'on' && value !== 'off' && !isKeepaliveTuple(value)) ctx.fail(`invalid so_keepalive value: "${value}"`);
        socketOption();
        opts.soKeepalive = value;
        break;
      case 'ssl':
        opts.ssl = true;
        break;
      case 'http2':
        opts.http2 = true;
        break;
      case 'proxy_protocol':
        opts.proxyProtocol = true;
        break;
      case 'quic':
        ctx.fail('the "quic" parameter is not supported by hitless');
        break;
      default:
        ctx.fail(`invalid parameter "${param}"`);
    }
  }
  const entries = addresses.map((address) => ({ ...address, ...opts, file: ctx.location.file, line: ctx.location.line, implicit: false }));
  return [...(previous ?? []), ...entries];
}

/** `so_keepalive=[keepidle]:[keepintvl]:[keepcnt]` with at least one part set. */
function isKeepaliveTuple(value: string): boolean {
  const parts = value.split(':');
  if (parts.length > 3) return false;
  const [idle = '', intvl = '', cnt = ''] = parts;
  if (idle === '' && intvl === '' && cnt === '') return false;
  const timeOk = (t: string): boolean => t === '' || parseTime(t, { seconds: true }) !== undefined;
  return timeOk(idle) && timeOk(intvl) && (cnt === '' || parseNumber(cnt) !== undefined);
}

/** The listen a server without one gets: `*:80` as root, `*:8000` otherwise (nginx's merge_srv_conf). */
export function implicitListen(): HttpListen {
  const port = process.getuid?.() === 0 ? 80 : 8000;
  return {
    ...inetAddress('0.0.0.0', port), file: '', line: 0, implicit: true, defaultServer: false, set: false, bind: false,
    backlog: DEFAULT_BACKLOG, rcvbuf: undefined, sndbuf: undefined, ipv6only: true, reuseport: false, deferred: false,
    fastopen: undefined, soKeepalive: undefined, ...PROTOCOL_DEFAULTS,
  };
}

/** One address:port and the servers that listen on it, the first or the `default_server` one being its default. */
export interface ListenAddress<S> {
  /** The parameters in force: those of the one `listen` that set socket parameters, else the first. */
  readonly listen: HttpListen;
  readonly servers: S[];
  defaultServer: S;
  ssl: boolean;
  http2: boolean;
  proxyProtocol: boolean;
}

/** A socket to bind and the addresses it serves: itself, or for a wildcard every address without `bind`. */
export interface ListenSocket<S> {
  readonly spec: ListenSpec;
  /** The addresses connections on this socket may have arrived on; the wildcard, if any, last. */
  readonly addrs: readonly ListenAddress<S>[];
}

/**
 * Every distinct listening socket the `http` block asks for, in nginx's order. An address without
 * `bind` on a port that also has a wildcard is served by the wildcard's socket, as nginx does.
 */
export function collectHttpListens(config: HitlessConfig): ListenSpec[] {
  const http = config.main.child('http');
  if (http === undefined) return [];
  const seen = new Set<string>();
  const specs: ListenSpec[] = [];
  for (const socket of groupListens(http)) {
    if (seen.has(socket.spec.key)) continue;
    seen.add(socket.spec.key);
    specs.push(socket.spec);
  }
  return specs;
}

function specOf(listen: HttpListen): ListenSpec {
  const base = { ipv6only: listen.family === 'inet6' ? listen.ipv6only : false, backlog: listen.backlog };
  if (listen.family === 'unix') return { key: `unix:${listen.address}`, path: listen.address, ...base };
  const key = listen.family === 'inet' ? `${listen.wildcard ? '*' : listen.address}:${listen.port}` : `[${listen.address}]:${listen.port}`;
  // A UDP socket may share its address and port with a TCP one: its own key.
  if (listen.udp) return { key: `udp:${key}`, host: listen.address, port: listen.port, ...base, udp: true };
  return { key, host: listen.address, port: listen.port, ...base };
}

/**
 * Groups the servers of an `http` block by address:port and decides which sockets to bind, exactly
 * as nginx does; throws nginx's errors (`a duplicate default server for 0.0.0.0:80`...).
 */
export function groupListens(http: ConfBlockView): ListenSocket<ConfBlockView>[] {
  const ports = new Map<string, ListenAddress<ConfBlockView>[]>();
  for (const server of http.blocks) {
    if (server.name !== 'server') continue;
    const listens = server.get('listen');
    for (const listen of listens) {
      const where = listen.implicit ? { file: server.file, line: server.line } : { file: listen.file, line: listen.line };
      const portKey = `${listen.udp ? 'udp:' : ''}${listen.family}:${listen.port}`;
      const addrs = ports.get(portKey) ?? [];
      ports.set(portKey, addrs);
      const addr = addrs.find((a) => a.listen.address === listen.address);
      if (addr === undefined) {
        addrs.push({ listen, servers: [server], defaultServer: server, ssl: listen.ssl, http2: listen.http2, proxyProtocol: listen.proxyProtocol });
        continue;
      }
      if (addr.servers.includes(server)) throw new ConfigError(`a duplicate listen ${addr.listen.addrText}`, where);
      addr.servers.push(server);
      const hadDefault = addr.listen.defaultServer;
      if (listen.set) {
        if (addr.listen.set) throw new ConfigError(`duplicate listen options for ${addr.listen.addrText}`, where);
        (addr as { listen: HttpListen }).listen = { ...listen, defaultServer: addr.listen.defaultServer };
      }
      if (listen.defaultServer) {
        if (hadDefault) throw new ConfigError(`a duplicate default server for ${addr.listen.addrText}`, where);
        (addr as { listen: HttpListen }).listen = { ...addr.listen, defaultServer: true };
        addr.defaultServer = server;
      }
      addr.ssl ||= listen.ssl;
      addr.http2 ||= listen.http2;
      addr.proxyProtocol ||= listen.proxyProtocol;
    }
  }
  const sockets: ListenSocket<ConfBlockView>[] = [];
  for (const addrs of ports.values()) {
    // ngx_http_cmp_conf_addrs(): explicit bind()s first, the wildcard last.
    const sorted = [...addrs].sort((a, b) => rank(a.listen) - rank(b.listen));
    const wildcard = sorted[sorted.length - 1]?.listen.wildcard === true;
    const implicitlyServed: ListenAddress<ConfBlockView>[] = [];
    for (const addr of sorted) {
      if (addr.listen.wildcard) sockets.push({ spec: specOf(addr.listen), addrs: [...implicitlyServed, addr] });
      else if (addr.listen.bind || !wildcard) sockets.push({ spec: specOf(addr.listen), addrs: [addr] });
      else implicitlyServed.push(addr);
    }
  }
  return sockets;
}

function rank(listen: HttpListen): number {
  if (listen.wildcard) return 2;
  return listen.bind ? 0 : 1;
}
