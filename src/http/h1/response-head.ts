/** Building HTTP/1.1 response heads: status lines, a Date header cached per second, reason phrases. */

/** Reason phrases nginx sends (ngx_http_status_lines), for the statuses hitless produces. */
export const REASONS: Readonly<Record<number, string>> = {
  100: 'Continue', 101: 'Switching Protocols',
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Moved Temporarily', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 403: 'Forbidden', 404: 'Not Found', 405: 'Not Allowed',
  406: 'Not Acceptable', 408: 'Request Time-out', 409: 'Conflict', 410: 'Gone', 411: 'Length Required',
  412: 'Precondition Failed', 413: 'Request Entity Too Large', 414: 'Request-URI Too Large',
  415: 'Unsupported Media Type', 416: 'Requested Range Not Satisfiable', 421: 'Misdirected Request',
  429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway', 503: 'Service Temporarily Unavailable',
  504: 'Gateway Time-out', 505: 'HTTP Version Not Supported', 507: 'Insufficient Storage',
};

const statusLines = new Map<number, string>();

/** `HTTP/1.1 200 OK\r\n`, memoised per status. */
export function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${REASONS[status] ?? ''}\r\n`;
    statusLines.set(status, line);
  }
  return line;
}

let cachedSecond = -1;
let cachedDate = '';

/** The current time as an HTTP date (RFC 9110 section 5.6.7), computed at most once a second. */
export function httpDate(now = Date.now()): string {
  const second = Math.floor(now / 1000);
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedDate = new Date(second * 1000).toUTCString();
  }
  return cachedDate;
}

/** True when a response to this request and status has no body (RFC 9110 sections 6.4.1, 15.2, 15.3.5, 15.4.5). */
export function responseHasNoBody(method: string, status: number): boolean {
  return method === 'HEAD' || status < 200 || status === 204 || status === 304;
}
