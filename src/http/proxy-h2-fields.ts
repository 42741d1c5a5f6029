/**
 * What ngx_http_proxy_v2_module puts in HEADERS and reads back: the request's pseudo-headers and
 * fields, and an HTTP/2 response head (or trailer section) in the shape the HTTP/1 proxy's header
 * rules (proxy-request.ts) read.
 */
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { ResponseHead } from './h1/head-parser.js';
import type { CompiledProxy } from './proxy-config.js';
import { connectionListed, HOP_BY_HOP_REQUEST } from './proxy-request.js';
import type { HttpRequest } from './request.js';

/** Fields HTTP/2 forbids in a request (RFC 9113 section 8.2.2), whoever sets them. */
const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'http2-settings']);

/**
 * `:method`, `:scheme`, `:path`, `:authority`, then the proxy_set_header fields and the client's
 * (ngx_http_proxy_v2_create_request()); the Host proxy_set_header sets is the `:authority`, and
 * `bodyLength` (-1: none or unknown) is sent as Content-Length.
 */
export function h2RequestHeaders(request: HttpRequest, proxy: CompiledProxy, bodyLength: number): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {
    ':method': request.method,
    ':scheme': proxy.ssl === undefined ? 'http' : 'https',
    ':path': proxy.uriFor(request),
  };
  const replaced = new Set<string>();
  let authority = '';
  for (const header of proxy.setHeaders) {
    replaced.add(header.key);
    const value = header.value(request);
    if (header.key === 'host') authority = value;
    else if (value !== '' && !CONNECTION_SPECIFIC.has(header.key) && header.key !== 'content-length') addField(out, header.key, value);
  }
  out[':authority'] = authority !== '' ? authority : request.proxyHost !== '' ? request.proxyHost : proxy.proxyHost;
  if (proxy.passRequestHeaders) {
    const headers = request.head.headers;
    const listed = connectionListed(request);
    for (let i = 0; i < headers.length; i += 2) {
      const key = (headers[i] as string).toLowerCase();
      if (replaced.has(key) || HOP_BY_HOP_REQUEST.has(key) || CONNECTION_SPECIFIC.has(key) || listed?.has(key) || key.charCodeAt(0) === 0x3a) continue;
      addField(out, key, headers[i + 1] as string);
    }
  }
  // $proxy_internal_body_length: the body's length when it is known.
  if (bodyLength >= 0) out['content-length'] = String(bodyLength);
  return out;
}

/** Adds a field, a repeated name as a list (node:http2 sends each as its own field). */
function addField(out: OutgoingHttpHeaders, key: string, value: string): void {
  const seen = out[key];
  if (seen === undefined) out[key] = value;
  else if (Array.isArray(seen)) seen.push(value);
  else out[key] = [String(seen), value];
}

/** An HTTP/2 response head (or trailer section) in the shape the HTTP/1 proxy reads: the fields as received, in order. */
export function responseHeadOf(headers: IncomingHttpHeaders, raw: readonly string[] | undefined): ResponseHead {
  const fields: string[] = [];
  if (raw !== undefined) {
    for (let i = 0; i + 1 < raw.length; i += 2) if ((raw[i] as string).charCodeAt(0) !== 0x3a) fields.push(raw[i] as string, raw[i + 1] as string);
  } else {
    for (const [name, value] of Object.entries(headers)) {
      if (name.charCodeAt(0) === 0x3a || value === undefined) continue;
      if (Array.isArray(value)) for (const item of value) fields.push(name, item);
      else fields.push(name, String(value));
    }
  }
  const length = Number(headers['content-length'] ?? Number.NaN);
  return {
    status: Number(headers[':status'] ?? 0),
    reason: '',
    versionMinor: 1,
    headers: fields,
    contentLength: Number.isSafeInteger(length) && length >= 0 ? length : -1,
    chunked: false,
    connection: [],
    headBytes: 0,
  };
}
