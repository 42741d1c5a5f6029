/**
 * The directives of nginx's `ngx_http_limit_conn_module` (`ngx_http_limit_conn_zone()`,
 * `ngx_http_limit_conn()`): how many requests per key a zone lets be processed at once. The counts
 * are in limits.ts; the preaccess phase that asks them is in preaccess.ts.
 */
import { parseNumber, type LogLevel } from '../core/parse.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { checkNewZone, checkZoneUse, parseLimitLogLevel, parseStatus, parseZoneParameter, type ZoneDeclaration } from './limit-req-module.js';
import { parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';

/** `limit_conn zone number`. */
export interface LimitConnRule {
  readonly zone: string;
  readonly conn: number;
  readonly file: string;
  readonly line: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    limit_conn_zone: readonly ZoneDeclaration[];
    limit_conn: readonly LimitConnRule[];
    limit_conn_status: number;
    limit_conn_log_level: LogLevel;
    limit_conn_dry_run: boolean;
  }
}

function parseZone(args: readonly string[], ctx: DirectiveContext, previous: readonly ZoneDeclaration[] | undefined): readonly ZoneDeclaration[] {
  const [keySource = '', ...params] = args;
  const key = parseValue(keySource, ctx);
  let zone: { name: string; size: number } | undefined;
  for (const param of params) {
    if (param.startsWith('zone=')) zone = parseZoneParameter(param, ctx);
    else ctx.fail(`invalid parameter "${param}"`);
  }
  if (zone === undefined || zone.name === '') ctx.fail('"limit_conn_zone" must have "zone" parameter');
  const declaration = { ...zone, keySource, key, file: ctx.location.file, line: ctx.location.line };
  checkNewZone(declaration, previous ?? [], 'limit_conn_zone', ctx);
  return [...(previous ?? []), declaration];
}

function parseLimitConn([zone = '', number = '']: readonly string[], ctx: DirectiveContext, previous: readonly LimitConnRule[] | undefined): readonly LimitConnRule[] {
  if ((previous ?? []).some((rule) => rule.zone === zone)) ctx.fail('"limit_conn" directive is duplicate');
  const conn = parseNumber(number) ?? 0;
  if (conn <= 0) ctx.fail(`invalid number of connections "${number}"`);
  if (conn > 65535) ctx.fail('connection limit must be less 65536');
  return [...(previous ?? []), { zone, conn, file: ctx.location.file, line: ctx.location.line }];
}

const CONTEXTS = ['http', 'server', 'location'] as const;

/** The limit_conn module's directives. */
export const httpLimitConnModule: ConfModule = {
  name: 'ngx_http_limit_conn_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'limit_conn_zone',
      contexts: ['http'],
      args: [2],
      repeatable: true,
      syntax: 'key zone=name:size;',
      summary: 'A shared zone counting, per key, the requests being processed, shared by every worker and kept across reloads.',
      default: () => [],
      defaultText: '—',
      parse: parseZone,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_conn',
      contexts: CONTEXTS,
      args: [2],
      repeatable: true,
      syntax: 'zone number;',
      summary: 'Allows at most number requests per key of the zone to be processed at once; more are rejected.',
      default: () => [],
      defaultText: '—',
      parse: parseLimitConn,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_conn_status',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'code;',
      summary: 'The status of rejected requests.',
      default: () => 503,
      defaultText: 'limit_conn_status 503;',
      parse: parseStatus('limit_conn_status'),
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_conn_log_level',
      contexts: CONTEXTS,
      args: [1],
      syntax: 'info | notice | warn | error;',
      summary: 'The error log level of rejected requests.',
      default: () => 'error',
      defaultText: 'limit_conn_log_level error;',
      parse: parseLimitLogLevel,
    }),
    defineDirective({
      kind: 'value',
      name: 'limit_conn_dry_run',
      contexts: CONTEXTS,
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Counts and logs requests as limit_conn would, without rejecting any.',
      default: () => false,
      defaultText: 'limit_conn_dry_run off;',
      parse: ([value]) => value === 'on',
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    checkZoneUse(http, 'limit_conn', (block) => block.get('limit_conn'), http.get('limit_conn_zone'), http.get('limit_req_zone'));
    checkVariables(http, http.get('limit_conn_zone').map((zone) => zone.key));
  },
};
