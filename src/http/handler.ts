/**
 * The request pipeline of one generation, in nginx's phase order: parse the target and host,
 * choose the virtual server and apply realip (post-read), run the server's rewrite script (server
 * rewrite), choose the location (find config), run its script (rewrite), find it again while a
 * rewrite changed the URI (post-rewrite, rewrite-script.ts), apply limit_req and limit_conn
 * (preaccess), then the content: proxy_pass, or files (static.ts); error_page may redirect
 * internally on the way out; then the header filter (`add_header`, keep-alive) and the log phase.
 */
import { channels } from '../core/diagnostics.js';
import type { ErrorLog } from '../core/log.js';
import { logRequest } from './access-log.js';
import { runAccessPhase, type AccessDenial } from './access-phase.js';
import type { ClientConnection } from './connections.js';
import type { CompiledServer, LevelConfig } from './generation.js';
import type { HttpExchange } from './exchange.js';
import { ADD_HEADER_STATUSES, addHeaderField } from './headers-module.js';
import { applyExpires } from './expires.js';
import { withTrailers } from './trailers.js';
import { keepaliveDisabledFor, msiePaddingFor } from './core-level.js';
import { errorPageAction } from './error-pages.js';
import type { CompiledProxy } from './proxy-config.js';
import { FilteredExchange } from './output-filter.js';
import { runPreaccess, type Preaccess } from './preaccess.js';
import { grpcRequest } from './grpc.js';
import { fastcgiRequest } from './fastcgi.js';
import { isSubrequest, mirrorSubrequest, runMirror } from './mirror.js';
import { proxyRequest as proxyHttp1Request, type ProxyContext, type UpstreamContext } from './proxy.js';
import { proxyH2Request } from './proxy-h2.js';
import { parseUnsafeUri } from './unsafe-uri.js';
import { applyRealIp } from './realip-module.js';
import { HttpRequest, requestLogContext } from './request.js';
import { clientVerdict } from '../tls/client-verify.js';
import { CLOSE_AFTER_PAGE, REDIRECT_STATUSES, specialPage, statusHasNoBody, wireStatus } from './responses.js';
import { runScript } from './rewrite-script.js';
import { acmeChallengeAnswer } from './acme-challenge.js';
import { AcmeChallenges } from '../tls/acme-challenges.js';
import { escapeRedirectUri, runTryFiles, serveFiles, type StaticContext } from './static.js';
import { normalizeUri, parseRequestTarget, validateHost } from './uri.js';

/** The response a phase decided on. */
interface ResponsePlan {
  readonly status: number;
  /** A byte string; undefined for nginx's built-in page (or none). */
  readonly body?: string;
  readonly location?: string;
  /** The location proxies the request: the content comes from upstream. */
  readonly proxy?: true;
  /** The content phase answers (proxy_pass or 404): the preaccess phase (realip, limits) runs first. */
  readonly content?: true;
  /** The location serves files (root/alias, index, autoindex, try_files). */
  readonly files?: true;
  /** Headers a filter added to the response (Content-Range of a 416). */
  readonly headers?: readonly string[];
  /** The Content-Type of `body`; default: the level's default_type. */
  readonly type?: string;
  /** The connection closes after the response. */
  readonly close?: true;
}

/** Handles the requests of one generation's connections. */
export class RequestHandler {
  readonly #log: ErrorLog;
  readonly #challenges: AcmeChallenges;
  /** nginx's temp number (ngx_next_temp_number()), for multipart/byteranges boundaries. */
  #boundary = 0;

  /** `challenges`: the ACME http-01 tokens the post-read phase answers (acme-challenge.ts). */
  constructor(log: ErrorLog, challenges: AcmeChallenges = new AcmeChallenges()) {
    this.#log = log;
    this.#challenges = challenges;
  }

  /** Where errors about `request` go: its level's error_log (ngx_http_update_location_config()). */
  #logOf(request: HttpRequest): ErrorLog {
    return request.errorLog ?? this.#log;
  }

  /** One request, parsed by the connection. */
  handle(conn: ClientConnection, protocol: HttpExchange): void {
    const request = new HttpRequest(protocol.head, conn, Date.now());
    // Every response leaves through the output filter chain; applyLevel() gives it the level's filters.
    let exchange: HttpExchange = new FilteredExchange(protocol, request);
    request.pipelined = exchange.pipelined === true;
    let level: LevelConfig = conn.hosts.defaultServer.level;
    request.errorLog = level.errorLog;
    exchange.onFinish(() => {
      // nginx's 499: the client closed the connection before the response was sent.
      if (exchange.aborted && !exchange.headersSent && request.status !== 444) request.status = 499;
      request.completed = !exchange.aborted;
      request.bodyBytesSent = exchange.bodyBytesSent;
      const finish = (logs: LevelConfig['accessLogs'], logged: HttpRequest): void => {
        // nginx logs in ngx_http_free_request(), before it closes the connection: a client that sees
        // the close finds the line written.
        logRequest(logs, logged, !exchange.keepAlive);
        channels.requestFinish.publishLazy(() => ({ protocol: 'http', request }));
      };
      // A tunnel after a 101 is logged when it closes, with the bytes it carried (ngx_http_upstream_upgrade()).
      const tunnel = request.tunnel;
      if (tunnel !== undefined) {
        tunnel.onClose(() => {
          request.bodyBytesSent += tunnel.bytesToClient;
          finish(level.accessLogs, request);
        });
        return;
      }
      const postAction = level.mirror.postAction;
      if (postAction === undefined) finish(level.accessLogs, request);
      else this.#postAction(conn, request, postAction, level, finish);
    });
    try {
      const [chosen, plan] = this.#process(conn, request);
      level = chosen;
      if (level.trailers.length > 0) exchange = withTrailers(exchange, level.trailers, request);
      const preaccess = plan.content ? level.preaccess : undefined;
      if (preaccess !== undefined && (preaccess.req !== undefined || preaccess.conn !== undefined)) {
        this.#limited(conn, request, exchange, level, plan, preaccess);
        return;
      }
      applyRealIp(request, preaccess?.realip);
      this.#access(conn, request, exchange, level, plan);
    } catch (err) {
      this.#logOf(request).error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    }
  }

  #process(conn: ClientConnection, request: HttpRequest): [LevelConfig, ResponsePlan] {
    const fallback = conn.hosts.defaultServer;
    const refuse = (message: string): [LevelConfig, ResponsePlan] => {
      request.serverName = fallback.serverName;
      // The default server's error_page answers too (its locations serve an internal redirect).
      request.server = fallback;
      this.#logOf(request).info(`${message}${context(request, conn)}`, conn.number);
      return [fallback.level, { status: 400 }];
    };
    // ngx_http_v2_parse_method(): an HTTP/2 method is upper-case letters, '_' and '-' (nghttp2
    // lets any token by); a 400 the error_page of the default server answers, as over HTTP/1.
    if ((request.head as { versionMajor?: number }).versionMajor === 2 && !/^[A-Z_-]+$/.test(request.head.method)) return refuse('client sent invalid method');
    const target = parseRequestTarget(request.head.target);
    if (target === undefined) return refuse('client sent invalid request');
    request.requestUri = target.requestUri;
    request.args = target.args;
    request.hasArgs = target.hasArgs;
    const uri = normalizeUri(target.path, conn.hosts.defaultServer.connection.mergeSlashes);
    if (uri === undefined) return refuse('client sent invalid request');
    request.uri = uri;
    const rawHost = target.host ?? request.header('host');
    if (rawHost !== undefined) {
      const valid = validateHost(rawHost);
      if (valid === undefined) return refuse('client sent invalid host header');
      request.host = valid.host;
      request.port = valid.port;
    } else if (request.head.versionMinor === 1) {
      return refuse('client sent HTTP/1.1 request without "Host" header');
    }
    const { server, match } = conn.hosts.find(request.host);
    request.server = server;
    request.serverName = server.serverName;
    request.errorLog = server.level.errorLog;
    request.captures = match;
    // ngx_http_process_request(): nginx reads plain HTTP on an ssl port to a server, then answers 497.
    if (conn.plainHttp) {
      this.#logOf(request).info(`client sent plain HTTP request to HTTPS port${context(request, conn)}`, conn.number);
      return [server.level, { status: 497 }];
    }
    // ngx_http_v2_run_request(): an HTTP/2 stream may not reach a server with http2 off, unless the
    // address has `listen ... http2`.
    if ((request.head as { versionMajor?: number }).versionMajor === 2 && !server.http2 && !conn.http2Listen) {
      this.#logOf(request).info(`client attempted to request the server name for which the negotiated protocol is disabled${context(request, conn)}`, conn.number);
      return [server.level, { status: 421 }];
    }
    const tls = conn.tls;
    // ngx_http_set_virtual_server(): with SNI, a Host naming another name may not reach a server that
    // verifies clients, whose certificate the handshake's server did not check.
    if (tls !== undefined && tls.serverName !== '' && request.host !== tls.serverName.toLowerCase() && server.tls.verify.mode !== 'off') {
      this.#logOf(request).info(`client attempted to request the server name different from the one that was negotiated${context(request, conn)}`, conn.number);
      return [server.level, { status: 421 }];
    }
    // A resumed session was accepted under the default server's session id context (Node picks the
    // SNI server only after OpenSSL resumed it), so it carries that server's client verification:
    // nginx would have made a full handshake with the right server; hitless asks for a new connection.
    if (tls !== undefined && tls.sessionReused === 'r' && server.tls.verify.mode !== 'off' && server.tls.verify.sessionContext !== conn.hosts.defaultServer.tls.verify.sessionContext) {
      this.#logOf(request).info(`client resumed a TLS session negotiated under another server's client verification${context(request, conn)}`, conn.number);
      return [server.level, { status: 421 }];
    }
    // ngx_http_process_request(): the Host's server judges the certificate the handshake's server asked for.
    const verdict = conn.tls === undefined ? undefined : clientVerdict(server.tls.verify, conn.tls.client);
    if (verdict !== undefined) {
      const reason = verdict.status === 495 ? `client SSL certificate verify error: (${verdict.error.number}:${verdict.error.reason})` : 'client sent no required SSL certificate';
      this.#logOf(request).info(`${reason} while reading client request headers${context(request, conn)}`, conn.number);
      return [server.level, { status: verdict.status }];
    }
    // The post-read phase: realip with the server's settings, and nginx-acme's http-01 responder.
    applyRealIp(request, server.level.preaccess?.realip);
    if (this.#challenges.hasHttp) {
      const answer = acmeChallengeAnswer(request, this.#challenges);
      if (answer !== undefined) return [server.level, answer];
    }
    return this.#rewritePhases(conn, request, server, undefined);
  }

  /**
   * nginx's server rewrite, find-config, rewrite and post-rewrite phases: the server's script, then
   * the location for the URI and its script, again while a `rewrite` changed the URI (at most 10
   * times, ngx_http_core_post_rewrite_phase()). `named` starts at a named location's script, as
   * ngx_http_named_location() does. The level returned is the location's, or its last true `if`'s.
   */
  #rewritePhases(conn: ClientConnection, request: HttpRequest, server: CompiledServer, named: LevelConfig | undefined): [LevelConfig, ResponsePlan] {
    if (named === undefined) {
      const { plan } = this.#script(server.level, request, conn, server);
      if (plan !== undefined) return [server.level, plan];
    }
    for (;;) {
      let level: LevelConfig;
      if (named !== undefined) {
        level = named;
        named = undefined;
      } else {
        const uri = request.uri;
        if (server.locations.autoRedirect(uri)) {
          const location = `${escapeRedirectUri(uri)}/${request.hasArgs && request.args !== '' ? `?${request.args}` : ''}`;
          return [server.level, { status: 301, location: absoluteLocation(location, request, conn, server, server.level) }];
        }
        const found = server.locations.find(uri);
        request.files = (found?.value ?? server.level).files.paths;
        request.fastcgiNames = (found?.value ?? server.level).fastcgiNames;
        request.errorLog = (found?.value ?? server.level).errorLog;
        request.referers = (found?.value ?? server.level).referers;
        if (found === undefined) {
          this.#bindLevel(server.level, request, conn);
          return [server.level, { status: 0, files: true, content: true }];
        }
        if (found.match !== undefined) request.captures = found.match;
        level = found.value;
        // ngx_http_core_find_config_phase(): an `internal` location answers a client's own request with 404.
        if (level.files.internal && !request.internal) return [level, { status: 404 }];
      }
      const before = request.uriChanges;
      const { plan, chosen } = this.#script(level, request, conn, server);
      if (plan !== undefined) return [chosen, plan];
      if (request.uriChanges === before) {
        this.#bindLevel(chosen, request, conn);
        request.files = chosen.files.paths;
        request.fastcgiNames = chosen.fastcgiNames;
        request.errorLog = chosen.errorLog;
        request.referers = chosen.referers;
        if (chosen.proxy !== undefined || chosen.grpc !== undefined || chosen.fastcgi !== undefined || (chosen.limitExceptProxy !== undefined && !chosen.limitExceptProxy.methods.has(request.head.method))) return [chosen, { status: 0, proxy: true, content: true }];
        return [chosen, { status: 0, files: true, content: true }];
      }
      // ngx_http_core_post_rewrite_phase(): the URI changed; find the location again, 10 times at most.
      if (request.uriChanges > 10) {
        this.#logOf(request).error(`rewrite or internal redirection cycle while processing "${request.uri}"${context(request, conn)}`, conn.number);
        return [chosen, { status: 500 }];
      }
    }
  }

  /**
   * Runs a level's rewrite script: the plan when it answers (return, redirect, error), and the
   * level that serves from now on (the last true `if`'s, else the level). A location's URI change
   * counts in `request.uriChanges`.
   */
  #script(level: LevelConfig, request: HttpRequest, conn: ClientConnection, server: CompiledServer): { plan: ResponsePlan | undefined; chosen: LevelConfig } {
    this.#bindLevel(level, request, conn);
    if (level.script.length === 0) return { plan: undefined, chosen: level };
    const outcome = runScript(level.script, request, { log: this.#logOf(request), connection: conn.number, where: () => context(request, conn), rewriteLog: level.rewriteLog });
    const chosen = outcome.level ?? level;
    if (chosen !== level) this.#bindLevel(chosen, request, conn);
    let plan: ResponsePlan;
    switch (outcome.kind) {
      case 'continue':
        if (outcome.uriChanged && level !== server.level) request.uriChanges++;
        // "if is evil": a proxy_pass of an earlier true `if` stays the content handler, and finds no
        // upstream in the last one's configuration (ngx_http_upstream_init_request()).
        if (!outcome.uriChanged && chosen.proxy === undefined && chosen.grpc === undefined && chosen.fastcgi === undefined && outcome.matched.some((matched) => matched.proxy !== undefined || matched.grpc !== undefined || matched.fastcgi !== undefined)) {
          this.#logOf(request).write('alert', `no upstream configuration${context(request, conn)}`, conn.number);
          return { plan: { status: 500 }, chosen };
        }
        return { plan: undefined, chosen };
      case 'error':
        plan = { status: 500 };
        break;
      case 'redirect':
        plan = { status: outcome.status, location: absoluteLocation(outcome.location, request, conn, server, chosen) };
        break;
      case 'return':
        plan = returnPlan(outcome.status, outcome.text, request, conn, server, chosen);
        break;
    }
    return { plan, chosen };
  }

  /** The level whose settings the request reads variables under (`uninitialized_variable_warn`). */
  #bindLevel(level: LevelConfig, request: HttpRequest, conn: ClientConnection): void {
    request.uninitialized = level.uninitializedWarn
      ? (name) => this.#logOf(request).warn(`using uninitialized "${name}" variable${context(request, conn)}`, conn.number)
      : undefined;
  }

  /** The preaccess phase with limits, which waits on the shared zones; then the content, or the rejection. */
  #limited(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, plan: ResponsePlan, preaccess: Preaccess): void {
    const out = { log: this.#logOf(request), connection: conn.number, context: () => context(request, conn) };
    runPreaccess(preaccess, request, exchange, out).then((status) => {
      // A client gone while its request waited is finished (499) already.
      if (exchange.aborted) return;
      if (status !== undefined) this.#send(conn, request, exchange, level, { status });
      else this.#access(conn, request, exchange, level, plan);
    }).catch((err: unknown) => {
      this.#logOf(request).error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    });
  }

  /** The access phase (access-phase.ts: allow/deny, auth_basic, satisfy), then the content; or the denial. */
  #access(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, plan: ResponsePlan): void {
    // ngx_http_core_access_phase(): a subrequest (a mirror) skips the access phase.
    const phase = plan.content && !isSubrequest(exchange) ? level.access : undefined;
    const denial = phase === undefined ? undefined : runAccessPhase(phase, request, { log: this.#logOf(request), connection: conn.number, context: () => context(request, conn) });
    if (!(denial instanceof Promise)) {
      this.#afterAccess(conn, request, exchange, level, plan, denial);
      return;
    }
    denial.then((result) => {
      if (!exchange.aborted) this.#afterAccess(conn, request, exchange, level, plan, result);
    }).catch((err: unknown) => {
      this.#logOf(request).error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    });
  }

  #afterAccess(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, plan: ResponsePlan, denial: AccessDenial | undefined): void {
    if (denial !== undefined) {
      // ngx_http_special_response_handler(): the denial's own status, not an error_page's override.
      request.statusOverride = undefined;
      this.#send(conn, request, exchange, level, { status: denial.status, ...(denial.headers === undefined ? {} : { headers: denial.headers }) });
    }
    // The precontent phase (mirror), then the content.
    else if (plan.proxy || plan.files) this.#precontent(conn, request, exchange, level, () => (plan.proxy ? this.#proxy(conn, request, exchange, level) : this.#files(conn, request, exchange, level)));
    else this.#send(conn, request, exchange, level, plan);
  }

  /** The content phase of a proxy_pass or grpc_pass location. */
  #proxy(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig): void {
    const fail: UpstreamContext['fail'] = (status) => {
      if (exchange.headersSent) conn.protocol.destroy();
      else this.#send(conn, request, exchange, level, { status });
    };
    const headers: UpstreamContext['headers'] = (status, list) => {
      this.applyLevel(exchange, conn, level, false, request);
      addHeaders(list, level, request, status);
      request.sentHeaders = list;
    };
    // Object literals, not a spread of a shared base: a spread costs about 8% of proxied
    // requests/s in bench/ (the copies' property loads in the proxy stop being monomorphic).
    if (level.grpc !== undefined) {
      const grpc = level.grpc;
      const pass = (): void => {
        const routed = grpc.routed(request);
        if (typeof routed === 'string') {
          this.#logOf(request).error(`${routed}${context(request, conn)}`, conn.number);
          fail(502);
          return;
        }
        grpcRequest({ exchange, request, conn, log: this.#logOf(request), fail, headers, grpc: routed });
      };
      const resolving = grpc.resolveHost(request);
      if (resolving === undefined) {
        pass();
        return;
      }
      // ngx_http_upstream_resolve_handler(): the request waits on the resolver, then goes on or gets 502.
      void resolving.then((error) => {
        if (exchange.aborted) return;
        if (error === undefined) {
          pass();
          return;
        }
        this.#logOf(request).error(`${error}${context(request, conn)}`, conn.number);
        fail(502);
      });
      return;
    }
    if (level.fastcgi !== undefined) {
      const fastcgi = level.fastcgi;
      const accel = (target: string, carried: string[]): void => this.#accelRedirect(conn, request, exchange, level, target, carried);
      const pass = (): void => fastcgiRequest({ exchange, request, conn, log: this.#logOf(request), fail, headers, fastcgi, accelRedirect: accel, bodyFile: level.bodyFile });
      // ngx_http_core_try_files_phase() runs before any content handler: `try_files $fastcgi_script_name =404`.
      if (level.files.tryFiles !== undefined) this.#files(conn, request, exchange, level, pass);
      else pass();
      return;
    }
    const limited = level.limitExceptProxy;
    const proxy = limited !== undefined && !limited.methods.has(request.head.method) ? limited.proxy : (level.proxy as CompiledProxy);
    const server = request.server as CompiledServer | undefined;
    const absolute = (location: string): string => (server === undefined ? location : absoluteLocation(location, request, conn, server, level));
    request.proxyHost = proxy.proxyHostOf(request);
    request.proxyScheme = proxy.scheme;
    const accelRedirect: ProxyContext['accelRedirect'] = (target, carried) => this.#accelRedirect(conn, request, exchange, level, target, carried);
    const resolving = proxy.resolveHost(request);
    // proxy_http_version 2: the same proxy over an HTTP/2 stream (ngx_http_proxy_handler() hands it to ngx_http_proxy_v2_handler()).
    const proxyRequest = proxy.version === '2' ? proxyH2Request : proxyHttp1Request;
    if (resolving === undefined) {
      proxyRequest({ exchange, request, conn, log: this.#logOf(request), fail, headers, proxy, absoluteLocation: absolute, accelRedirect, bodyFile: level.bodyFile });
      return;
    }
    // ngx_http_upstream_resolve_handler(): the request waits on the resolver, then goes on or gets 502.
    void resolving.then((error) => {
      if (exchange.aborted) return;
      if (error === undefined) {
        proxyRequest({ exchange, request, conn, log: this.#logOf(request), fail, headers, proxy, absoluteLocation: absolute, accelRedirect, bodyFile: level.bodyFile });
        return;
      }
      this.#logOf(request).error(`${error}${context(request, conn)}`, conn.number);
      fail(502);
    });
  }

  /**
   * An upstream's X-Accel-Redirect (ngx_http_upstream_process_headers()): the kept headers, then
   * ngx_http_named_location() for `@name`, else ngx_http_internal_redirect() to the URI as GET
   * (HEAD stays HEAD); an unsafe URI (ngx_http_parse_unsafe_uri()) is a 404.
   */
  #accelRedirect(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, target: string, carried: string[]): void {
    const server = request.server as CompiledServer | undefined;
    if (server === undefined) {
      this.#send(conn, request, exchange, level, { status: 500 });
      return;
    }
    request.carriedHeaders = carried;
    let named: LevelConfig | undefined;
    if (target.startsWith('@')) {
      named = server.locations.named(target);
      if (named === undefined) {
        this.#logOf(request).error(`could not find named location "${target}"${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
      if (++request.uriChanges > 10) {
        this.#logOf(request).error(`rewrite or internal redirection cycle while redirect to named location "${target}"${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
    } else {
      const parsed = parseUnsafeUri(target);
      if (parsed === undefined) {
        this.#logOf(request).error(`unsafe URI "${target}" was detected${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 404 });
        return;
      }
      if (request.head.method !== 'HEAD') request.methodOverride = 'GET';
      if (++request.uriChanges > 10) {
        this.#logOf(request).error(`rewrite or internal redirection cycle while internally redirecting to "${parsed.uri}"${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
      request.uri = parsed.uri;
      request.args = parsed.args ?? '';
      request.hasArgs = parsed.args !== undefined;
    }
    request.internal = true;
    this.#content(conn, request, exchange, named, server);
  }

  /**
   * An error_page for the status, if the level has one: an internal redirect runs the new
   * location's content (return or proxy_pass), a URL is a redirect. True when it took over.
   */
  #errorPage(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, status: number, location?: string): boolean {
    const action = errorPageAction(level.errorPages, request, status, level.core.recursiveErrorPages);
    if (action === undefined) return false;
    if (action.kind === 'cycle') {
      this.#logOf(request).error(`rewrite or internal redirection cycle while internally redirecting to "${action.uri}"${context(request, conn)}`, conn.number);
      request.statusOverride = undefined;
      this.#send(conn, request, exchange, level, { status: 500 });
      return true;
    }
    if (action.kind === 'redirect') {
      this.#send(conn, request, exchange, level, { status: action.status, location: action.location });
      return true;
    }
    const server = request.server as CompiledServer | undefined;
    if (server === undefined) return false;
    // ngx_http_send_error_page(): a URI is redirected to as GET (HEAD stays HEAD); a named
    // location keeps the method, and the body read already goes to its upstream again.
    if (!action.uri.startsWith('@') && request.head.method !== 'HEAD') request.methodOverride = 'GET';
    request.statusOverride = action.status;
    if (location !== undefined && location !== '') request.locationCarried = location;
    let target: LevelConfig | undefined;
    if (action.uri.startsWith('@')) target = server.locations.named(action.uri);
    else {
      const query = action.uri.indexOf('?');
      request.uri = query === -1 ? action.uri : action.uri.slice(0, query);
      request.args = query === -1 ? '' : action.uri.slice(query + 1);
      request.hasArgs = query !== -1;
      const found = server.locations.find(request.uri);
      if (found?.match !== undefined) request.captures = found.match;
      // No location matches: the server's own settings serve the URI (its root, for a static page).
      target = found?.value ?? server.level;
    }
    if (target === undefined) {
      this.#logOf(request).error(`could not find named location "${action.uri}"${context(request, conn)}`, conn.number);
      this.#send(conn, request, exchange, level, { status: 500 });
      return true;
    }
    request.internal = true;
    this.#content(conn, request, exchange, action.uri.startsWith('@') ? target : undefined, server);
    return true;
  }

  /**
   * An internal redirect: to a URI, the rewrite phases from the server's script
   * (ngx_http_internal_redirect()); to a named location, from its script (ngx_http_named_location());
   * then the access phase of the location reached, and its content: a return, proxy_pass or files.
   */
  #content(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, named: LevelConfig | undefined, server: CompiledServer): void {
    const [level, plan] = this.#rewritePhases(conn, request, server, named);
    if (plan.proxy || plan.files) this.#access(conn, request, exchange, level, plan);
    else this.#send(conn, request, exchange, level, plan);
  }

  /**
   * The precontent phase: `mirror` starts its background subrequests (after reading the body with
   * mirror_request_body on), then `content` runs. A subrequest mirrors nothing (`r != r->main`).
   */
  #precontent(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, content: () => void): void {
    const mirror = level.mirror;
    if (mirror.uris.length === 0 || isSubrequest(exchange)) {
      content();
      return;
    }
    runMirror(mirror, request, exchange, {
      log: this.#logOf(request),
      connection: conn.number,
      where: () => context(request, conn),
      spawn: (uri) => this.#subrequest(conn, request, uri),
      proceed: content,
      fail: (status) => this.#send(conn, request, exchange, level, { status }),
    });
  }

  /** One mirror subrequest: its location's content (ngx_http_subrequest() runs the phases from the server rewrite on; a server `return` answered the main request already), answered into a sink. */
  #subrequest(conn: ClientConnection, main: HttpRequest, uri: string): void {
    const server = main.server as CompiledServer | undefined;
    if (server === undefined) return;
    const sub = mirrorSubrequest(main, conn, uri);
    try {
      const found = server.locations.find(uri);
      if (found?.match !== undefined) sub.request.captures = found.match;
      const target = found?.value ?? server.level;
      sub.request.files = target.files.paths;
      sub.request.fastcgiNames = target.fastcgiNames;
      sub.request.errorLog = target.errorLog;
      // The log phase of a subrequest: ngx_http_log_handler() skips it unless log_subrequest on.
      if (target.mirror.logSubrequest) {
        sub.exchange.onFinish(() => {
          sub.request.completed = true;
          sub.request.bodyBytesSent = sub.exchange.bodyBytesSent;
          logRequest(target.accessLogs, sub.request);
        });
      }
      const preaccess = target.preaccess;
      // ngx_http_limit_req_handler() and ngx_http_limit_conn_handler() limit a subrequest unless the main request was limited already.
      if (preaccess !== undefined && (preaccess.req !== undefined || preaccess.conn !== undefined) && main.limitReqStatus === undefined && main.limitConnStatus === undefined) {
        const out = { log: this.#logOf(sub.request), connection: conn.number, context: () => context(sub.request, sub.conn) };
        runPreaccess(preaccess, sub.request, sub.exchange, out).then((status) => {
          if (status !== undefined) this.#send(sub.conn, sub.request, sub.exchange, target, { status });
          else this.#content(sub.conn, sub.request, sub.exchange, undefined, server);
        }).catch((err: unknown) => this.#logOf(sub.request).error(`${err instanceof Error ? err.message : String(err)}${context(sub.request, sub.conn)}`, conn.number));
        return;
      }
      this.#content(sub.conn, sub.request, sub.exchange, undefined, server);
    } catch (err) {
      this.#logOf(sub.request).error(`${err instanceof Error ? err.message : String(err)}${context(sub.request, sub.conn)}`, conn.number);
    }
  }

  /**
   * ngx_http_post_action(): once the response is done (or the request failed), the request runs
   * again at `uri` (an internal redirect without the args) or at the named location (with them), and its
   * response is discarded (`r->header_only`, ngx_http_send_header() sending nothing). The log
   * line waits for it: `done` runs when it has finished, or could not start, with the logs to write.
   */
  #postAction(conn: ClientConnection, main: HttpRequest, uri: string, mainLevel: LevelConfig, done: (logs: LevelConfig['accessLogs'], logged: HttpRequest) => void): void {
    const server = main.server as CompiledServer | undefined;
    if (server === undefined) {
      done(mainLevel.accessLogs, main);
      return;
    }
    const sub = mirrorSubrequest(main, conn, uri);
    const named = uri.startsWith('/') ? undefined : server.locations.named(uri);
    let target = named;
    if (uri.startsWith('/')) {
      // ngx_http_internal_redirect(r, uri, NULL) drops the args; ngx_http_named_location() keeps them.
      sub.request.args = '';
      sub.request.hasArgs = false;
      const found = server.locations.find(uri);
      if (found?.match !== undefined) sub.request.captures = found.match;
      target = found?.value ?? server.level;
    }
    if (target === undefined) {
      this.#logOf(main).error(`could not find named location "${uri}"${context(main, conn)}`, conn.number);
      done(mainLevel.accessLogs, main);
      return;
    }
    const logs = target.accessLogs;
    let finished = false;
    sub.exchange.onFinish(() => {
      if (finished) return;
      finished = true;
      // The line is the post action's, as in nginx: its location's access_log, its $uri and $status;
      // the bytes are the ones the client was sent.
      sub.request.completed = main.completed;
      sub.request.bodyBytesSent = main.bodyBytesSent;
      done(logs, sub.request);
    });
    sub.request.files = target.files.paths;
    sub.request.fastcgiNames = target.fastcgiNames;
    sub.request.errorLog = target.errorLog;
    try {
      this.#content(sub.conn, sub.request, sub.exchange, named, server);
    } catch (err) {
      this.#logOf(sub.request).error(`${err instanceof Error ? err.message : String(err)}${context(sub.request, sub.conn)}`, conn.number);
      if (!finished) {
        finished = true;
        done(logs, sub.request);
      }
    }
  }

  /** The content phase of a level that serves files (static.ts); its outcome may be an internal redirect. */
  #files(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, content?: () => void): void {
    const files = level.files;
    request.files = files.paths;
    request.errorLog = level.errorLog;
    const server = request.server as CompiledServer | undefined;
    const ctx: StaticContext = {
      request,
      exchange,
      files,
      log: this.#logOf(request),
      connection: conn.number,
      where: () => context(request, conn),
      headers: (status, list) => {
        this.applyLevel(exchange, conn, level, false, request);
        addHeaders(list, level, request, status);
      },
      redirectLocation: (path) => (server === undefined ? path : absoluteLocation(path, request, conn, server, level)),
      nextBoundary: () => ++this.#boundary,
      encodes: (headers, size) => level.output.some((filter) => filter.encodes?.({ status: 200, headers: [...headers], framing: size, headerOnly: false, fileTime: true, overrideCharset: undefined }, request) === true),
    };
    // `content`: another content handler (fastcgi_pass) runs after the try_files phase.
    const phase = content === undefined ? serveFiles(ctx) : runTryFiles(ctx);
    phase.then((outcome) => {
      if (exchange.aborted) return;
      if (outcome === undefined) {
        content?.();
        return;
      }
      if (outcome.kind === 'sent') return;
      if (outcome.kind === 'status') {
        this.#send(conn, request, exchange, level, { status: outcome.status, ...(outcome.location === undefined ? {} : { location: outcome.location }), ...(outcome.headers === undefined ? {} : { headers: outcome.headers }) });
        return;
      }
      if (server === undefined) {
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
      // ngx_http_internal_redirect(): at most 10 URI changes, then 500.
      if (++request.uriChanges > 10) {
        const to = outcome.kind === 'named' ? outcome.name : outcome.uri;
        this.#logOf(request).error(`rewrite or internal redirection cycle while internally redirecting to "${to}"${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
      request.internal = true;
      let target: LevelConfig | undefined;
      if (outcome.kind === 'named') {
        target = server.locations.named(outcome.name);
        if (target === undefined) {
          this.#logOf(request).error(`could not find named location "${outcome.name}"${context(request, conn)}`, conn.number);
          this.#send(conn, request, exchange, level, { status: 500 });
          return;
        }
      } else {
        request.uri = outcome.uri;
        if (outcome.args !== undefined) {
          request.args = outcome.args;
          request.hasArgs = true;
        }
        const found = server.locations.find(request.uri);
        if (found?.match !== undefined) request.captures = found.match;
        target = found?.value ?? server.level;
      }
      this.#content(conn, request, exchange, outcome.kind === 'named' ? target : undefined, server);
    }).catch((err: unknown) => {
      this.#logOf(request).error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    });
  }

  /** The header filter and the response itself. */
  #send(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, given: ResponsePlan): void {
    let plan = given;
    const invalid = exchange.discardBody?.();
    if (invalid !== undefined) {
      this.#logOf(request).info(`${invalid.message}${context(request, conn)}`, conn.number);
      // ngx_http_send_response() answers the discard's 400 instead; a special response goes on, without keep-alive.
      if (plan.body !== undefined) plan = { status: 400 };
    }
    if (plan.status >= 300 && level.errorPages !== undefined && this.#errorPage(conn, request, exchange, level, plan.status, plan.location)) return;
    // ngx_http_special_response_handler(): a status answered with its own page (a redirect, an error)
    // replaces the one an error_page redirected with; a body keeps it (ngx_http_send_response()).
    const status = plan.body === undefined ? plan.status : request.statusOverride ?? plan.status;
    // ngx_http_special_response_handler() sets err_status to 400 for 494-497: $status logs what was sent.
    request.status = wireStatus(status);
    if (status === 444) {
      // nginx's non-standard code: close the connection without a response.
      conn.protocol.destroy();
      return;
    }
    const special = plan.body === undefined ? specialPage(status, level.core.signature) : undefined;
    const page = special === undefined ? undefined : special + msiePaddingFor(level.core, status, request.header('user-agent'));
    const body = plan.body ?? page ?? '';
    const headers: string[] = [];
    if (!statusHasNoBody(status)) {
      if (plan.body !== undefined) headers.push('Content-Type', plan.type ?? level.defaultType);
      else if (page !== undefined) headers.push('Content-Type', 'text/html');
    }
    const location = plan.location ?? request.locationCarried;
    if (location !== undefined && location !== '') headers.push('Location', location);
    if (plan.headers !== undefined) headers.push(...plan.headers);
    this.applyLevel(exchange, conn, level, plan.close === true || (page !== undefined && CLOSE_AFTER_PAGE.has(status)), request);
    addHeaders(headers, level, request, status);
    const bytes = Buffer.from(body, 'latin1');
    request.sentHeaders = headers;
    request.sentLength = bytes.length;
    exchange.respond(wireStatus(status), headers, bytes);
  }

  /** The keep-alive settings of the level that answers (nginx decides them per location). */
  applyLevel(exchange: HttpExchange, conn: ClientConnection, level: LevelConfig, close: boolean, request?: HttpRequest): void {
    // ngx_http_update_location_config(): keepalive_timeout 0, keepalive_requests, keepalive_time.
    if (close || level.keepaliveTimeoutMs === 0 || conn.requests >= level.keepaliveRequests || Date.now() - conn.startedAt > level.keepaliveTimeMs) exchange.keepAlive = false;
    // ngx_http_finalize_connection(): keepalive_disable msie6 (after a POST) and safari.
    if (request !== undefined && keepaliveDisabledFor(level.core, request.method, request.header('user-agent'))) exchange.keepAlive = false;
    if (exchange instanceof FilteredExchange) {
      exchange.filters = level.output;
      exchange.limitRate = level.limitRate;
    }
    exchange.serverHeader = level.core.serverHeader;
    exchange.chunkedAllowed = level.core.chunked;
    exchange.dataFrameSize = level.core.http2ChunkSize;
    exchange.keepaliveTimeoutMs = level.keepaliveTimeoutMs;
    exchange.keepaliveHeaderSeconds = level.keepaliveHeaderSeconds;
    // Connections are accepted with TCP_NODELAY; `tcp_nodelay off` gives Nagle's algorithm back.
    if (!level.tcpNodelay) exchange.connection.socket.setNoDelay(false);
  }

  /**
   * A request the connection refused before it reached a handler: logged at info, as nginx logs it,
   * to the default server's error_log (ngx_http_add_listening() gives the listening socket's log).
   */
  /**
   * The header lines of a page the connection sends for a head it could not parse: nginx's
   * ngx_http_finalize_request() answers it with the default server's configuration, so that
   * server's `add_header ... always` apply (its variables read the connection; the request has no head).
   */
  refusedHeaders(conn: ClientConnection, status: number): string[] {
    const server = conn.hosts.defaultServer;
    if (server.level.headers.length === 0) return [];
    const request = new HttpRequest({ method: '', target: '', versionMinor: 1, headers: [] }, conn, Date.now());
    request.server = server;
    request.serverName = server.serverName;
    request.status = status;
    const headers: string[] = [];
    addHeaders(headers, server.level, request, status);
    const lines: string[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) lines.push(`${headers[i]}: ${headers[i + 1]}`);
    return lines;
  }

  clientError(conn: ClientConnection | undefined, err: Error): void {
    const where = conn === undefined ? '' : `, client: ${conn.remoteAddress}, server: ${conn.localAddress}:${conn.localPort}`;
    (conn?.hosts.defaultServer.level.errorLog ?? this.#log).info(`${err.message}${where}`, conn?.number);
  }
}

/** `ngx_http_script_return_code()` and `ngx_http_send_response()`: a redirect, a body, or the status's own page. */
function returnPlan(status: number, text: string | undefined, request: HttpRequest, conn: ClientConnection, server: CompiledServer, level: LevelConfig): ResponsePlan {
  if (REDIRECT_STATUSES.has(status)) return { status, location: absoluteLocation(text ?? '', request, conn, server, level) };
  if (status >= 400 && (text === undefined || text === '')) return { status };
  return { status, body: text ?? '' };
}

/** `expires` and `add_header`: the level's headers, for the statuses nginx adds them to (all of them with `always`). */
export function addHeaders(headers: string[], level: LevelConfig, request: HttpRequest, status: number): void {
  const addAll = ADD_HEADER_STATUSES.has(status);
  if (request.carriedHeaders !== undefined) carryHeaders(headers, request.carriedHeaders);
  // A value may read the fields set so far ($sent_http_name: h5bp's `expires $expires` maps
  // $sent_http_content_type), as nginx's headers_out grows.
  request.sentHeaders = headers;
  if (addAll && level.expires !== undefined) applyExpires(headers, level.expires, request);
  for (const header of level.headers) {
    if (!header.always && !addAll) continue;
    const value = header.value(request);
    // ngx_http_add_header(): an empty value adds nothing (and removes an ETag or Last-Modified).
    if (!/[\r\n]/.test(value)) addHeaderField(headers, header.name, value);
  }
}

/**
 * X-Accel-Redirect's kept headers (ngx_http_upstream_process_headers(): their copy handlers filled
 * headers_out before the new location's content, which then leaves a set Content-Type alone).
 */
function carryHeaders(headers: string[], carried: readonly string[]): void {
  const names = new Set<string>();
  for (let i = 0; i < carried.length; i += 2) names.add((carried[i] as string).toLowerCase());
  for (let i = headers.length - 2; i >= 0; i -= 2) {
    if (names.has((headers[i] as string).toLowerCase())) headers.splice(i, 2);
  }
  headers.unshift(...carried);
}

/**
 * nginx's `absolute_redirect on` (ngx_http_header_filter()): a Location starting with `/` gets the
 * scheme, the host (the server's name with `server_name_in_redirect on`) and, with
 * `port_in_redirect on`, a port that is not the scheme's default.
 */
function absoluteLocation(location: string, request: HttpRequest, conn: ClientConnection, server: CompiledServer, level: LevelConfig): string {
  if (!location.startsWith('/') || !level.redirect.absolute) return location;
  // ngx_http_header_filter(): without a valid Host, the local address names the server.
  const host = (level.redirect.serverName ? server.serverName : request.host) || conn.localAddress;
  const port = level.redirect.port ? conn.localPort : '';
  const defaultPort = request.scheme === 'https' ? '443' : '80';
  return `${request.scheme}://${host}${port === '' || port === defaultPort ? '' : `:${port}`}${location}`;
}

/**
 * The tail nginx adds to errors about a request: `, client: ..., server: ..., request: "...", host: "..."`.
 * The client is the address realip found, as nginx's `c->addr_text` is.
 */
function context(request: HttpRequest, _conn: ClientConnection): string {
  return requestLogContext(request);
}
