/**
 * The HTTP variables (nginx's `ngx_http_variables.c` and the log module's own), bound to an
 * {@link HttpRequest}, and the configuration check that every variable used is known.
 */
import type { X509Certificate } from 'node:crypto';
import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { templateVariables, VariableTable, type Template, type VariableGetter } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { LocationMatch } from './core-module.js';
import type { HttpRequest } from './request.js';
import { compileNginxRegex } from './regex.js';
import { binaryAddress } from './realip.js';
import { formatIso8601, formatTimeLocal } from './time-format.js';
import { certificateFingerprint, clientVerifyText, escapedCertificate, rfc2253Name } from '../tls/client-verify.js';

type Getter = VariableGetter<HttpRequest>;

/** `$arg_name`: the raw value of the first argument called `name` (case-insensitive), as `ngx_http_arg()`. */
export function findArg(args: string, name: string): string | undefined {
  let start = 0;
  while (start <= args.length) {
    const amp = args.indexOf('&', start);
    const end = amp === -1 ? args.length : amp;
    const eq = args.indexOf('=', start);
    if (eq !== -1 && eq < end && eq - start === name.length && args.slice(start, eq).toLowerCase() === name) return args.slice(eq + 1, end);
    if (amp === -1) return undefined;
    start = amp + 1;
  }
  return undefined;
}

/** `$cookie_name`: the value of the first cookie called `name` (case-insensitive) in `Cookie`. */
export function findCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined) return undefined;
  for (const pair of header.split(';')) {
    const eq = pair.indexOf('=');
    if (eq === -1) continue;
    if (pair.slice(0, eq).trim().toLowerCase() === name) return pair.slice(eq + 1).trim();
  }
  return undefined;
}

function remoteUser(request: HttpRequest): string | undefined {
  const auth = request.header('authorization');
  if (auth === undefined || !/^basic /i.test(auth)) return undefined;
  const decoded = Buffer.from(auth.slice(6).trim(), 'base64').toString('latin1');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(0, colon);
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

const HOSTNAME = hostname();

/** A `$ssl_client_*` value: not found without TLS, empty without a client certificate. */
function clientValue(request: HttpRequest, read: (cert: X509Certificate) => string): string | undefined {
  const tls = request.connection.tls;
  if (tls === undefined) return undefined;
  return tls.client === undefined ? '' : read(tls.client.cert);
}

/** Every variable hitless defines for HTTP, by name. */
const HTTP_VARIABLES: Readonly<Record<string, Getter>> = {
  remote_addr: (r) => r.remoteAddress,
  remote_port: (r) => r.remotePort,
  binary_remote_addr: (r) => binaryAddress(r.remoteAddress),
  realip_remote_addr: (r) => r.connection.remoteAddress,
  realip_remote_port: (r) => r.connection.remotePort,
  limit_req_status: (r) => r.limitReqStatus,
  limit_conn_status: (r) => r.limitConnStatus,
  remote_user: remoteUser,
  server_addr: (r) => r.connection.localAddress,
  server_port: (r) => r.connection.localPort,
  server_name: (r) => r.serverName,
  server_protocol: (r) => r.protocol,
  scheme: (r) => r.scheme,
  https: (r) => (r.scheme === 'https' ? 'on' : ''),
  host: (r) => r.host || r.serverName,
  request: (r) => r.requestLine,
  request_method: (r) => r.head.method,
  request_uri: (r) => r.requestUri,
  uri: (r) => r.uri,
  document_uri: (r) => r.uri,
  args: (r) => (r.hasArgs ? r.args : undefined),
  query_string: (r) => (r.hasArgs ? r.args : undefined),
  is_args: (r) => (r.hasArgs && r.args !== '' ? '?' : ''),
  content_length: (r) => r.header('content-length'),
  content_type: (r) => r.header('content-type'),
  status: (r) => String(r.status).padStart(3, '0'),
  body_bytes_sent: (r) => String(r.bodyBytesSent),
  bytes_sent: (r) => String(r.connection.bytesWritten() - r.bytesWrittenAtStart),
  request_time: (r) => seconds(Math.max(0, Date.now() - r.startMs)),
  msec: () => seconds(Date.now()),
  time_local: () => formatTimeLocal(Date.now()),
  time_iso8601: () => formatIso8601(Date.now()),
  connection: (r) => String(r.connection.number),
  connection_requests: (r) => String(r.connectionRequests),
  pid: () => String(process.pid),
  proxy_host: (r) => r.proxyHost,
  proxy_port: (r) => {
    const colon = r.proxyHost.lastIndexOf(':');
    if (colon !== -1 && !r.proxyHost.endsWith(']')) return r.proxyHost.slice(colon + 1);
    return r.proxyScheme === 'https' ? '443' : '80';
  },
  proxy_add_x_forwarded_for: (r) => {
    const forwarded = r.header('x-forwarded-for');
    return forwarded === undefined ? r.remoteAddress : `${forwarded}, ${r.remoteAddress}`;
  },
  // ngx_http_grpc_module's: "trailers" when the client's TE lists it, for the TE sent to gRPC servers.
  grpc_internal_trailers: (r) => (r.header('te')?.split(',').some((token) => token.split(';')[0]?.trim().toLowerCase() === 'trailers') === true ? 'trailers' : undefined),
  upstream_addr: (r) => r.upstreamAddr?.join(', '),
  upstream_status: (r) => r.upstreamStatus?.join(', '),
  upstream_response_time: (r) => r.upstreamResponseTime?.map(seconds).join(', '),
  hostname: () => HOSTNAME,
  // ngx_http_core_module's file variables, from the level that answers.
  document_root: (r) => r.files?.(r).root,
  request_filename: (r) => r.files?.(r).path,
  realpath_root: (r) => {
    const root = r.files?.(r).root;
    if (root === undefined) return undefined;
    try {
      return realpathSync(Buffer.from(root, 'latin1'), { encoding: 'buffer' }).toString('latin1');
    } catch {
      return undefined;
    }
  },
  // ngx_http_ssl_module's: not found on a plain connection.
  ssl_server_name: (r) => r.connection.tls?.serverName,
  ssl_protocol: (r) => r.connection.tls?.protocol,
  ssl_cipher: (r) => r.connection.tls?.cipher,
  ssl_session_reused: (r) => r.connection.tls?.sessionReused,
  // Empty, not "not found", on a TLS connection without a client certificate (ngx_ssl_get_subject_dn()).
  ssl_client_verify: (r) => (r.connection.tls === undefined ? undefined : clientVerifyText(r.connection.tls.client)),
  ssl_client_s_dn: (r) => clientValue(r, (cert) => rfc2253Name(cert.subject)),
  ssl_client_i_dn: (r) => clientValue(r, (cert) => rfc2253Name(cert.issuer)),
  ssl_client_escaped_cert: (r) => clientValue(r, escapedCertificate),
  ssl_client_fingerprint: (r) => clientValue(r, certificateFingerprint),
  ssl_client_serial: (r) => clientValue(r, (cert) => cert.serialNumber),
};

/** True when `name` is a variable hitless itself defines (not a prefix family): a map may not redefine it. */
export function isBuiltinHttpVariable(name: string): boolean {
  return Object.hasOwn(HTTP_VARIABLES, name.toLowerCase());
}

function captureGetter(index: number): Getter {
  return (r) => r.captures?.[index];
}

/**
 * The variable table of one generation: the built-in variables, the `$http_`, `$arg_` and
 * `$cookie_` families, `$1`..`$9`, and the named captures of the configuration's regexes.
 */
export function createHttpVariables(captureNames: Iterable<string> = []): VariableTable<HttpRequest> {
  const table = new VariableTable<HttpRequest>(captureGetter);
  for (const name of captureNames) table.define(name, (r) => r.captures?.groups?.[name]);
  for (const [name, get] of Object.entries(HTTP_VARIABLES)) table.define(name, get);
  table.definePrefix('http_', (suffix) => {
    const header = suffix.replace(/_/g, '-');
    return (r) => r.header(header);
  });
  table.definePrefix('arg_', (suffix) => (r) => findArg(r.args, suffix));
  table.definePrefix('cookie_', (suffix) => (r) => findCookie(r.header('cookie'), suffix));
  return table;
}

/** The named captures of every regex in an `http` block (`server_name ~`, `location ~`), which nginx also defines as variables. */
export function captureNamesOf(http: ConfBlockView): Set<string> {
  const names = new Set<string>();
  const walk = (block: ConfBlockView): void => {
    if (block.name === 'server') {
      for (const name of block.get('server_name')) {
        if (name.kind === 'regex') for (const capture of compileNginxRegex(name.name, name.caseless).names) names.add(capture);
      }
    }
    if (block.name === 'location') {
      const match = block.value as LocationMatch;
      if (match.kind === 'regex') for (const capture of compileNginxRegex(match.name, match.caseless).names) names.add(capture);
    }
    for (const child of block.blocks) walk(child);
  };
  walk(http);
  return names;
}

const knownTables = new WeakMap<ConfBlockView, VariableTable<HttpRequest>>();

/**
 * Refuses a value that uses a variable nothing defines, as `ngx_http_variables_init_vars()` does
 * once the whole configuration is read: `unknown "x" variable`, with no file or line.
 */
export function checkVariables(http: ConfBlockView, templates: Iterable<Template>): void {
  let table = knownTables.get(http);
  if (table === undefined) {
    table = createHttpVariables(captureNamesOf(http));
    // map-defined variables (ngx_http_map_block() adds them while the configuration is read).
    for (const map of http.get('map')) table.define(map.variable, () => undefined);
    knownTables.set(http, table);
  }
  for (const template of templates) {
    for (const name of templateVariables(template)) {
      if (!table.has(name)) throw new ConfigError(`unknown "${name}" variable`, undefined);
    }
  }
}

/** Every block of an `http` block's tree (servers, locations), the `http` block first. */
export function blocksOf(http: ConfBlockView): ConfBlockView[] {
  const all: ConfBlockView[] = [];
  const walk = (block: ConfBlockView): void => {
    all.push(block);
    for (const child of block.blocks) if (child.name === 'server' || child.name === 'location') walk(child);
  };
  walk(http);
  return all;
}
