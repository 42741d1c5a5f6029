/**
 * The stream variables (nginx's `ngx_stream_variables.c`, and those of the upstream, proxy,
 * realip, ssl and ssl_preread stream modules), bound to a {@link StreamSession}, and the check
 * that every variable a stream configuration uses is known.
 */
import { hostname } from 'node:os';
import { ConfigError } from '../core/errors.js';
import { templateVariables, VariableTable, type Template, type VariableGetter } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import { binaryAddress } from '../http/realip.js';
import { compileNginxRegex } from '../http/regex.js';
import { formatIso8601, formatTimeLocal } from '../http/time-format.js';
import type { StreamSession, UpstreamTry } from './session.js';
import { NGINX_VERSION } from '../core/version.js';
import { sslVariables } from '../tls/ssl-variables.js';
import { proxyProtocolTlvGetter } from '../core/proxy-protocol.js';

type Getter = VariableGetter<StreamSession>;

const HOSTNAME = hostname();

/** `$upstream_*` lists: one value per try, joined by `, ` as nginx joins them; not found before the first. */
function perTry(read: (attempt: UpstreamTry) => string): Getter {
  return (s) => (s.upstreams.length === 0 ? undefined : s.upstreams.map(read).join(', '));
}

/** The variables every stream configuration has, by name. */
const STREAM_VARIABLES: Readonly<Record<string, Getter>> = {
  remote_addr: (s) => s.remoteAddress,
  remote_port: (s) => s.remotePort,
  binary_remote_addr: (s) => binaryAddress(s.remoteAddress),
  realip_remote_addr: (s) => s.peerAddress,
  realip_remote_port: (s) => s.peerPort,
  server_addr: (s) => s.serverAddress,
  server_port: (s) => s.serverPort,
  server_name: (s) => s.serverName,
  proxy_protocol_addr: (s) => s.proxyProtocol?.sourceAddress ?? '',
  proxy_protocol_port: (s) => (s.proxyProtocol === undefined ? '' : String(s.proxyProtocol.sourcePort)),
  proxy_protocol_server_addr: (s) => s.proxyProtocol?.destinationAddress ?? '',
  proxy_protocol_server_port: (s) => (s.proxyProtocol === undefined ? '' : String(s.proxyProtocol.destinationPort)),
  protocol: (s) => s.protocol,
  status: (s) => String(s.status),
  bytes_sent: (s) => String(s.bytesSent),
  bytes_received: (s) => String(s.bytesReceived),
  session_time: (s) => s.sessionTime(),
  connection: (s) => String(s.id),
  hostname: () => HOSTNAME,
  pid: () => String(process.pid),
  msec: () => (Date.now() / 1000).toFixed(3),
  time_local: () => formatTimeLocal(Date.now()),
  time_iso8601: () => formatIso8601(Date.now()),
  nginx_version: () => NGINX_VERSION,
  upstream_addr: perTry((attempt) => attempt.addr),
  upstream_bytes_sent: perTry((attempt) => String(attempt.bytesSent)),
  upstream_bytes_received: perTry((attempt) => String(attempt.bytesReceived)),
  upstream_connect_time: perTry((attempt) => (attempt.connectMs < 0 ? '-' : (attempt.connectMs / 1000).toFixed(3))),
  upstream_first_byte_time: perTry((attempt) => (attempt.firstByteMs < 0 ? '-' : (attempt.firstByteMs / 1000).toFixed(3))),
  // A try that goes on ends with the session (ngx_stream_proxy_finalize() sets response_time).
  upstream_session_time: (s) => (s.upstreams.length === 0 ? undefined : s.upstreams.map((attempt) => (((attempt.endedAt ?? s.endedAt ?? performance.now()) - attempt.startedAt) / 1000).toFixed(3)).join(', ')),
  limit_conn_status: (s) => s.limitConnStatus,
  ssl_preread_server_name: (s) => s.preread?.serverName,
  ssl_preread_alpn_protocols: (s) => s.preread?.alpnProtocols,
  ssl_preread_protocol: (s) => s.preread?.protocol,
  // ngx_stream_ssl_module's: not found on a plain connection.
  ...sslVariables<StreamSession>((s) => s.tls),
};

/** True for a variable stream defines itself (a `map` may not define it again). */
export function isBuiltinStreamVariable(name: string): boolean {
  return Object.hasOwn(STREAM_VARIABLES, name);
}

/** `$1`..`$9`: the captures of the last regex `map` match of the session. */
function captureGetter(index: number): Getter {
  return (s) => s.captures?.[index];
}

/** The variable table of one generation's stream block (the maps are added by the map module), with the maps' named captures. */
export function createStreamVariables(captureNames: Iterable<string> = []): VariableTable<StreamSession> {
  const table = new VariableTable<StreamSession>(captureGetter);
  for (const name of captureNames) table.define(name, (s) => s.captures?.groups?.[name]);
  for (const [name, get] of Object.entries(STREAM_VARIABLES)) table.define(name, get);
  table.definePrefix('proxy_protocol_tlv_', (suffix) => {
    const tlv = proxyProtocolTlvGetter(suffix);
    return (s) => tlv(s.proxyProtocol);
  });
  return table;
}

/** The named captures of the stream maps' regexes, which nginx defines as variables (`ngx_stream_regex_compile()`). */
export function streamCaptureNames(stream: ConfBlockView): Set<string> {
  const names = new Set(stream.get('map').flatMap((map) => map.regexes.flatMap((regex) => regex.names)));
  // A server_name regex's named captures are variables too (ngx_stream_core_server_name()).
  for (const server of stream.blocks) {
    if (server.name !== 'server') continue;
    for (const name of server.get('server_name')) {
      if (name.kind === 'regex') for (const group of compileNginxRegex(name.name, name.caseless).names) names.add(group);
    }
  }
  return names;
}

/** The variables the servers' `set` lines declare (for every server: one that does not set it reads it empty). */
export function streamSetVariablesOf(stream: ConfBlockView): Set<string> {
  const names = new Set<string>();
  for (const server of stream.blocks) if (server.name === 'server' && server.isSet('set')) for (const rule of server.get('set')) names.add(rule.name);
  return names;
}

const knownTables = new WeakMap<ConfBlockView, VariableTable<StreamSession>>();

/** Refuses a value that uses a variable nothing defines in stream: `unknown "x" variable`, as nginx does at init. */
export function checkStreamVariables(stream: ConfBlockView, templates: Iterable<Template>): void {
  let table = knownTables.get(stream);
  if (table === undefined) {
    table = createStreamVariables(streamCaptureNames(stream));
    for (const map of stream.get('map')) table.define(map.variable, () => undefined);
    for (const geo of stream.get('geo')) table.define(geo.variable, () => undefined);
    for (const split of stream.get('split_clients')) table.define(split.variable, () => undefined);
    for (const name of streamSetVariablesOf(stream)) table.define(name, () => undefined);
    knownTables.set(stream, table);
  }
  for (const template of templates) {
    for (const name of templateVariables(template)) {
      if (!table.has(name)) throw new ConfigError(`unknown "${name}" variable`, undefined);
    }
  }
}
