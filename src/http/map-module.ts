/**
 * nginx's `ngx_http_map_module`: `map $source $variable { ... }` defines a variable whose value is
 * chosen by the source value, evaluated lazily when a request first reads it and kept for the rest
 * of the request unless the map is `volatile`. Keys match as `ngx_http_map_find()` matches: exact
 * (case-insensitive), then with `hostnames` the longest `*.prefix` and `suffix.*` wildcards, then
 * the regexes in order of appearance, then `default`.
 */
import { ConfigError } from '../core/errors.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { ConfNode } from '../conf/parser.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { compileConfigRegex } from './regex.js';
import type { HttpRequest } from './request.js';
import { parseValue } from '../conf/values.js';
import { toByteString } from '../core/byte-string.js';
import { checkVariables, isFixedHttpVariable } from './variables.js';

/** One `map` block. */
export interface MapBlock {
  readonly source: Template;
  /** The variable defined, without `$`, lowercased. */
  readonly variable: string;
  readonly hostnames: boolean;
  readonly volatile: boolean;
  readonly exact: ReadonlyMap<string, Template>;
  /** `*.example.com` and `.example.com`, by the reversed-label suffix `.example.com`. */
  readonly prefixWildcards: ReadonlyMap<string, Template>;
  /** `www.example.*`, by the prefix `www.example.`. */
  readonly suffixWildcards: ReadonlyMap<string, Template>;
  /** `~regex` keys in order, with their named captures (variables, as `ngx_http_regex_compile()` defines them). */
  readonly regexes: readonly { readonly regex: RegExp; readonly names: readonly string[]; readonly value: Template }[];
  readonly defaultValue: Template | undefined;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    map: readonly MapBlock[];
  }
}

interface MapBuilder {
  hostnames: boolean;
  volatile: boolean;
  exact: Map<string, Template>;
  prefixWildcards: Map<string, Template>;
  suffixWildcards: Map<string, Template>;
  regexes: { regex: RegExp; names: readonly string[]; value: Template }[];
  defaultValue: Template | undefined;
}

/** `ngx_http_map()`: one line of a map block. */
function addLine(map: MapBuilder, node: ConfNode, ctx: DirectiveContext): void {
  if (node.kind === 'error') throw node.error;
  const at: DirectiveContext = { ...ctx, location: { file: node.file, line: node.line }, fail: (reason: string): never => failAtNode(node, reason) };
  if (node.block !== undefined) failAtNode(node, 'unexpected "{"');
  const words = [node.name, ...node.args];
  if (words.length === 1 && node.name === 'hostnames') {
    map.hostnames = true;
    return;
  }
  if (words.length === 1 && node.name === 'volatile') {
    map.volatile = true;
    return;
  }
  if (words.length !== 2) failAtNode(node, 'invalid number of the map parameters');
  if (node.name === 'include') {
    for (const file of node.included ?? []) for (const inner of file.nodes) addLine(map, inner, ctx);
    return;
  }
  const [rawKey = '', text = ''] = words;
  const value = parseValue(text, at);
  if (rawKey === 'default') {
    if (map.defaultValue !== undefined) failAtNode(node, 'duplicate default map parameter');
    map.defaultValue = value;
    return;
  }
  if (rawKey.startsWith('~')) {
    const caseless = rawKey.startsWith('~*');
    const pattern = rawKey.slice(caseless ? 2 : 1);
    const compiled = compileConfigRegex(pattern, caseless, at);
    map.regexes.push({ regex: compiled.regex, names: compiled.names, value });
    return;
  }
  const key = (rawKey.startsWith('\\') ? rawKey.slice(1) : rawKey).toLowerCase();
  const conflict = (): never => failAtNode(node, `conflicting parameter "${key}"`);
  const add = (table: Map<string, Template>, name: string): void => {
    if (table.has(name)) conflict();
    table.set(name, value);
  };
  if (!map.hostnames || !key.includes('*') && !key.startsWith('.')) {
    add(map.exact, key);
    return;
  }
  // ngx_hash_add_key() with NGX_HASH_WILDCARD_KEY: "*.x", ".x" (also exact "x") and "x.*" only.
  const stars = key.split('*').length - 1;
  if (key.startsWith('*.') && stars === 1 && key.length > 2) add(map.prefixWildcards, key.slice(1));
  else if (key.startsWith('.') && stars === 0 && key.length > 1) {
    add(map.prefixWildcards, key);
    add(map.exact, key.slice(1));
  } else if (key.endsWith('.*') && stars === 1 && key.length > 2) add(map.suffixWildcards, key.slice(0, -1));
  else failAtNode(node, `invalid hostname or wildcard "${key}"`);
}

/** nginx reports a bad map entry at the entry's own line. */
function failAtNode(node: { file: string; line: number }, reason: string): never {
  throw new ConfigError(reason, { file: node.file, line: node.line });
}

/** The value a `map` block parses to, one more map added to those of its context. */
export type MapParser = (args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly MapBlock[] | undefined) => readonly MapBlock[];

/**
 * `ngx_http_map_block()` (and `ngx_stream_map_block()`): `isBuiltin` names the variables of the
 * context that a map may not define again; the stream module passes its own table.
 */
export function mapParser(isBuiltin: (variable: string) => boolean): MapParser {
  return (args, nodes, ctx, previous) => {
    const [sourceText = '', name = ''] = args;
    const source = parseValue(sourceText, ctx);
    if (!name.startsWith('$')) ctx.fail(`invalid variable name "${name}"`);
    const variable = name.slice(1).toLowerCase();
    if (isBuiltin(variable)) ctx.fail(`the duplicate "${variable}" variable`);
    const map: MapBuilder = { hostnames: false, volatile: false, exact: new Map(), prefixWildcards: new Map(), suffixWildcards: new Map(), regexes: [], defaultValue: undefined };
    for (const node of nodes) addLine(map, node, ctx);
    return [...(previous ?? []), { source, variable, ...map }];
  };
}

/** The http `map` block: ngx_http_add_variable() lets only a changeable variable ($args, $invalid_referer, another map's) be defined again. */
export const parseMap: MapParser = mapParser(isFixedHttpVariable);

/** `ngx_http_map_find()`. */
export function findMapValue(map: MapBlock, value: string): { value: Template; match?: RegExpExecArray } | undefined {
  let key = value;
  if (map.hostnames && key.endsWith('.')) key = key.slice(0, -1);
  const lower = key.toLowerCase();
  const exact = map.exact.get(lower);
  if (exact !== undefined) return { value: exact };
  if (map.hostnames && lower.length > 0) {
    // The longest "*.suffix" first, then the longest "prefix.*", as ngx_hash_find_combined().
    for (let dot = lower.indexOf('.'); dot !== -1; dot = lower.indexOf('.', dot + 1)) {
      const found = map.prefixWildcards.get(lower.slice(dot));
      if (found !== undefined) return { value: found };
    }
    for (let dot = lower.lastIndexOf('.'); dot !== -1; dot = lower.lastIndexOf('.', dot - 1)) {
      const found = map.suffixWildcards.get(lower.slice(0, dot + 1));
      if (found !== undefined) return { value: found };
      if (dot === 0) break;
    }
  }
  if (key.length > 0) {
    for (const regex of map.regexes) {
      const match = regex.regex.exec(key);
      if (match !== null) return { value: regex.value, match };
    }
  }
  return undefined;
}

const EVALUATING = Symbol('evaluating');

/** What a map's variable keeps per request (or stream session): its computed values and the last captures. */
export interface MapContext {
  variableCache?: Map<object, unknown> | undefined;
  captures?: RegExpExecArray | undefined;
}

/**
 * Defines every map's variable in a generation's table (http's or stream's). Values are compiled
 * on first use, so a map may read a variable another map defines later in the file, as nginx
 * resolves them at init.
 */
export function defineMapVariables<C extends MapContext = HttpRequest>(table: VariableTable<C>, maps: readonly MapBlock[]): void {
  for (const map of maps) {
    let source: CompiledTemplate<C> | undefined;
    const compiled = new Map<Template, CompiledTemplate<C>>();
    const compile = (template: Template): CompiledTemplate<C> => {
      let value = compiled.get(template);
      if (value === undefined) {
        value = compileTemplate(template, table, { literal: toByteString });
        compiled.set(template, value);
      }
      return value;
    };
    const evaluate = (request: C): string | undefined => {
      source ??= compile(map.source);
      const found = findMapValue(map, source(request));
      const template = found?.value ?? map.defaultValue;
      if (template === undefined) return '';
      if (found?.match !== undefined) request.captures = found.match;
      return compile(template)(request);
    };
    table.define(map.variable, (request) => {
      if (map.volatile) return evaluate(request);
      const cache = (request.variableCache ??= new Map());
      const cached = cache.get(map);
      if (cached === EVALUATING) return undefined;
      if (cached !== undefined || cache.has(map)) return cached as string | undefined;
      // A map that reads itself, directly or through another: nginx's "cycle while evaluating variable".
      cache.set(map, EVALUATING);
      const value = evaluate(request);
      cache.set(map, value);
      return value;
    });
  }
}

/** The map module's one directive. */
export const httpMapModule: ConfModule = {
  name: 'ngx_http_map_module',
  directives: [
    defineDirective({
      kind: 'raw-block',
      name: 'map',
      contexts: ['http'],
      args: [2],
      repeatable: true,
      syntax: 'string $variable { ... }',
      summary: 'Defines $variable from the value of string: exact keys, hostnames wildcards, ~regex and ~*regex (captures usable in the value) in order, else default; evaluated once per request unless volatile.',
      default: () => [],
      defaultText: '—',
      parse: parseMap,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const templates: Template[] = [];
    for (const map of http.get('map')) {
      // Loops, not spreads: a map of 200,000 entries (a redirect list) overflows a spread's arguments.
      templates.push(map.source);
      for (const values of [map.exact.values(), map.prefixWildcards.values(), map.suffixWildcards.values()]) for (const value of values) templates.push(value);
      for (const regex of map.regexes) templates.push(regex.value);
      if (map.defaultValue !== undefined) templates.push(map.defaultValue);
    }
    checkVariables(http, templates);
  },
};
