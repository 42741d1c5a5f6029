/**
 * The output filters of a level, compiled from its directives in the order nginx's filter chain
 * calls them (ngx_modules.c, addons such as ngx_brotli first: brotli, gunzip, charset, gzip, so gzip compresses the recoded body).
 */
import type { ConfBlockView } from '../conf/registry.js';
import type { ErrorLog } from '../core/log.js';
import { brotliFilterOf } from './brotli-module.js';
import { charsetFilterOf } from './charset-module.js';
import { gunzipFilterOf } from './gunzip-module.js';
import { gzipFilter, varyFilter } from './gzip-filter.js';
import { gzipSettingsOf } from './gzip-module.js';
import { NO_FILTERS, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';

/** The level's filters; {@link NO_FILTERS} when none is on, so that the chain passes writes straight through. */
export function compileOutputFilters(block: ConfBlockView, log: ErrorLog): readonly OutputFilter[] {
  const filters: OutputFilter[] = [];
  const requestError = (request: HttpRequest, message: string): void => log.error(`${message}, client: ${request.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"`);
  // ngx_brotli, an addon module, is first in nginx's chain; gunzip runs before charset and gzip, so that they see the inflated body.
  const brotli = brotliFilterOf(block);
  if (brotli !== undefined) filters.push(brotli);
  const gunzip = gunzipFilterOf(block, requestError);
  if (gunzip !== undefined) filters.push(gunzip);
  const charset = charsetFilterOf(block, requestError);
  if (charset !== undefined) filters.push(charset);
  const gzip = gzipSettingsOf(block);
  if (gzip !== undefined) filters.push(gzipFilter(gzip));
  if (block.get('gzip_vary')) filters.push(varyFilter);
  return filters.length === 0 ? NO_FILTERS : filters;
}
