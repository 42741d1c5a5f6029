/**
 * Finding a vhost in an nginx configuration as nginx itself would choose it for a name: the
 * server blocks of `http`, their `server_name`, `listen` and `ssl_certificate` directives (includes
 * followed), and the http-level certificates they inherit.
 *
 * Name precedence is nginx's (https://nginx.org/en/docs/http/server_names.html): an exact name,
 * then the longest wildcard starting with an asterisk, then the longest wildcard ending with one,
 * then the first regular expression in the order of the configuration.
 */
import { resolve } from 'node:path';
import type { ConfNode, DirectiveNode, ParsedConfig } from '../../conf/parser.js';
import { translatePcre } from '../../core/pcre.js';
import type { Endpoint } from './target.js';

/** One `listen` directive. */
export interface NginxListen {
  readonly node: DirectiveNode;
  /** Where to connect to reach it from this host; undefined for a unix socket. */
  readonly endpoint: Endpoint | undefined;
  readonly ssl: boolean;
}

/** One `server` block of `http`. */
export interface NginxServer {
  readonly node: DirectiveNode;
  readonly names: readonly string[];
  readonly listens: readonly NginxListen[];
  /** The block's own `ssl_certificate` directives, in order. */
  readonly certificates: readonly DirectiveNode[];
  /** The block's own `ssl_certificate_key` directives, in order. */
  readonly keys: readonly DirectiveNode[];
}

/** The parts of an nginx configuration a certificate deploy cares about. */
export interface NginxLayout {
  readonly confPrefix: string;
  readonly servers: readonly NginxServer[];
  /** `ssl_certificate` at http level, inherited by servers that have none. */
  readonly httpCertificates: readonly DirectiveNode[];
  readonly httpKeys: readonly DirectiveNode[];
  /** Every `ssl_certificate` and `ssl_certificate_key` anywhere (http, server, stream, mail). */
  readonly allCertificateDirectives: readonly DirectiveNode[];
}

/** How a server name matched; lower `rank` wins, then longer `length`, then earlier `order`. */
export interface NameMatch {
  readonly rank: 0 | 1 | 2 | 3;
  readonly length: number;
}

/** Collects the servers of `http` and the certificate directives of the whole configuration. */
export function readNginxLayout(config: ParsedConfig): NginxLayout {
  const servers: NginxServer[] = [];
  const httpCertificates: DirectiveNode[] = [];
  const httpKeys: DirectiveNode[] = [];
  const allCertificateDirectives: DirectiveNode[] = [];
  walk(config.nodes, (node) => {
    if (node.name === 'ssl_certificate' || node.name === 'ssl_certificate_key') allCertificateDirectives.push(node);
  });
  for (const http of directives(config.nodes).filter((node) => node.name === 'http' && node.block !== undefined)) {
    for (const node of directives(http.block ?? [])) {
      if (node.name === 'ssl_certificate') httpCertificates.push(node);
      else if (node.name === 'ssl_certificate_key') httpKeys.push(node);
      else if (node.name === 'server' && node.block !== undefined) servers.push(readServer(node));
    }
  }
  return { confPrefix: config.confPrefix, servers, httpCertificates, httpKeys, allCertificateDirectives };
}

function readServer(node: DirectiveNode): NginxServer {
  const names: string[] = [];
  const listens: NginxListen[] = [];
  const certificates: DirectiveNode[] = [];
  const keys: DirectiveNode[] = [];
  for (const child of directives(node.block ?? [])) {
    if (child.name === 'server_name') names.push(...child.args);
    else if (child.name === 'listen') listens.push(parseListen(child));
    else if (child.name === 'ssl_certificate') certificates.push(child);
    else if (child.name === 'ssl_certificate_key') keys.push(child);
  }
  return { node, names, listens, certificates, keys };
}

/** The directives of a block, with `include`d files spliced in where the include stands. */
export function directives(nodes: readonly ConfNode[]): DirectiveNode[] {
  const out: DirectiveNode[] = [];
  for (const node of nodes) {
    if (node.kind !== 'directive') continue;
    if (node.name === 'include' && node.included !== undefined) {
      for (const file of node.included) out.push(...directives(file.nodes));
    } else {
      out.push(node);
    }
  }
  return out;
}

/** Visits every directive of the tree, `include` directives too, then what they included and blocks. */
export function walk(nodes: readonly ConfNode[], visit: (node: DirectiveNode) => void): void {
  for (const node of nodes) {
    if (node.kind !== 'directive') continue;
    visit(node);
    for (const file of node.included ?? []) walk(file.nodes, visit);
    if (node.block !== undefined) walk(node.block, visit);
  }
}

/**
 * Reads `listen` as ngx_http_core_listen() does: `8443`, `127.0.0.1:8443`, `[::1]:8443`,
 * `*:8443`, `localhost`, `unix:/path`; the port defaults to 80. A wildcard address is reached
 * through loopback of the same family.
 */
export function parseListen(node: DirectiveNode): NginxListen {
  const [address = '', ...flags] = node.args;
  const ssl = flags.includes('ssl');
  if (address.startsWith('unix:')) return { node, endpoint: undefined, ssl };
  let host: string;
  let port = 80;
  const v6 = /^\[([^\]]*)\](?::(\d+))?$/.exec(address);
  if (v6 !== null) {
    host = v6[1] as string;
    if (v6[2] !== undefined) port = Number(v6[2]);
    if (host === '::') host = '::1';
  } else if (/^\d+$/.test(address)) {
    host = '127.0.0.1';
    port = Number(address);
  } else {
    const colon = address.lastIndexOf(':');
    host = colon === -1 ? address : address.slice(0, colon);
    if (colon !== -1) port = Number(address.slice(colon + 1));
    if (host === '*' || host === '0.0.0.0') host = '127.0.0.1';
  }
  return { node, endpoint: { host, port }, ssl };
}

/** How `pattern` (one `server_name` argument) matches `name`, or undefined. */
export function matchServerName(pattern: string, name: string): NameMatch | undefined {
  const host = name.toLowerCase().replace(/\.$/, '');
  if (pattern.startsWith('~')) {
    let regex: RegExp;
    try {
      // As ngx_http_core_server_name() compiles it: PCRE, caseless when the pattern has a capital.
      const source = pattern.slice(1);
      const translated = translatePcre(Buffer.from(source, 'utf8').toString('latin1'), { caseless: /[A-Z]/.test(source) });
      regex = new RegExp(translated.source, translated.flags);
    } catch {
      return undefined;
    }
    return regex.test(host) ? { rank: 3, length: 0 } : undefined;
  }
  const lower = pattern.toLowerCase();
  if (lower.startsWith('*.')) {
    return host.endsWith(lower.slice(1)) && host.length > lower.length - 1 ? { rank: 1, length: lower.length } : undefined;
  }
  if (lower.startsWith('.')) {
    // ".example.com" is "example.com" and "*.example.com" at once, ranked as a wildcard.
    return host === lower.slice(1) || host.endsWith(lower) ? { rank: 1, length: lower.length } : undefined;
  }
  if (lower.endsWith('.*')) {
    return host.startsWith(lower.slice(0, -1)) && host.length > lower.length - 1 ? { rank: 2, length: lower.length } : undefined;
  }
  return lower === host ? { rank: 0, length: lower.length } : undefined;
}

/** True when a server terminates TLS: a `listen ... ssl`, or certificates of its own. */
export function isTlsServer(server: NginxServer): boolean {
  return server.listens.some((listen) => listen.ssl) || server.certificates.length > 0;
}

/** The TLS servers nginx would pick for `name`: all of those that tie for the best match. */
export function findServers(layout: NginxLayout, name: string): NginxServer[] {
  let best: NameMatch | undefined;
  let chosen: NginxServer[] = [];
  for (const server of layout.servers.filter(isTlsServer)) {
    let match: NameMatch | undefined;
    for (const pattern of server.names) {
      const each = matchServerName(pattern, name);
      if (each !== undefined && (match === undefined || better(each, match))) match = each;
    }
    if (match === undefined) continue;
    if (best === undefined || better(match, best)) {
      best = match;
      chosen = [server];
    } else if (!better(best, match) && match.rank !== 3) {
      chosen.push(server); // Same name on several listen sockets: each is a vhost for it.
    }
  }
  return chosen;
}

function better(a: NameMatch, b: NameMatch): boolean {
  return a.rank < b.rank || (a.rank === b.rank && a.length > b.length);
}

/** The path a certificate directive names, as nginx resolves it (relative to the conf prefix). */
export function directivePath(layout: { readonly confPrefix: string }, node: DirectiveNode): string {
  return resolve(layout.confPrefix, node.args[0] ?? '');
}

/** `/etc/nginx/sites-enabled/a.conf:12`. */
export function where(node: DirectiveNode): string {
  return `${node.file}:${node.line}`;
}
