/**
 * `types { ... }` of nginx's `ngx_http_core_module` (`ngx_http_core_type()`): file name extensions
 * to MIME types, with `include` inside the block (Debian's /etc/nginx/mime.types and nginx's
 * conf/mime.types), nginx's three default types when no level sets any, and the warning for an
 * extension given twice. `types_hash_max_size` and `types_hash_bucket_size` size nginx's static
 * hash; hitless keeps types in a Map, so they are checked and reported at -t as having no effect.
 */
import { parseNumber } from '../core/parse.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { ConfNode } from '../conf/parser.js';
import type { NoEffect } from './static-module.js';

/** A level's `types`: extension (lowercase) to MIME type; the duplicate-extension warnings go to the loader (-t). */
export interface MimeTypes {
  readonly byExtension: ReadonlyMap<string, string>;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    types: MimeTypes;
    types_hash_max_size: NoEffect | undefined;
    types_hash_bucket_size: NoEffect | undefined;
  }
}

/** nginx's `ngx_http_core_default_types`, for a configuration without any `types`. */
const DEFAULT_TYPES: MimeTypes = {
  byExtension: new Map([['html', 'text/html'], ['gif', 'image/gif'], ['jpg', 'image/jpeg']]),
};

function parseTypes(_args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: MimeTypes | undefined): MimeTypes {
  // Several `types` blocks of one level add to one table, as they share clcf->types.
  const map = new Map(previous?.byExtension ?? []);
  const walk = (list: readonly ConfNode[]): void => {
    for (const node of list) {
      if (node.kind === 'error') throw node.error;
      const where = { file: node.file, line: node.line };
      if (node.name === 'include') {
        if (node.args.length !== 1) ctx.fail('invalid number of arguments in "include" directive');
        for (const file of node.included ?? []) walk(file.nodes);
        continue;
      }
      if (node.block !== undefined) ctx.fail(`unexpected "{"`);
      if (node.args.length === 0) ctx.fail(`invalid number of arguments in "types" directive`);
      for (const raw of node.args) {
        const extension = raw.toLowerCase();
        const old = map.get(extension);
        if (old !== undefined) {
          const reason = `duplicate extension "${extension}", content type: "${node.name}", previous content type: "${old}"`;
          ctx.warn(reason, where);
        }
        map.set(extension, node.name);
      }
    }
  };
  walk(nodes);
  return { byExtension: map };
}

function hashKnob(name: 'types_hash_max_size' | 'types_hash_bucket_size', defaultText: string) {
  return defineDirective({
    kind: 'value',
    name,
    contexts: ['http', 'server', 'location'],
    args: [1],
    syntax: 'size;',
    summary: 'Accepted for nginx compatibility; in hitless types live in a JavaScript Map, which has no size to tune.',
    defaultText,
    parse: ([value = ''], ctx) => {
      if (parseNumber(value) === undefined) ctx.fail(`invalid number "${value}" in "${name}" directive`);
      const reason = 'types are kept in a JavaScript Map, which has no hash size to tune';
      ctx.noEffect(reason);
      return { reason, file: ctx.location.file, line: ctx.location.line };
    },
  });
}

/** `types` and its hash sizes. */
export const httpMimeTypesModule: ConfModule = {
  name: 'ngx_http_core_module (types)',
  directives: [
    defineDirective({
      kind: 'raw-block',
      name: 'types',
      contexts: ['http', 'server', 'location'],
      args: [0],
      repeatable: true,
      syntax: '{ ... }',
      summary: 'Maps file name extensions to the Content-Type of static responses ("type ext ...;", include allowed); a level with its own types replaces the outer ones.',
      default: () => DEFAULT_TYPES,
      defaultText: 'types { text/html html; image/gif gif; image/jpeg jpg; }',
      parse: parseTypes,
    }),
    hashKnob('types_hash_max_size', 'types_hash_max_size 1024;'),
    hashKnob('types_hash_bucket_size', 'types_hash_bucket_size 64;'),
  ],
};


/** The Content-Type for a URI: by the extension after its last "." (lowercased), else `defaultType` (ngx_http_set_content_type()). */
export function contentTypeOf(uri: string, types: MimeTypes, defaultType: string): string {
  for (let i = uri.length - 1; i >= 0; i--) {
    const code = uri.charCodeAt(i);
    if (code === 0x2f) break;
    if (code === 0x2e) return types.byExtension.get(uri.slice(i + 1).toLowerCase()) ?? defaultType;
  }
  return defaultType;
}
