/**
 * nginx's `ngx_http_referer_module`: `valid_referers none | blocked | server_names | string | ~regex ...;`
 * and `$invalid_referer`, "1" when the request's Referer is not one the answering level accepts,
 * empty when it is. Host names match as nginx's combined hash matches them (exact, then the
 * longest `*.suffix`/`.suffix`, then the longest `prefix.*`), with an optional URI prefix; regexes
 * match caselessly what follows the scheme; `server_names` adds the server's names and regexes.
 */
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { ConfigError } from '../core/errors.js';
import { compileConfigRegex, compileNginxRegex } from './regex.js';
import { blocksOf } from '../conf/values.js';

/** One referer host, with the URI prefix its referers must have (undefined: any). */
interface RefererKey {
  readonly host: string;
  readonly uri: string | undefined;
}

/** One `valid_referers` line, as written. */
export interface ValidReferersLine {
  readonly none: boolean;
  readonly blocked: boolean;
  readonly serverNames: boolean;
  readonly keys: readonly RefererKey[];
  /** `~regex` sources, without the `~`. */
  readonly regexes: readonly string[];
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    valid_referers: readonly ValidReferersLine[];
    referer_hash_max_size: number;
    referer_hash_bucket_size: number;
  }
}

/** A level's referer check, merged as ngx_http_referer_merge_conf() merges. */
export interface RefererCheck {
  readonly none: boolean;
  readonly blocked: boolean;
  readonly exact: ReadonlyMap<string, string | undefined>;
  /** `*.example.com` and `.example.com`, by `.example.com`. */
  readonly head: ReadonlyMap<string, string | undefined>;
  /** `www.example.*`, by `www.example.`. */
  readonly tail: ReadonlyMap<string, string | undefined>;
  readonly regexes: readonly RegExp[];
  readonly serverNameRegexes: readonly RegExp[];
}

/** `ngx_http_valid_referers()`: one line. */
export function parseValidReferers(args: readonly string[], ctx: DirectiveContext, previous: readonly ValidReferersLine[] | undefined): readonly ValidReferersLine[] {
  const line = { none: false, blocked: false, serverNames: false, keys: [] as RefererKey[], regexes: [] as string[] };
  for (const arg of args) {
    if (arg === '') ctx.fail(`invalid referer "${arg}"`);
    if (arg === 'none') line.none = true;
    else if (arg === 'blocked') line.blocked = true;
    else if (arg === 'server_names') line.serverNames = true;
    else if (arg.startsWith('~')) {
      if (arg.length === 1) ctx.fail(`empty regex in "${arg}"`);
      compileConfigRegex(arg.slice(1), true, ctx);
      line.regexes.push(arg.slice(1));
    } else {
      const slash = arg.indexOf('/');
      const uri = slash === -1 ? undefined : arg.slice(slash);
      line.keys.push({ host: slash === -1 ? arg : arg.slice(0, slash), uri: uri === '' ? undefined : uri });
    }
  }
  // Keys are checked as one table per level (conflicts across lines), when the level is merged.
  const all = [...(previous ?? []), line];
  buildHostTables(all.flatMap((l) => l.keys), ctx.fail);
  return all;
}

/** `ngx_hash_add_key()` with NGX_HASH_WILDCARD_KEY, for every key of a level. */
function buildHostTables(keys: readonly RefererKey[], fail: (reason: string) => never): Pick<RefererCheck, 'exact' | 'head' | 'tail'> {
  const exact = new Map<string, string | undefined>();
  const head = new Map<string, string | undefined>();
  const tail = new Map<string, string | undefined>();
  const add = (table: Map<string, string | undefined>, name: string, key: RefererKey): void => {
    // ngx_hash_add_key() has lowercased the key it names by then.
    if (table.has(name)) fail(`conflicting parameter "${key.host.toLowerCase()}"`);
    table.set(name, key.uri);
  };
  for (const key of keys) {
    const host = key.host.toLowerCase();
    const stars = host.split('*').length - 1;
    if (stars === 0 && !host.startsWith('.')) add(exact, host, key);
    else if (host.startsWith('*.') && stars === 1 && host.length > 2) add(head, host.slice(1), key);
    else if (host.startsWith('.') && stars === 0 && host.length > 1) {
      add(head, host, key);
      add(exact, host.slice(1), key);
    } else if (host.endsWith('.*') && stars === 1 && host.length > 2) add(tail, host.slice(0, -1), key);
    else fail(`invalid hostname or wildcard "${key.host}"`);
  }
  return { exact, head, tail };
}

/** `ngx_http_referer_merge_conf()` for one level; undefined when the level (and those above) set nothing. */
export function compileReferers(block: ConfBlockView): RefererCheck | undefined {
  if (block.context === 'http' || block.context === 'main') return undefined;
  const parent = block.parent === undefined ? undefined : compileReferers(block.parent);
  if (!block.isSet('valid_referers')) return parent;
  const lines = block.get('valid_referers');
  const keys = lines.flatMap((line) => line.keys);
  const serverNameRegexes: RegExp[] = [];
  if (lines.some((line) => line.serverNames)) {
    let server: ConfBlockView | undefined = block;
    while (server !== undefined && server.name !== 'server') server = server.parent;
    for (const name of server?.get('server_name') ?? []) {
      if (name.kind === 'regex') serverNameRegexes.push(compileNginxRegex(name.name, name.caseless).regex);
      else keys.push({ host: name.name, uri: undefined });
    }
  }
  const none = lines.some((line) => line.none);
  const blocked = lines.some((line) => line.blocked);
  const fail = (reason: string): never => {
    throw new ConfigError(reason, { file: block.file, line: block.line });
  };
  if ((none || blocked) && keys.length === 0) {
    // nginx says it while merging, through cf->log: no file or line.
    throw new ConfigError('the "none" or "blocked" referers are specified in the "valid_referers" directive without any valid referer', undefined);
  }
  const regexes = lines.flatMap((line) => line.regexes).map((source) => compileNginxRegex(source, true).regex);
  return {
    none,
    blocked,
    ...buildHostTables(keys, fail),
    // A level without regexes of its own takes the enclosing level's (ngx_conf_merge_ptr_value).
    regexes: regexes.length > 0 ? regexes : (parent?.regexes ?? []),
    serverNameRegexes: serverNameRegexes.length > 0 ? serverNameRegexes : (parent?.serverNameRegexes ?? []),
  };
}

/** `ngx_hash_find_combined()`: exact, the longest head wildcard, the longest tail wildcard. */
function findHost(check: RefererCheck, host: string): { uri: string | undefined } | undefined {
  if (check.exact.has(host)) return { uri: check.exact.get(host) };
  for (let dot = host.indexOf('.'); dot !== -1; dot = host.indexOf('.', dot + 1)) {
    const suffix = host.slice(dot);
    if (check.head.has(suffix)) return { uri: check.head.get(suffix) };
  }
  for (let dot = host.lastIndexOf('.'); dot > 0; dot = host.lastIndexOf('.', dot - 1)) {
    const prefix = host.slice(0, dot + 1);
    // "www.example.*" wants something after the dot.
    if (dot + 1 < host.length && check.tail.has(prefix)) return { uri: check.tail.get(prefix) };
  }
  return undefined;
}

/** `ngx_http_referer_variable()`: true when `referer` (undefined: no header) is invalid for the level. */
export function isInvalidReferer(check: RefererCheck | undefined, referer: string | undefined): boolean {
  if (check === undefined) return false;
  if (check.exact.size === 0 && check.head.size === 0 && check.tail.size === 0 && check.regexes.length === 0 && check.serverNameRegexes.length === 0) return false;
  if (referer === undefined) return !check.none;
  const scheme = referer.length >= 'http://i.ru'.length ? /^https?:\/\//i.exec(referer) : null;
  if (scheme === null) return !check.blocked;
  const ref = referer.slice(scheme[0].length);
  let end = 0;
  while (end < ref.length && ref[end] !== '/' && ref[end] !== ':') end++;
  // nginx copies at most 256 bytes of host name into its buffer.
  if (end > 256) return true;
  const host = ref.slice(0, end).toLowerCase();
  const found = findHost(check, host);
  if (found !== undefined) {
    if (found.uri === undefined) return false;
    const slash = ref.indexOf('/', end);
    const path = slash === -1 ? '' : ref.slice(slash);
    return !path.startsWith(found.uri);
  }
  if (check.serverNameRegexes.some((regex) => regex.test(host))) return false;
  if (check.regexes.some((regex) => regex.test(ref))) return false;
  return true;
}

function hashSize(name: string): ReturnType<typeof defineDirective> {
  return defineDirective({
    kind: 'value',
    name: name as 'referer_hash_max_size',
    contexts: ['server', 'location'],
    args: [1],
    syntax: 'size;',
    summary: `Accepted for nginx's configurations and warned about: hitless keeps referer names in a Map, which has no ${name === 'referer_hash_max_size' ? 'maximum size' : 'buckets'}.`,
    default: () => (name === 'referer_hash_max_size' ? 2048 : 64),
    defaultText: `${name} ${name === 'referer_hash_max_size' ? 2048 : 64};`,
    parse: ([value = ''], ctx) => {
      // ngx_conf_set_num_slot().
      if (!/^[0-9]+$/.test(value)) ctx.fail(`"${name}" directive invalid number`);
      ctx.noEffect('referer names are kept in a Map, which has no size limits');
      return Number(value);
    },
  });
}

/** The referer module's directives. */
export const httpRefererModule: ConfModule = {
  name: 'ngx_http_referer_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'valid_referers',
      contexts: ['server', 'location'],
      args: '1+',
      repeatable: true,
      inherit: false,
      syntax: 'none | blocked | server_names | string ...;',
      summary: 'The Referer values $invalid_referer accepts (empty) at this level: none (no Referer), blocked (no http:// or https://), the server names, host names with wildcards and a URI prefix, ~regexes (caseless); a level without any takes the enclosing one\'s.',
      default: () => [],
      defaultText: '—',
      parse: parseValidReferers,
    }),
    hashSize('referer_hash_max_size'),
    hashSize('referer_hash_bucket_size'),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    // Merging reports nginx's errors (none or blocked alone) at -t.
    if (http !== undefined) for (const block of blocksOf(http)) compileReferers(block);
  },
};
