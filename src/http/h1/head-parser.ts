/**
 * HTTP/1.x message heads, parsed from raw bytes for the fast path. Strict where strictness stops
 * request smuggling (RFC 9112 sections 2.2, 5, 6.1, 6.3 and 11.2), lenient only where nginx is
 * (a bare LF ends a line, as RFC 9112 section 2.2 allows). Errors carry the status nginx answers
 * with and the words nginx logs.
 */

/** A request or response head that cannot be accepted, with the status to answer and the reason to log. */
export class HttpParseError extends Error {
  /** 400, 405, 414, 501 or 505 for requests; 502 for an upstream's response. */
  readonly status: number;

  constructor(status: number, reason: string) {
    super(reason);
    this.status = status;
    this.name = 'HttpParseError';
  }
}

/** Limits for one head, after nginx's `large_client_header_buffers 4 8k`. */
export interface HeadLimits {
  /** The longest request line or header line, in bytes. Default 8192. */
  readonly maxLineBytes: number;
  /** The most bytes the whole head may take. Default 32768. */
  readonly maxHeadBytes: number;
  /** `underscores_in_headers`: `_` is valid in a request header name. Default false. */
  readonly underscores?: boolean;
  /** `ignore_invalid_headers`: a request header with an invalid name is dropped. Default true. */
  readonly ignoreInvalid?: boolean;
  /** `max_headers`: the most header lines a request may have (dropped invalid ones do not count). Default 1000. */
  readonly maxHeaders?: number;
}

/** `max_headers 1000`. */
export const DEFAULT_MAX_HEADERS = 1000;

/** nginx's defaults. */
export const DEFAULT_HEAD_LIMITS: HeadLimits = Object.freeze({ maxLineBytes: 8192, maxHeadBytes: 32768 });

/** What both heads share: the header list and the framing facts derived from it. */
export interface MessageHead {
  /** HTTP/1.0 or HTTP/1.1 (any 1.x above 1 is treated as 1.1). */
  readonly versionMinor: 0 | 1;
  /** Header names (as sent) and values, flat: `[name0, value0, name1, value1, ...]`. */
  readonly headers: readonly string[];
  /** The declared body length, or -1 when there is no Content-Length. */
  readonly contentLength: number;
  /** True when the body is chunked (Transfer-Encoding ends in chunked). */
  readonly chunked: boolean;
  /** Tokens of the Connection header, lowercased. */
  readonly connection: readonly string[];
  /** Bytes the head took, including its final empty line. */
  readonly headBytes: number;
}

/** A parsed request head. */
export interface RequestHead extends MessageHead {
  readonly method: string;
  /** The request-target as sent. */
  readonly target: string;
  /** The Host header's value, if any. */
  readonly host: string | undefined;
  /** The Upgrade header's value, when Connection lists `upgrade`. */
  readonly upgrade: string | undefined;
  /** True when the client sent `Expect: 100-continue`. */
  readonly expectContinue: boolean;
  /** An HTTP/0.9 request (`GET /uri` alone): no header fields, and a response of the body only. */
  readonly http09?: true;
}

/** A parsed response head. */
export interface ResponseHead extends MessageHead {
  readonly status: number;
  readonly reason: string;
}

const LF = 0x0a;
const CR = 0x0d;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
// Field values may hold HTAB, SP, visible ASCII and obs-text, never other control characters.
const BAD_VALUE = /[\x00-\x08\x0a-\x1f\x7f]/;
const REQUEST_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) HTTP\/(\d)\.(\d)$/;
// ngx_http_parse_request_line(): a scheme of letters, digits, "+", "-" and ".", then "://".
const ABSOLUTE_TARGET = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;
/** A CONNECT request's authority-form target, `host:port` (RFC 9112 section 3.2.3): a port is required, a path refused (ngx_http_parse_request_line()). */
const AUTHORITY_TARGET = /^(?:\[[0-9A-Za-z:._~!$&'()*+,;=-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]+):[0-9]+$/;
const STATUS_LINE = /^HTTP\/(\d)\.(\d) (\d{3})(?: ([^\x00-\x08\x0a-\x1f\x7f]*))?$/;

interface Lines {
  /** Lines of the head without their line ends; the first is the start line. */
  readonly lines: string[];
  readonly headBytes: number;
}

/**
 * Splits a head into lines, or returns undefined when its end has not arrived yet. Leading empty
 * lines before a request are skipped (RFC 9112 section 2.2).
 */
function splitHead(buf: Buffer, offset: number, limits: HeadLimits, isRequest: boolean): Lines | undefined {
  let pos = offset;
  if (isRequest) {
    while (pos < buf.length && (buf[pos] === CR || buf[pos] === LF)) pos++;
  }
  const lines: string[] = [];
  for (;;) {
    const lf = buf.indexOf(LF, pos);
    if (lf === -1) {
      const pending = buf.length - pos;
      if (pending > limits.maxLineBytes) throw lineTooLong(lines.length === 0, isRequest);
      if (buf.length - offset > limits.maxHeadBytes) throw headTooLarge(isRequest);
      return undefined;
    }
    let end = lf;
    if (end > pos && buf[end - 1] === CR) end--;
    if (end - pos > limits.maxLineBytes) throw lineTooLong(lines.length === 0, isRequest);
    if (lf + 1 - offset > limits.maxHeadBytes) throw headTooLarge(isRequest);
    if (end === pos) {
      if (lines.length === 0) throw new HttpParseError(isRequest ? 400 : 502, isRequest ? 'client sent invalid request' : 'upstream sent no valid HTTP/1.0 header');
      return { lines, headBytes: lf + 1 - offset };
    }
    const line = buf.toString('latin1', pos, end);
    if (line.includes('\r')) {
      throw new HttpParseError(isRequest ? 400 : 502, isRequest ? 'client sent invalid header line' : 'upstream sent invalid header');
    }
    lines.push(line);
    pos = lf + 1;
  }
}

// ngx_http_process_request_line() answers 414; ngx_http_process_request_headers() answers 494
// (NGX_HTTP_REQUEST_HEADER_TOO_LARGE, sent as 400 "Request Header Or Cookie Too Large").
function lineTooLong(startLine: boolean, isRequest: boolean): HttpParseError {
  if (!isRequest) return new HttpParseError(502, 'upstream sent too big header');
  return startLine ? new HttpParseError(414, 'client sent too long URI') : new HttpParseError(494, 'client sent too long header line');
}

function headTooLarge(isRequest: boolean): HttpParseError {
  return isRequest ? new HttpParseError(494, 'client sent too large request') : new HttpParseError(502, 'upstream sent too big header');
}

// The characters nginx's lowcase_index table takes in a header name (ngx_http_parse_header_line()).
const PLAIN_NAME = /^[A-Za-z0-9-]+$/;
const PLAIN_NAME_UNDERSCORES = /^[A-Za-z0-9_-]+$/;

/** Strips optional whitespace, SP and HTAB only, from both ends. */
function trimOws(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && (text.charCodeAt(start) === 0x20 || text.charCodeAt(start) === 0x09)) start++;
  while (end > start && (text.charCodeAt(end - 1) === 0x20 || text.charCodeAt(end - 1) === 0x09)) end--;
  return start === 0 && end === text.length ? text : text.slice(start, end);
}

// The request fields nginx keeps once (ngx_http_process_unique_header_line() in ngx_http_headers_in[]):
// a second one is "client sent duplicate header line" and 400. Content-Length and Host have their own checks.
const UNIQUE_REQUEST_FIELDS: ReadonlySet<string> = new Set(['if-modified-since', 'if-unmodified-since', 'if-match', 'if-none-match', 'content-range', 'if-range', 'transfer-encoding', 'expect', 'authorization', 'proxy-authorization']);

interface Fields {
  headers: string[];
  contentLength: number;
  chunked: boolean;
  connection: string[];
  host: string | undefined;
  upgrade: string | undefined;
  expectContinue: boolean;
}

/** Parses header lines and derives framing, refusing every ambiguity a smuggler could use. */
function parseFields(lines: readonly string[], isRequest: boolean, versionMinor: 0 | 1, limits: HeadLimits = DEFAULT_HEAD_LIMITS): Fields {
  const plain = limits.underscores === true ? PLAIN_NAME_UNDERSCORES : PLAIN_NAME;
  const dropInvalid = isRequest && limits.ignoreInvalid !== false;
  const fail = (reason: string): never => {
    throw new HttpParseError(isRequest ? 400 : 502, isRequest ? `client sent ${reason}` : `upstream sent ${reason}`);
  };
  const headers: string[] = [];
  const maxFields = isRequest ? (limits.maxHeaders ?? DEFAULT_MAX_HEADERS) * 2 : Infinity;
  // ngx_http_process_request_headers() counts each line it keeps and answers 494 past max_headers.
  const pushField = (name: string, value: string): void => {
    if (headers.length >= maxFields) throw new HttpParseError(494, 'client sent too many header lines');
    headers.push(name, value);
  };
  let contentLength = -1;
  let contentLengthLine = '';
  let transferEncoding: string | undefined;
  let transferEncodingLine = '';
  let host: string | undefined;
  let upgradeValue: string | undefined;
  let expectContinue = false;
  let unique: Map<string, string> | undefined;
  const connection: string[] = [];
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i] as string;
    const first = line.charCodeAt(0);
    // Obsolete line folding (RFC 9112 section 5.2): refused, as a proxy may not pass it on.
    if (first === 0x20 || first === 0x09) fail('invalid header line');
    const colon = line.indexOf(':');
    if (colon <= 0) fail('invalid header line');
    const name = line.slice(0, colon);
    if (!TOKEN.test(name)) fail('invalid header line');
    // Only SP and HTAB are optional whitespace (RFC 9110 section 5.6.3): String.prototype.trim()
    // would also take VT, FF and NBSP, turning `chunked\xa0` into chunked and `5\xa0` into 5.
    const value = trimOws(line.slice(colon + 1));
    if (BAD_VALUE.test(value)) fail('invalid header line');
    // A name with other token characters (or `_` without underscores_in_headers) is what nginx
    // calls invalid: dropped with ignore_invalid_headers on, kept (and never special) with off.
    if (isRequest && !plain.test(name)) {
      if (!dropInvalid) pushField(name, value);
      continue;
    }
    pushField(name, value);
    if (name.length < 4 || name.length > 19) continue;
    const lower = name.toLowerCase();
    if (isRequest && UNIQUE_REQUEST_FIELDS.has(lower)) {
      // nginx logs both lines whole; credentials never reach hitless's log, so their values are hidden.
      const shown = lower.endsWith('authorization') ? `${name}: (hidden)` : line;
      const previous = (unique ??= new Map<string, string>()).get(lower);
      if (previous !== undefined) fail(`duplicate header line: "${shown}", previous value: "${previous}"`);
      unique.set(lower, shown);
    }
    switch (lower) {
      case 'content-length': {
        if (!/^[0-9]{1,15}$/.test(value)) fail(`invalid "Content-Length" header`);
        if (contentLength !== -1) fail(`duplicate header line: "${line}", previous value: "${contentLengthLine}"`);
        contentLength = Number(value);
        contentLengthLine = line;
        break;
      }
      case 'transfer-encoding':
        // ngx_http_upstream_process_transfer_encoding(): an upstream's second line is an invalid header.
        if (!isRequest && transferEncoding !== undefined) fail(`duplicate header line: "${line}", previous value: "${transferEncodingLine}"`);
        transferEncoding = transferEncoding === undefined ? value : `${transferEncoding}, ${value}`;
        transferEncodingLine = line;
        break;
      case 'host':
        if (isRequest) {
          if (host !== undefined) fail(`duplicate header line: "${line}", previous value: "Host: ${host}"`);
          host = value;
        }
        break;
      case 'connection':
        for (const token of value.split(',')) {
          const t = token.trim().toLowerCase();
          if (t !== '') connection.push(t);
        }
        break;
      case 'upgrade':
        upgradeValue = value;
        break;
      case 'expect':
        if (isRequest && value.toLowerCase() === '100-continue') expectContinue = true;
        break;
    }
  }
  let chunked = false;
  if (transferEncoding !== undefined) {
    // RFC 9112 section 6.1: chunked must be the final coding; 6.3: with Content-Length too is an attack.
    if (isRequest && versionMinor === 0) fail('"Transfer-Encoding" header in HTTP/1.0 request');
    if (contentLength !== -1) fail('"Content-Length" and "Transfer-Encoding" headers at the same time');
    const codings = transferEncoding.toLowerCase().split(',').map(trimOws);
    if (codings.length !== 1 || codings[0] !== 'chunked') {
      if (isRequest) throw new HttpParseError(501, `client sent unknown "Transfer-Encoding": "${transferEncoding}"`);
      if (codings[codings.length - 1] !== 'chunked') fail(`unknown "Transfer-Encoding": "${transferEncoding}"`);
    }
    chunked = true;
  }
  const upgrade = upgradeValue !== undefined && connection.includes('upgrade') ? upgradeValue : undefined;
  return { headers, contentLength, chunked, connection, host, upgrade, expectContinue };
}

/**
 * Parses a request head starting at `offset`. Returns undefined when more bytes are needed, or
 * throws an {@link HttpParseError} carrying nginx's status and log words.
 */
export function parseRequestHead(buf: Buffer, offset = 0, limits: HeadLimits = DEFAULT_HEAD_LIMITS): RequestHead | undefined {
  const simple = http09Head(buf, offset, limits);
  if (simple !== undefined) return simple;
  const split = splitHead(buf, offset, limits, true);
  if (split === undefined) return undefined;
  const start = split.lines[0] as string;
  const match = REQUEST_LINE.exec(start);
  if (match === null) throw new HttpParseError(400, 'client sent invalid request');
  // ngx_http_parse_request_line() reads the target before the version: one that is neither a path
  // nor an absolute URI (`*`, as in the HTTP/2 preface sent to an HTTP/1 port) is a 400 first.
  const target = match[2] as string;
  if (match[1] === 'CONNECT' ? !AUTHORITY_TARGET.test(target) : target.charCodeAt(0) !== 0x2f && !ABSOLUTE_TARGET.test(target)) throw new HttpParseError(400, 'client sent invalid request');
  const major = Number(match[3]);
  if (major !== 1) throw new HttpParseError(major > 1 ? 505 : 400, 'client sent unsupported HTTP version');
  const versionMinor: 0 | 1 = match[4] === '0' ? 0 : 1;
  const fields = parseFields(split.lines, true, versionMinor, limits);
  // A missing or malformed Host is refused by the HTTP layer, which logs it with the request line as nginx does.
  // nginx answers TRACE with 405 whatever the configuration (ngx_http_process_request_header).
  if (match[1] === 'TRACE') throw new HttpParseError(405, 'client sent TRACE method');
  // ngx_http_process_request_header(): no server allows CONNECT (only a module sets allow_connect).
  if (match[1] === 'CONNECT') throw new HttpParseError(405, 'client sent CONNECT method');
  return {
    method: match[1] as string,
    target: match[2] as string,
    versionMinor,
    headers: fields.headers,
    contentLength: fields.contentLength,
    chunked: fields.chunked,
    connection: fields.connection,
    headBytes: split.headBytes,
    host: fields.host,
    upgrade: fields.upgrade,
    expectContinue: fields.expectContinue,
  };
}

const HTTP09_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+) ([^\x00-\x20\x7f]+) *$/;

/**
 * ngx_http_parse_request_line()'s sw_http_09: a request line of a method and a target and no
 * version is a whole HTTP/0.9 request; only GET may be one. Undefined when the buffer holds no
 * such line (yet). A first byte no method starts with is refused at once, as nginx's sw_start does,
 * rather than after a line that may never end.
 */
function http09Head(buf: Buffer, offset: number, limits: HeadLimits): RequestHead | undefined {
  let pos = offset;
  while (pos < buf.length && (buf[pos] === CR || buf[pos] === LF)) pos++;
  if (pos === buf.length) return undefined;
  const first = buf[pos] as number;
  if (!((first >= 0x41 && first <= 0x5a) || first === 0x5f || first === 0x2d)) throw new HttpParseError(400, 'client sent invalid method');
  const lf = buf.indexOf(LF, pos);
  if (lf === -1 || lf - pos > limits.maxLineBytes) return undefined;
  // Every HTTP/1.x request line names its version: a native search keeps them off the decode below.
  const version = buf.indexOf(' HTTP/', pos, 'latin1');
  if (version !== -1 && version < lf) return undefined;
  const line = buf.toString('latin1', pos, lf > pos && buf[lf - 1] === CR ? lf - 1 : lf);
  const match = HTTP09_LINE.exec(line);
  if (match === null) return undefined;
  if (match[1] !== 'GET') throw new HttpParseError(400, 'client sent invalid method in HTTP/0.9 request');
  const target = match[2] as string;
  if (target.charCodeAt(0) !== 0x2f && !ABSOLUTE_TARGET.test(target)) throw new HttpParseError(400, 'client sent invalid request');
  return {
    method: 'GET',
    target,
    versionMinor: 0,
    headers: [],
    contentLength: -1,
    chunked: false,
    connection: [],
    headBytes: lf + 1 - offset,
    host: undefined,
    upgrade: undefined,
    expectContinue: false,
    http09: true,
  };
}

/** Parses an upstream's response head; undefined when more bytes are needed; throws a 502 error. */
export function parseResponseHead(buf: Buffer, offset = 0, limits: HeadLimits = DEFAULT_HEAD_LIMITS): ResponseHead | undefined {
  const split = splitHead(buf, offset, limits, false);
  if (split === undefined) return undefined;
  const match = STATUS_LINE.exec(split.lines[0] as string);
  if (match === null || match[1] !== '1') throw new HttpParseError(502, 'upstream sent no valid HTTP/1.0 header');
  const versionMinor: 0 | 1 = match[2] === '0' ? 0 : 1;
  const fields = parseFields(split.lines, false, versionMinor);
  return {
    status: Number(match[3]),
    reason: match[4] ?? '',
    versionMinor,
    headers: fields.headers,
    contentLength: fields.contentLength,
    chunked: fields.chunked,
    connection: fields.connection,
    headBytes: split.headBytes,
  };
}
