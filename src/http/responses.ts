/**
 * What nginx answers with when it makes the response itself: the status line's reason phrase
 * (`ngx_http_status_lines`) and the built-in pages for redirects and errors
 * (`ngx_http_special_response.c`), signed `hitless` where nginx signs `nginx`.
 */

/** Reason phrases nginx sends on the status line; others get an empty phrase, as nginx does. */
export const STATUS_REASONS: Readonly<Record<number, string>> = {
  100: 'Continue', 101: 'Switching Protocols',
  200: 'OK', 201: 'Created', 202: 'Accepted', 204: 'No Content', 206: 'Partial Content',
  301: 'Moved Permanently', 302: 'Moved Temporarily', 303: 'See Other', 304: 'Not Modified',
  307: 'Temporary Redirect', 308: 'Permanent Redirect',
  400: 'Bad Request', 401: 'Unauthorized', 402: 'Payment Required', 403: 'Forbidden', 404: 'Not Found',
  405: 'Not Allowed', 406: 'Not Acceptable', 408: 'Request Time-out', 409: 'Conflict', 410: 'Gone',
  411: 'Length Required', 412: 'Precondition Failed', 413: 'Request Entity Too Large',
  414: 'Request-URI Too Large', 415: 'Unsupported Media Type', 416: 'Requested Range Not Satisfiable',
  421: 'Misdirected Request', 429: 'Too Many Requests',
  500: 'Internal Server Error', 501: 'Not Implemented', 502: 'Bad Gateway',
  503: 'Service Temporarily Unavailable', 504: 'Gateway Time-out', 505: 'HTTP Version Not Supported',
  507: 'Insufficient Storage',
};

/** The titles of nginx's built-in pages, where they differ from the status line or are nginx's own codes. */
const PAGE_TITLES: Readonly<Record<number, string>> = {
  ...STATUS_REASONS,
  302: 'Found',
  401: 'Authorization Required',
  494: 'Request Header Or Cookie Too Large',
  495: 'The SSL certificate error',
  496: 'No required SSL certificate was sent',
  497: 'The plain HTTP request was sent to HTTPS port',
};

/** nginx's codes that are answered as 400 on the wire (ngx_http_special_response_handler()). */
const SENT_AS_400 = new Set([494, 495, 496, 497]);

/** The statuses for which nginx turns keep-alive off when it answers with its own page. */
export const CLOSE_AFTER_PAGE: ReadonlySet<number> = new Set([400, 413, 414, 494, 495, 496, 497, 500, 501]);

/** The redirect statuses, whose `return` text is the `Location`. */
export const REDIRECT_STATUSES: ReadonlySet<number> = new Set([301, 302, 303, 307, 308]);

/**
 * The built-in page for a status: nginx's HTML, or undefined when nginx has none (2xx, 1xx, 304,
 * unknown codes). `signature` is what server_tokens makes of the footer (`hitless/0.1.0`, `hitless`).
 */
export function specialPage(status: number, signature = 'hitless'): string | undefined {
  if (status < 300 || status === 304) return undefined;
  const title = PAGE_TITLES[status];
  if (title === undefined) return undefined;
  const tail = `<hr><center>${signature}</center>\r\n</body>\r\n</html>\r\n`;
  // 494-497 (ngx_http_error_494_page...): titled with the reason, headed "400 Bad Request", the reason below.
  if (SENT_AS_400.has(status)) return `<html>\r\n<head><title>400 ${title}</title></head>\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>${title}</center>\r\n${tail}`;
  const heading = `${status} ${title}`;
  return `<html>\r\n<head><title>${heading}</title></head>\r\n<body>\r\n<center><h1>${heading}</h1></center>\r\n${tail}`;
}

/** The status sent on the wire for one of nginx's internal codes (494-497 go out as 400). */
export function wireStatus(status: number): number {
  return SENT_AS_400.has(status) ? 400 : status;
}

/** True when a response of this status has no body (RFC 9110 sections 15.2, 15.3.5, 15.4.5). */
export function statusHasNoBody(status: number): boolean {
  return status < 200 || status === 204 || status === 304;
}
