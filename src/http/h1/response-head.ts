/** Building HTTP/1.1 response heads: status lines and a Date header cached per second. */
import { STATUS_REASONS } from '../responses.js';


const statusLines = new Map<number, string>();

/** `HTTP/1.1 200 OK\r\n`, memoised per status. */
export function statusLine(status: number): string {
  let line = statusLines.get(status);
  if (line === undefined) {
    line = `HTTP/1.1 ${status} ${STATUS_REASONS[status] ?? ''}\r\n`;
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
