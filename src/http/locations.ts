/**
 * Location selection, compiled once per generation: nginx's `ngx_http_core_find_location()` over
 * the tables `ngx_http_init_locations()` builds. At each level: an exact (`=`) match ends the
 * search; otherwise the longest prefix wins and its nested locations are searched; then, unless
 * that prefix is `^~`, the regular expressions of the level are tried in order of appearance and
 * the first that matches wins (and its nested locations are searched in turn).
 */
import { ConfigError } from '../core/errors.js';
import type { ConfBlockView } from '../conf/registry.js';
import { compileNginxRegex } from './regex.js';
import { toByteString } from '../core/byte-string.js';

/** How a location matches a URI, from its modifier (`=`, `^~`, `~`, `~*`, `@name` or none). */
export interface LocationMatch {
  readonly kind: 'exact' | 'prefix' | 'prefix-noregex' | 'regex' | 'named';
  /** The URI prefix, exact URI, regular expression source or name as written (without modifier). */
  readonly name: string;
  /** For `~*`: match without regard to case. */
  readonly caseless: boolean;
}

interface LocationEntry<T> {
  readonly match: LocationMatch;
  readonly value: T;
  readonly regex: RegExp | undefined;
  readonly level: LocationLevel<T>;
}

interface LocationLevel<T> {
  readonly exact: Map<string, LocationEntry<T>>;
  readonly prefixes: Map<string, LocationEntry<T>>;
  /** The distinct lengths of the prefixes, longest first. */
  readonly lengths: number[];
  readonly regexes: LocationEntry<T>[];
}

/** The location that serves a URI, with the captures of the last regex that matched on the way. */
export interface LocationFound<T> {
  readonly value: T;
  readonly match: RegExpExecArray | undefined;
}

interface SearchResult<T> extends LocationFound<T> {
  /** nginx's NGX_OK: an exact or regex match, the outer level must not try its regexes. */
  readonly final: boolean;
}

function locationsOf(block: ConfBlockView): ConfBlockView[] {
  return block.blocks.filter((child) => child.name === 'location');
}

/** The compiled locations of one server. */
export class LocationTree<T> {
  readonly #root: LocationLevel<T>;
  readonly #named = new Map<string, T>();
  /** Prefix locations ending in "/" whose content is proxied (nginx's auto_redirect), and the exact names. */
  readonly #autoRedirect = new Set<string>();
  readonly #exact = new Set<string>();

  private constructor(root: LocationLevel<T>) {
    this.#root = root;
  }

  /** Compiles a server's locations; `compile` turns each location block into what a request needs. */
  static build<T>(server: ConfBlockView, compile: (location: ConfBlockView) => T, autoRedirect: (value: T) => boolean = () => false): LocationTree<T> {
    const named = new Map<string, T>();
    const auto = new Set<string>();
    const exact = new Set<string>();
    const buildLevel = (block: ConfBlockView): LocationLevel<T> => {
      const level: LocationLevel<T> = { exact: new Map(), prefixes: new Map(), lengths: [], regexes: [] };
      for (const location of locationsOf(block)) {
        const match = location.value as LocationMatch;
        const value = compile(location);
        if (match.kind === 'named') {
          named.set(match.name, value);
          continue;
        }
        const entry: LocationEntry<T> = {
          match,
          value,
          regex: match.kind === 'regex' ? compileNginxRegex(match.name, match.caseless).regex : undefined,
          level: buildLevel(location),
        };
        const name = toByteString(match.name);
        if (match.kind === 'exact') exact.add(name);
        if ((match.kind === 'prefix' || match.kind === 'prefix-noregex') && name.endsWith('/') && autoRedirect(value)) auto.add(name);
        if (match.kind === 'regex') level.regexes.push(entry);
        else if (match.kind === 'exact') level.exact.set(name, entry);
        else if (!level.prefixes.has(name)) level.prefixes.set(name, entry);
      }
      level.lengths.push(...new Set([...level.prefixes.keys()].map((name) => name.length)));
      level.lengths.sort((a, b) => b - a);
      return level;
    };
    const tree = new LocationTree(buildLevel(server));
    for (const [name, value] of named) tree.#named.set(name, value);
    for (const name of auto) tree.#autoRedirect.add(name);
    for (const name of exact) tree.#exact.add(name);
    return tree;
  }

  /**
   * ngx_http_core_find_static_location()'s NGX_DONE: `uri` is a proxied prefix location's name
   * without its final "/" (and no exact location has it), so nginx answers 301 to that name.
   */
  autoRedirect(uri: string): boolean {
    return this.#autoRedirect.size > 0 && this.#autoRedirect.has(`${uri}/`) && !this.#exact.has(uri);
  }

  /** The location for a normalised URI (`$uri`), or undefined when none matches. */
  find(uri: string): LocationFound<T> | undefined {
    return search(this.#root, uri);
  }

  /** A named location (`@name`), for `error_page` and `try_files` fallbacks. */
  named(name: string): T | undefined {
    return this.#named.get(name);
  }
}

function search<T>(level: LocationLevel<T>, uri: string): SearchResult<T> | undefined {
  const exact = level.exact.get(uri);
  if (exact !== undefined) return { value: exact.value, match: undefined, final: true };
  let found: SearchResult<T> | undefined;
  let noregex = false;
  for (const length of level.lengths) {
    if (length > uri.length) continue;
    const prefix = level.prefixes.get(uri.length === length ? uri : uri.slice(0, length));
    if (prefix === undefined) continue;
    noregex = prefix.match.kind === 'prefix-noregex';
    const nested = search(prefix.level, uri);
    if (nested?.final) return nested;
    found = nested ?? { value: prefix.value, match: undefined, final: false };
    break;
  }
  if (noregex) return found;
  for (const entry of level.regexes) {
    const match = (entry.regex as RegExp).exec(uri);
    if (match === null) continue;
    const nested = search(entry.level, uri);
    return { value: nested?.value ?? entry.value, match: nested?.match ?? match, final: true };
  }
  return found;
}

/**
 * Refuses two locations of one level with the same name and kind (two `=`, or two prefixes, `^~`
 * counting as a prefix), nested levels first, as `ngx_http_join_exact_locations()` does:
 * `duplicate location "/x" in /etc/hitless/hitless.conf:12`.
 */
export function checkDuplicateLocations(block: ConfBlockView): void {
  const locations = locationsOf(block);
  for (const location of locations) checkDuplicateLocations(location);
  const seen = new Set<string>();
  for (const location of locations) {
    const match = location.value as LocationMatch;
    if (match.kind === 'regex' || match.kind === 'named') continue;
    const key = `${match.kind === 'exact' ? '=' : '^'}${match.name}`;
    if (seen.has(key)) throw new ConfigError(`duplicate location "${match.name}"`, location);
    seen.add(key);
  }
}
