/** $fastcgi_script_name and $fastcgi_path_info: what a level's fastcgi_split_path_info and fastcgi_index make of $uri. */
import type { HttpRequest } from './request.js';

/** fastcgi_split_path_info and fastcgi_index of a level. */
export type FastcgiNames = NonNullable<HttpRequest['fastcgiNames']>;

/**
 * $fastcgi_script_name and $fastcgi_path_info (ngx_http_fastcgi_split()): the two captures of
 * fastcgi_split_path_info on $uri, or the whole $uri and no path info; a script name ending with
 * a slash gets fastcgi_index appended. Computed once per request and kept until the fastcgi
 * handler starts afresh, as nginx keeps them in the module's request context.
 */
export function fastcgiSplit(request: HttpRequest): { readonly scriptName: string; readonly pathInfo: string } {
  const cached = request.fastcgiSplit;
  if (cached !== undefined) return cached;
  const names = request.fastcgiNames;
  const uri = request.uri;
  let scriptName = uri;
  let pathInfo = '';
  const match = names?.split?.exec(uri);
  if (match !== undefined && match !== null) {
    scriptName = match[1] ?? '';
    pathInfo = match[2] ?? '';
  }
  if (scriptName.endsWith('/') && names !== undefined) scriptName += names.index;
  const split = { scriptName, pathInfo };
  // An empty script name is not kept (nginx checks f->script_name.len).
  if (scriptName !== '') request.fastcgiSplit = split;
  return split;
}
