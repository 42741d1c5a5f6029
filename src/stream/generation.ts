/**
 * One configuration generation's `stream` block, compiled in a worker: the listening sockets and
 * the server each address routes to, every server's settings, the upstream groups (the same
 * UpstreamGroup and balancers as http's), the variables and the access logs.
 */
import type { ZoneClient } from '../http/limits.js';
import { localServingState, type ServingState } from '../http/serving-state.js';
import { isIP } from 'node:net';
import type { HitlessConfig } from '../conf/model.js';
import type { ConfBlockView } from '../conf/registry.js';
import { LevelErrorLogs, type ErrorLog } from '../core/log.js';
import { ownErrorLog } from '../conf/core-module.js';
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import { AccessLogs, type AccessLogger } from '../http/access-log.js';
import { resolveHostSync } from '../core/hosts.js';
import { groupListens } from '../http/listen.js';
import { defineMapVariables } from '../http/map-module.js';
import { compileAccessRules, type AccessRule } from '../http/access-module.js';
import { defineGeoVariables } from '../http/geo-module.js';
import { defineSplitClientsVariables } from '../http/split-clients-module.js';
import type { ProxyPassTarget } from '../http/proxy-module.js';
import { upstreamTlsSettings } from '../http/proxy-module.js';
import { compileBind } from '../http/proxy-directives.js';
import type { TrustedBlock } from '../http/realip.js';
import { toByteString } from '../core/byte-string.js';
import { certificatePathsOf, sslHostName, UpstreamTls } from '../tls/upstream-tls.js';
import { CertificateCaches } from '../tls/certificate-cache.js';
import { buildUpstreamGroups, implicitGroup, type UpstreamGroup } from '../upstream/group.js';
import { ResolveFailure, Resolvers, type LevelResolver } from '../upstream/host-resolver.js';
import type { LogLevel } from '../core/parse.js';
import type { StreamProxySettings } from './proxy.js';
import { compileRate, type RateOf } from './rate-limit.js';
import type { SizeValue } from '../http/limit-rate.js';
import type { StreamSession } from './session.js';
import { parsePassAddress, type PassAddress, type PassTarget } from './pass.js';
import { createStreamVariables, streamCaptureNames, streamSetVariablesOf } from './variables.js';
import { streamTlsOf, type StreamTls } from './ssl-module.js';
import { primaryServerName, VirtualHosts } from '../http/server-names.js';

/** One `limit_conn` of a server, its key compiled. */
export interface StreamLimitConnRule {
  readonly zone: string;
  readonly size: number;
  readonly conn: number;
  readonly keySource: string;
  readonly key: CompiledTemplate<StreamSession>;
}

/** A stream server's settings, compiled once per generation. */
export interface CompiledStreamServer {
  readonly block: ConfBlockView;
  /** Where `limit_conn` zones live (the server's ServingState). */
  readonly zones: ZoneClient;
  /** nginx's `server: 0.0.0.0:12345` of log messages: the address the server listens on. */
  readonly addrText: string;
  readonly proxyProtocolTimeoutMs: number;
  readonly prereadTimeoutMs: number;
  readonly prereadBufferSize: number;
  readonly sslPreread: boolean;
  readonly realIpFrom: readonly TrustedBlock[];
  readonly limitConn: readonly StreamLimitConnRule[];
  readonly limitConnLogLevel: LogLevel;
  readonly limitConnDryRun: boolean;
  /** The server's `set` lines, in order (the preaccess phase). */
  readonly sets: readonly { readonly name: string; readonly value: CompiledTemplate<StreamSession> }[];
  /** `allow` and `deny` (the access phase); empty when no level has any. */
  readonly access: readonly AccessRule[];
  /** `$server_name`. */
  readonly serverName: string;
  readonly loggers: readonly AccessLogger<StreamSession>[];
  /** The server's `error_log` (or the stream block's): where its sessions' lines go (ngx_stream_init_connection()). */
  readonly errorLog: ErrorLog;
  readonly returnValue: CompiledTemplate<StreamSession> | undefined;
  /** `pass`: the address the session's connection is handed to, or why there is none (the whole message). */
  readonly pass: ((session: StreamSession) => PassAddress | { readonly error: string }) | undefined;
  readonly proxy: StreamProxySettings | undefined;
}

export { collectStreamListens } from './listens.js';

/** Where a connection on one address goes: its server, and what the address's `listen` asks of it. */
export interface StreamRoute {
  /** The default server: the first to list the address, or its `listen ... default_server`. */
  readonly server: CompiledStreamServer;
  /** `listen ... proxy_protocol` on this address (not on every listen of the server). */
  readonly proxyProtocol: boolean;
  /** `listen ... ssl` on this address: the TLS termination, whose SNI callback picks among the address's servers. */
  readonly tls: StreamTls | undefined;
  /**
   * `ngx_stream_find_virtual_server()`: the server named by a validated, lowercased name (SNI or
   * ssl_preread's), and the regex match that named it; the default server when none does.
   * Undefined for an address with one server.
   */
  readonly find: ((name: string) => { readonly server: CompiledStreamServer; readonly match: RegExpExecArray | undefined }) | undefined;
}

interface SocketRoutes {
  readonly own: StreamRoute;
  readonly byLocalAddress: ReadonlyMap<string, StreamRoute>;
}

/** The compiled `stream` block of one generation. */
export class StreamGeneration {
  readonly sockets = new Map<string, SocketRoutes>();
  readonly logs: AccessLogs<StreamSession>;
  readonly groups: Map<string, UpstreamGroup<StreamSession>>;
  readonly #implicit = new Map<string, UpstreamGroup<StreamSession>>();
  /** proxy_ssl_certificate_cache: one cache per directive, shared by the servers that inherit it. */
  readonly #certificateCaches = new CertificateCaches();
  /** The `resolver`s of proxy_pass with variables, and the groups their answers made. */
  readonly #resolvers = new Resolvers<StreamSession>();
  readonly #table: VariableTable<StreamSession>;

  readonly #state: ServingState;

  /** The error log OCSP stapling reports to. */

  readonly #log: ErrorLog;
  /** The `error_log` files of the stream and server levels. */
  readonly errorLogs: LevelErrorLogs;

  /** Compiles the stream block; `state` is the running server's (TLS store and keys, zones), default one of its own. */
  constructor(config: HitlessConfig, log: ErrorLog, state: ServingState = localServingState()) {
    this.#state = state;
    this.#log = log;
    this.errorLogs = new LevelErrorLogs(log);
    const stream = config.main.child('stream');
    this.#table = createStreamVariables(stream === undefined ? [] : streamCaptureNames(stream));
    this.logs = new AccessLogs<StreamSession>(stream?.get('log_format') ?? [], this.#table, log, {
      rootOf: () => undefined,
      where: (session) => ({ log: undefined, connection: session.id, context: `, client: ${session.remoteAddress}, server: ${session.serverAddress}:${session.serverPort}` }),
    });
    if (stream === undefined) {
      this.groups = new Map();
      return;
    }
    defineMapVariables(this.#table, stream.get('map'));
    defineGeoVariables(this.#table, stream.get('geo'));
    defineSplitClientsVariables(this.#table, stream.get('split_clients'));
    // ngx_stream_set_module: the value this session's server set, else the variable's own (a map's), else empty.
    for (const name of streamSetVariablesOf(stream)) {
      const own = this.#table.resolve(name);
      this.#table.define(name, (session) => session.variables?.get(name) ?? (own === undefined ? '' : own(session)));
    }
    // nginx opens every access_log file as it reads the configuration, the stream block's too
    // when each server names its own (ngx_stream_log_set_log()).
    if (stream.isSet('access_log')) this.logs.compile(stream.get('access_log'), stream.get('open_log_file_cache'));
    this.groups = buildUpstreamGroups(stream, this.#table, state.upstreams, () => this.#log);
    const compiled = new Map<ConfBlockView, CompiledStreamServer>();
    const perAddress = new Map<string, CompiledStreamServer>();
    // A block is compiled once; each address it listens on gets its own copy for the address's text
    // in log lines (ssl and proxy_protocol are the address's, in its StreamRoute).
    const serverOf = (block: ConfBlockView, addrText: string): CompiledStreamServer => {
      let base = compiled.get(block);
      if (base === undefined) {
        base = this.#compile(stream, block, addrText);
        compiled.set(block, base);
      }
      const key = `${addrText} ${block.file}:${block.line}`;
      let server = perAddress.get(key);
      if (server === undefined) {
        server = base.addrText === addrText ? base : { ...base, addrText };
        perAddress.set(key, server);
      }
      return server;
    };
    for (const socket of groupListens(stream)) {
      const byLocalAddress = new Map<string, StreamRoute>();
      let own: StreamRoute | undefined;
      for (const addr of socket.addrs) {
        const server = serverOf(addr.defaultServer, addr.listen.addrText);
        const servers = addr.servers.map((block) => serverOf(block, addr.listen.addrText));
        let find: StreamRoute['find'];
        if (servers.length > 1) {
          // Built with the blocks' names as nginx's per-address hash (ngx_stream_server_names()); -t reported its errors.
          const hosts = VirtualHosts.build(servers, server, (one) => one.block.get('server_name'), addr.listen.addrText, { invalid: () => undefined, conflict: () => undefined });
          // No name matching is the default server, where the session already is.
          find = (name) => hosts.find(name);
        }
        const tls = addr.ssl ? streamTlsOf(addr.servers, addr.defaultServer, this.#state.tls, this.#log, { table: this.#table, caches: this.#certificateCaches }) : undefined;
        const route: StreamRoute = { server, proxyProtocol: addr.proxyProtocol, tls, find };
        byLocalAddress.set(addr.listen.address, route);
        if (addr.listen.wildcard || own === undefined) own = route;
      }
      if (own !== undefined) this.sockets.set(socket.spec.key, { own, byLocalAddress });
    }
  }

  /** Where a connection on socket `key` that arrived on `localAddress` goes. */
  routeFor(key: string, localAddress: string | undefined): StreamRoute | undefined {
    const routes = this.sockets.get(key);
    if (routes === undefined) return undefined;
    if (localAddress === undefined || routes.byLocalAddress.size === 1) return routes.own;
    const local = localAddress.startsWith('::ffff:') ? localAddress.slice(7) : localAddress;
    return routes.byLocalAddress.get(local) ?? routes.own;
  }

  /** Every group of the generation, implicit ones included. */
  upstreamGroups(): UpstreamGroup<StreamSession>[] {
    return [...this.groups.values(), ...this.#implicit.values(), ...this.#resolvers.groups()];
  }

  /** Closes the groups' idle state and stops the resolvers. */
  close(): void {
    for (const group of this.upstreamGroups()) group.close();
    this.#resolvers.close();
  }

  #compile(stream: ConfBlockView, block: ConfBlockView, addrText: string): CompiledStreamServer {
    const zones = new Map(stream.get('limit_conn_zone').map((zone) => [zone.name, zone]));
    const limitConn = block.get('limit_conn').flatMap((rule) => {
      const zone = zones.get(rule.zone);
      if (zone === undefined) return [];
      return [{ zone: zone.name, size: zone.size, conn: rule.conn, keySource: zone.keySource, key: compileTemplate(zone.key, this.#table, { literal: toByteString }) }];
    });
    const returnTemplate = block.isSet('return') ? block.get('return')?.text : undefined;
    return {
      block,
      addrText,
      proxyProtocolTimeoutMs: block.get('proxy_protocol_timeout'),
      prereadTimeoutMs: block.get('preread_timeout'),
      prereadBufferSize: block.get('preread_buffer_size'),
      sslPreread: block.get('ssl_preread'),
      realIpFrom: block.get('set_real_ip_from'),
      limitConn,
      zones: this.#state.zones,
      limitConnLogLevel: block.get('limit_conn_log_level'),
      limitConnDryRun: block.get('limit_conn_dry_run'),
      sets: block.isSet('set') ? block.get('set').map((rule) => ({ name: rule.name, value: compileTemplate(rule.value, this.#table, { literal: toByteString }) })) : [],
      access: compileAccessRules(block),
      serverName: primaryServerName(block.get('server_name')),
      loggers: this.logs.compile(block.get('access_log'), block.get('open_log_file_cache')),
      errorLog: this.errorLogs.of(ownErrorLog(block)),
      returnValue: returnTemplate === undefined ? undefined : compileTemplate(returnTemplate, this.#table, { literal: toByteString }),
      pass: block.isSet('pass') ? this.#compilePass(block.get('pass') as PassTarget) : undefined,
      proxy: block.isSet('proxy_pass') ? this.#compileProxy(block, block.get('proxy_pass') as ProxyPassTarget) : undefined,
    };
  }

  #compilePass(target: PassTarget): (session: StreamSession) => PassAddress | { readonly error: string } {
    if ('address' in target) return () => target.address;
    const value = compileTemplate(target.template, this.#table, { literal: toByteString });
    return (session) => {
      const url = value(session);
      const address = parsePassAddress(url);
      if (!('error' in address)) return address;
      // ngx_stream_pass_handler()'s words: "no addresses in pass ...", "invalid port in pass ...".
      return { error: `${address.error.replace(/^has /, '')} in pass "${url}"` };
    };
  }

  #compileProxy(block: ConfBlockView, target: ProxyPassTarget): StreamProxySettings {
    let resolveGroup: StreamProxySettings['resolveGroup'];
    if (target.template === undefined) {
      const group = this.groups.get(target.host) ?? this.#implicitGroup(target.host, target.port);
      resolveGroup = () => group;
    } else {
      const value = compileTemplate(target.template, this.#table, { literal: toByteString });
      const setting = block.get('resolver');
      const resolver = setting === undefined ? undefined : this.#resolvers.for(setting, block.get('resolver_timeout'));
      resolveGroup = (session) => this.#groupFor(value(session), resolver);
    }
    const ssl = block.get('proxy_ssl') ? UpstreamTls.load(upstreamTlsSettings(block), this.#certificateCaches) : undefined;
    const certificate = ssl?.variableCertificate === true ? certificatePathsOf(ssl.settings, this.#table) : () => undefined;
    const sslNameTemplate = block.get('proxy_ssl_name');
    const sslName = sslNameTemplate === undefined ? undefined : compileTemplate(sslNameTemplate, this.#table, { literal: toByteString });
    return {
      resolveGroup,
      connectTimeoutMs: block.get('proxy_connect_timeout'),
      connections: this.#state.upstreams.connections,
      timeoutMs: block.get('proxy_timeout'),
      nextUpstream: block.get('proxy_next_upstream').size > 0,
      nextTries: block.get('proxy_next_upstream_tries'),
      nextTimeoutMs: block.get('proxy_next_upstream_timeout'),
      proxyProtocol: block.get('proxy_protocol') ? block.get('proxy_protocol_version') : 0,
      tcpNodelay: block.get('tcp_nodelay'),
      halfClose: block.get('proxy_half_close'),
      responses: block.get('proxy_responses'),
      requests: block.get('proxy_requests'),
      bufferSize: block.get('proxy_buffer_size'),
      uploadRate: this.#rate(block.get('proxy_upload_rate')),
      downloadRate: this.#rate(block.get('proxy_download_rate')),
      // proxy_ssl_name defaults to the host of proxy_pass (a group's name, or the address's host).
      ssl: ssl === undefined ? undefined : { tls: ssl, name: (session, group) => sslHostName(sslName === undefined ? group.name : sslName(session)), certificate, alpn: this.#alpn(block) },
      bind: compileBind(block.get('proxy_bind'), (template) => compileTemplate(template, this.#table, { literal: toByteString })),
    };
  }

  /** proxy_ssl_alpn (ngx_stream_proxy_ssl_alpn()): values that come out empty or longer than 255 bytes are left out. */
  #alpn(block: ConfBlockView): ((session: StreamSession) => readonly string[]) | undefined {
    const values = block.get('proxy_ssl_alpn')?.map((value) => compileTemplate(value, this.#table, { literal: toByteString }));
    if (values === undefined) return undefined;
    return (session) => values.map((value) => value(session)).filter((protocol) => protocol.length > 0 && protocol.length <= 255);
  }

  #rate(setting: SizeValue | undefined): RateOf<StreamSession> {
    return compileRate(setting, (value) => compileTemplate(value, this.#table, { literal: toByteString }), (session, message) => this.#log.error(`${message}, client: ${session.remoteAddress}, server: ${session.serverAddress}:${session.serverPort}`, session.id));
  }

  #implicitGroup(host: string, port: number): UpstreamGroup<StreamSession> {
    const key = `${host}:${port}`;
    let group = this.#implicit.get(key);
    if (group === undefined) {
      group = implicitGroup(host.startsWith('[') ? host.slice(1, -1) : host, port);
      this.#implicit.set(key, group);
    }
    return group;
  }

  /**
   * `ngx_stream_proxy_eval()`: a group of that name, else an address with a port, else a name the
   * `resolver` resolves (ngx_stream_proxy_resolve_handler()); without one, names resolve from
   * /etc/hosts only. A string is the error to log.
   */
  #groupFor(value: string, resolver: LevelResolver<StreamSession> | undefined): UpstreamGroup<StreamSession> | string | Promise<UpstreamGroup<StreamSession> | string> {
    const group = this.groups.get(value);
    if (group !== undefined) return group;
    if (value.toLowerCase().startsWith('unix:')) return this.#implicitGroup(value, 0);
    const match = /^(\[[^\]]+\]|[^:[\]]+):([0-9]{1,5})$/.exec(value);
    if (match === null) return value === '' ? 'no host in upstream ""' : `no port in upstream "${value}"`;
    const host = match[1] as string;
    const port = Number(match[2]);
    const bare = host.startsWith('[') ? host.slice(1, -1) : host;
    if (port < 1 || port > 65535) return `invalid port in upstream "${value}"`;
    if (isIP(bare) === 0 && resolver !== undefined) {
      return resolver.cached(bare, port) ?? resolver.resolve(bare, port).then((outcome) => (outcome instanceof ResolveFailure ? outcome.message : outcome));
    }
    if (isIP(bare) === 0 && resolveHostSync(bare).length === 0) return `no resolver defined to resolve ${bare}`;
    return this.#implicitGroup(host, port);
  }
}
