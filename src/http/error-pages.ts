/**
 * `error_page`, as ngx_http_send_error_page() runs it: a response of a listed status is replaced
 * by an internal redirect (a URI or a named location, the method becoming GET) or by a redirect to
 * a URL; `=code` sets the status sent, `=` alone keeps the status of the page's own response.
 * With nginx's default `recursive_error_pages off`, a request follows at most one error page.
 */
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ErrorPage } from './core-module.js';
import type { HttpRequest } from './request.js';
import { toByteString } from '../core/byte-string.js';

/** One status's error page, compiled. */
export interface CompiledErrorPage {
  readonly override: number | 'response' | undefined;
  readonly uri: CompiledTemplate<HttpRequest>;
}

/** Compiles a level's `error_page` lines into a map by status (the last line for a status wins, as in nginx). */
export function compileErrorPages(pages: readonly ErrorPage[], table: VariableTable<HttpRequest>): ReadonlyMap<number, CompiledErrorPage> | undefined {
  if (pages.length === 0) return undefined;
  const map = new Map<number, CompiledErrorPage>();
  for (const page of pages) {
    const uri = compileTemplate(page.uri, table, { literal: toByteString });
    for (const code of page.codes) map.set(code, { override: page.override, uri });
  }
  return map;
}

/** What an error page turns a response into. */
export type ErrorPageAction =
  | { readonly kind: 'redirect'; readonly status: number; readonly location: string }
  | { readonly kind: 'internal'; readonly uri: string; readonly status: number | undefined }
  | { readonly kind: 'cycle'; readonly uri: string };

/** nginx's NGX_HTTP_MAX_URI_CHANGES: internal redirects a request may make (error pages, with recursive_error_pages on). */
const MAX_URI_CHANGES = 10;

/**
 * The action for a status, or undefined when no error page applies (none set, or one already
 * followed and `recursive` (recursive_error_pages) off). With `recursive` on, pages chain until
 * the eleventh internal redirect, which is nginx's redirection cycle (500).
 */
export function errorPageAction(pages: ReadonlyMap<number, CompiledErrorPage> | undefined, request: HttpRequest, status: number, recursive = false): ErrorPageAction | undefined {
  const page = pages?.get(status);
  if (page === undefined || request.errorPageFollowed) return undefined;
  // ngx_http_special_response_handler(): r->error_page is set only with recursive_error_pages off.
  if (!recursive) request.errorPageFollowed = true;
  const uri = page.uri(request);
  const override = page.override === 'response' ? undefined : (page.override ?? status);
  if (!uri.startsWith('/') && !uri.startsWith('@')) {
    // A URL: nginx answers 302 unless =301, =303, =307 or =308 asks for another redirect.
    const redirect = override === 301 || override === 303 || override === 307 || override === 308 ? override : 302;
    return { kind: 'redirect', status: redirect, location: uri };
  }
  // ngx_http_internal_redirect(): r->uri_changes counts down from NGX_HTTP_MAX_URI_CHANGES + 1.
  request.errorPageRedirects++;
  if (request.errorPageRedirects > MAX_URI_CHANGES) {
    request.errorPageFollowed = true;
    return { kind: 'cycle', uri };
  }
  return { kind: 'internal', uri, status: override };
}
