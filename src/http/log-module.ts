/**
 * nginx's `ngx_http_log_module`: `log_format` and `access_log`, with the predefined `combined`
 * format. Lines are written when a request ends (nginx's log phase).
 */
import { ConfigError } from '../core/errors.js';
import { parseSize, parseTime } from '../core/parse.js';
import { isSyslogTarget, parseSyslogTarget, type SyslogServer } from '../core/syslog.js';
import { isAbsolute } from 'node:path';
import { prefixed } from '../conf/core-module.js';
import { parseTemplate, TemplateSyntaxError, type Template, type TemplatePart } from '../core/variables.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { blocksOf, parseValue } from '../conf/values.js';
import { checkVariables } from './variables.js';

/** How variable values are escaped in a log line (`log_format ... escape=`). */
export type LogEscape = 'default' | 'json' | 'none';

/** One `log_format`. */
export interface LogFormat {
  readonly name: string;
  readonly escape: LogEscape;
  readonly template: Template;
}

/** One `access_log path [format] [buffer=size] [gzip[=level]] [flush=time] [if=condition]`. */
export interface AccessLogTarget {
  /** Absolute path; with variables, the path as written, made absolute against the prefix; for syslog, the `syslog:...` text. */
  readonly path: string;
  /** Set for `syslog:server=...`: each line is a datagram to that server instead. */
  readonly syslog?: SyslogServer;
  /** The path's variables, evaluated for each request; undefined for a fixed path. */
  readonly pathTemplate: Template | undefined;
  /** The format's name as written; `combined` when omitted. */
  readonly format: string;
  readonly buffer: number | undefined;
  /** The `gzip=` level (1 to 9); each flushed buffer is one gzip member. */
  readonly gzip: number | undefined;
  /** In ms. */
  readonly flush: number | undefined;
  /** Log only when this is neither empty nor `0`. */
  readonly condition: Template | undefined;
  readonly file: string;
  readonly line: number;
}

/** The `access_log` lines of one level; `off` anywhere on the level turns logging off there. */
export interface AccessLogSetting {
  readonly off: boolean;
  readonly targets: readonly AccessLogTarget[];
}

/** `open_log_file_cache`: the descriptors of logs whose paths have variables, kept open (an LRU). */
export interface OpenLogFileCache {
  readonly max: number;
  /** A descriptor not used for this long is closed, in ms (default 10 s). */
  readonly inactiveMs: number;
  /** Uses within `inactive` before a descriptor is kept open (default 1). */
  readonly minUses: number;
  /** How long a cached descriptor is trusted before its path is checked again, in ms (default 60 s). */
  readonly validMs: number;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    log_format: readonly LogFormat[];
    access_log: AccessLogSetting;
    open_log_file_cache: OpenLogFileCache | undefined;
  }
}

/** nginx's predefined format. */
export const COMBINED_FORMAT: LogFormat = {
  name: 'combined',
  escape: 'default',
  template: parseTemplate('$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"', { captures: false }),
};

/** The access log nginx builds in (`NGX_HTTP_LOG_PATH`), relative to the prefix. */
export const DEFAULT_ACCESS_LOG_PATH = 'logs/access.log';

/** Parses `log_format name [escape=...] string ...`, as ngx_http_log_set_format() does. */
export function parseLogFormat(args: readonly string[], ctx: DirectiveContext, previous: readonly LogFormat[] | undefined): readonly LogFormat[] {
  const [name = '', ...rest] = args;
  const formats = previous ?? [];
  if (name === 'combined' || formats.some((format) => format.name === name)) ctx.fail(`duplicate "log_format" name "${name}"`);
  let escape: LogEscape = 'default';
  let strings = rest;
  if (rest[0]?.startsWith('escape=')) {
    const value = rest[0].slice(7);
    if (value !== 'default' && value !== 'json' && value !== 'none') ctx.fail(`unknown log format escaping "${value}"`);
    escape = value;
    strings = rest.slice(1);
  }
  const parts: TemplatePart[] = [];
  for (const text of strings) {
    try {
      parts.push(...parseTemplate(text, { captures: false }).parts);
    } catch (err) {
      if (!(err instanceof TemplateSyntaxError)) throw err;
      // ngx_http_log_compile_format() words it its own way, from the "$" on.
      ctx.fail(err.reason.startsWith('the closing') ? err.reason : `invalid parameter "${text.slice(err.offset)}"`);
    }
  }
  return [...formats, { name, escape, template: { source: strings.join(''), parts } }];
}

/** Parses `access_log`, as ngx_http_log_set_log() does; the format is looked up once the http block is read. */
export function parseAccessLog(args: readonly string[], ctx: DirectiveContext, previous: AccessLogSetting | undefined): AccessLogSetting {
  const [path = '', format = 'combined', ...params] = args;
  const setting = previous ?? { off: false, targets: [] };
  if (path === 'off') {
    if (args.length > 1) ctx.fail(`invalid parameter "${args[1] ?? ''}"`);
    return { ...setting, off: true };
  }
  const syslog = isSyslogTarget(path) ? parseSyslogTarget(path, (message) => ctx.fail(message)) : undefined;
  let pathTemplate: Template | undefined;
  // ngx_conf_full_name() prefixes the source text; the variables are evaluated per request.
  const full = syslog !== undefined ? path : path.includes('$') && !isAbsolute(path) ? `${ctx.prefix.replace(/\/*$/, '/')}${path}` : prefixed(ctx, path);
  if (syslog === undefined && path.includes('$')) pathTemplate = parseValue(full, ctx);
  let buffer: number | undefined;
  let gzip: number | undefined;
  let flush: number | undefined;
  let condition: Template | undefined;
  for (const param of params) {
    if (param.startsWith('buffer=')) {
      buffer = parseSize(param.slice(7)) ?? 0;
      if (buffer === 0) ctx.fail(`invalid buffer size "${param.slice(7)}"`);
    } else if (param.startsWith('flush=')) {
      flush = parseTime(param.slice(6)) ?? 0;
      if (flush === 0) ctx.fail(`invalid flush time "${param.slice(6)}"`);
    } else if (param === 'gzip' || param.startsWith('gzip=')) {
      // ngx_http_log_set_log(): gzip alone is Z_BEST_SPEED, and brings a 64k buffer unless one is set.
      gzip = param === 'gzip' ? 1 : /^[0-9]+$/.test(param.slice(5)) ? Number(param.slice(5)) : 0;
      if (gzip < 1 || gzip > 9) ctx.fail(`invalid compression level "${param.slice(5)}"`);
    } else if (param.startsWith('if=')) {
      condition = parseValue(param.slice(3), ctx);
    } else {
      ctx.fail(`invalid parameter "${param}"`);
    }
  }
  if (gzip !== undefined) buffer ??= 64 * 1024;
  if (flush !== undefined && buffer === undefined) ctx.fail(`no buffer is defined for access_log "${path}"`);
  if (buffer !== undefined && pathTemplate !== undefined) ctx.fail('buffered logs cannot have variables in name');
  if (buffer !== undefined && syslog !== undefined) ctx.fail('logs to syslog cannot be buffered');
  const target: AccessLogTarget = { path: full, ...(syslog === undefined ? {} : { syslog }), pathTemplate, format, buffer, gzip, flush, condition, file: ctx.location.file, line: ctx.location.line };
  return { off: setting.off, targets: [...setting.targets, target] };
}

/** Parses `open_log_file_cache max=N [inactive=time] [min_uses=N] [valid=time] | off`, as ngx_http_log_open_file_cache() does. */
export function parseOpenLogFileCache(args: readonly string[], ctx: DirectiveContext): OpenLogFileCache | undefined {
  let max = 0;
  let inactiveMs = 10_000;
  let minUses = 1;
  let validMs = 60_000;
  let off = false;
  const count = (text: string): number | undefined => (/^[0-9]+$/.test(text) ? Number(text) : undefined);
  for (const arg of args) {
    let value: number | undefined;
    if (arg.startsWith('max=')) value = max = count(arg.slice(4)) ?? -1;
    else if (arg.startsWith('inactive=')) value = inactiveMs = parseTime(arg.slice(9), { seconds: true }) ?? -1;
    else if (arg.startsWith('min_uses=')) value = minUses = count(arg.slice(9)) ?? -1;
    else if (arg.startsWith('valid=')) value = validMs = parseTime(arg.slice(6), { seconds: true }) ?? -1;
    else if (arg === 'off') value = Number(off = true);
    if (value === undefined || value < 0) ctx.fail(`invalid "open_log_file_cache" parameter "${arg}"`);
  }
  if (off) return undefined;
  if (max === 0) ctx.fail('"open_log_file_cache" must have "max" parameter');
  return { max, inactiveMs, minUses, validMs };
}

/** The format an `access_log` names: `combined`, or a `log_format` (names compare caselessly, as nginx does). */
export function findLogFormat(formats: readonly LogFormat[], name: string): LogFormat | undefined {
  const lower = name.toLowerCase();
  if (lower === 'combined') return COMBINED_FORMAT;
  return formats.find((format) => format.name.toLowerCase() === lower);
}

/** One file has one buffer: every buffered `access_log` naming it must agree, as ngx_http_log_set_log() requires. */
export function checkBufferConflicts(targets: readonly AccessLogTarget[]): void {
  const first = new Map<string, AccessLogTarget>();
  for (const target of targets) {
    if (target.buffer === undefined) continue;
    const earlier = first.get(target.path);
    if (earlier === undefined) first.set(target.path, target);
    else if (earlier.buffer !== target.buffer || earlier.flush !== target.flush || earlier.gzip !== target.gzip) {
      throw new ConfigError(`access_log "${target.path}" already defined with conflicting parameters`, { file: target.file, line: target.line });
    }
  }
}

/** The log module's directives. */
export const httpLogModule: ConfModule = {
  name: 'ngx_http_log_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'log_format',
      contexts: ['http'],
      args: '2+',
      repeatable: true,
      syntax: 'name [escape=default|json|none] string ...;',
      summary: 'Names a line format for access_log: the strings are joined, variables are replaced, and their values escaped as \\xHH (default), for JSON, or not at all.',
      default: () => [],
      defaultText: 'log_format combined "...";',
      parse: parseLogFormat,
    }),
    defineDirective({
      kind: 'value',
      name: 'access_log',
      contexts: ['http', 'server', 'location', 'location_if', 'limit_except'],
      args: '1+',
      repeatable: true,
      syntax: 'path [format [buffer=size] [gzip[=level]] [flush=time] [if=condition]]; | off;',
      summary: 'Where a line is written for each request, in which format (combined by default), buffered or not, gzip-compressed (each flushed buffer one gzip member) or not, and only when the condition is neither empty nor 0. A path with variables is opened for each request (never buffered, no directory created, nothing written while the request\'s root directory does not exist). syslog:server=address[:port][,facility=][,severity=][,tag=][,nohostname] sends each line as one UDP datagram, never buffered.',
      default: (ctx) => ({
        off: false,
        targets: [{ path: prefixed(ctx, DEFAULT_ACCESS_LOG_PATH), pathTemplate: undefined, format: 'combined', buffer: undefined, gzip: undefined, flush: undefined, condition: undefined, file: '', line: 0 }],
      }),
      defaultText: `access_log ${DEFAULT_ACCESS_LOG_PATH} combined;`,
      parse: parseAccessLog,
    }),
    defineDirective({
      kind: 'value',
      name: 'open_log_file_cache',
      contexts: ['http', 'server', 'location'],
      args: [1, 2, 3, 4],
      syntax: 'max=N [inactive=time] [min_uses=N] [valid=time]; | off;',
      summary: 'Keeps up to max descriptors of access logs whose paths have variables open, the least recently used closed first, one unused for inactive (10s) closed, kept only once used min_uses (1) times within inactive, and its path checked again after valid (60s).',
      default: () => undefined,
      defaultText: 'open_log_file_cache off;',
      parse: parseOpenLogFileCache,
    }),
  ],
  check(main) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const formats = http.get('log_format');
    const templates: Template[] = formats.map((format) => format.template);
    for (const block of blocksOf(http)) {
      if (!block.isSet('access_log')) continue;
      for (const target of block.get('access_log').targets) {
        if (findLogFormat(formats, target.format) === undefined) {
          throw new ConfigError(`unknown log format "${target.format}"`, { file: target.file, line: target.line });
        }
        if (target.condition !== undefined) templates.push(target.condition);
        if (target.pathTemplate !== undefined) templates.push(target.pathTemplate);
      }
    }
    checkBufferConflicts([...blocksOf(http)].flatMap((block) => (block.isSet('access_log') ? block.get('access_log').targets : [])));
    checkVariables(http, templates);
  },
};
