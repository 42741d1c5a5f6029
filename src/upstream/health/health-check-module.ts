/**
 * The directives of active health checks, with NGINX Plus's syntax (its
 * `ngx_http_upstream_hc_module`): `health_check [interval=] [jitter=] [fails=] [passes=] [uri=]
 * [port=] [match=] [mandatory]` in a location that proxies to an upstream group, and
 * `match name { status ...; header ...; body ...; }` blocks in `http`. The checker itself runs
 * once per group for the whole server, in the master (health/active.ts).
 */
import { ConfigError } from '../../core/errors.js';
import { parseNumber, parseTime } from '../../core/parse.js';
import type { ConfNode } from '../../conf/parser.js';
import { defineDirective, failAt, type CheckContext, type ConfBlockView, type ConfModule, type DirectiveContext } from '../../conf/registry.js';
import { blocksOf } from '../../conf/values.js';

/** One `health_check` directive. */
export interface HealthCheckSetting {
  /** Milliseconds between two checks of a peer. Default 5s. */
  readonly intervalMs: number;
  /** Up to this many milliseconds added at random to each interval. Default 0. */
  readonly jitterMs: number;
  /** Consecutive failed checks that make a peer unhealthy. Default 1. */
  readonly fails: number;
  /** Consecutive passed checks that make an unhealthy peer healthy again. Default 1. */
  readonly passes: number;
  /** The request's URI. Default `/`. */
  readonly uri: string;
  /** The port to check instead of the peer's own; 0 for the peer's. */
  readonly port: number;
  /** The `match` block the response must satisfy; undefined for "2xx or 3xx". */
  readonly match: string | undefined;
  /** Peers start in the `checking` state and get no requests until their first check passes. */
  readonly mandatory: boolean;
  readonly file: string;
  readonly line: number;
}

/** A `status` test: codes and ranges, possibly negated. */
export interface StatusTest {
  readonly negate: boolean;
  readonly ranges: readonly (readonly [number, number])[];
}

/** A `header` test: `name`, `! name`, `name = v`, `name != v`, `name ~ re`, `name !~ re`. */
export interface HeaderTest {
  readonly name: string;
  readonly op: 'present' | 'absent' | '=' | '!=' | '~' | '!~';
  readonly value: string;
}

/** A `match` block. */
export interface MatchRule {
  readonly name: string;
  readonly status: readonly StatusTest[];
  readonly headers: readonly HeaderTest[];
  readonly body: readonly { readonly negate: boolean; readonly pattern: string }[];
}

declare module '../../conf/registry.js' {
  interface DirectiveValues {
    health_check: HealthCheckSetting | undefined;
    match: ReadonlyMap<string, MatchRule>;
  }
}

/** Parses `health_check`'s parameters; in `stream`, a TCP connect check takes no `uri=` or `match=`. */
export function parseHealthCheck(args: readonly string[], ctx: DirectiveContext): HealthCheckSetting {
  const stream = ctx.context === 'stream_server';
  let intervalMs = 5_000;
  let jitterMs = 0;
  let fails = 1;
  let passes = 1;
  let uri = '/';
  let port = 0;
  let match: string | undefined;
  let mandatory = false;
  for (const arg of args) {
    const eq = arg.indexOf('=');
    const key = eq === -1 ? arg : arg.slice(0, eq + 1);
    const value = eq === -1 ? '' : arg.slice(eq + 1);
    const invalid = (): never => ctx.fail(`invalid parameter "${arg}"`);
    switch (key) {
      case 'interval=':
        intervalMs = parseTime(value) ?? invalid();
        if (intervalMs === 0) invalid();
        break;
      case 'jitter=':
        jitterMs = parseTime(value) ?? invalid();
        break;
      case 'fails=':
        fails = parseNumber(value) ?? invalid();
        if (fails === 0) invalid();
        break;
      case 'passes=':
        passes = parseNumber(value) ?? invalid();
        if (passes === 0) invalid();
        break;
      case 'uri=':
        if (stream || !value.startsWith('/')) invalid();
        uri = value;
        break;
      case 'port=':
        port = parseNumber(value) ?? invalid();
        if (port < 1 || port > 65535) invalid();
        break;
      case 'match=':
        if (stream || value === '') invalid();
        match = value;
        break;
      case 'mandatory':
        mandatory = true;
        break;
      default:
        invalid();
    }
  }
  return { intervalMs, jitterMs, fails, passes, uri, port, match, mandatory, file: ctx.location.file, line: ctx.location.line };
}

function parseStatus(args: readonly string[], node: ConfNode & { kind: 'directive' }): StatusTest {
  const negate = args[0] === '!';
  const codes = negate ? args.slice(1) : args;
  if (codes.length === 0) failAt(node, 'invalid number of arguments in "status" directive');
  const ranges = codes.map((code): [number, number] => {
    const [low = '', high = low] = code.split('-');
    const from = parseNumber(low);
    const to = parseNumber(high);
    if (from === undefined || to === undefined || from < 100 || to > 999 || from > to) return failAt(node, `invalid status "${code}"`);
    return [from, to];
  });
  return { negate, ranges };
}

function parseHeader(args: readonly string[], node: ConfNode & { kind: 'directive' }): HeaderTest {
  if (args.length === 1 && args[0] !== '!') return { name: args[0] as string, op: 'present', value: '' };
  if (args.length === 2 && args[0] === '!') return { name: args[1] as string, op: 'absent', value: '' };
  const [name = '', op = '', value = ''] = args;
  if (args.length !== 3 || !['=', '!=', '~', '!~'].includes(op)) return failAt(node, 'invalid number of arguments in "header" directive');
  if (op === '~' || op === '!~') checkRegex(value, node);
  return { name, op: op as HeaderTest['op'], value };
}

function checkRegex(pattern: string, node: ConfNode & { kind: 'directive' }): void {
  try {
    new RegExp(pattern);
  } catch {
    failAt(node, `pcre2_compile() failed in "${pattern}"`);
  }
}

/** Parses a `match` block into the map of every block so far. */
export function parseMatch(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: ReadonlyMap<string, MatchRule> | undefined): ReadonlyMap<string, MatchRule> {
  const name = args[0] ?? '';
  if (previous?.has(name)) ctx.fail(`duplicate match "${name}"`);
  const status: StatusTest[] = [];
  const headers: HeaderTest[] = [];
  const body: { negate: boolean; pattern: string }[] = [];
  for (const node of nodes) {
    if (node.kind === 'error') throw node.error;
    if (node.block !== undefined) failAt(node, `directive "${node.name}" is not terminated by ";"`);
    switch (node.name) {
      case 'status':
        status.push(parseStatus(node.args, node));
        break;
      case 'header':
        headers.push(parseHeader(node.args, node));
        break;
      case 'body': {
        const [op = '', pattern = ''] = node.args;
        if (node.args.length !== 2 || (op !== '~' && op !== '!~')) failAt(node, 'invalid number of arguments in "body" directive');
        checkRegex(pattern, node);
        body.push({ negate: op === '!~', pattern });
        break;
      }
      default:
        failAt(node, `unknown directive "${node.name}"`);
    }
  }
  return new Map([...(previous ?? []), [name, { name, status, headers, body }]]);
}

/** Whether a response satisfies a match (every test of the block), or the default: 2xx or 3xx. */
export function responseMatches(rule: MatchRule | undefined, status: number, headers: Readonly<Record<string, string | string[] | undefined>>, body: string): boolean {
  if (rule === undefined) return status >= 200 && status < 400;
  for (const test of rule.status) {
    const inside = test.ranges.some(([from, to]) => status >= from && status <= to);
    if (inside === test.negate) return false;
  }
  for (const test of rule.headers) {
    const raw = headers[test.name.toLowerCase()];
    const value = raw === undefined ? undefined : Array.isArray(raw) ? raw.join(', ') : raw;
    const ok = test.op === 'present' ? value !== undefined
      : test.op === 'absent' ? value === undefined
        : test.op === '=' ? value === test.value
          : test.op === '!=' ? value !== test.value
            : test.op === '~' ? value !== undefined && new RegExp(test.value).test(value)
              : value === undefined || !new RegExp(test.value).test(value);
    if (!ok) return false;
  }
  for (const test of rule.body) {
    if (new RegExp(test.pattern).test(body) === test.negate) return false;
  }
  return true;
}

/** The upstream group a location with `health_check` proxies to: its name, or a ConfigError. */
export function checkedGroupOf(location: ConfBlockView, http: ConfBlockView): string {
  const setting = location.get('health_check') as HealthCheckSetting;
  const target = location.isSet('proxy_pass') ? location.get('proxy_pass') : undefined;
  // The `upstream` blocks of the `http` (or, for a stream `server`, the `stream`) block.
  const groups = new Set(http.blocks.filter((block) => block.name === 'upstream').map((block) => block.args[0] ?? ''));
  if (target === undefined || target.template !== undefined || !groups.has(target.host)) {
    throw new ConfigError('"health_check" requires "proxy_pass" to an upstream group', setting);
  }
  return target.host;
}

/**
 * The active checks run in the master, which does not resolve `server ... resolve` names (each
 * worker does, upstream/resolve.ts): their peers are not checked, which -t says.
 */
function warnResolved(group: string, parent: ConfBlockView, ctx: CheckContext): void {
  const block = parent.blocks.find((child) => child.name === 'upstream' && child.args[0] === group);
  for (const server of block?.get('server') ?? []) {
    if (server.resolve) ctx.warn(`health_check does not check the peers of "${server.address}" resolved at run time in upstream "${group}" in ${server.file}:${server.line} (the checks run in the master, the names are resolved by each worker)`);
  }
}

/** `health_check` and `match`. */
export const upstreamHealthCheckModule: ConfModule = {
  // NGINX Plus's name for the module; it is not one of nginx's, so `-V` does not list it.
  name: 'ngx_http_upstream_hc_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'health_check',
      contexts: ['location'],
      args: 'any',
      inherit: false,
      syntax: '[interval=time] [jitter=time] [fails=number] [passes=number] [uri=uri] [port=number] [match=name] [mandatory];',
      summary: 'Checks the servers of the group this location proxies to, once per group for the whole server: a server failing fails= checks in a row gets no requests until it passes passes= in a row.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => parseHealthCheck(args, ctx),
    }),
    defineDirective({
      kind: 'value',
      name: 'health_check',
      contexts: ['stream_server'],
      args: 'any',
      inherit: false,
      syntax: '[interval=time] [jitter=time] [fails=number] [passes=number] [port=number] [mandatory];',
      summary: 'Checks the servers of the stream group this server proxies to by opening a TCP connection, once per group for the whole server; as in http, fails= and passes= decide.',
      default: () => undefined,
      defaultText: '—',
      parse: (args, ctx) => parseHealthCheck(args, ctx),
    }),
    defineDirective({
      kind: 'raw-block',
      name: 'match',
      contexts: ['http'],
      args: [1],
      repeatable: true,
      inherit: false,
      syntax: 'name { status ...; header ...; body ~ ...; }',
      summary: 'Tests a health check response must pass: status codes or ranges (! negates), headers (=, !=, ~, !~, present, ! absent), body regex (~, !~).',
      default: () => new Map(),
      defaultText: '—',
      parse: parseMatch,
    }),
  ],
  check(main, ctx) {
    const stream = main.blocks.find((block) => block.name === 'stream');
    for (const server of stream?.blocks ?? []) {
      if (server.name === 'server' && server.isSet('health_check')) warnResolved(checkedGroupOf(server, stream as ConfBlockView), stream as ConfBlockView, ctx);
    }
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const matches = http.get('match');
    for (const block of blocksOf(http)) {
      if (block.name !== 'location' || !block.isSet('health_check')) continue;
      warnResolved(checkedGroupOf(block, http), http, ctx);
      const setting = block.get('health_check') as HealthCheckSetting;
      if (setting.match !== undefined && !matches.has(setting.match)) throw new ConfigError(`match "${setting.match}" not found`, setting);
    }
  },
};
