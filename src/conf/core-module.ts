/**
 * The main-context directives of nginx's `ngx_core_module`, `ngx_errlog_module` and
 * `ngx_conf_module` (`include`), and the `events` block of `ngx_events_module`.
 */
import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { ConfigError } from '../core/errors.js';
import type { ErrorLogTarget } from '../core/log.js';
import { isSyslogTarget, parseSyslogTarget } from '../core/syslog.js';
import { isLogLevel, parseNumber, parseTime, type LogLevel } from '../core/parse.js';
import { ALL_CONTEXTS, defineDirective, type ConfBlockView, type ConfModule, type DirectiveContext } from './registry.js';

import { existsSync } from 'node:fs';
import { platform } from 'node:os';
import { basename } from 'node:path';
import { parseSize } from '../core/parse.js';
import { findCommand, lookupGroup, lookupUser } from '../core/host-system.js';

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
    accept_mutex_delay: number;
    use: string | undefined;
    user: WorkerUser | undefined;
    worker_priority: number;
    worker_rlimit_nofile: number | undefined;
    worker_rlimit_core: number | undefined;
    worker_cpu_affinity: CpuAffinity | undefined;
    working_directory: string | undefined;
    env: readonly WorkerEnv[];
    pcre_jit: boolean;
    timer_resolution: number | undefined;
    lock_file: string;
    load_module: readonly string[];
  }
}

/** The `user` directive: whom worker processes run as when the master runs as root. */
export interface WorkerUser {
  readonly user: string;
  readonly uid: number;
  readonly group: string;
  readonly gid: number;
}

/** One `env` directive: a variable the workers keep (no value) or get set to `value`. */
export interface WorkerEnv {
  readonly name: string;
  readonly value?: string;
}

/**
 * `worker_cpu_affinity`: one list of CPU numbers per worker (the last one for every further
 * worker), or with `auto` the CPUs that workers are bound to one each, in turn.
 */
export interface CpuAffinity {
  readonly auto: boolean;
  readonly masks: readonly (readonly number[])[];
}

/**
 * The event method libuv uses on this system (deps/uv/src/unix: linux.c, kqueue.c, sunos.c) and
 * the ones an nginx built here has, which is what `use` may name: auto/os/* picks the system's
 * method, and auto/modules builds select and poll only when asked (--with-select_module), so
 * Debian's nginx refuses `use poll` as `invalid event type`.
 */
function eventMethods(): { own: string; nginx: ReadonlySet<string> } {
  switch (platform()) {
    case 'linux':
      return { own: 'epoll', nginx: new Set(['epoll']) };
    case 'sunos':
      return { own: 'eventport', nginx: new Set(['eventport', '/dev/poll']) };
    default:
      return { own: 'kqueue', nginx: new Set(['kqueue']) };
  }
}

/**
 * The dynamic modules nginx packages build whose code hitless has built in, by the module name of
 * the `.so` (`ngx_stream_module.so` is Debian's libnginx-mod-stream: stream and its modules).
 */
const BUILT_IN_DYNAMIC_MODULES = new Set(['ngx_stream_module']);

/** The CPU numbers set in a `worker_cpu_affinity` mask, `0101` being CPUs 0 and 2, as ngx_set_cpu_affinity() reads it. */
function parseCpuMask(mask: string, ctx: DirectiveContext): number[] {
  const cpus: number[] = [];
  let bit = 0;
  for (let i = mask.length - 1; i >= 0; i--) {
    const ch = mask[i];
    if (ch === ' ') continue;
    if (ch === '1') cpus.push(bit);
    else if (ch !== '0') ctx.fail(`invalid character "${ch ?? ''}" in "worker_cpu_affinity"`);
    bit++;
  }
  if (bit > 1024) ctx.fail('"worker_cpu_affinity" supports up to 1024 CPUs only');
  return cpus;
}

/** The [warn] for a setting that needs a util-linux command that is not installed. */
function needsCommand(ctx: DirectiveContext, command: string, call: string): void {
  if (findCommand(command) === undefined) ctx.noEffect(`Node has no ${call} call and the "${command}" command of util-linux is not installed`);
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
  if (file.startsWith('memory:')) ctx.fail('"memory" error log is not supported by hitless');
  const syslog = isSyslogTarget(file) ? parseSyslogTarget(file, (message) => ctx.fail(message)) : undefined;
  let level: LogLevel | undefined;
  for (const name of levels) {
    if (!isLogLevel(name)) ctx.fail(`invalid log level "${name}"`);
    if (level !== undefined) ctx.fail(`duplicate log level "${name}"`);
    level = name;
  }
  const target: ErrorLogTarget = syslog !== undefined
    ? { file, level: level ?? 'error', syslog }
    : { file: file === 'stderr' ? 'stderr' : prefixed(ctx, file), level: level ?? 'error' };
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
      summary: 'Where errors are logged (a file, stderr, or syslog:server=address[:port][,facility=][,severity=][,tag=][,nohostname] over UDP; not a unix socket, which Node\'s dgram cannot open) and the least severe level logged: debug, info, notice, warn, error, crit, alert or emerg. Several may be given on one level. Below main (http, server, location; stream, server) it takes the lines about the requests, or stream sessions, that level answers; a level without one writes to the enclosing level\'s.',
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
      summary: 'The most connections one worker holds open at once, client and upstream (proxy_pass, stream proxy_pass) alike; near the limit idle keep-alive connections are closed to make room, and at it a new connection is closed with the alert "N worker_connections are not enough".',
      default: () => 512,
      defaultText: 'worker_connections 512;',
      parse: ([value = ''], ctx) => {
        const n = parseNumber(value) ?? ctx.fail('"worker_connections" directive invalid number');
        // Counted by the worker's ConnectionBudget (core/connection-budget.ts), as nginx's connection array bounds it.
        return n;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'multi_accept',
      contexts: ['events'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether a worker accepts every pending connection at once; libuv always does, so only on is honoured.',
      default: () => false,
      defaultText: 'multi_accept off;',
      parse: (args, ctx) => {
        // uv__server_io() (deps/uv/src/unix/stream.c) calls accept() until EAGAIN: nginx's `on`.
        if (args[0] === 'off') ctx.noEffect('libuv accepts every pending connection on each event, as with "multi_accept on"');
        return args[0] === 'on';
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'accept_mutex',
      contexts: ['events'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Whether workers take turns accepting; hitless workers all wait on the shared socket, as with off (docs/process-model.md).',
      default: () => false,
      defaultText: 'accept_mutex off;',
      parse: (args, ctx) => {
        if (args[0] === 'on') ctx.noEffect('workers share each listening socket without a mutex, as with "accept_mutex off"');
        return args[0] === 'on';
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'accept_mutex_delay',
      contexts: ['events'],
      args: [1],
      syntax: 'time;',
      summary: 'How long a worker waits for the accept mutex; hitless has no accept mutex.',
      default: () => 500,
      defaultText: 'accept_mutex_delay 500ms;',
      parse: ([value = ''], ctx) => {
        const ms = parseTime(value) ?? ctx.fail('"accept_mutex_delay" directive invalid value');
        ctx.noEffect('hitless has no accept mutex: workers share each listening socket');
        return ms;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'use',
      contexts: ['events'],
      args: [1],
      syntax: 'method;',
      summary: 'The connection processing method: the one libuv uses (epoll on Linux), as nginx builds only that one.',
      defaultText: '—',
      parse: ([method = ''], ctx) => {
        // ngx_event_use(): a method that is not built in is "invalid event type".
        const { own, nginx } = eventMethods();
        if (!nginx.has(method)) ctx.fail(`invalid event type "${method}"`);
        if (method !== own) ctx.noEffect(`libuv uses ${own} on this system`);
        return method;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'user',
      contexts: ['main'],
      args: [1, 2],
      syntax: 'user [group];',
      summary: 'The user and group worker processes run as when the master runs as root; the master keeps root.',
      defaultText: '—',
      parse: ([user = '', group = user], ctx) => {
        // ngx_set_user(): only a master running as root can switch users.
        if (process.geteuid?.() !== 0) {
          ctx.warn('the "user" directive makes sense only if the master process runs with super-user privileges, ignored');
          return undefined;
        }
        const entry = lookupUser(user) ?? ctx.fail(`getpwnam("${user}") failed`);
        const gid = lookupGroup(group) ?? ctx.fail(`getgrnam("${group}") failed`);
        return { user, uid: entry.uid, group, gid };
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_priority',
      contexts: ['main'],
      args: [1],
      syntax: 'number;',
      summary: 'The scheduling priority (nice value, -20 to 20) of worker processes.',
      default: () => 0,
      defaultText: 'worker_priority 0;',
      parse: ([value = ''], ctx) => {
        // ngx_set_priority(): an optional sign, then digits.
        const sign = value.startsWith('-') ? -1 : 1;
        const n = parseNumber(/^[-+]/.test(value) ? value.slice(1) : value) ?? ctx.fail('"worker_priority" directive invalid number');
        return sign * n;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_rlimit_nofile',
      contexts: ['main'],
      args: [1],
      syntax: 'number;',
      summary: 'The most open files of a worker process (RLIMIT_NOFILE), set by the master with prlimit(1).',
      defaultText: '—',
      parse: ([value = ''], ctx) => {
        const n = parseNumber(value) ?? ctx.fail('"worker_rlimit_nofile" directive invalid number');
        needsCommand(ctx, 'prlimit', 'setrlimit()');
        return n;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_rlimit_core',
      contexts: ['main'],
      args: [1],
      syntax: 'size;',
      summary: 'The largest core file of a worker process (RLIMIT_CORE), set by the master with prlimit(1).',
      defaultText: '—',
      parse: ([value = ''], ctx) => {
        const n = parseSize(value) ?? ctx.fail('"worker_rlimit_core" directive invalid value');
        needsCommand(ctx, 'prlimit', 'setrlimit()');
        return n;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'worker_cpu_affinity',
      contexts: ['main'],
      args: '1+',
      syntax: 'cpumask ... | auto [cpumask];',
      summary: 'Binds worker processes to CPUs, one mask per worker or auto; set by the master with taskset(1).',
      defaultText: '—',
      parse: (args, ctx) => {
        const auto = args[0] === 'auto';
        if (auto && args.length > 2) ctx.fail('invalid number of arguments in "worker_cpu_affinity" directive');
        const masks = (auto ? args.slice(1) : args).map((mask) => parseCpuMask(mask, ctx));
        if (auto && masks.length === 0) masks.push(Array.from({ length: availableParallelism() }, (_, cpu) => cpu));
        needsCommand(ctx, 'taskset', 'sched_setaffinity()');
        return { auto, masks };
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'working_directory',
      contexts: ['main'],
      args: [1],
      syntax: 'directory;',
      summary: 'The current directory of worker processes (where a core file is written).',
      defaultText: '—',
      parse: ([dir = ''], ctx) => prefixed(ctx, dir),
    }),
    defineDirective({
      kind: 'value',
      name: 'env',
      contexts: ['main'],
      args: [1],
      syntax: 'variable[=value];',
      summary: 'A variable worker processes keep from the master\'s environment, or get set; they lose every other but TZ.',
      repeatable: true,
      default: () => [],
      defaultText: 'env TZ;',
      parse: ([text = ''], _ctx, previous) => {
        // ngx_set_env(): the name is everything before the first `=`.
        const at = text.indexOf('=');
        const entry: WorkerEnv = at === -1 ? { name: text } : { name: text.slice(0, at), value: text.slice(at + 1) };
        return [...(previous ?? []), entry];
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'pcre_jit',
      contexts: ['main'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'PCRE\'s just-in-time compilation; hitless does not use PCRE.',
      default: () => false,
      defaultText: 'pcre_jit off;',
      parse: (args, ctx) => {
        ctx.noEffect('regular expressions are not compiled by PCRE, whose JIT this switches');
        return args[0] === 'on';
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'timer_resolution',
      contexts: ['main'],
      args: [1],
      syntax: 'interval;',
      summary: 'How often nginx reads the clock; libuv reads it once per event loop iteration.',
      defaultText: '—',
      parse: ([value = ''], ctx) => {
        const ms = parseTime(value) ?? ctx.fail('"timer_resolution" directive invalid value');
        ctx.noEffect('libuv caches the time once per event loop iteration, as nginx does without it');
        return ms;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'lock_file',
      contexts: ['main'],
      args: [1],
      syntax: 'file;',
      summary: 'The prefix of the files nginx locks for the accept mutex and shared memory; hitless locks none.',
      default: (ctx) => prefixed(ctx, 'logs/hitless.lock'),
      defaultText: 'lock_file logs/hitless.lock;',
      parse: ([file = ''], ctx) => {
        ctx.noEffect('there is no accept mutex, and shared zones live in the master process');
        return prefixed(ctx, file);
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'load_module',
      contexts: ['main'],
      args: [1],
      syntax: 'file;',
      summary: 'Loads a dynamic module: one hitless has built in (ngx_stream_module) is accepted; an nginx module hitless lacks is skipped with a [warn] (its directives stay unknown); a missing file is an error.',
      repeatable: true,
      default: () => [],
      defaultText: '—',
      parse: ([file = ''], ctx, previous) => {
        const path = prefixed(ctx, file);
        const module = basename(path).replace(/\.so$/, '');
        if (BUILT_IN_DYNAMIC_MODULES.has(module)) return [...(previous ?? []), module];
        // ngx_load_module(): `dlopen() "path" failed (dlerror())`, in dlerror()'s words, where nginx would fail too.
        if (!existsSync(path)) ctx.fail(`dlopen() "${path}" failed (${path}: cannot open shared object file: No such file or directory)`);
        // A real nginx module that hitless cannot run (Debian's nginx-light pulls in the echo module
        // and enables it in modules-enabled/). Refusing the file would refuse the stock
        // configuration; loading nothing is said here, and every directive of that module stays an
        // `unknown directive` error, so nothing of it is silently accepted.
        ctx.warn(`module "${module}" is not built into hitless and is not loaded: its directives are unknown directives`);
        return previous ?? [];
      },
    }),
  ],
  check(main) {
    // ngx_event_init_conf(): nginx refuses to start without an events block.
    if (main.blocks.every((block) => block.name !== 'events')) {
      throw new ConfigError('no "events" section in configuration', undefined);
    }
  },
};

/** The `error_log` of the nearest level from `block` out to http or stream that sets one; undefined when none does. */
export function ownErrorLog(block: ConfBlockView): readonly ErrorLogTarget[] | undefined {
  for (let level: ConfBlockView | undefined = block; level !== undefined && level.context !== 'main'; level = level.parent) {
    if (level.isSet('error_log')) return level.get('error_log');
  }
  return undefined;
}
