/**
 * Request targets as nginx reads them: the request line's URI normalised into `$uri`
 * (`ngx_http_parse_complex_uri()`), the `Host` header validated (`ngx_http_validate_host()`), and
 * the byte strings both are kept in. nginx compares bytes; hitless keeps every request-derived value
 * as a "byte string" (one UTF-16 unit per byte, what node:http hands over for header values) and
 * converts configuration text (UTF-8) to the same form once, when a generation is built.
 */


/** The parts of a request target: the path as sent, the query string, and a host if absolute-form. */
export interface RequestTarget {
  /** The path, not yet normalised (`$request_uri` without its arguments). */
  readonly path: string;
  /** The query string without `?` (`$args`); empty when there is none. */
  readonly args: string;
  /** Whether the target had a `?` (for `$is_args`). */
  readonly hasArgs: boolean;
  /** The host of an absolute-form target (`GET http://example.com/ HTTP/1.1`), which wins over `Host`. */
  readonly host: string | undefined;
  /** The target minus scheme and host: what nginx keeps as `$request_uri`. */
  readonly requestUri: string;
}

/** An absolute-form target's authority as nginx's request line parser takes it. */
const AUTHORITY = /^(?:[A-Za-z0-9.-]*|\[[0-9A-Za-z.:_~!$&'()*+,;=-]*\])(?::[0-9]*)?$/;

/** Splits a request target (origin-form or absolute-form, RFC 9112 section 3.2); undefined if invalid. */
export function parseRequestTarget(target: string): RequestTarget | undefined {
  let host: string | undefined;
  let rest = target;
  if (target.charCodeAt(0) !== 0x2f) {
    const match = /^https?:\/\/([^/?#]*)/i.exec(target);
    if (match === null) return undefined;
    host = match[1] ?? '';
    // ngx_http_parse_request_line() (sw_host, sw_host_ip_literal, sw_port): a name of letters,
    // digits, dots and dashes or an IP literal, then a port. Userinfo (`good@evil.example`) is
    // refused: forwarded as the Host, it would name another site than the one the client meant.
    if (!AUTHORITY.test(host)) return undefined;
    rest = target.slice(match[0].length);
    if (rest === '' || rest.charCodeAt(0) === 0x3f) rest = `/${rest}`;
  }
  // ngx_http_parse_complex_uri(): a "#" ends the path or the arguments; $request_uri keeps it.
  const hash = rest.indexOf('#');
  const beforeHash = hash === -1 ? rest : rest.slice(0, hash);
  const question = beforeHash.indexOf('?');
  if (question === -1) return { path: beforeHash, args: '', hasArgs: false, host, requestUri: rest };
  return { path: beforeHash.slice(0, question), args: beforeHash.slice(question + 1), hasArgs: true, host, requestUri: rest };
}

function hexValue(code: number): number {
  if (code >= 0x30 && code <= 0x39) return code - 0x30;
  const lower = code | 0x20;
  if (lower >= 0x61 && lower <= 0x66) return lower - 0x61 + 10;
  return -1;
}

/**
 * Normalises a request path into `$uri` as `ngx_http_parse_complex_uri()` does with
 * `merge_slashes on`: decodes `%XX` (a decoded `/` or `.` takes part in what follows), merges
 * repeated slashes, resolves `.` and `..` segments. Undefined when nginx answers 400: a bad `%`
 * escape, an encoded NUL, or `..` above the root. With `mergeSlashes` false (`merge_slashes off`),
 * empty segments stay.
 */
export function normalizeUri(path: string, mergeSlashes = true): string | undefined {
  if (path.charCodeAt(0) !== 0x2f) return undefined;
  if (!/%|\/\/|\/\./.test(path)) return path;
  let decoded = path;
  if (path.includes('%')) {
    decoded = '';
    for (let i = 0; i < path.length; i++) {
      const code = path.charCodeAt(i);
      if (code !== 0x25) {
        decoded += path[i];
        continue;
      }
      const high = hexValue(path.charCodeAt(i + 1));
      const low = hexValue(path.charCodeAt(i + 2));
      if (high < 0 || low < 0) return undefined;
      const byte = (high << 4) | low;
      if (byte === 0) return undefined;
      decoded += String.fromCharCode(byte);
      i += 2;
    }
  }
  const segments: string[] = [];
  const pieces = decoded.split('/');
  let trailingSlash = false;
  for (let i = 1; i < pieces.length; i++) {
    const piece = pieces[i] as string;
    const last = i === pieces.length - 1;
    if (piece === '' && !mergeSlashes && !last) {
      segments.push(piece);
      continue;
    }
    if (piece === '' || piece === '.') {
      trailingSlash = last;
      continue;
    }
    if (piece === '..') {
      if (segments.length === 0) return undefined;
      segments.pop();
      trailingSlash = last;
      continue;
    }
    segments.push(piece);
    trailingSlash = false;
  }
  if (segments.length === 0) return '/';
  return `/${segments.join('/')}${trailingSlash ? '/' : ''}`;
}

/** What a host name may hold besides letters and digits (RFC 3986 unreserved, sub-delims, `%`), and `:` inside `[...]`. */
const HOST_CHARS = new Set([...'-._~!$&\'()*+,;=%']);

/** A valid `Host`: the host part, lowercased, without port or trailing dot; the port, 0 when none was given. */
export interface ValidHost {
  readonly host: string;
  readonly port: number;
}

/**
 * Validates a `Host` value as `ngx_http_validate_host()` does (nginx 1.29.4: only RFC 3986
 * reg-name characters, an IP literal in brackets, a port of digits up to 65535) and returns the
 * host part and the port (`$request_port`). Undefined for a host nginx refuses with 400 (`client
 * sent invalid host header`): `..`, a character outside those, a bad port, an empty host or a dot
 * after an IP literal.
 */
export function validateHost(raw: string): ValidHost | undefined {
  let dotPos = raw.length;
  let hostLen = raw.length;
  let port = 0;
  let state: 'start' | 'host' | 'literal' | 'end' | 'port' = 'start';
  for (let i = 0; i < raw.length; i++) {
    const ch = raw[i] as string;
    if (state === 'start') {
      if (ch === '[') {
        state = 'literal';
        continue;
      }
      state = 'host';
    }
    if (state === 'host' || state === 'literal') {
      if (/[A-Za-z0-9]/.test(ch)) continue;
      if (ch === ':') {
        if (state === 'host') {
          hostLen = i;
          state = 'port';
        }
        continue;
      }
      if (ch === ']' && state === 'literal') {
        hostLen = i + 1;
        state = 'end';
        continue;
      }
      if (ch === '.') {
        if (dotPos === i - 1) return undefined;
        dotPos = i;
        continue;
      }
      if (!HOST_CHARS.has(ch)) return undefined;
      continue;
    }
    if (state === 'end') {
      if (ch !== ':') return undefined;
      state = 'port';
      continue;
    }
    // state === 'port'
    if (ch < '0' || ch > '9') return undefined;
    port = port * 10 + Number(ch);
    if (port > 65535) return undefined;
  }
  if (state === 'literal') return undefined;
  if (dotPos === hostLen - 1) hostLen--;
  if (hostLen <= 0) return undefined;
  return { host: raw.slice(0, hostLen).toLowerCase(), port };
}
