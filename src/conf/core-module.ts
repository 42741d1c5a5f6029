/**
 * The main-context directives of nginx's `ngx_core_module`, `ngx_errlog_module` and
 * `ngx_conf_module` (`include`), and the `events` block of `ngx_events_module`.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { ErrorLogTarget } from '../core/log.js';
import { isLogLevel, parseNumber, parseTime, type LogLevel } from '../core/parse.js';
import { ALL_CONTEXTS, defineDirective, type ConfModule, type DirectiveContext } from './registry.js';

declare module './registry.js' {
  interface DirectiveValues {
    include: undefined;
    daemon: boolean;
    master_process: boolean;
    worker_processes: number;
    pid: string | undefined;
    error_log: readonly ErrorLogTarget[];
    worker_shutdown_timeout: number | undefined;
    events: undefined;
    worker_connections: number;
    multi_accept: boolean;
    accept_mutex: boolean;
  }
}

/** The pid file nginx builds in (`NGX_PID_PATH`), relative to the prefix. */
export const DEFAULT_PID_PATH = 'logs/hitless.pid';
/** The error log nginx builds in (`NGX_ERROR_LOG_PATH`), relative to the prefix. */
export const DEFAULT_ERROR_LOG_PATH = 'logs/error.log';

/** Resolves a path from the configuration against the prefix, as `ngx_conf_full_name()` does. */
export function prefixed(ctx: { prefix: string }, path: string): string {
  return isAbsolute(path) ? path : resolve(ctx.prefix, path);
}

/** Parses `error_log file [level]`, as `ngx_log_set_log()` and `ngx_log_set_levels()` do. */
export function parseErrorLog(args: readonly string[], ctx: DirectiveContext, previous: readonly ErrorLogTarget[] | undefined): readonly ErrorLogTarget[] {
  const [file = '', ...levels] = args;
  if (file.startsWith('syslog:') || file.startsWith('memory:')) {
    ctx.fail(`"${file.slice(0, file.indexOf(':'))}" error log is not supported by hitless`);
  }
  let level: LogLevel | undefined;
  for (const name of levels) {
    if (!isLogLevel(name)) ctx.fail(`invalid log level "${name}"`);
    if (level !== undefined) ctx.fail(`duplicate log level "${name}"`);
    level = name;
  }
  const target: ErrorLogTarget = { file: file === 'stderr' ? 'stderr' : prefixed(ctx, file), level: level ?? 'error' };
  return [...(previous ?? []), target];
}

/** The main-context and `events` directives. */
export const coreModule: ConfModule = {
  name: 'ngx_core_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'include',
      contexts: ALL_CONTEXTS,
      args: [1],
      syntax: 'file | mask;',
      summary: 'Reads another file, or every file matching a glob(3) mask, in place; relative paths resolve against the main file\'s directory.',
      repeatable: true,
      inherit: false,
      parse: () => undefined,
    }),
    defineDirective({
      kind: 'value',
      name: 'daemon',
      contexts: ['main'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether the master process detaches from the terminal and runs in the background.',
      default: () => true,
      defaultText: 'daemon on;',
      parse: (args) => args[0] === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'master_process',
      contexts: ['main'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether a master starts worker processes; off serves from a single process, for development.',
      default: () => true,
      defaultText: 'master_process on;',
      parse: (args) => args[0] === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_processes',
      contexts: ['main'],
      args: [1],
      syntax: 'number | auto;',
      summary: 'How many worker processes serve traffic; auto means one per available CPU core.',
      default: () => 1,
      defaultText: 'worker_processes 1;',
      parse: ([value = ''], ctx) => {
        if (value === 'auto') return availableParallelism();
        return parseNumber(value) ?? ctx.fail('"worker_processes" directive invalid value');
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'pid',
      contexts: ['main'],
      args: [1],
      syntax: 'file;',
      summary: 'The file the master writes its process ID to, which `-s` reads.',
      default: (ctx) => prefixed(ctx, DEFAULT_PID_PATH),
      defaultText: `pid ${DEFAULT_PID_PATH};`,
      parse: ([file = ''], ctx) => prefixed(ctx, file),
    }),
    defineDirective({
      kind: 'value',
      name: 'error_log',
      contexts: ['main', 'http', 'server', 'location', 'stream', 'stream_server'],
      args: '1+',
      syntax: 'file [level];',
      summary: 'Where errors are logged (a file or stderr) and the least severe level logged: debug, info, notice, warn, error, crit, alert or emerg.',
      repeatable: true,
      default: (ctx) => [{ file: prefixed(ctx, DEFAULT_ERROR_LOG_PATH), level: 'error' }],
      defaultText: `error_log ${DEFAULT_ERROR_LOG_PATH} error;`,
      parse: parseErrorLog,
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_shutdown_timeout',
      contexts: ['main'],
      args: [1],
      syntax: 'time;',
      summary: 'How long a gracefully stopping worker may keep open connections before it closes them and exits.',
      defaultText: '—',
      parse: ([value = ''], ctx) => parseTime(value) ?? ctx.fail('"worker_shutdown_timeout" directive invalid value'),
    }),
    defineDirective({
      kind: 'block',
      name: 'events',
      contexts: ['main'],
      args: [0],
      block: 'events',
      unique: true,
      syntax: '{ ... }',
      summary: 'The connection processing settings.',
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_connections',
      contexts: ['events'],
      args: [1],
      syntax: 'number;',
      summary: 'The most connections one worker holds open at once, client and upstream together.',
      default: () => 512,
      defaultText: 'worker_connections 512;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"worker_connections" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'multi_accept',
      contexts: ['events'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Accepted for compatibility; Node accepts every pending connection on each readiness event.',
      default: () => false,
      defaultText: 'multi_accept off;',
      parse: (args) => args[0] === 'on',
    }),
    defineDirective({
      kind: 'value',
      name: 'accept_mutex',
      contexts: ['events'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Accepted for compatibility; how workers share listening sockets is described in docs/process-model.md.',
      default: () => false,
      defaultText: 'accept_mutex off;',
      parse: (args) => args[0] === 'on',
    }),
  ],
  check(main) {
    // ngx_event_init_conf(): nginx refuses to start without an events block.
    if (main.blocks.every((block) => block.name !== 'events')) {
      throw new ConfigError('no "events" section in configuration', undefined);
    }
  },
};
