/**
 * The request pipeline of one generation, in nginx's phase order: parse the target and host,
 * choose the virtual server, run the server's `return` (server rewrite phase), choose the location,
 * run its `return` (rewrite phase), else answer 404 (no content handler serves files yet); then the
 * header filter (`add_header`, keep-alive) and the log phase.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { ErrorLog } from '../core/log.js';
import { logRequest } from './access-log.js';
import type { ClientConnection, ConnectionTracker } from './connections.js';
import type { CompiledServer, LevelConfig } from './generation.js';
import { ADD_HEADER_STATUSES } from './headers-module.js';
import { HttpRequest } from './request.js';
import { CLOSE_AFTER_PAGE, REDIRECT_STATUSES, specialPage, STATUS_REASONS, statusHasNoBody, wireStatus } from './responses.js';
import { normalizeUri, parseRequestTarget, validateHost } from './uri.js';

/** The response a phase decided on. */
interface ResponsePlan {
  readonly status: number;
  /** A byte string; undefined for nginx's built-in page (or none). */
  readonly body?: string;
  readonly location?: string;
}

/** Handles the requests node:http parses on the connections of one generation. */
export class RequestHandler {
  readonly #tracker: ConnectionTracker;
  readonly #log: ErrorLog;
  readonly #connections: WeakMap<Socket, ClientConnection>;

  constructor(tracker: ConnectionTracker, connections: WeakMap<Socket, ClientConnection>, log: ErrorLog) {
    this.#tracker = tracker;
    this.#connections = connections;
    this.#log = log;
  }

  /** node:http's `request` event. */
  handle(req: IncomingMessage, res: ServerResponse): void {
    const conn = this.#connections.get(req.socket);
    if (conn === undefined) {
      req.socket.destroy();
      return;
    }
    this.#tracker.requestStarted(conn, res);
    const request = new HttpRequest(req, conn, Date.now());
    let level: LevelConfig = conn.hosts.defaultServer.level;
    res.once('close', () => {
      // nginx's 499: the client closed the connection before the response was sent.
      if (!res.headersSent && request.status !== 444) request.status = 499;
      logRequest(level.accessLogs, request);
      this.#tracker.requestFinished(conn, res, level.keepaliveTimeoutMs);
    });
    req.once('end', () => this.#tracker.requestBodyDone(conn));
    try {
      const [chosen, plan] = this.#process(conn, request);
      level = chosen;
      this.#send(conn, request, res, level, plan);
    } catch (err) {
      this.#log.error(`${err instanceof Error ? err.message : String(err)}${context(request, conn)}`, conn.number);
      if (!res.headersSent) this.#send(conn, request, res, level, { status: 500 });
      else req.socket.destroy();
    }
  }

  #process(conn: ClientConnection, request: HttpRequest): [LevelConfig, ResponsePlan] {
    const fallback = conn.hosts.defaultServer;
    const refuse = (message: string): [LevelConfig, ResponsePlan] => {
      request.serverName = fallback.serverName;
      this.#log.info(`${message}${context(request, conn)}`, conn.number);
      return [fallback.level, { status: 400 }];
    };
    const target = parseRequestTarget(request.req.url ?? '');
    if (target === undefined) return refuse('client sent invalid request');
    request.requestUri = target.requestUri;
    request.args = target.args;
    request.hasArgs = target.hasArgs;
    const uri = normalizeUri(target.path);
    if (uri === undefined) return refuse('client sent invalid request');
    request.uri = uri;
    const rawHost = target.host ?? request.header('host');
    if (rawHost !== undefined) {
      const host = validateHost(rawHost);
      if (host === undefined) return refuse('client sent invalid host header');
      request.host = host;
    } else if (request.req.httpVersion === '1.1') {
      return refuse('client sent HTTP/1.1 request without "Host" header');
    }
    const { server, match } = conn.hosts.find(request.host);
    request.serverName = server.serverName;
    request.captures = match;
    if (server.level.returnAction !== undefined) return [server.level, this.#runReturn(server.level, request, conn, server)];
    const found = server.locations.find(uri);
    if (found === undefined) return [server.level, { status: 404 }];
    if (found.match !== undefined) request.captures = found.match;
    const level = found.value;
    if (level.returnAction !== undefined) return [level, this.#runReturn(level, request, conn, server)];
    return [level, { status: 404 }];
  }

  /** `ngx_http_script_return_code()` and `ngx_http_send_response()`. */
  #runReturn(level: LevelConfig, request: HttpRequest, conn: ClientConnection, server: CompiledServer): ResponsePlan {
    const action = level.returnAction as NonNullable<LevelConfig['returnAction']>;
    const text = action.text?.(request);
    if (REDIRECT_STATUSES.has(action.status)) {
      return { status: action.status, location: absoluteLocation(text ?? '', request, conn, server) };
    }
    if (action.status >= 400 && (text === undefined || text === '')) return { status: action.status };
    return { status: action.status, body: text ?? '' };
  }

  /** The header filter and the response itself. */
  #send(conn: ClientConnection, request: HttpRequest, res: ServerResponse, level: LevelConfig, plan: ResponsePlan): void {
    const status = plan.status;
    request.status = status;
    if (status === 444) {
      // nginx's non-standard code: close the connection without a response.
      conn.socket.destroy();
      return;
    }
    const page = plan.body === undefined ? specialPage(status) : undefined;
    const body = plan.body ?? page;
    const headers: string[] = ['Server', 'hitless'];
    const noBody = statusHasNoBody(status);
    if (!noBody) {
      if (plan.body !== undefined) headers.push('Content-Type', level.defaultType);
      else if (page !== undefined) headers.push('Content-Type', 'text/html');
      headers.push('Content-Length', String(body?.length ?? 0));
    }
    if (plan.location !== undefined && plan.location !== '') headers.push('Location', plan.location);
    const closeAfterPage = page !== undefined && CLOSE_AFTER_PAGE.has(status);
    if (closeAfterPage || !this.#tracker.mayKeepAlive(conn, level)) res.shouldKeepAlive = false;
    else if (res.shouldKeepAlive && level.keepaliveHeaderSeconds !== undefined) headers.push('Keep-Alive', `timeout=${level.keepaliveHeaderSeconds}`);
    const addAll = ADD_HEADER_STATUSES.has(status);
    for (const header of level.headers) {
      if (!header.always && !addAll) continue;
      const value = header.value(request);
      // ngx_http_add_header(): an empty value adds nothing.
      if (value !== '' && !/[\r\n]/.test(value)) headers.push(header.name, value);
    }
    const wire = wireStatus(status);
    res.writeHead(wire, STATUS_REASONS[wire] ?? '', headers);
    const sendsBody = !noBody && request.req.method !== 'HEAD' && body !== undefined && body !== '';
    request.bodyBytesSent = sendsBody ? (body as string).length : 0;
    res.end(sendsBody ? Buffer.from(body as string, 'latin1') : undefined);
  }

  /** node:http's `clientError`: a request it could not parse, or a client that timed out. */
  clientError(err: Error & { code?: string }, socket: Socket): void {
    const conn = this.#connections.get(socket);
    const busy = conn !== undefined && [...conn.inFlight].some((res) => res.headersSent);
    if (err.code === 'ECONNRESET' || !socket.writable || busy) {
      socket.destroy();
      return;
    }
    const where = conn === undefined ? '' : `, client: ${conn.remoteAddress}, server: ${conn.localAddress}:${conn.localPort}`;
    if (err.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      this.#log.info(`client timed out (110: Connection timed out) while reading client request headers${where}`, conn?.number);
      socket.destroy();
      return;
    }
    const tooLarge = err.code === 'HPE_HEADER_OVERFLOW';
    this.#log.info(`${tooLarge ? 'client sent too long header line' : 'client sent invalid request'}${where}`, conn?.number);
    const page = specialPage(tooLarge ? 494 : 400) ?? '';
    socket.end(`HTTP/1.1 400 Bad Request\r\nServer: hitless\r\nContent-Type: text/html\r\nContent-Length: ${page.length}\r\nConnection: close\r\n\r\n${page}`);
    socket.setTimeout(5000, () => socket.destroy());
  }
}

/** nginx's `absolute_redirect on`: a Location starting with `/` gets the scheme, host and port. */
function absoluteLocation(location: string, request: HttpRequest, conn: ClientConnection, server: CompiledServer): string {
  if (!location.startsWith('/')) return location;
  const host = request.host || server.serverName || conn.localAddress;
  const port = conn.localPort;
  const defaultPort = request.scheme === 'https' ? '443' : '80';
  return `${request.scheme}://${host}${port === '' || port === defaultPort ? '' : `:${port}`}${location}`;
}

/** The tail nginx adds to errors about a request: `, client: ..., server: ..., request: "...", host: "..."`. */
function context(request: HttpRequest, conn: ClientConnection): string {
  const host = request.header('host');
  return `, client: ${conn.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${host === undefined ? '' : `, host: "${host}"`}`;
}
