/**
 * The output filters of a level, compiled from its directives in the order nginx's filter chain
 * calls them (ngx_modules.c, with ngx_brotli where its config puts itself, next to gzip): gunzip,
 * sub, charset, brotli, gzip. gunzip inflates first, so that sub_filter searches the body as
 * written and charset recodes it; the compressors see the recoded body.
 */
import type { ConfBlockView } from '../conf/registry.js';
import type { ErrorLog } from '../core/log.js';
import type { VariableTable } from '../core/variables.js';
import { brotliFilterOf } from './brotli-module.js';
import { charsetFilterOf } from './charset-module.js';
import { gunzipFilterOf } from './gunzip-module.js';
import { gzipFilter, varyFilter } from './gzip-filter.js';
import { gzipSettingsOf } from './gzip-module.js';
import { NO_FILTERS, type OutputFilter } from './output-filter.js';
import type { HttpRequest } from './request.js';
import { subFilterOf } from './sub-filter-module.js';

/** An [error] about a request, to its location's error_log (else `log`), with nginx's client, server and request. */
export function requestErrorReporter(log: ErrorLog): (request: HttpRequest, message: string) => void {
  return (request, message) => (request.errorLog ?? log).error(`${message}, client: ${request.remoteAddress}, server: ${request.serverName}, request: "${request.requestLine}"`);
}

/** The level's filters; {@link NO_FILTERS} when none is on, so that the chain passes writes straight through. */
export function compileOutputFilters(block: ConfBlockView, log: ErrorLog, table: VariableTable<HttpRequest>): readonly OutputFilter[] {
  const filters: OutputFilter[] = [];
  const requestError = requestErrorReporter(log);
  const gunzip = gunzipFilterOf(block, requestError);
  if (gunzip !== undefined) filters.push(gunzip);
  const sub = subFilterOf(block, table);
  if (sub !== undefined) filters.push(sub);
  const charset = charsetFilterOf(block, table, requestError);
  if (charset !== undefined) filters.push(charset);
  const brotli = brotliFilterOf(block);
  if (brotli !== undefined) filters.push(brotli);
  const gzip = gzipSettingsOf(block);
  if (gzip !== undefined) filters.push(gzipFilter(gzip));
  if (block.get('gzip_vary')) filters.push(varyFilter);
  return filters.length === 0 ? NO_FILTERS : filters;
}
