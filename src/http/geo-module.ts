/**
 * nginx's `ngx_http_geo_module`: `geo [$address] $variable { ... }` defines a variable by the
 * client's address (or an address a variable holds): networks `CIDR value;` (the longest prefix
 * wins, IPv4 and IPv6), or with `ranges` IPv4 `a-b value;`; `default`, `delete`, `include`,
 * `proxy` addresses whose X-Forwarded-For is read instead (`proxy_recursive`), `volatile`.
 */
import { ConfigError } from '../core/errors.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { ConfNode } from '../conf/parser.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { toByteString } from '../core/byte-string.js';
import { CidrTable, RangeTable } from './geo-tables.js';
import { addressBytes, forwardedAddress, parseCidr, type TrustedBlock } from './realip.js';
import type { HttpRequest } from './request.js';
import { checkVariables, isFixedHttpVariable } from './variables.js';

/** One `geo` block. */
export interface GeoBlock {
  /** The variable holding the address; undefined for the client's address. */
  readonly source: Template | undefined;
  /** The variable defined, without `$`, lowercased. */
  readonly variable: string;
  readonly volatile: boolean;
  readonly proxies: readonly TrustedBlock[];
  readonly proxyRecursive: boolean;
  readonly table: { readonly kind: 'cidr'; readonly v4: CidrTable; readonly v6: CidrTable } | { readonly kind: 'ranges'; readonly ranges: RangeTable; readonly defaultValue: string };
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    geo: readonly GeoBlock[];
  }
}

interface GeoBuilder {
  ranges: boolean;
  /** Set by the first network entry: `ranges` must come before it. */
  cidrStarted: boolean;
  volatile: boolean;
  proxyRecursive: boolean;
  proxies: TrustedBlock[];
  v4: CidrTable;
  v6: CidrTable;
  rangeTable: RangeTable;
  rangeDefault: string | undefined;
}

function failAt(node: { file: string; line: number }, reason: string): never {
  throw new ConfigError(reason, { file: node.file, line: node.line });
}

/** `ngx_http_geo_cidr_value()`: a network, `255.255.255.255` as itself; warns about bits below the mask. */
function networkOf(text: string, node: ConfNode & { kind: 'directive' }, ctx: DirectiveContext): { family: 4 | 6; bytes: readonly number[]; prefix: number } {
  if (text === '255.255.255.255') return { family: 4, bytes: [255, 255, 255, 255], prefix: 32 };
  const block = parseCidr(text);
  if (block === undefined || block.family === 'unix') return failAt(node, `invalid network "${text}"`);
  const slash = text.indexOf('/');
  if (slash !== -1) {
    const whole = parseCidr(text.slice(0, slash));
    if (whole !== undefined && whole.family !== 'unix' && whole.bytes.some((byte, i) => byte !== block.bytes[i])) ctx.warn(`low address bits of ${text} are meaningless`, { file: node.file, line: node.line });
  }
  return block;
}

/** `ngx_inet_addr()`: a dotted quad as a uint32; undefined when it is not one. */
function inetAddr(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4 || parts.some((part) => !/^[0-9]{1,3}$/.test(part) || Number(part) > 255)) return undefined;
  const value = parts.reduce((sum, part) => sum * 256 + Number(part), 0);
  // nginx's INADDR_NONE: 255.255.255.255 cannot be a range's end.
  return value === 0xffffffff ? undefined : value;
}

/** `ngx_http_geo()`: one line of a geo block; `http` false for `ngx_stream_geo()`, which has no `proxy` and `proxy_recursive`. */
function addLine(geo: GeoBuilder, node: ConfNode, ctx: DirectiveContext, http: boolean): void {
  if (node.kind === 'error') throw node.error;
  if (node.block !== undefined) failAt(node, 'unexpected "{"');
  const at = { file: node.file, line: node.line };
  const words = [node.name, ...node.args];
  if (words.length === 1) {
    if (node.name === 'ranges') {
      if (geo.cidrStarted) failAt(node, 'the "ranges" directive must be the first directive inside "geo" block');
      geo.ranges = true;
      return;
    }
    if (http && node.name === 'proxy_recursive') {
      geo.proxyRecursive = true;
      return;
    }
    if (node.name === 'volatile') {
      geo.volatile = true;
      return;
    }
  }
  if (words.length !== 2) failAt(node, 'invalid number of the geo parameters');
  const [key = '', value = ''] = words;
  if (key === 'include') {
    for (const file of node.included ?? []) for (const inner of file.nodes) addLine(geo, inner, ctx, http);
    return;
  }
  if (http && key === 'proxy') {
    const block = networkOf(value, node, ctx);
    geo.proxies.push(block);
    return;
  }
  if (geo.ranges) {
    addRange(geo, node, key, value, ctx);
    return;
  }
  geo.cidrStarted = true;
  if (key === 'default') {
    for (const [table, bytes] of [[geo.v4, [0, 0, 0, 0]], [geo.v6, new Array<number>(16).fill(0)]] as const) {
      const old = table.insert(bytes, 0, value);
      if (old !== undefined) ctx.warn(`duplicate network "default", value: "${value}", old value: "${old}"`, at);
    }
    return;
  }
  const remove = key === 'delete';
  const net = remove ? value : key;
  const block = networkOf(net, node, ctx);
  const table = block.family === 4 ? geo.v4 : geo.v6;
  if (remove) {
    if (!table.delete(block.bytes, block.prefix)) ctx.warn(`no network "${net}" to delete`, at);
    return;
  }
  const old = table.insert(block.bytes, block.prefix, value);
  if (old !== undefined) ctx.warn(`duplicate network "${net}", value: "${value}", old value: "${old}"`, at);
}

/** `ngx_http_geo_range()`. */
function addRange(geo: GeoBuilder, node: ConfNode & { kind: 'directive' }, key: string, value: string, ctx: DirectiveContext): void {
  const at = { file: node.file, line: node.line };
  if (key === 'default') {
    if (geo.rangeDefault !== undefined) ctx.warn(`duplicate default geo range value: "${value}", old value: "${geo.rangeDefault}"`, at);
    geo.rangeDefault = value;
    return;
  }
  const remove = key === 'delete';
  const net = remove ? value : key;
  const dash = net.indexOf('-');
  const start = dash === -1 ? undefined : inetAddr(net.slice(0, dash));
  const end = dash === -1 ? undefined : inetAddr(net.slice(dash + 1));
  if (start === undefined || end === undefined || start > end) failAt(node, `invalid range "${net}"`);
  if (remove) {
    if (!geo.rangeTable.delete(start, end)) ctx.warn(`no address range "${net}" to delete`, at);
    return;
  }
  const result = geo.rangeTable.add(start, end, value);
  if (result !== undefined && 'overlaps' in result) failAt(node, `range "${net}" overlaps "${result.overlaps}"`);
  if (result !== undefined) ctx.warn(`duplicate range "${net}", value: "${value}", old value: "${result.duplicate}"`, at);
}

/** `ngx_http_geo_block()`. */
export function parseGeo(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly GeoBlock[] | undefined): readonly GeoBlock[] {
  return parseGeoBlock(args, nodes, ctx, previous, { http: true, isFixed: isFixedHttpVariable });
}

/** `ngx_stream_geo_block()`: http's geo without `proxy` and `proxy_recursive`. */
export function streamGeoParser(isFixed: (name: string) => boolean) {
  return (args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly GeoBlock[] | undefined): readonly GeoBlock[] =>
    parseGeoBlock(args, nodes, ctx, previous, { http: false, isFixed });
}

function parseGeoBlock(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly GeoBlock[] | undefined, of: { readonly http: boolean; readonly isFixed: (name: string) => boolean }): readonly GeoBlock[] {
  const name = args[args.length - 1] ?? '';
  let source: Template | undefined;
  if (args.length === 2) {
    const from = args[0] ?? '';
    if (!from.startsWith('$')) ctx.fail(`invalid variable name "${from}"`);
    source = parseValue(from, ctx);
  }
  if (!name.startsWith('$')) ctx.fail(`invalid variable name "${name}"`);
  const variable = name.slice(1).toLowerCase();
  if (of.isFixed(variable)) ctx.fail(`the duplicate "${variable}" variable`);
  const geo: GeoBuilder = { ranges: false, cidrStarted: false, volatile: false, proxyRecursive: false, proxies: [], v4: new CidrTable(), v6: new CidrTable(), rangeTable: new RangeTable(), rangeDefault: undefined };
  for (const node of nodes) addLine(geo, node, ctx, of.http);
  let table: GeoBlock['table'];
  if (geo.ranges) table = { kind: 'ranges', ranges: geo.rangeTable, defaultValue: geo.rangeDefault ?? '' };
  else {
    // Without a default, the empty value (nginx inserts it unless one was set).
    if (!geo.v4.has([0, 0, 0, 0], 0)) geo.v4.insert([0, 0, 0, 0], 0, '');
    if (!geo.v6.has(new Array<number>(16).fill(0), 0)) geo.v6.insert(new Array<number>(16).fill(0), 0, '');
    table = { kind: 'cidr', v4: geo.v4, v6: geo.v6 };
  }
  return [...(previous ?? []), { source, variable, volatile: geo.volatile, proxies: geo.proxies, proxyRecursive: geo.proxyRecursive, table }];
}

const NONE = [255, 255, 255, 255];

/** `ngx_http_geo_cidr_variable()` and `ngx_http_geo_range_variable()` for an address (text) or none. */
export function geoValue(block: GeoBlock, address: string | undefined): string {
  const parsed = address === undefined ? undefined : addressBytes(address);
  const table = block.table;
  if (table.kind === 'cidr') {
    if (parsed === undefined) return table.v4.find(NONE) ?? '';
    return (parsed.family === 4 ? table.v4 : table.v6).find(parsed.bytes) ?? '';
  }
  // An IPv6 client (not v4-mapped) is looked up as INADDR_NONE in ranges.
  const bytes = parsed?.family === 4 ? parsed.bytes : NONE;
  const number = (((bytes[0] as number) << 24) | ((bytes[1] as number) << 16) | ((bytes[2] as number) << 8) | (bytes[3] as number)) >>> 0;
  return table.ranges.find(number) ?? table.defaultValue;
}

/** What a geo variable reads of a request or a stream session. */
export interface GeoContext {
  readonly remoteAddress: string;
  variableCache?: Map<object, unknown> | undefined;
  /** A request's X-Forwarded-For (for `proxy`); a stream session has none. */
  header?(name: 'x-forwarded-for'): string | undefined;
}

/** Defines every `geo` variable in a generation's table (http's or stream's). */
export function defineGeoVariables<C extends GeoContext = HttpRequest>(table: VariableTable<C>, blocks: readonly GeoBlock[]): void {
  for (const block of blocks) {
    let source: CompiledTemplate<C> | undefined;
    const evaluate = (request: C): string => {
      let address: string | undefined = request.remoteAddress;
      if (block.source !== undefined) {
        source ??= compileTemplate(block.source, table, { literal: toByteString });
        // ngx_parse_addr(): an address without a port; a variable not found is no address.
        address = source(request);
      }
      const forwarded = request.header?.('x-forwarded-for');
      if (address !== undefined && forwarded !== undefined && block.proxies.length > 0) address = forwardedAddress(address, forwarded, block.proxies, block.proxyRecursive)?.address ?? address;
      return toByteString(geoValue(block, address));
    };
    table.define(block.variable, (request) => {
      if (block.volatile) return evaluate(request);
      const cache = (request.variableCache ??= new Map());
      let value = cache.get(block) as string | undefined;
      if (value === undefined) {
        value = evaluate(request);
        cache.set(block, value);
      }
      return value;
    });
  }
}

/** The geo module's one directive. */
export const httpGeoModule: ConfModule = {
  name: 'ngx_http_geo_module',
  directives: [
    defineDirective({
      kind: 'raw-block',
      name: 'geo',
      contexts: ['http'],
      args: [1, 2],
      repeatable: true,
      syntax: '[$address] $variable { ... }',
      summary: 'Defines $variable by the client address (or $address): CIDR networks, IPv4 and IPv6, longest prefix first, or IPv4 a-b ranges after "ranges"; default, delete, include, proxy (X-Forwarded-For of these addresses), proxy_recursive, volatile. Binary range bases (file.bin) are not read.',
      default: () => [],
      defaultText: '—',
      parse: parseGeo,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkVariables(http, http.get('geo').flatMap((block) => (block.source === undefined ? [] : [block.source])));
  },
};
