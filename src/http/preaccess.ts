/**
 * nginx's preaccess phase, in the order nginx runs its handlers (the last module registered runs
 * first): realip with the location's settings, then `ngx_http_limit_req_handler()`, then
 * `ngx_http_limit_conn_handler()`. A location whose `return` answered never gets here: the
 * rewrite phase comes first, as in nginx.
 */
import type { ErrorLog } from '../core/log.js';
import type { LogLevel } from '../core/parse.js';
import { compileTemplate, type CompiledTemplate, type VariableTable } from '../core/variables.js';
import type { ConfBlockView } from '../conf/registry.js';
import type { HttpExchange } from './exchange.js';
import type { LimitConnCheck, LimitReqCheck, ZoneClient } from './limits.js';
import { applyRealIp, compileRealIp, type RealIpConfig } from './realip-module.js';
import type { HttpRequest } from './request.js';

interface KeyedRule {
  readonly zone: string;
  readonly size: number;
  readonly keySource: string;
  readonly key: CompiledTemplate<HttpRequest>;
}

/** The limit_req settings of a level. */
export interface CompiledLimitReq {
  readonly rules: readonly (KeyedRule & { readonly rate: number; readonly burst: number; readonly delay: number })[];
  readonly status: number;
  readonly logLevel: LogLevel;
  readonly dryRun: boolean;
}

/** The limit_conn settings of a level. */
export interface CompiledLimitConn {
  readonly rules: readonly (KeyedRule & { readonly conn: number })[];
  readonly status: number;
  readonly logLevel: LogLevel;
  readonly dryRun: boolean;
}

/** What the preaccess phase of one level does; undefined on a level without realip or limits. */
export interface Preaccess {
  readonly realip: RealIpConfig | undefined;
  readonly req: CompiledLimitReq | undefined;
  readonly conn: CompiledLimitConn | undefined;
  /** Where the zones live (the server's ServingState, http/serving-state.ts). */
  readonly zones: ZoneClient;
}

/** Compiles a level's realip and limits against the generation's variables. */
export function compilePreaccess(block: ConfBlockView, http: ConfBlockView, table: VariableTable<HttpRequest>, zones: ZoneClient): Preaccess | undefined {
  const realip = compileRealIp(block);
  const key = (source: { key: Parameters<typeof compileTemplate>[0] }): CompiledTemplate<HttpRequest> => compileTemplate(source.key, table);
  const reqZones = http.get('limit_req_zone');
  const connZones = http.get('limit_conn_zone');
  const reqRules = block.get('limit_req').flatMap((rule) => {
    const zone = reqZones.find((z) => z.name === rule.zone);
    return zone === undefined ? [] : [{ zone: zone.name, size: zone.size, keySource: zone.keySource, key: key(zone), rate: zone.rate, burst: rule.burst, delay: rule.delay }];
  });
  const connRules = block.get('limit_conn').flatMap((rule) => {
    const zone = connZones.find((z) => z.name === rule.zone);
    return zone === undefined ? [] : [{ zone: zone.name, size: zone.size, keySource: zone.keySource, key: key(zone), conn: rule.conn }];
  });
  if (realip === undefined && reqRules.length === 0 && connRules.length === 0) return undefined;
  return {
    realip,
    req: reqRules.length === 0 ? undefined : { rules: reqRules, status: block.get('limit_req_status'), logLevel: block.get('limit_req_log_level'), dryRun: block.get('limit_req_dry_run') },
    conn: connRules.length === 0 ? undefined : { rules: connRules, status: block.get('limit_conn_status'), logLevel: block.get('limit_conn_log_level'), dryRun: block.get('limit_conn_dry_run') },
    zones,
  };
}

/** Where the phase logs, and the `, client: ...` tail nginx adds to a request's errors. */
export interface PreaccessLog {
  readonly log: ErrorLog;
  readonly connection: number;
  context(): string;
}

/** `%ui.%03ui` of milli-requests. */
function formatExcess(excess: number): string {
  return `${Math.floor(excess / 1000)}.${String(excess % 1000).padStart(3, '0')}`;
}

/** The level nginx logs a delayed request at: one below limit_req_log_level, info at the least. */
function delayLevel(level: LogLevel): LogLevel {
  return level === 'error' ? 'warn' : level === 'warn' ? 'notice' : 'info';
}

/** `ngx_http_limit_req_handler()`: a status to reject with, or undefined to go on (after any delay). */
async function limitReq(req: CompiledLimitReq, zones: ZoneClient, request: HttpRequest, out: PreaccessLog): Promise<number | undefined> {
  if (request.limitReqStatus !== undefined) return undefined;
  const checks: LimitReqCheck[] = [];
  for (const rule of req.rules) {
    const key = rule.key(request);
    if (key.length === 0) continue;
    if (key.length > 65535) {
      out.log.error(`the value of the "${rule.keySource}" key is more than 65535 bytes: "${key}"${out.context()}`, out.connection);
      continue;
    }
    checks.push({ zone: rule.zone, size: rule.size, rate: rule.rate, burst: rule.burst, delay: rule.delay, key });
  }
  if (checks.length === 0) return undefined;
  const answer = await zones.limitReq(checks);
  const dry = req.dryRun ? ', dry run' : '';
  switch (answer.rc) {
    case 'declined':
      return undefined;
    case 'busy':
    case 'error': {
      const zone = (checks[answer.index] as LimitReqCheck).zone;
      if (answer.rc === 'busy') out.log.write(req.logLevel, `limiting requests${dry}, excess: ${formatExcess(answer.excess)} by zone "${zone}"${out.context()}`, out.connection);
      else out.log.alert(`could not allocate node in limit_req zone "${zone}"`);
      request.limitReqStatus = req.dryRun ? 'REJECTED_DRY_RUN' : 'REJECTED';
      return req.dryRun ? undefined : req.status;
    }
    case 'ok': {
      if (answer.delayMs === 0) {
        request.limitReqStatus = 'PASSED';
        return undefined;
      }
      const zone = (checks[answer.index] as LimitReqCheck).zone;
      out.log.write(delayLevel(req.logLevel), `delaying request${dry}, excess: ${formatExcess(answer.excess)}, by zone "${zone}"${out.context()}`, out.connection);
      request.limitReqStatus = req.dryRun ? 'DELAYED_DRY_RUN' : 'DELAYED';
      if (!req.dryRun) await new Promise((resolve) => setTimeout(resolve, answer.delayMs));
      return undefined;
    }
  }
}

/** `ngx_http_limit_conn_handler()`: a status to reject with, or undefined to go on. */
async function limitConn(conn: CompiledLimitConn, client: ZoneClient, request: HttpRequest, exchange: HttpExchange, out: PreaccessLog): Promise<number | undefined> {
  if (request.limitConnStatus !== undefined) return undefined;
  const checks: LimitConnCheck[] = [];
  for (const rule of conn.rules) {
    const key = rule.key(request);
    if (key.length === 0) continue;
    if (key.length > 255) {
      out.log.error(`the value of the "${rule.keySource}" key is more than 255 bytes: "${key}"${out.context()}`, out.connection);
      continue;
    }
    checks.push({ zone: rule.zone, size: rule.size, key, conn: rule.conn });
  }
  if (checks.length === 0) return undefined;
  request.limitConnStatus = 'PASSED';
  const answer = await client.limitConn(checks);
  if (answer.rc === 'passed') {
    // ngx_http_limit_conn_cleanup(): the count is given back when the request ends.
    if (exchange.aborted) client.releaseConn(checks);
    else exchange.onFinish(() => client.releaseConn(checks));
    return undefined;
  }
  if (answer.rc === 'rejected') {
    const zone = (checks[answer.index] as LimitConnCheck).zone;
    out.log.write(conn.logLevel, `limiting connections${conn.dryRun ? ', dry run,' : ''} by zone "${zone}"${out.context()}`, out.connection);
  }
  request.limitConnStatus = conn.dryRun ? 'REJECTED_DRY_RUN' : 'REJECTED';
  return conn.dryRun ? undefined : conn.status;
}

/**
 * Runs the preaccess phase: resolves with a status to answer with (a rejection), or undefined
 * when the request goes on to its content.
 */
export async function runPreaccess(pre: Preaccess, request: HttpRequest, exchange: HttpExchange, out: PreaccessLog): Promise<number | undefined> {
  applyRealIp(request, pre.realip);
  if (pre.req !== undefined) {
    const status = await limitReq(pre.req, pre.zones, request, out);
    if (status !== undefined || exchange.aborted) return status;
  }
  if (pre.conn !== undefined) return limitConn(pre.conn, pre.zones, request, exchange, out);
  return undefined;
}
