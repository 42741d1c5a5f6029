/**
 * The request pipeline of one generation, in nginx's phase order: parse the target and host,
 * choose the virtual server and apply realip (post-read), run the server's `return` (server
 * rewrite), choose the location, run its `return` (rewrite), apply limit_req and limit_conn
 * (preaccess), then the content: proxy_pass, or files (static.ts); error_page may redirect
 * internally on the way out; then the header filter (`add_header`, keep-alive) and the log phase.
 */
import { channels } from '../core/diagnostics.js';
import type { ErrorLog } from '../core/log.js';
import { logRequest } from './access-log.js';
import type { ClientConnection } from './connections.js';
import type { CompiledServer, LevelConfig } from './generation.js';
import type { HttpExchange } from './exchange.js';
import { ADD_HEADER_STATUSES } from './headers-module.js';
import { keepaliveDisabledFor, msiePaddingFor } from './core-level.js';
import { errorPageAction } from './error-pages.js';
import type { CompiledProxy } from './proxy-config.js';
import { runPreaccess, type Preaccess } from './preaccess.js';
import { grpcRequest } from './grpc.js';
import { proxyRequest, type UpstreamContext } from './proxy.js';
import { applyRealIp } from './realip-module.js';
import { HttpRequest } from './request.js';
import { clientVerdict } from '../tls/client-verify.js';
import { CLOSE_AFTER_PAGE, REDIRECT_STATUSES, specialPage, statusHasNoBody, wireStatus } from './responses.js';
import { escapeRedirectUri, serveFiles, type StaticContext } from './static.js';
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
}

/** Handles the requests of one generation's connections. */
export class RequestHandler {
  readonly #log: ErrorLog;
  /** nginx's temp number (ngx_next_temp_number()), for multipart/byteranges boundaries. */
  #boundary = 0;

  constructor(log: ErrorLog) {
    this.#log = log;
  }

  /** One request, parsed by the connection. */
  handle(conn: ClientConnection, exchange: HttpExchange): void {
    const request = new HttpRequest(exchange.head, conn, Date.now());
    request.pipelined = exchange.pipelined === true;
    let level: LevelConfig = conn.hosts.defaultServer.level;
    exchange.onFinish(() => {
      // nginx's 499: the client closed the connection before the response was sent.
      if (exchange.aborted && !exchange.headersSent && request.status !== 444) request.status = 499;
      request.completed = !exchange.aborted;
      request.bodyBytesSent = exchange.bodyBytesSent;
      logRequest(level.accessLogs, request);
      channels.requestFinish.publishLazy(() => ({ protocol: 'http', request }));
    });
    try {
      const [chosen, plan] = this.#process(conn, request);
      level = chosen;
      const preaccess = plan.content ? level.preaccess : undefined;
      if (preaccess !== undefined && (preaccess.req !== undefined || preaccess.conn !== undefined)) {
        this.#limited(conn, request, exchange, level, plan, preaccess);
        return;
      }
      applyRealIp(request, preaccess?.realip);
      if (plan.proxy) this.#proxy(conn, request, exchange, level);
      else if (plan.files) this.#files(conn, request, exchange, level);
      else this.#send(conn, request, exchange, level, plan);
    } catch (err) {
      this.#log.error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
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
      this.#log.info(`${message}${context(request, conn)}`, conn.number);
      return [fallback.level, { status: 400 }];
    };
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
      const host = validateHost(rawHost);
      if (host === undefined) return refuse('client sent invalid host header');
      request.host = host;
    } else if (request.head.versionMinor === 1) {
      return refuse('client sent HTTP/1.1 request without "Host" header');
    }
    const { server, match } = conn.hosts.find(request.host);
    request.server = server;
    request.serverName = server.serverName;
    request.captures = match;
    // ngx_http_process_request(): nginx reads plain HTTP on an ssl port to a server, then answers 497.
    if (conn.plainHttp) {
      this.#log.info(`client sent plain HTTP request to HTTPS port${context(request, conn)}`, conn.number);
      return [server.level, { status: 497 }];
    }
    const tls = conn.tls;
    // ngx_http_set_virtual_server(): with SNI, a Host naming another name may not reach a server that
    // verifies clients, whose certificate the handshake's server did not check.
    if (tls !== undefined && tls.serverName !== '' && request.host !== tls.serverName.toLowerCase() && server.tls.verify.mode !== 'off') {
      this.#log.info(`client attempted to request the server name different from the one that was negotiated${context(request, conn)}`, conn.number);
      return [server.level, { status: 421 }];
    }
    // A resumed session was accepted under the default server's session id context (Node picks the
    // SNI server only after OpenSSL resumed it), so it carries that server's client verification:
    // nginx would have made a full handshake with the right server; hitless asks for a new connection.
    if (tls !== undefined && tls.sessionReused === 'r' && server.tls.verify.mode !== 'off' && server.tls.verify.sessionContext !== conn.hosts.defaultServer.tls.verify.sessionContext) {
      this.#log.info(`client resumed a TLS session negotiated under another server's client verification${context(request, conn)}`, conn.number);
      return [server.level, { status: 421 }];
    }
    // ngx_http_process_request(): the Host's server judges the certificate the handshake's server asked for.
    const verdict = conn.tls === undefined ? undefined : clientVerdict(server.tls.verify, conn.tls.client);
    if (verdict !== undefined) {
      const reason = verdict.status === 495 ? `client SSL certificate verify error: (${verdict.error.number}:${verdict.error.reason})` : 'client sent no required SSL certificate';
      this.#log.info(`${reason} while reading client request headers${context(request, conn)}`, conn.number);
      return [server.level, { status: verdict.status }];
    }
    // The post-read phase: realip with the server's settings.
    applyRealIp(request, server.level.preaccess?.realip);
    if (server.level.returnAction !== undefined) return [server.level, this.#runReturn(server.level, request, conn, server)];
    if (server.locations.autoRedirect(uri)) {
      const location = `${escapeRedirectUri(uri)}/${request.hasArgs && request.args !== '' ? `?${request.args}` : ''}`;
      return [server.level, { status: 301, location: absoluteLocation(location, request, conn, server, server.level) }];
    }
    const found = server.locations.find(uri);
    request.files = (found?.value ?? server.level).files.paths;
    if (found === undefined) return [server.level, { status: 0, files: true, content: true }];
    if (found.match !== undefined) request.captures = found.match;
    const level = found.value;
    // ngx_http_core_find_config_phase(): an `internal` location answers a client's own request with 404.
    if (level.files.internal) return [level, { status: 404 }];
    if (level.returnAction !== undefined) return [level, this.#runReturn(level, request, conn, server)];
    if (level.proxy !== undefined || level.grpc !== undefined) return [level, { status: 0, proxy: true, content: true }];
    return [level, { status: 0, files: true, content: true }];
  }

  /** The preaccess phase with limits, which waits on the shared zones; then the content, or the rejection. */
  #limited(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, plan: ResponsePlan, preaccess: Preaccess): void {
    const out = { log: this.#log, connection: conn.number, context: () => context(request, conn) };
    runPreaccess(preaccess, request, exchange, out).then((status) => {
      // A client gone while its request waited is finished (499) already.
      if (exchange.aborted) return;
      if (status !== undefined) this.#send(conn, request, exchange, level, { status });
      else if (plan.proxy) this.#proxy(conn, request, exchange, level);
      else if (plan.files) this.#files(conn, request, exchange, level);
      else this.#send(conn, request, exchange, level, plan);
    }).catch((err: unknown) => {
      this.#log.error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    });
  }

  /** `ngx_http_script_return_code()` and `ngx_http_send_response()`. */
  #runReturn(level: LevelConfig, request: HttpRequest, conn: ClientConnection, server: CompiledServer): ResponsePlan {
    const action = level.returnAction as NonNullable<LevelConfig['returnAction']>;
    const text = action.text?.(request);
    if (REDIRECT_STATUSES.has(action.status)) {
      return { status: action.status, location: absoluteLocation(text ?? '', request, conn, server, level) };
    }
    if (action.status >= 400 && (text === undefined || text === '')) return { status: action.status };
    return { status: action.status, body: text ?? '' };
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
      grpcRequest({ exchange, request, conn, log: this.#log, fail, headers, grpc: level.grpc });
      return;
    }
    const proxy = level.proxy as CompiledProxy;
    request.proxyHost = proxy.proxyHost;
    request.proxyScheme = proxy.scheme;
    const resolving = proxy.resolveHost(request);
    if (resolving === undefined) {
      proxyRequest({ exchange, request, conn, log: this.#log, fail, headers, proxy });
      return;
    }
    // ngx_http_upstream_resolve_handler(): the request waits on the resolver, then goes on or gets 502.
    void resolving.then((error) => {
      if (exchange.aborted) return;
      if (error === undefined) {
        proxyRequest({ exchange, request, conn, log: this.#log, fail, headers, proxy });
        return;
      }
      this.#log.error(`${error}${context(request, conn)}`, conn.number);
      fail(502);
    });
  }

  /**
   * An error_page for the status, if the level has one: an internal redirect runs the new
   * location's content (return or proxy_pass), a URL is a redirect. True when it took over.
   */
  #errorPage(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, status: number): boolean {
    const action = errorPageAction(level.errorPages, request, status, level.core.recursiveErrorPages);
    if (action === undefined) return false;
    if (action.kind === 'cycle') {
      this.#log.error(`rewrite or internal redirection cycle while internally redirecting to "${action.uri}"${context(request, conn)}`, conn.number);
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
    if (request.head.method !== 'HEAD') request.methodOverride = 'GET';
    request.statusOverride = action.status;
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
      this.#log.error(`could not find named location "${action.uri}"${context(request, conn)}`, conn.number);
      this.#send(conn, request, exchange, level, { status: 500 });
      return true;
    }
    request.internal = true;
    this.#content(conn, request, exchange, target, server);
    return true;
  }

  /** The content of a location reached by an internal redirect: its return, proxy_pass or files. */
  #content(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, target: LevelConfig, server: CompiledServer): void {
    if (target.returnAction !== undefined) this.#send(conn, request, exchange, target, this.#runReturn(target, request, conn, server));
    else if (target.proxy !== undefined || target.grpc !== undefined) this.#proxy(conn, request, exchange, target);
    else this.#files(conn, request, exchange, target);
  }

  /** The content phase of a level that serves files (static.ts); its outcome may be an internal redirect. */
  #files(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig): void {
    const files = level.files;
    request.files = files.paths;
    const server = request.server as CompiledServer | undefined;
    const ctx: StaticContext = {
      request,
      exchange,
      files,
      log: this.#log,
      connection: conn.number,
      where: () => context(request, conn),
      headers: (status, list) => {
        this.applyLevel(exchange, conn, level, false, request);
        addHeaders(list, level, request, status);
      },
      redirectLocation: (path) => (server === undefined ? path : absoluteLocation(path, request, conn, server, level)),
      nextBoundary: () => ++this.#boundary,
    };
    serveFiles(ctx).then((outcome) => {
      if (exchange.aborted || outcome.kind === 'sent') return;
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
        this.#log.error(`rewrite or internal redirection cycle while internally redirecting to "${to}"${context(request, conn)}`, conn.number);
        this.#send(conn, request, exchange, level, { status: 500 });
        return;
      }
      request.internal = true;
      let target: LevelConfig | undefined;
      if (outcome.kind === 'named') {
        target = server.locations.named(outcome.name);
        if (target === undefined) {
          this.#log.error(`could not find named location "${outcome.name}"${context(request, conn)}`, conn.number);
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
      this.#content(conn, request, exchange, target, server);
    }).catch((err: unknown) => {
      this.#log.error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!exchange.headersSent) this.#send(conn, request, exchange, level, { status: 500 });
      else conn.protocol.destroy();
    });
  }

  /** The header filter and the response itself. */
  #send(conn: ClientConnection, request: HttpRequest, exchange: HttpExchange, level: LevelConfig, plan: ResponsePlan): void {
    if (plan.status >= 300 && level.errorPages !== undefined && this.#errorPage(conn, request, exchange, level, plan.status)) return;
    const status = request.statusOverride ?? plan.status;
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
      if (plan.body !== undefined) headers.push('Content-Type', level.defaultType);
      else if (page !== undefined) headers.push('Content-Type', 'text/html');
    }
    if (plan.location !== undefined && plan.location !== '') headers.push('Location', plan.location);
    if (plan.headers !== undefined) headers.push(...plan.headers);
    this.applyLevel(exchange, conn, level, page !== undefined && CLOSE_AFTER_PAGE.has(status), request);
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
    exchange.serverHeader = level.core.serverHeader;
    exchange.chunkedAllowed = level.core.chunked;
    exchange.keepaliveTimeoutMs = level.keepaliveTimeoutMs;
    exchange.keepaliveHeaderSeconds = level.keepaliveHeaderSeconds;
    // Connections are accepted with TCP_NODELAY; `tcp_nodelay off` gives Nagle's algorithm back.
    if (!level.tcpNodelay) exchange.connection.socket.setNoDelay(false);
  }

  /** A request the connection refused before it reached a handler: logged at info, as nginx logs it. */
  clientError(conn: ClientConnection | undefined, err: Error): void {
    const where = conn === undefined ? '' : `, client: ${conn.remoteAddress}, server: ${conn.localAddress}:${conn.localPort}`;
    this.#log.info(`${err.message}${where}`, conn?.number);
  }
}

/** `add_header`: the level's headers, for the statuses nginx adds them to (all of them with `always`). */
export function addHeaders(headers: string[], level: LevelConfig, request: HttpRequest, status: number): void {
  const addAll = ADD_HEADER_STATUSES.has(status);
  for (const header of level.headers) {
    if (!header.always && !addAll) continue;
    const value = header.value(request);
    // ngx_http_add_header(): an empty value adds nothing.
    if (value !== '' && !/[\r\n]/.test(value)) headers.push(header.name, value);
  }
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
  const host = request.header('host');
  return `, client: ${request.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${host === undefined ? '' : `, host: "${host}"`}`;
}
