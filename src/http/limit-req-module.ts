/**
 * The directives of nginx's `ngx_http_limit_req_module`, with its syntax, defaults, inheritance
 * and messages (`ngx_http_limit_req_zone()`, `ngx_http_limit_req()`). The leaky bucket itself is
 * in limits.ts; the preaccess phase that asks it is in preaccess.ts.
 */
import { ConfigError } from '../core/errors.js';
import { parseNumber, parseSize, type LogLevel } from '../core/parse.js';
import type { Template } from '../core/variables.js';
import { defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';

/** A shared zone's declaration: `zone=name:size`. */
export interface ZoneDeclaration {
  readonly name: string;
  readonly size: number;
  /** The key, as written (`$binary_remote_addr`) and parsed. */
  readonly keySource: string;
  readonly key: Template;
  readonly file: string;
  readonly line: number;
}

/** `limit_req_zone key zone=name:size rate=rate`. */
export interface LimitReqZoneDeclaration extends ZoneDeclaration {
  /** Milli-requests per second. */
  readonly rate: number;
}

/** `limit_req zone=name [burst=number] [nodelay | delay=number]`, in milli-requests. */
export interface LimitReqRule {
  readonly zone: string;
  readonly burst: number;
  readonly delay: number;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    limit_req_zone: readonly LimitReqZoneDeclaration[];
    limit_req: readonly LimitReqRule[];
    limit_req_status: number;
    limit_req_log_level: LogLevel;
    limit_req_dry_run: boolean;
  }
}

/** nginx refuses a zone smaller than 8 pages (`8 * ngx_pagesize`). */
const MIN_ZONE_SIZE = 8 * 4096;

/** `zone=name:size`, as `ngx_http_limit_req_zone()` and `ngx_http_limit_conn_zone()` read it. */
export function parseZoneParameter(arg: string, ctx: DirectiveContext): { name: string; size: number } {
  const colon = arg.indexOf(':');
  if (colon === -1) ctx.fail(`invalid zone size "${arg}"`);
  const size = parseSize(arg.slice(colon + 1)) ?? ctx.fail(`invalid zone size "${arg}"`);
  if (size < MIN_ZONE_SIZE) ctx.fail(`zone "${arg}" is too small`);
  return { name: arg.slice(5, colon), size };
}

/**
 * `ngx_shared_memory_add()` for a new declaration: the same name twice is the size conflict or
 * `is already bound to key`, as nginx words them.
 */
export function checkNewZone(zone: ZoneDeclaration, previous: readonly ZoneDeclaration[], directive: string, ctx: DirectiveContext): void {
  const same = previous.find((other) => other.name === zone.name);
  if (same === undefined) return;
  if (same.size !== zone.size) ctx.fail(`the size ${zone.size} of shared memory zone "${zone.name}" conflicts with already declared size ${same.size}`);
  ctx.fail(`${directive} "${zone.name}" is already bound to key "${same.keySource}"`);
}

function parseZone(args: readonly string[], ctx: DirectiveContext, previous: readonly LimitReqZoneDeclaration[] | undefined): readonly LimitReqZoneDeclaration[] {
  const [keySource = '', ...params] = args;
  const key = parseValue(keySource, ctx);
  let zone: { name: string; size: number } | undefined;
  let rate = 1;
  let scale = 1;
  for (const param of params) {
    if (param.startsWith('zone=')) {
      zone = parseZoneParameter(param, ctx);
    } else if (param.startsWith('rate=')) {
      let text = param.slice(5);
      if (text.endsWith('r/s')) text = text.slice(0, -3);
      else if (text.endsWith('r/m')) {
        text = text.slice(0, -3);
        scale = 60;
      }
      rate = parseNumber(text) ?? 0;
      if (rate <= 0) ctx.fail(`invalid rate "${param}"`);
    } else if (param !== 'sync') {
      // `sync` is nginx Plus's zone synchronization; hitless's zones are always shared by all workers.
      ctx.fail(`invalid parameter "${param}"`);
    }
  }
  if (zone === undefined || zone.name === '') ctx.fail('"limit_req_zone" must have "zone" parameter');
  const declaration = { ...zone, keySource, key, rate: Math.floor((rate * 1000) / scale), file: ctx.location.file, line: ctx.location.line };
  checkNewZone(declaration, previous ?? [], 'limit_req_zone', ctx);
  return [...(previous ?? []), declaration];
}

/** nginx's `NGX_MAX_INT_T_VALUE / 1000`, times 1000: `nodelay`. */
const NODELAY = Math.floor(Number.MAX_SAFE_INTEGER / 1000) * 1000;

function parseLimitReq(args: readonly string[], ctx: DirectiveContext, previous: readonly LimitReqRule[] | undefined): readonly LimitReqRule[] {
  let zone: string | undefined;
  let burst = 0;
  let delay = 0;
  for (const arg of args) {
    if (arg.startsWith('zone=')) zone = arg.slice(5);
    else if (arg.startsWith('burst=')) {
      burst = parseNumber(arg.slice(6)) ?? 0;
      if (burst <= 0) ctx.fail(`invalid burst value "${arg}"`);
    } else if (arg.startsWith('delay=')) {
      delay = parseNumber(arg.slice(6)) ?? 0;
      if (delay <= 0) ctx.fail(`invalid delay value "${arg}"`);
    } else if (arg === 'nodelay') delay = NODELAY / 1000;
    else ctx.fail(`invalid parameter "${arg}"`);
  }
  if (zone === undefined) ctx.fail('"limit_req" must have "zone" parameter');
  if ((previous ?? []).some((rule) => rule.zone === zone)) ctx.fail('"limit_req" directive is duplicate');
  return [...(previous ?? []), { zone, burst: burst * 1000, delay: delay * 1000, file: ctx.location.file, line: ctx.location.line }];
}

/** `limit_req_status` and `limit_conn_status`: `ngx_conf_set_num_slot` bounded to 400..599. */
export function parseStatus(name: string): (args: readonly string[], ctx: DirectiveContext) => number {
  return ([value = ''], ctx) => {
    const status = parseNumber(value) ?? ctx.fail(`"${name}" directive invalid number`);
    if (status < 400 || status > 599) ctx.fail('value must be between 400 and 599');
    return status;
  };
}

/** `limit_req_log_level` and `limit_conn_log_level`: `info | notice | warn | error`. */
export function parseLimitLogLevel([value = '']: readonly string[], ctx: DirectiveContext): LogLevel {
  if (value === 'info' || value === 'notice' || value === 'warn' || value === 'error') return value;
  return ctx.fail(`invalid value "${value}"`);
}

/**
 * Checks a zone every `limit_*` names against the declarations, at init as nginx does: an
 * undeclared one is `zero size shared memory zone`, one of the other module `a different use`.
 */
export function checkZoneUse(
  http: ConfBlockView,
  directive: 'limit_req' | 'limit_conn',
  rules: (block: ConfBlockView) => readonly { zone: string; file: string; line: number }[],
  own: readonly ZoneDeclaration[],
  other: readonly ZoneDeclaration[],
): void {
  for (const zone of own) {
    if (other.some((o) => o.name === zone.name)) throw new ConfigError(`the shared memory zone "${zone.name}" is already declared for a different use`, at(zone));
  }
  for (const block of blocksOf(http)) {
    if (!block.isSet(directive)) continue;
    for (const rule of rules(block)) {
      if (own.some((zone) => zone.name === rule.zone)) continue;
      if (other.some((zone) => zone.name === rule.zone)) throw new ConfigError(`the shared memory zone "${rule.zone}" is already declared for a different use`, at(rule));
      throw new ConfigError(`zero size shared memory zone "${rule.zone}"`, undefined);
    }
  }
}

function at(where: { file: string; line: number }): { file: string; line: number } {
  return { file: where.file, line: where.line };
}

const CONTEXTS = ['http', 'server', 'location'] as const;

/** The limit_req module's directives. */
export const httpLimitReqModule: ConfModule = {
  name: 'ngx_http_limit_req_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'limit_req_zone',
      contexts: ['http'],
      args: [3, 4],
      repeatable: true,
      syntax: 'key zone=name:size rate=rate [sync];',
      summary: 'A shared zone keeping, per key, the state of a leaky bucket of rate requests per second (r/s) or minute (r/m), shared by every worker and kept across reloads.',
      default: () => [],
      defaultText: '—',
      parse: parseZone,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_req',
      contexts: CONTEXTS,
      args: [1, 2, 3],
      repeatable: true,
      syntax: 'zone=name [burst=number] [nodelay | delay=number];',
      summary: 'Limits the rate of requests per key of the zone: up to burst excess requests wait (the first delay of them, or all with nodelay, pass at once), the rest are rejected.',
      default: () => [],
      defaultText: '—',
      parse: parseLimitReq,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_req_status',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'code;',
      summary: 'The status of rejected requests.',
      default: () => 503,
      defaultText: 'limit_req_status 503;',
      parse: parseStatus('limit_req_status'),
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_req_log_level',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'info | notice | warn | error;',
      summary: 'The error log level of rejected requests; delayed ones are logged one level lower.',
      default: () => 'error',
      defaultText: 'limit_req_log_level error;',
      parse: parseLimitLogLevel,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_req_dry_run',
      contexts: CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Accounts and logs requests as limit_req would, without delaying or rejecting any.',
      default: () => false,
      defaultText: 'limit_req_dry_run off;',
      parse: ([value]) => value === 'on',
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkZoneUse(http, 'limit_req', (block) => block.get('limit_req'), http.get('limit_req_zone'), http.get('limit_conn_zone'));
    checkVariables(http, http.get('limit_req_zone').map((zone) => zone.key));
  },
};
