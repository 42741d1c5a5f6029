/**
 * The state of one HTTP request as the variables and the access log see it: nginx's
 * `ngx_http_request_t`, reduced to what hitless reads. Request-derived strings are byte strings.
 */
import type { IncomingMessage } from 'node:http';

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
  /** The socket's `bytesWritten`, for `$bytes_sent`. */
  bytesWritten(): number;
}

/** One request in progress or finished. */
export class HttpRequest {
  readonly req: IncomingMessage;
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
  /** `$server_name`: the primary name of the server chosen. */
  serverName = '';
  /** `$scheme`. */
  scheme = 'http';
  /** The captures of the last regex that matched (server name or location): `$1`, `$name`. */
  captures: RegExpExecArray | undefined;
  /** `$status`: 0 until a response is chosen. */
  status = 0;
  /** `$body_bytes_sent`. */
  bodyBytesSent = 0;

  constructor(req: IncomingMessage, connection: ConnectionInfo, startMs: number) {
    this.req = req;
    this.connection = connection;
    this.connectionRequests = connection.requests;
    this.startMs = startMs;
    this.bytesWrittenAtStart = connection.bytesWritten();
    this.requestUri = req.url ?? '';
  }

  /** `$request`: the request line as received. */
  get requestLine(): string {
    return `${this.req.method ?? ''} ${this.req.url ?? ''} HTTP/${this.req.httpVersion}`;
  }

  /** A header as nginx's `$http_name` reads it: repeated headers joined with `, `. */
  header(name: string): string | undefined {
    const value = this.req.headers[name];
    return Array.isArray(value) ? value.join(', ') : value;
  }
}
