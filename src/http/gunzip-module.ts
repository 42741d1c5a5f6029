/**
 * nginx's `ngx_http_gunzip_filter_module`: `gunzip on` decompresses a response whose
 * Content-Encoding is gzip (from a proxied upstream, or a .gz that `gzip_static always` sends) for
 * a client that does not take gzip as `ngx_http_gzip_ok()` judges it. The body goes through
 * node:zlib's gunzip stream with back-pressure, so a response of any length is inflated in
 * constant memory; several gzip members in a row are inflated one after the other, as nginx's
 * inflateReset() loop does. A broken stream ends the response by closing the connection, after an
 * [error] in nginx's words.
 */
import type { Transform } from 'node:stream';
import { createGunzip } from 'node:zlib';
import { defineDirective, type ConfBlockView, type ConfModule } from '../conf/registry.js';
import { flagDirective } from '../conf/values.js';
import { clientTakes, gzipClientRulesOf, recodedHead, type GzipClientRules } from './gzip-filter.js';
import { zlibBuffers, zlibChunkSize } from './gzip-module.js';
import { headerOf, removeHeader, type FilterHead, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    gunzip: boolean;
    gunzip_buffers: { readonly number: number; readonly size: number };
  }
}

/** The gunzip module's directives. */
export const httpGunzipModule: ConfModule = {
  name: 'ngx_http_gunzip_filter_module',
  directives: [
    flagDirective('gunzip', 'Decompresses gzip-encoded responses for clients that do not accept gzip (as gzip_http_version, gzip_proxied and gzip_disable judge them).', false),
    defineDirective({
      kind: 'value',
      name: 'gunzip_buffers',
      contexts: ['http', 'server', 'location'],
      args: [2],
      syntax: 'number size;',
      summary: 'In hitless the size is the size of the chunks zlib hands out (zlib chunkSize); the number is not used, since the stream\'s back-pressure bounds what one response holds (a [warn] says so).',
      default: () => ({ number: 32, size: 4096 }),
      defaultText: 'gunzip_buffers 32 4k|16 8k;',
      parse: zlibBuffers('gunzip_buffers'),
    }),
  ],
};

/** zlib's Z_BUF_ERROR: the input ended inside a gzip member. */
const Z_BUF_ERROR = -5;

/** The gunzip filter of a level with `gunzip on`; undefined when it is off. */
export function gunzipFilterOf(block: ConfBlockView, log: (request: HttpRequest, message: string) => void): OutputFilter | undefined {
  if (!block.get('gunzip')) return undefined;
  const rules = gzipClientRulesOf(block);
  const chunkSize = zlibChunkSize(block.get('gunzip_buffers'));
  return {
    name: 'ngx_http_gunzip_filter_module',
    encodes: (head, request) => decodes(head, request, rules),
    header(head: FilterHead, request: HttpRequest): Transform | undefined {
      if (!gzipEncoded(head)) return undefined;
      // r->gzip_vary: a gzipped response varies whether it is inflated or not.
      request.gzipVary = true;
      if (!request.gzipRefused && clientTakes(request, head.headers, rules, head.fileTime)) return undefined;
      removeHeader(head.headers, 'content-encoding');
      recodedHead(head);
      if (head.headerOnly) return undefined;
      const gunzip = createGunzip({ chunkSize });
      gunzip.once('error', (err: NodeJS.ErrnoException) => {
        // ngx_http_gunzip_filter_inflate(): the stream ends inside a member, or inflate() refuses the data.
        const errno = typeof err.errno === 'number' ? err.errno : 0;
        if (errno === Z_BUF_ERROR) log(request, `inflate() returned ${errno} on response end`);
        else log(request, `inflate() failed: ${gunzip.writableEnded ? 4 : 0}, ${errno}`);
      });
      return gunzip;
    },
  };
}

/** The response says Content-Encoding: gzip, nothing else (nginx compares the whole value, caseless). */
function gzipEncoded(head: FilterHead): boolean {
  return headerOf(head.headers, 'content-encoding')?.toLowerCase() === 'gzip';
}

/** Whether the filter would inflate this response (asked before ranges are cut). */
function decodes(head: FilterHead, request: HttpRequest, rules: GzipClientRules): boolean {
  return gzipEncoded(head) && (request.gzipRefused || !clientTakes(request, head.headers, rules, head.fileTime));
}
