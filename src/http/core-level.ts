/**
 * The settings of `core-directives.ts`, compiled once per level (server or location) and per
 * connection (the default server's), and the request-time rules they drive: the Server header's
 * value, keep-alive by browser (`ngx_http_finalize_connection()`), msie_padding
 * (`ngx_http_send_special_response()`), and the request head limits.
 */
import { VERSION } from '../core/version.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { KeepaliveDisable, LimitExcept, LingeringClose } from './core-directives.js';
import type { HeadLimits } from './h1/head-parser.js';
import type { H1ConnectionOptions } from './h1/server-connection.js';
import { specialPage } from './responses.js';

/** What a request reads from the level that answers it. */
export interface CoreLevel {
  /** The Server header: `hitless/VERSION` with server_tokens on, `hitless` off. */
  readonly serverHeader: string;
  /** What the built-in pages are signed with: the same words. */
  readonly signature: string;
  readonly chunked: boolean;
  /** `http2_chunk_size`. */
  readonly http2ChunkSize: number;
  readonly keepaliveDisable: KeepaliveDisable;
  readonly msiePadding: boolean;
  readonly recursiveErrorPages: boolean;
  /** The location's `limit_except`, if any. */
  readonly limitExcept: LimitExcept | undefined;
}

/** What a connection takes from the default server of its address, before any Host is read. */
export interface CoreConnection {
  readonly limits: HeadLimits;
  readonly mergeSlashes: boolean;
  readonly lingering: Lingering;
  readonly resetTimedout: boolean;
}

/** `lingering_close`, `lingering_time`, `lingering_timeout`. */
export interface Lingering {
  readonly mode: LingeringClose;
  readonly timeMs: number;
  readonly timeoutMs: number;
}

/** The words of `server_tokens`: nginx sends `nginx/1.22.1` on (and build, without a build name), `nginx` off. */
export function serverTokensText(tokens: 'on' | 'off' | 'build'): string {
  return tokens === 'off' ? 'hitless' : `hitless/${VERSION}`;
}

/** Compiles a server's or location's core settings. */
export function compileCoreLevel(block: ConfBlockView): CoreLevel {
  const text = serverTokensText(block.get('server_tokens'));
  const limitExcept = block.name === 'location' ? block.blocks.find((child) => child.name === 'limit_except') : undefined;
  return {
    serverHeader: text,
    signature: text,
    chunked: block.get('chunked_transfer_encoding'),
    http2ChunkSize: block.get('http2_chunk_size'),
    keepaliveDisable: block.get('keepalive_disable'),
    msiePadding: block.get('msie_padding'),
    recursiveErrorPages: block.get('recursive_error_pages'),
    limitExcept: limitExcept === undefined ? undefined : (limitExcept.value as LimitExcept),
  };
}

/** Compiles the connection-level settings of a server (used for the default server of an address). */
export function compileCoreConnection(server: ConfBlockView): CoreConnection {
  const buffers = server.get('large_client_header_buffers');
  return {
    // ngx_http_alloc_large_header_buffer(): a line must fit one large buffer, the head the first buffer and all the large ones.
    limits: {
      maxLineBytes: buffers.size,
      maxHeadBytes: server.get('client_header_buffer_size') + buffers.number * buffers.size,
      underscores: server.get('underscores_in_headers'),
      ignoreInvalid: server.get('ignore_invalid_headers'),
      maxHeaders: server.get('max_headers'),
    },
    mergeSlashes: server.get('merge_slashes'),
    lingering: { mode: server.get('lingering_close'), timeMs: server.get('lingering_time'), timeoutMs: server.get('lingering_timeout') },
    resetTimedout: server.get('reset_timedout_connection'),
  };
}

/** The HTTP/1 connection options a default server gives its connections (head limits, lingering, its Server header and pages). */
export function h1Options(server: { readonly level: { readonly core: CoreLevel }; readonly connection: CoreConnection }): H1ConnectionOptions {
  const { connection, level } = server;
  const signature = level.core.signature;
  return {
    limits: connection.limits,
    lingeringClose: connection.lingering.mode,
    lingeringTimeMs: connection.lingering.timeMs,
    lingeringTimeoutMs: connection.lingering.timeoutMs,
    resetTimedout: connection.resetTimedout,
    serverHeader: level.core.serverHeader,
    errorPage: (status) => specialPage(status, signature) ?? '',
  };
}

/** The browsers nginx recognises by User-Agent (`ngx_http_process_user_agent()`). */
export interface Browser {
  readonly msie: boolean;
  readonly msie6: boolean;
  readonly chrome: boolean;
  readonly safari: boolean;
}

const NO_BROWSER: Browser = Object.freeze({ msie: false, msie6: false, chrome: false, safari: false });

/** Reads a User-Agent as nginx does: MSIE (and 4-6 without SV1), Opera ruling MSIE out, then Gecko, Chrome or Safari on macOS. */
export function detectBrowser(userAgent: string | undefined): Browser {
  if (userAgent === undefined) return NO_BROWSER;
  let msie = false;
  let msie6 = false;
  const at = userAgent.indexOf('MSIE ');
  if (at !== -1 && at + 7 < userAgent.length) {
    msie = true;
    if (userAgent[at + 6] === '.') {
      const major = userAgent[at + 5];
      if (major === '4' || major === '5') msie6 = true;
      else if (major === '6' && !userAgent.slice(at + 8).includes('SV1')) msie6 = true;
    }
  }
  if (userAgent.includes('Opera')) {
    msie = false;
    msie6 = false;
  }
  let chrome = false;
  let safari = false;
  if (!msie && !userAgent.includes('Opera') && !userAgent.includes('Gecko/')) {
    if (userAgent.includes('Chrome/')) chrome = true;
    else if (userAgent.includes('Safari/') && userAgent.includes('Mac OS X')) safari = true;
  }
  return { msie, msie6, chrome, safari };
}

/** `keepalive_disable`: true when this browser's request must close the connection after its response. */
export function keepaliveDisabledFor(level: CoreLevel, method: string, userAgent: string | undefined): boolean {
  const disable = level.keepaliveDisable;
  if (!disable.msie6 && !disable.safari) return false;
  const browser = detectBrowser(userAgent);
  // MSIE 6 waits after a POST's response on a kept-alive connection; Safari may POST on a closed one (WebKit bug 5760).
  return (disable.msie6 && browser.msie6 && method === 'POST') || (disable.safari && browser.safari);
}

/** nginx's padding, six lines of comment that push a page past the 512 bytes MSIE and Chrome want before they show it. */
const PADDING = '<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n'.repeat(6);

/** `msie_padding`: the padding for a built-in page of a 4xx or 5xx status, or ''. */
export function msiePaddingFor(level: CoreLevel, status: number, userAgent: string | undefined): string {
  if (!level.msiePadding || status < 400) return '';
  const browser = detectBrowser(userAgent);
  return browser.msie || browser.chrome ? PADDING : '';
}
