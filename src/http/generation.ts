/**
 * One configuration generation of the HTTP layer, compiled once: every server's locations into a
 * {@link LocationTree}, every level's `return`, `add_header`, `access_log` and keep-alive settings
 * into closures, every listening socket's address:port into {@link VirtualHosts}. Nothing that can
 * be decided per configuration is left for request time.
 */
import { compileBodyFile, TempNumbers, type BodyFileSettings } from './body-file.js';
import { LevelErrorLogs, type ErrorLog } from '../core/log.js';
import { ownErrorLog } from '../conf/core-module.js';
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { HitlessConfig } from '../conf/model.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { LimitExcept } from './core-directives.js';
import { AccessLogs, type AccessLogger } from './access-log.js';
import { compileAccessPhase, type AccessPhase } from './access-phase.js';
import { compileCoreConnection, compileCoreLevel, type CoreConnection, type CoreLevel } from './core-level.js';
import { compileErrorPages, type CompiledErrorPage } from './error-pages.js';
import { compileExpires, type CompiledExpires } from './expires.js';
import { compileGrpc, type CompiledGrpc } from './grpc-config.js';
import { compileFastcgi, compileFastcgiNames, type CompiledFastcgi } from './fastcgi-config.js';
import type { FastcgiNames } from './fastcgi-names.js';
import { compileProxy, type CompiledProxy } from './proxy-config.js';
import { Resolvers } from '../upstream/host-resolver.js';
import { buildUpstreamGroups, type UpstreamGroup } from '../upstream/group.js';
import { serversOf } from './core-module.js';
import { groupListens, type ListenSpec } from './listen.js';
import { LocationTree } from './locations.js';
import { defineMapVariables } from './map-module.js';
import { defineSplitClientsVariables } from './split-clients-module.js';
import { defineGeoVariables } from './geo-module.js';
import { compileReferers, type RefererCheck } from './referer-module.js';
import { compileOutputFilters, requestErrorReporter } from './output-filters.js';
import type { OutputFilter } from './output-filter.js';
import { compileLimitRate, type LimitRate } from './limit-rate.js';
import { compileMirror, type CompiledMirror } from './mirror-module.js';
import { compilePreaccess, type Preaccess } from './preaccess.js';
import { requestLogContext, type HttpRequest } from './request.js';
import { primaryServerName, VirtualHosts, type ServerName } from './server-names.js';
import { compileStatic, type CompiledStatic } from './static.js';
import { OpenFileCaches } from './open-file-cache.js';
import { serverTlsOf, type ServerTls } from '../tls/contexts.js';
import { TlsTermination } from '../tls/sni.js';
import { handshakeRequest } from './ssl-handshake.js';
import { localServingState, type ServingState } from './serving-state.js';
import { toByteString } from '../core/byte-string.js';
import { UserFiles } from './user-files.js';
import { captureNamesOf, createHttpVariables, defineSetVariables } from './variables.js';
import { compileScript, type ScriptCode } from './rewrite-script.js';
import { CertificateCaches } from '../tls/certificate-cache.js';
import { acmeCertificateSelect, acmeStoredContext } from '../tls/acme-certificates.js';
import type { AcmeChallenges } from '../tls/acme-challenges.js';
import { acmeStoreNameOf } from '../acme/acme-config.js';

/** An `add_header`, ready to run. */
export interface CompiledHeader {
  readonly name: string;
  readonly value: CompiledTemplate<HttpRequest>;
  readonly always: boolean;
}

/** What a request needs from the level (server or location) that handles it. */
export interface LevelConfig {
  /** This level's own rewrite directives, in order (not inherited); an `if` block's run inside its enclosing script. */
  readonly script: readonly ScriptCode<LevelConfig>[];
  /** `rewrite_log`. */
  readonly rewriteLog: boolean;
  /** `uninitialized_variable_warn`. */
  readonly uninitializedWarn: boolean;
  readonly headers: readonly CompiledHeader[];
  /** `add_trailer`. */
  readonly trailers: readonly CompiledHeader[];
  /** `expires`; undefined when off. */
  readonly expires: CompiledExpires | undefined;
  /** Empty when `access_log off`. */
  readonly accessLogs: readonly AccessLogger[];
  /** The level's `error_log` (or the enclosing level's): where errors about a request it answers go. */
  readonly errorLog: ErrorLog;
  readonly keepaliveTimeoutMs: number;
  readonly keepaliveHeaderSeconds: number | undefined;
  readonly keepaliveRequests: number;
  /** `keepalive_time`, in ms. */
  readonly keepaliveTimeMs: number;
  readonly defaultType: string;
  /** The location's `proxy_pass`, compiled; undefined when it has none. */
  readonly proxy: CompiledProxy | undefined;
  /**
   * The `proxy_pass` of the location's `limit_except` block and the methods that block lets by: a
   * request with any other method is proxied there (ngx_http_update_location_config() switches to
   * the block's configuration). Undefined when the block has no proxy_pass of its own.
   */
  readonly limitExceptProxy: { readonly methods: ReadonlySet<string>; readonly proxy: CompiledProxy } | undefined;
  /** The location's `grpc_pass`, compiled; undefined when it has none. */
  readonly grpc: CompiledGrpc | undefined;
  /** The location's `fastcgi_pass`, `uwsgi_pass` or `scgi_pass`, compiled; undefined when it has none. */
  readonly fastcgi: CompiledFastcgi | undefined;
  /** fastcgi_split_path_info and fastcgi_index, for $fastcgi_script_name and $fastcgi_path_info. */
  readonly fastcgiNames: FastcgiNames;
  /** `error_page` by status; undefined when the level has none. */
  readonly errorPages: ReadonlyMap<number, CompiledErrorPage> | undefined;
  /** `client_header_timeout`, `client_body_timeout`, `send_timeout`, in ms. */
  readonly clientHeaderTimeoutMs: number;
  readonly clientBodyTimeoutMs: number;
  readonly sendTimeoutMs: number;
  /** realip and the limits of the preaccess phase; undefined when the level has none. */
  readonly preaccess: Preaccess | undefined;
  /** allow/deny, auth_basic and satisfy of the access phase; undefined when the level checks nothing. */
  readonly access: AccessPhase | undefined;
  /** server_tokens, chunked_transfer_encoding, keepalive_disable, msie_padding, recursive_error_pages, limit_except. */
  readonly core: CoreLevel;
  /** root/alias, index, autoindex, try_files and the file filters (static.ts). */
  readonly files: CompiledStatic;
  /** `absolute_redirect`, `port_in_redirect`, `server_name_in_redirect`. */
  readonly redirect: { readonly absolute: boolean; readonly port: boolean; readonly serverName: boolean };
  /** `tcp_nodelay`. */
  readonly tcpNodelay: boolean;
  /** `valid_referers`, merged; undefined when no level up to the server has one. */
  readonly referers: RefererCheck | undefined;
  /** The output filters (gzip, charset) the level's directives turn on, in nginx's order. */
  readonly output: readonly OutputFilter[];
  /** `limit_rate` and `limit_rate_after`. */
  readonly limitRate: LimitRate | undefined;
  /** `mirror`, `mirror_request_body` and `log_subrequest`. */
  readonly mirror: CompiledMirror;
  /** `client_body_temp_path`, `client_body_in_file_only`, `client_body_buffer_size`. */
  readonly bodyFile: BodyFileSettings;
}

/** A virtual server. */
export interface CompiledServer {
  /** `$server_name`. */
  readonly serverName: string;
  readonly names: readonly ServerName[];
  /** The server's own level, used for its `return` and when no location matches. */
  readonly level: LevelConfig;
  readonly locations: LocationTree<LevelConfig>;
  /** The server's certificates and ssl_* settings as a TLS context, for `listen ... ssl`. */
  readonly tls: ServerTls;
  /** `http2_max_concurrent_streams`, for HTTP/2 connections this server is the default of. */
  readonly maxConcurrentStreams: number;
  /** `http2`: whether ALPN offers h2 to a handshake whose SNI names this server, and a stream may reach it. */
  readonly http2: boolean;
  /** `http2_body_preread_size`: the initial stream window of those connections. */
  readonly prereadSize: number;
  /** Head limits, merge_slashes, lingering close: what connections this server is the default of take. */
  readonly connection: CoreConnection;
}

/** The addresses one listening socket serves and how each picks its virtual server. */
export interface SocketRoutes {
  readonly spec: ListenSpec;
  /** Implicit addresses a wildcard socket also serves, by local IP (nginx's getsockname() lookup). */
  readonly byLocalAddress: ReadonlyMap<string, VirtualHosts<CompiledServer>>;
  /** The socket's own address. */
  readonly own: VirtualHosts<CompiledServer>;
}

/** The compiled HTTP side of one configuration. */
export class HttpGeneration {
  readonly sockets = new Map<string, SocketRoutes>();
  readonly logs: AccessLogs;
  /** The `error_log` files of the http, server and location levels. */
  readonly errorLogs: LevelErrorLogs;
  readonly variables: VariableTable<HttpRequest>;
  /** The `upstream` groups, by name. */
  readonly groups: ReadonlyMap<string, UpstreamGroup<HttpRequest>>;
  readonly #implicitGroups = new Map<string, UpstreamGroup<HttpRequest>>();
  /** proxy_ssl_certificate_cache and ssl_certificate_cache: one cache per directive, shared by the levels that inherit it. */
  readonly #certificateCaches = new CertificateCaches();
  /** The `resolver`s of proxy_pass URLs with variables, and the groups their answers made. */
  readonly #resolvers = new Resolvers<HttpRequest>();
  /** The `open_file_cache`s of this generation's levels. */
  readonly #fileCaches = new OpenFileCaches();
  readonly #h2c = new Set<VirtualHosts<CompiledServer>>();
  /** The addresses with `listen ... http2`. */
  readonly #http2Listen = new Set<VirtualHosts<CompiledServer>>();
  readonly #proxyProtocol = new Set<VirtualHosts<CompiledServer>>();
  readonly #tls = new Map<VirtualHosts<CompiledServer>, TlsTermination<CompiledServer>>();
  readonly #http: ConfBlockView | undefined;
  /** The auth_basic_user_file files, parsed once per change. */
  readonly #userFiles = new UserFiles();
  /** The names of request body files (ngx_next_temp_number()). */
  readonly #tempNumbers = new TempNumbers();

  readonly #state: ServingState;
  readonly #log: ErrorLog;

  /**
   * Compiles `config`; opens the access log files. Throws if the configuration was not validated.
   * `state` is the running server's (TLS store and keys, zones); default: one of its own.
   */
  constructor(config: HitlessConfig, log: ErrorLog, state: ServingState = localServingState()) {
    this.#state = state;
    this.#log = log;
    this.errorLogs = new LevelErrorLogs(log);
    const http = config.main.child('http');
    this.variables = createHttpVariables(http === undefined ? [] : captureNamesOf(http));
    if (http !== undefined) defineMapVariables(this.variables, http.get('map'));
    if (http !== undefined) defineSplitClientsVariables(this.variables, http.get('split_clients'));
    if (http !== undefined) defineGeoVariables(this.variables, http.get('geo'));
    if (http !== undefined) defineSetVariables(this.variables, http);
    this.#http = http;
    this.logs = new AccessLogs(http?.get('log_format') ?? [], this.variables, log, {
      rootOf: (request) => request.files?.(request).root,
      where: (request) => ({ log: request.errorLog, connection: request.connection.number, context: ` while logging request${requestLogContext(request)}` }),
    });
    this.groups = http === undefined ? new Map() : buildUpstreamGroups(http, this.variables, state.upstreams, () => this.#log);
    if (http === undefined) return;
    const levels = new Map<ConfBlockView, LevelConfig>();
    const levelOf = (block: ConfBlockView): LevelConfig => {
      let level = levels.get(block);
      if (level === undefined) {
        // An `if` in a location is a location of its own that inherits the enclosing one's.
        const compiled: { -readonly [K in keyof LevelConfig]: LevelConfig[K] } = this.#compileLevel(block.context === 'location_if' ? ifLocationView(block) : block);
        levels.set(block, compiled);
        // After the level is known, so that its `if` blocks can reach it.
        compiled.script = compileScript(block, this.variables, levelOf);
        level = compiled;
      }
      return level;
    };
    const servers = new Map<ConfBlockView, CompiledServer>();
    for (const block of serversOf(http)) {
      const tls = serverTlsOf(block);
      servers.set(block, {
        serverName: toByteString(primaryServerName(block.get('server_name'))),
        names: block.get('server_name'),
        level: levelOf(block),
        locations: LocationTree.build(block, levelOf, (level) => level.proxy !== undefined || level.grpc !== undefined || level.fastcgi !== undefined),
        // Certificate names with variables are evaluated with this generation's variables (maps included).
        tls: this.#bindTls(block, tls, state, log),
        maxConcurrentStreams: block.get('http2_max_concurrent_streams'),
        prereadSize: block.get('http2_body_preread_size'),
        http2: block.get('http2'),
        connection: compileCoreConnection(block),
      });
    }
    const serverOf = (block: ConfBlockView): CompiledServer => servers.get(block) as CompiledServer;
    for (const socket of groupListens(http)) {
      const hosts = socket.addrs.map((addr) =>
        VirtualHosts.build(addr.servers.map(serverOf), serverOf(addr.defaultServer), (server) => server.names, addr.listen.addrText, {
          invalid: () => undefined,
          conflict: (reason) => {
            if (addr.servers.length > 1) log.warn(reason);
          },
        }),
      );
      const byLocalAddress = new Map<string, VirtualHosts<CompiledServer>>();
      socket.addrs.forEach((addr, i) => {
        byLocalAddress.set(addr.listen.address, hosts[i] as VirtualHosts<CompiledServer>);
        // h2c by prior knowledge: `listen ... http2` or the default server's `http2 on` (ngx_http_wait_request_handler).
        if (!addr.ssl && (addr.http2 || addr.defaultServer.get('http2'))) this.#h2c.add(hosts[i] as VirtualHosts<CompiledServer>);
        if (addr.http2) this.#http2Listen.add(hosts[i] as VirtualHosts<CompiledServer>);
        if (addr.proxyProtocol) this.#proxyProtocol.add(hosts[i] as VirtualHosts<CompiledServer>);
        // With ssl, ALPN offers h2 on the same terms (ngx_http_ssl_alpn_select()).
        if (addr.ssl) {
          const routes = hosts[i] as VirtualHosts<CompiledServer>;
          // ngx_http_ssl_alpn_select(): h2 when the server the SNI names (or the default) has http2 on.
          const http2Listen = addr.http2;
          this.#tls.set(routes, new TlsTermination(routes, (server) => server.tls, state.tls, (server) => http2Listen || server.http2, undefined, log));
        }
      });
      this.sockets.set(socket.spec.key, { spec: socket.spec, byLocalAddress, own: hosts[hosts.length - 1] as VirtualHosts<CompiledServer> });
    }
  }

  /** The ACME challenges this server answers (the running server's, tls/acme-challenges.ts). */
  get acmeChallenges(): AcmeChallenges {
    return this.#state.tls.acmeChallenges;
  }

  /**
   * A server's TLS as its handshakes use it: certificate names with variables evaluated with this
   * generation's variables (maps included), `$acme_certificate` read from the store.
   */
  #bindTls(block: ConfBlockView, tls: ServerTls, state: ServingState, log: ErrorLog): ServerTls {
    if (tls.acme === true && tls.contextFor !== undefined) {
      const name = acmeStoreNameOf(block);
      return { ...tls, select: acmeCertificateSelect(name, state.tls.certificates, tls.contextFor, log), storedContext: acmeStoredContext(name, state.tls.certificates, tls.contextFor) };
    }
    if (tls.variable === undefined) return tls;
    return { ...tls, select: tls.variable.bind(this.variables, handshakeRequest, log, this.#certificateCaches) };
  }

  #compileLevel(block: ConfBlockView): LevelConfig {
    const table = this.variables;
    const text = (template: Parameters<typeof compileTemplate>[0]): CompiledTemplate<HttpRequest> => compileTemplate(template, table, { literal: toByteString });
    const keepalive = block.get('keepalive_timeout');
    return {
      script: [],
      rewriteLog: block.context !== 'main' && block.context !== 'http' ? block.get('rewrite_log') : false,
      uninitializedWarn: block.context !== 'main' && block.context !== 'http' ? block.get('uninitialized_variable_warn') : true,
      headers: block.get('add_header').map((header) => ({ name: header.name, value: text(header.value), always: header.always })),
      trailers: block.get('add_trailer').map((header) => ({ name: header.name, value: text(header.value), always: header.always })),
      expires: compileExpires(block.get('expires'), text),
      accessLogs: this.logs.compile(block.get('access_log'), block.get('open_log_file_cache')),
      keepaliveTimeoutMs: keepalive.timeoutMs,
      keepaliveHeaderSeconds: keepalive.headerSeconds,
      keepaliveRequests: block.get('keepalive_requests'),
      keepaliveTimeMs: block.get('keepalive_time'),
      defaultType: block.get('default_type'),
      proxy: this.#compileProxy(block),
      limitExceptProxy: this.#compileLimitExceptProxy(block),
      grpc: block.name === 'location' && block.isSet('grpc_pass') ? compileGrpc(block, block.get('grpc_pass'), this.groups, this.#implicitGroups, table, this.#certificateCaches, this.#resolvers) : undefined,
      fastcgi: block.isSet('fastcgi_pass')
        ? compileFastcgi(block, block.get('fastcgi_pass'), this.groups, this.#implicitGroups, table)
        : block.isSet('uwsgi_pass')
          ? compileFastcgi(block, block.get('uwsgi_pass'), this.groups, this.#implicitGroups, table, 'uwsgi', this.#certificateCaches)
          : block.isSet('scgi_pass')
            ? compileFastcgi(block, block.get('scgi_pass'), this.groups, this.#implicitGroups, table, 'scgi')
            : undefined,
      fastcgiNames: compileFastcgiNames(block),
      preaccess: this.#http === undefined ? undefined : compilePreaccess(block, this.#http, table, this.#state.zones),
      access: compileAccessPhase(block, table, this.#userFiles),
      errorPages: compileErrorPages(block.get('error_page'), table),
      errorLog: this.errorLogs.of(ownErrorLog(block)),
      clientHeaderTimeoutMs: block.context === 'server' ? block.get('client_header_timeout') : 60_000,
      clientBodyTimeoutMs: block.get('client_body_timeout'),
      sendTimeoutMs: block.get('send_timeout'),
      core: compileCoreLevel(block),
      files: compileStatic(block, table, this.#fileCaches, this.#state.metrics),
      tcpNodelay: block.get('tcp_nodelay'),
      referers: compileReferers(block),
      output: compileOutputFilters(block, this.#log, table),
      limitRate: compileLimitRate(block, table, requestErrorReporter(this.#log)),
      mirror: compileMirror(block),
      bodyFile: compileBodyFile(block, this.#tempNumbers),
      redirect: { absolute: block.get('absolute_redirect'), port: block.get('port_in_redirect'), serverName: block.get('server_name_in_redirect') },
    };
  }

  #compileProxy(block: ConfBlockView): CompiledProxy | undefined {
    if (block.name !== 'location' || !block.isSet('proxy_pass')) return undefined;
    const target = block.get('proxy_pass');
    if (target === undefined) return undefined;
    return compileProxy(block, target, this.groups, this.#implicitGroups, this.variables, this.#resolvers, this.#state.upstreams.connections, this.#certificateCaches);
  }

  #compileLimitExceptProxy(block: ConfBlockView): LevelConfig['limitExceptProxy'] {
    const limit = block.name === 'location' ? block.blocks.find((child) => child.name === 'limit_except') : undefined;
    if (limit === undefined || !limit.isSet('proxy_pass')) return undefined;
    const target = limit.get('proxy_pass');
    if (target === undefined) return undefined;
    // The block's own proxy_pass with the location's other proxy_* settings, as nginx merges them.
    const view: ConfBlockView = { ...block, get: (name) => (limit.isSet(name) ? limit.get(name) : block.get(name)), isSet: (name) => limit.isSet(name) || block.isSet(name) };
    const proxy = compileProxy(view, target, this.groups, this.#implicitGroups, this.variables, this.#resolvers, this.#state.upstreams.connections, this.#certificateCaches);
    return { methods: (limit.value as LimitExcept).methods, proxy };
  }

  /** Every upstream group of this generation: the named ones, then the implicit ones made so far. */
  upstreamGroups(): UpstreamGroup<HttpRequest>[] {
    return [...this.groups.values(), ...this.#implicitGroups.values(), ...this.#resolvers.groups()];
  }

  /** Closes every idle upstream connection of this generation. */
  closeUpstreams(): void {
    for (const group of this.groups.values()) group.close();
    for (const group of this.#implicitGroups.values()) group.close();
    this.#resolvers.close();
  }

  /** Closes the descriptors of the open file caches (those a response still reads close after it). */
  closeFiles(): void {
    this.#fileCaches.close();
  }

  /** True when connections to these virtual servers may speak HTTP/2 over cleartext (the preface decides). */
  /** True for an address with `listen ... http2`, where every server takes HTTP/2. */
  listensHttp2(hosts: VirtualHosts<CompiledServer>): boolean {
    return this.#http2Listen.has(hosts);
  }

  speaksH2c(hosts: VirtualHosts<CompiledServer>): boolean {
    return this.#h2c.has(hosts);
  }

  /** True when connections to these virtual servers begin with a PROXY protocol header (`listen ... proxy_protocol`). */
  readsProxyProtocol(hosts: VirtualHosts<CompiledServer>): boolean {
    return this.#proxyProtocol.has(hosts);
  }

  /** The TLS termination of a `listen ... ssl` address; undefined for a plain one. */
  tlsFor(hosts: VirtualHosts<CompiledServer>): TlsTermination<CompiledServer> | undefined {
    return this.#tls.get(hosts);
  }

  /** The virtual servers for a connection accepted on socket `key` at local address `localAddress`. */
  routesFor(key: string, localAddress: string | undefined): VirtualHosts<CompiledServer> | undefined {
    const routes = this.sockets.get(key);
    if (routes === undefined) return undefined;
    if (routes.byLocalAddress.size === 1 || localAddress === undefined) return routes.own;
    const local = localAddress.startsWith('::ffff:') ? localAddress.slice(7) : localAddress;
    return routes.byLocalAddress.get(local) ?? routes.own;
  }
}


/**
 * An `if` in a location seen as the location configuration nginx makes of it (ngx_http_rewrite_if()
 * and the modules' merge_loc_conf): what the block sets, else its location's settings, with the
 * location's name; try_files and limit_except, which nginx does not merge, stay the block's own.
 */
function ifLocationView(block: ConfBlockView): ConfBlockView {
  const parent = block.parent as ConfBlockView;
  return {
    context: 'location',
    name: 'location',
    args: parent.args,
    value: parent.value,
    file: block.file,
    line: block.line,
    parent: parent.parent,
    blocks: [],
    get: (name) => (block.isSet(name) ? block.get(name) : parent.get(name)),
    isSet: (name) => block.isSet(name) || (name !== 'try_files' && parent.isSet(name)),
  };
}
