/**
 * The state of one HTTP request as the variables and the access log see it: nginx's
 * `ngx_http_request_t`, reduced to what hitless reads. Request-derived strings are byte strings.
 */
import type { ErrorLog } from '../core/log.js';
import type { ProxyProtocolAddresses } from '../core/proxy-protocol.js';
import type { TlsConnectionInfo } from '../tls/sni.js';
import type { RequestHead } from './h1/head-parser.js';
import type { RefererCheck } from './referer-module.js';
import type { SpoolFile } from './body-file.js';
import type { UpstreamStateList } from './upstream-states.js';

/** What a request knows of its connection, captured once when the connection is accepted. */
export interface ConnectionInfo {
  /** `$connection`: a serial number unique within the worker. */
  readonly number: number;
  /** Requests received on the connection so far, this one included. */
  readonly requests: number;
  readonly remoteAddress: string;
  readonly remotePort: string;
  readonly localAddress: string;
  readonly localPort: string;
  /** The handshake's results when the connection is TLS (`$https`, `$ssl_*`). */
  readonly tls?: TlsConnectionInfo | undefined;
  /** The addresses of the connection's PROXY protocol header (`$proxy_protocol_*`, realip `proxy_protocol`). */
  readonly proxied?: ProxyProtocolAddresses | undefined;
  /** The socket's `bytesWritten`, for `$bytes_sent`. */
  bytesWritten(): number;
  /** When the connection was accepted (`Date.now()`), for `$connection_time`. */
  readonly startedAt?: number;
}

/** The parts of a request head the HTTP layer reads, whichever protocol carried it; `versionMajor` is 2 for HTTP/2 (whose requests also say `versionMinor` 1). */
export type RequestLine = Pick<RequestHead, 'method' | 'target' | 'versionMinor' | 'headers' | 'http09'> & { readonly versionMajor?: 2 };

/** One request in progress or finished. */
export class HttpRequest {
  readonly head: RequestLine;
  readonly connection: ConnectionInfo;
  /** `$connection_requests`, fixed when the request arrived. */
  readonly connectionRequests: number;
  /** `Date.now()` when the request arrived, for `$request_time`. */
  readonly startMs: number;
  readonly bytesWrittenAtStart: number;
  /** `$request_uri`: the target as sent, without scheme and host. */
  requestUri: string;
  /** `$args`. */
  args = '';
  hasArgs = false;
  /** `$uri`: the normalised, decoded path. */
  uri = '';
  /** The validated, lowercased host (`$host` before the server name fallback); empty when none. */
  host = '';
  /** The rate this response is paced at, once something set it (nginx's `r->limit_rate` with `limit_rate_set`): `set $limit_rate`, X-Accel-Limit-Rate, proxy_buffering off, or the level's limit_rate as the response starts. */
  limitRate: number | undefined = undefined;
  /** `$request_port`: the port of the request line's host or of Host (nginx's `r->port`); 0 when none. */
  port = 0;
  /** `$server_name`: the primary name of the server chosen. */
  serverName = '';
  /** `$scheme`. */
  scheme = 'http';
  #captures: RegExpExecArray | undefined;
  /**
   * `$name` of named captures: every regex that matches sets its own, which stay set when a later
   * regex matches without them, as `ngx_http_regex_exec()` stores them in the request's variables.
   */
  readonly namedCaptures = new Map<string, string | undefined>();
  /** The values `set` stored (rewrite-script.ts), by variable name. */
  readonly variables = new Map<string, string>();
  /** Logs nginx's "using uninitialized variable" warning under the current level's settings; set by the rewrite phases. */
  uninitialized: ((name: string) => void) | undefined = undefined;

  /** The captures of the last regex that matched (server name, location, map): `$1`..`$9`. */
  get captures(): RegExpExecArray | undefined {
    return this.#captures;
  }

  set captures(match: RegExpExecArray | undefined) {
    this.#captures = match;
    if (match?.groups !== undefined) for (const [name, value] of Object.entries(match.groups)) this.namedCaptures.set(name, value);
  }
  /** `$status`: 0 until a response is chosen. */
  status = 0;
  /** `$body_bytes_sent`. */
  bodyBytesSent = 0;
  /** `$gzip_ratio`, once the gzip filter has compressed the body. */
  gzipRatio: string | undefined;
  /** `$brotli_ratio`, once the brotli filter has compressed the body. */
  brotliRatio: string | undefined;
  /** ngx_brotli's `r->gzip_tested = 1, r->gzip_ok = 0`: brotli took the client, so gzip and gunzip see it as refusing gzip. */
  gzipRefused = false;
  /** nginx's `r->gzip_vary`: gzip_static or gzip added `Vary: Accept-Encoding` already. */
  gzipVary = false;
  /** The virtual server chosen, for internal redirects (error_page). */
  server: unknown;
  /** Set once an error_page has been followed (nginx's recursive_error_pages off). */
  errorPageFollowed = false;
  /** Internal redirects to error pages so far, against nginx's limit of 10 (recursive_error_pages on). */
  errorPageRedirects = 0;
  /** The status an error page's `=code` imposes on the response it leads to. */
  statusOverride: number | undefined;
  /** The Location a `return 3xx` set before an error_page redirected it: nginx keeps r->headers_out.location across the internal redirect (ngx_http_send_error_page()). */
  locationCarried: string | undefined;
  /**
   * The upstream headers an X-Accel-Redirect keeps for the response it leads to (Content-Type,
   * Set-Cookie, Content-Disposition, Cache-Control, Expires, Accept-Ranges: the `redirect` ones of
   * ngx_http_upstream_headers_in), as name, value pairs; they replace the fields of that name.
   */
  carriedHeaders: readonly string[] | undefined;
  /** GET after an internal redirect (except for HEAD), as nginx changes the method. */
  methodOverride: string | undefined;
  /** fastcgi_split_path_info and fastcgi_index of the level chosen (http/fastcgi-names.ts); set with `files`. */
  fastcgiNames: { readonly split: RegExp | undefined; readonly index: string } | undefined;
  /** $fastcgi_script_name and $fastcgi_path_info once computed, until the fastcgi handler starts (nginx's module context). */
  fastcgiSplit: { readonly scriptName: string; readonly pathInfo: string } | undefined;
  /** `$proxy_host`, once a proxy_pass location is chosen. */
  proxyHost = '';
  /** The scheme of the proxy_pass URL, for `$proxy_port`'s default. */
  proxyScheme: 'http' | 'https' = 'http';
  /** Every upstream try (`$upstream_addr`, `$upstream_status`, the times and byte counts); formatted only when read. */
  upstreamStates: UpstreamStateList | undefined;
  /** `$remote_addr` and `$remote_port`: the connection's, or the client address realip found. */
  remoteAddress: string;
  remotePort: string;
  /** Set once realip has run for this request (nginx's module ctx), changed or not. */
  realip = false;
  /** `$limit_req_status`, `$limit_conn_status`: undefined until the limit ran. */
  limitReqStatus: string | undefined;
  limitConnStatus: string | undefined;
  /** The file paths of the answering level (`$document_root`, `$request_filename`); set when a level is chosen. */
  files: ((request: HttpRequest) => { root: string; path: string }) | undefined;
  /** The answering level's `valid_referers`, for `$invalid_referer`; set with `files`. */
  referers: RefererCheck | undefined;
  /** The error log of the level the request is at (ngx_http_update_location_config() switches it); undefined: the worker's. */
  errorLog: ErrorLog | undefined;
  /** Set by an internal redirect (index, try_files, error_page): `internal` locations accept the request. */
  internal = false;
  /** Internal redirects so far; nginx stops at 10 (NGX_HTTP_MAX_URI_CHANGES). */
  uriChanges = 0;
  /** Values of cacheable variables (`map`) already evaluated for this request. */
  variableCache: Map<object, unknown> | undefined;
  /** The last upstream response head's fields, flat (`$upstream_http_*`, `$upstream_cookie_*`). */
  upstreamHeaders: readonly string[] | undefined;
  /** The request body as read into memory to be passed on (`$request_body`); undefined when not read so. */
  requestBody: readonly Buffer[] | undefined;
  /** The file the body was also written to (`$request_body_file`), which hides `$request_body` as nginx's temp_file does. */
  requestBodyFile: string | undefined;
  /** A body spooled to {@link requestBodyFile} and only there (requestBody is undefined then): fastcgi_pass and friends read it back. */
  requestBodySpool: SpoolFile | undefined;
  /**
   * Set once a 101 from the upstream joined the two connections: the request ends when the tunnel
   * closes, and what the upstream sent through it counts in `$body_bytes_sent`, as nginx logs it.
   */
  tunnel: { bytesToClient: number; onClose(listener: () => void): void } | undefined;
  /** The response header fields sent, flat (`$sent_http_*`); undefined before the head. */
  sentHeaders: readonly string[] | undefined;
  /** The trailer fields sent (`$sent_trailer_*`), flat; filled while `add_trailer` evaluates them. */
  sentTrailers: readonly string[] | undefined;
  /** The body length of a response hitless made itself (`$sent_http_content_length`). */
  sentLength: number | undefined;
  /** `$request_completion`: the response was handed to the client whole. */
  completed = false;
  /** `$pipe`: the request arrived behind another on the connection. */
  pipelined = false;
  /** `$request_id`, made when first read. */
  requestId: string | undefined;

  constructor(head: RequestLine, connection: ConnectionInfo, startMs: number) {
    this.head = head;
    this.connection = connection;
    this.connectionRequests = connection.requests;
    this.startMs = startMs;
    this.bytesWrittenAtStart = connection.bytesWritten();
    this.requestUri = head.target;
    this.remoteAddress = connection.remoteAddress;
    this.remotePort = connection.remotePort;
    if (connection.tls !== undefined) this.scheme = 'https';
  }

  /** The method the request is handled with now (GET after an error page redirect). */
  get method(): string {
    return this.methodOverride ?? this.head.method;
  }

  /** `$request`: the request line as received. */
  get requestLine(): string {
    return this.head.http09 === true ? `${this.head.method} ${this.head.target}` : `${this.head.method} ${this.head.target} ${this.protocol}`;
  }

  /** `$server_protocol`. */
  get protocol(): string {
    if (this.head.versionMajor === 2) return 'HTTP/2.0';
    if (this.head.http09 === true) return '';
    return this.head.versionMinor === 0 ? 'HTTP/1.0' : 'HTTP/1.1';
  }

  /** A header as nginx's `$http_name` reads it (`name` lowercased): repeated headers joined with `, `. */
  header(name: string): string | undefined {
    const headers = this.head.headers;
    let value: string | undefined;
    for (let i = 0; i < headers.length; i += 2) {
      const key = headers[i] as string;
      if (key.length !== name.length || key.toLowerCase() !== name) continue;
      value = value === undefined ? (headers[i + 1] as string) : `${value}, ${headers[i + 1] as string}`;
    }
    return value;
  }
}

/** The context nginx's error log lines about a request end with (ngx_http_log_error_handler()). */
export function requestLogContext(request: HttpRequest): string {
  const host = request.header('host');
  return `, client: ${request.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"${host === undefined ? '' : `, host: "${host}"`}`;
}
