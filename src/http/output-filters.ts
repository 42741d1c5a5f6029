/**
 * The output filters of a level, compiled from its directives in the order nginx's filter chain
 * calls them (ngx_modules.c: charset before gzip, so gzip compresses the recoded body).
 */
import type { ConfBlockView } from '../conf/registry.js';
import type { ErrorLog } from '../core/log.js';
import { charsetFilterOf } from './charset-module.js';
import { gzipFilter, varyFilter } from './gzip-filter.js';
import { gzipSettingsOf } from './gzip-module.js';
import { NO_FILTERS, type OutputFilter } from './output-filter.js';

/** The level's filters; {@link NO_FILTERS} when none is on, so that the chain passes writes straight through. */
export function compileOutputFilters(block: ConfBlockView, log: ErrorLog): readonly OutputFilter[] {
  const filters: OutputFilter[] = [];
  const charset = charsetFilterOf(block, (request, message) => (request.errorLog ?? log).error(`${message}, client: ${request.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"`));
  if (charset !== undefined) filters.push(charset);
  const gzip = gzipSettingsOf(block);
  if (gzip !== undefined) filters.push(gzipFilter(gzip));
  if (block.get('gzip_vary')) filters.push(varyFilter);
  return filters.length === 0 ? NO_FILTERS : filters;
}
