/**
 * nginx's `ngx_http_split_clients_module`: `split_clients string $variable { 10% a; 5.5% b; * c; }`
 * hashes the string with MurmurHash2 and picks the first part whose share of the 32-bit hash
 * space the hash falls in, for A/B tests and canary releases: the same string always lands in the
 * same part, and the same strings split the same way as nginx splits them.
 */
import { ConfigError } from '../core/errors.js';
import { compileTemplate, type CompiledTemplate, type Template, type VariableTable } from '../core/variables.js';
import type { ConfNode } from '../conf/parser.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { parseValue } from '../conf/values.js';
import { toByteString } from '../core/byte-string.js';
import type { HttpRequest } from './request.js';
import { checkVariables, isFixedHttpVariable } from './variables.js';

/** One part of a split: the hash bound it stops below (0: the rest) and its value, a plain string. */
export interface SplitPart {
  readonly bound: number;
  readonly value: string;
}

/** One `split_clients` block. */
export interface SplitClientsBlock {
  readonly source: Template;
  /** The variable defined, without `$`, lowercased. */
  readonly variable: string;
  readonly parts: readonly SplitPart[];
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    split_clients: readonly SplitClientsBlock[];
  }
}

/** `ngx_murmur_hash2()` (src/core/ngx_murmurhash.c) over bytes. */
export function murmurHash2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  let len = data.length;
  let h = len >>> 0;
  let i = 0;
  while (len >= 4) {
    let k = ((data[i] as number) | ((data[i + 1] as number) << 8) | ((data[i + 2] as number) << 16) | ((data[i + 3] as number) << 24)) >>> 0;
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m) ^ k;
    i += 4;
    len -= 4;
  }
  // The tail bytes, as the C switch's fall-through cases.
  if (len === 3) h ^= (data[i + 2] as number) << 16;
  if (len >= 2) h ^= (data[i + 1] as number) << 8;
  if (len >= 1) h = Math.imul(h ^ (data[i] as number), m);
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h >>> 0;
}

/** `ngx_atofp(text, len, 2)`: a decimal with at most two fraction digits, in hundredths; undefined for anything else. */
export function parsePercent(text: string): number | undefined {
  if (text === '') return undefined;
  let value = 0;
  let point = 2;
  let dot = false;
  for (const ch of text) {
    if (point === 0) return undefined;
    if (ch === '.') {
      if (dot) return undefined;
      dot = true;
      continue;
    }
    if (ch < '0' || ch > '9') return undefined;
    value = value * 10 + (ch.charCodeAt(0) - 48);
    if (value > Number.MAX_SAFE_INTEGER / 100) return undefined;
    if (dot) point--;
  }
  return value * 10 ** point;
}

function failAt(node: { file: string; line: number }, reason: string): never {
  throw new ConfigError(reason, { file: node.file, line: node.line });
}

/** `ngx_conf_split_clients_block()` and `ngx_http_split_clients()`. */
export function parseSplitClients(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly SplitClientsBlock[] | undefined): readonly SplitClientsBlock[] {
  const [sourceText = '', name = ''] = args;
  const source = parseValue(sourceText, ctx);
  if (!name.startsWith('$')) ctx.fail(`invalid variable name "${name}"`);
  const variable = name.slice(1).toLowerCase();
  // ngx_http_add_variable() with NGX_HTTP_VAR_CHANGEABLE: a built-in one is not changeable.
  if (isFixedHttpVariable(variable)) ctx.fail(`the duplicate "${variable}" variable`);
  const raw: { percent: number; value: string; node: ConfNode }[] = [];
  for (const node of nodes) {
    if (node.kind === 'error') throw node.error;
    // The block's handler takes every line as "percent value": include is not special here.
    if (node.block !== undefined) failAt(node, 'unexpected "{"');
    // nginx reads a missing value from whatever the argument array last held: refused here.
    if (node.args.length === 0) failAt(node, `invalid number of arguments in "${node.name}" directive`);
    if (node.args.length > 1) ctx.warn(`split_clients ignores the parameters after "${node.args[0] ?? ''}", as nginx does`, { file: node.file, line: node.line });
    let percent = 0;
    if (node.name !== '*') {
      const parsed = node.name.endsWith('%') ? parsePercent(node.name.slice(0, -1)) : undefined;
      if (parsed === undefined || parsed === 0) failAt(node, `invalid percent value "${node.name}"`);
      // The part's percent is a uint32_t.
      percent = parsed % 2 ** 32;
    }
    raw.push({ percent, value: node.args[0] ?? '', node });
  }
  let sum = 0;
  let last = 0;
  const parts: SplitPart[] = [];
  for (const part of raw) {
    sum = part.percent !== 0 ? sum + part.percent : 10000;
    if (sum === 10000) part.percent = 0;
    // nginx reports the total at the block's closing line; the directive's line is the nearest we keep.
    if (sum > 10000) ctx.fail('percent total is greater than 100%');
    if (part.percent !== 0) {
      // last += percent * 0xffffffff / 10000, in uint32_t.
      last = (last + Math.floor((part.percent * 0xffffffff) / 10000)) >>> 0;
      parts.push({ bound: last, value: part.value });
    } else parts.push({ bound: 0, value: part.value });
  }
  return [...(previous ?? []), { source, variable, parts }];
}

/** `ngx_http_split_clients_variable()`: the value of the first part whose bound the hash is below; empty when none. */
export function splitValue(block: SplitClientsBlock, key: Uint8Array): string {
  const hash = murmurHash2(key);
  for (const part of block.parts) if (hash < part.bound || part.bound === 0) return part.value;
  return '';
}

/** Defines every `split_clients` variable in a generation's table (http's or stream's); not cached, as nginx's part values are not. */
export function defineSplitClientsVariables<C = HttpRequest>(table: VariableTable<C>, blocks: readonly SplitClientsBlock[]): void {
  for (const block of blocks) {
    let source: CompiledTemplate<C> | undefined;
    // Request strings are byte strings (latin1); the values, config text, become byte strings once.
    const bytes: SplitClientsBlock = { ...block, parts: block.parts.map((part) => ({ bound: part.bound, value: toByteString(part.value) })) };
    table.define(block.variable, (request) => {
      source ??= compileTemplate(block.source, table, { literal: toByteString });
      return splitValue(bytes, Buffer.from(source(request), 'latin1'));
    });
  }
}

/** The split_clients module's one directive. */
export const httpSplitClientsModule: ConfModule = {
  name: 'ngx_http_split_clients_module',
  directives: [
    defineDirective({
      kind: 'raw-block',
      name: 'split_clients',
      contexts: ['http'],
      args: [2],
      repeatable: true,
      syntax: 'string $variable { ... }',
      summary: 'Defines $variable by MurmurHash2 of string, as nginx does: "N% value" lines take N percent (two decimals) of the hash space in order, "* value" the rest; the same string gives the same value as in nginx.',
      default: () => [],
      defaultText: '—',
      parse: parseSplitClients,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkVariables(http, http.get('split_clients').map((block) => block.source));
  },
};
