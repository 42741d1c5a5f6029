/**
 * google/ngx_brotli's `ngx_http_brotli_static_module`: `brotli_static on` serves FILE.br
 * (Content-Encoding: br, its own length, Last-Modified and ETag, the type of FILE) to a client
 * whose Accept-Encoding takes br; `always` serves it to every client. Its content handler runs
 * before gzip_static's, so FILE.br wins over FILE.gz. `on` marks every GET or HEAD of a file as
 * varying (r->gzip_vary, shown with gzip_vary on), whether a .br exists or not, as ngx_brotli does.
 */
import { defineDirective, type ConfBlockView, type ConfModule } from '../conf/registry.js';
import { acceptsBrotli } from './brotli-module.js';
import { openFile, type OpenedFile, type OpenSettings } from './open-file.js';
import type { HttpRequest } from './request.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    brotli_static: 'off' | 'on' | 'always';
  }
}

/** The brotli_static module's directive. */
export const httpBrotliStaticModule: ConfModule = {
  name: 'ngx_http_brotli_static_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'brotli_static',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'on | off | always;',
      summary: 'Serves FILE.br, when it exists, instead of FILE to clients that accept br (always: to every client); before gzip_static.',
      default: () => 'off' as const,
      defaultText: 'brotli_static off;',
      parse: ([value = ''], ctx) => (value === 'on' || value === 'off' || value === 'always' ? value : ctx.fail(`invalid value "${value}"`)),
    }),
  ],
};

/** The level's brotli_static mode; undefined when off. */
export function brotliStaticOf(block: ConfBlockView): 'on' | 'always' | undefined {
  const mode = block.get('brotli_static');
  return mode === 'off' ? undefined : mode;
}

/**
 * ngx_brotli's static handler: opens `path`.br for a client that takes br (any client with
 * `always`); undefined when there is none to send.
 */
export async function brotliPrecompressed(mode: 'on' | 'always', request: HttpRequest, path: string, open: OpenSettings): Promise<OpenedFile | undefined> {
  const method = request.method;
  if ((method !== 'GET' && method !== 'HEAD') || path.endsWith('/')) return undefined;
  if (mode === 'on') {
    request.gzipVary = true;
    if (!acceptsBrotli(request.header('accept-encoding'))) return undefined;
    // check_eligility(): r->gzip_tested = 1, r->gzip_ok = 0.
    request.gzipRefused = true;
  }
  let file: OpenedFile;
  try {
    file = await openFile(`${path}.br`, open);
  } catch {
    return undefined;
  }
  if (file.info.isFile()) return file;
  file.release();
  return undefined;
}
