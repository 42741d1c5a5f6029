/**
 * nginx's `ngx_http_log_module`: `log_format` and `access_log`, with the predefined `combined`
 * format. Lines are written when a request ends (nginx's log phase).
 */
import { ConfigError } from '../core/errors.js';
import { parseSize, parseTime } from '../core/parse.js';
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

/** One `access_log path [format] [buffer=size] [flush=time] [if=condition]`. */
export interface AccessLogTarget {
  /** Absolute path. */
  readonly path: string;
  /** The format's name as written; `combined` when omitted. */
  readonly format: string;
  readonly buffer: number | undefined;
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

declare module '../conf/registry.js' {
  interface DirectiveValues {
    log_format: readonly LogFormat[];
    access_log: AccessLogSetting;
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
  if (path.startsWith('syslog:')) ctx.fail('"syslog" access log is not supported by hitless');
  if (path.includes('$')) ctx.fail('variables in the "access_log" path are not supported by hitless');
  let buffer: number | undefined;
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
      ctx.fail('the "gzip" parameter of "access_log" is not supported by hitless');
    } else if (param.startsWith('if=')) {
      condition = parseValue(param.slice(3), ctx);
    } else {
      ctx.fail(`invalid parameter "${param}"`);
    }
  }
  if (flush !== undefined && buffer === undefined) ctx.fail(`no buffer is defined for access_log "${path}"`);
  const target: AccessLogTarget = { path: prefixed(ctx, path), format, buffer, flush, condition, file: ctx.location.file, line: ctx.location.line };
  return { off: setting.off, targets: [...setting.targets, target] };
}

/** The format an `access_log` names: `combined`, or a `log_format` (names compare caselessly, as nginx does). */
export function findLogFormat(formats: readonly LogFormat[], name: string): LogFormat | undefined {
  const lower = name.toLowerCase();
  if (lower === 'combined') return COMBINED_FORMAT;
  return formats.find((format) => format.name.toLowerCase() === lower);
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
      syntax: 'path [format [buffer=size] [flush=time] [if=condition]]; | off;',
      summary: 'Where a line is written for each request, in which format (combined by default), buffered or not, and only when the condition is neither empty nor 0.',
      default: (ctx) => ({
        off: false,
        targets: [{ path: prefixed(ctx, DEFAULT_ACCESS_LOG_PATH), format: 'combined', buffer: undefined, flush: undefined, condition: undefined, file: '', line: 0 }],
      }),
      defaultText: `access_log ${DEFAULT_ACCESS_LOG_PATH} combined;`,
      parse: parseAccessLog,
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
      }
    }
    checkVariables(http, templates);
  },
};
