/**
 * nginx's `ngx_http_gzip_static_module`: `gzip_static on` serves FILE.gz (Content-Encoding: gzip,
 * its own length, Last-Modified and ETag, the type of FILE) to a client that takes gzip as
 * `ngx_http_gzip_ok()` judges; `always` serves it to every client. With `gzip_vary on`, a response
 * for a file that has a .gz says `Vary: Accept-Encoding` whichever of the two is sent.
 */
import { defineDirective, type ConfBlockView, type ConfModule } from '../conf/registry.js';
import { clientTakes, gzipClientRulesOf, type GzipClientRules } from './gzip-filter.js';
import { openFile, type OpenedFile, type OpenSettings } from './open-file.js';
import type { HttpRequest } from './request.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    gzip_static: 'off' | 'on' | 'always';
  }
}

/** The gzip_static module's directive. */
export const httpGzipStaticModule: ConfModule = {
  name: 'ngx_http_gzip_static_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'gzip_static',
      contexts: ['http', 'server', 'location'],
      args: [1],
      syntax: 'on | off | always;',
      summary: 'Serves FILE.gz, when it exists, instead of FILE to clients that accept gzip (always: to every client).',
      default: () => 'off' as const,
      defaultText: 'gzip_static off;',
      parse: ([value = ''], ctx) => (value === 'on' || value === 'off' || value === 'always' ? value : ctx.fail(`invalid value "${value}"`)),
    }),
  ],
};

/** A level's gzip_static settings. */
export interface GzipStatic extends GzipClientRules {
  readonly always: boolean;
  /** gzip_vary: without it, `on` need not open the .gz for a client that does not take gzip. */
  readonly vary: boolean;
}

/** The level's gzip_static; undefined when off. */
export function gzipStaticOf(block: ConfBlockView): GzipStatic | undefined {
  const mode = block.get('gzip_static');
  if (mode === 'off') return undefined;
  return { always: mode === 'always', vary: block.get('gzip_vary'), ...gzipClientRulesOf(block) };
}

/** What gzip_static decided for a file: the .gz to send instead (open), and whether the response varies. */
export interface Precompressed {
  readonly file: OpenedFile | undefined;
  readonly vary: boolean;
}

/**
 * `ngx_http_gzip_static_handler()`: opens `path`.gz when the client gets it (through
 * `disable_symlinks`, as nginx's open_cached_file does); undefined when gzip_static has nothing to say.
 */
export async function precompressed(settings: GzipStatic, request: HttpRequest, path: string, open: OpenSettings): Promise<Precompressed | undefined> {
  const method = request.method;
  if ((method !== 'GET' && method !== 'HEAD') || path.endsWith('/')) return undefined;
  // The response has no headers yet: gzip_proxied judges an empty one, as in nginx.
  const ok = settings.always || clientTakes(request, [], settings, false);
  if (!settings.vary && !ok) return undefined;
  let file: OpenedFile;
  try {
    file = await openFile(`${path}.gz`, open);
  } catch {
    return undefined;
  }
  // Only `on` sets r->gzip_vary (`always` does not vary by client).
  const vary = !settings.always;
  if (!file.info.isFile() || !ok) {
    const isFile = file.info.isFile();
    file.release();
    return isFile ? { file: undefined, vary } : undefined;
  }
  return { file, vary };
}
