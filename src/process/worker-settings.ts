/**
 * The process settings of a worker that nginx's `ngx_worker_process_init()`
 * (src/os/unix/ngx_process_cycle.c) applies before a worker serves: its environment (`env`), its
 * directory (`working_directory`), priority, resource limits and CPUs, and the user it runs as.
 * Node has calls for the environment, the directory, the priority and the user; for the limits
 * and the CPUs it has none, so the master applies them to the worker's pid with util-linux's
 * `prlimit` and `taskset`, and `-t` warns where those are missing (core-module.ts).
 */
import { execFileSync } from 'node:child_process';
import { chownSync, closeSync, openSync, statSync } from 'node:fs';
import { setPriority } from 'node:os';
import { formatSyscallError } from '../core/errors.js';
import { isLogFile, type ErrorLog } from '../core/log.js';
import type { ConfBlock, HitlessConfig } from '../conf/model.js';
import type { DirectiveValues } from '../conf/registry.js';

// Named through the registry, not core-module.ts, which is moving from src/core to src/process.
type WorkerUser = NonNullable<DirectiveValues['user']>;
type CpuAffinity = NonNullable<DirectiveValues['worker_cpu_affinity']>;
type ErrorLogTarget = DirectiveValues['error_log'][number];

/**
 * Variables a worker keeps besides `TZ` and those `env` names: Node's own (NODE_OPTIONS,
 * NODE_EXTRA_CA_CERTS...) and libuv's (UV_THREADPOOL_SIZE), so that a worker runs the same Node as
 * its master. nginx has no runtime of its own to configure this way.
 */
const RUNTIME_VARIABLE = /^(NODE_|UV_)/;

/**
 * The environment of a worker, as `ngx_set_environment()` builds it: TZ, every `env VAR` the
 * master has, every `env VAR=value`, and nothing else (but Node's and libuv's variables).
 */
export function workerEnvironment(config: HitlessConfig, parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(parent)) if (RUNTIME_VARIABLE.test(name)) env[name] = value;
  const entries = config.main.get('env');
  // nginx adds `env TZ` unless the configuration names TZ itself.
  if (parent.TZ !== undefined && !entries.some((entry) => entry.name === 'TZ')) env.TZ = parent.TZ;
  for (const entry of entries) {
    if (entry.value !== undefined) env[entry.name] = entry.value;
    else if (parent[entry.name] !== undefined) env[entry.name] = parent[entry.name];
  }
  return env;
}

/**
 * The CPUs worker number `slot` is bound to, as `ngx_get_cpu_affinity()` picks them: with `auto`,
 * the slot-th CPU of the mask (round robin); else the slot-th mask, or the last one.
 */
export function cpusOfWorker(affinity: CpuAffinity, slot: number): readonly number[] {
  const last = affinity.masks[affinity.masks.length - 1] ?? [];
  if (!affinity.auto) return affinity.masks[slot] ?? last;
  if (last.length === 0) return [];
  return [last[slot % last.length] ?? 0];
}

/**
 * Applies `worker_priority`, `worker_rlimit_nofile`, `worker_rlimit_core` and
 * `worker_cpu_affinity` to a worker that has just been forked. A failure is logged at [alert] in
 * nginx's words and the worker serves on, as nginx's does.
 */
export function applyWorkerSettings(pid: number, slot: number, config: HitlessConfig, log: ErrorLog): void {
  const main = config.main;
  const priority = main.get('worker_priority');
  if (priority !== 0) {
    try {
      setPriority(pid, priority);
    } catch (err) {
      log.alert(formatSyscallError('setpriority', undefined, systemError(err)).replace('setpriority()', `setpriority(${priority})`));
    }
  }
  const nofile = main.get('worker_rlimit_nofile');
  if (nofile !== undefined) runUtility(log, `setrlimit(RLIMIT_NOFILE, ${nofile})`, 'prlimit', ['--pid', String(pid), `--nofile=${nofile}:${nofile}`]);
  const core = main.get('worker_rlimit_core');
  if (core !== undefined) runUtility(log, `setrlimit(RLIMIT_CORE, ${core})`, 'prlimit', ['--pid', String(pid), `--core=${core}:${core}`]);
  const affinity = main.get('worker_cpu_affinity');
  if (affinity !== undefined) {
    const cpus = cpusOfWorker(affinity, slot);
    if (cpus.length > 0) runUtility(log, 'sched_setaffinity()', 'taskset', ['--cpu-list', '--pid', cpus.join(','), String(pid)]);
  }
}

/** Runs a util-linux command to its end; its failure is `call failed (its stderr)` at [alert]. */
function runUtility(log: ErrorLog, call: string, command: string, args: readonly string[]): void {
  try {
    execFileSync(command, args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 5_000 });
  } catch (err) {
    const stderr = (err as { stderr?: Buffer }).stderr?.toString().trim();
    log.alert(`${call} failed (${stderr !== undefined && stderr !== '' ? stderr : err instanceof Error ? err.message : String(err)})`);
  }
}

/** os.setPriority() throws a SystemError whose errno and code are in `info`. */
function systemError(err: unknown): unknown {
  const info = (err as { info?: { errno?: number; code?: string; message?: string } }).info;
  if (info === undefined) return err;
  return Object.assign(new Error(info.message ?? String(err)), { errno: info.errno, code: info.code });
}

/**
 * Switches this worker to the `user` directive's user and group, after it has read everything
 * the configuration names (certificates, keys) and opened its logs as root, and before it serves,
 * as `ngx_worker_process_init()` does: setgid(), initgroups(), setuid(). Nothing to do without the
 * directive or when not root (the directive was then ignored with a [warn]).
 */
export function dropWorkerPrivileges(user: WorkerUser | undefined): void {
  if (user === undefined || process.geteuid?.() !== 0) return;
  // Each throws on failure; the worker then exits with the fatal code, as nginx's does.
  process.setgid?.(user.gid);
  // initgroups(3) gives the user's supplementary groups, as nginx does; @types/node omits it.
  const { initgroups } = process as { initgroups?: (user: string, extraGroup: number) => void };
  if (initgroups !== undefined) initgroups(user.user, user.gid);
  else process.setgroups?.([user.gid]);
  process.setuid?.(user.uid);
}

/**
 * Before workers reopen their logs (USR1), creates each file and gives it to the workers' user,
 * as `ngx_reopen_files()` chowns what it reopens, so that a worker that is no longer root can
 * open a file that log rotation has just moved away. Failures are logged at [emerg], as nginx's.
 */
export function prepareFilesForWorkers(files: Iterable<string>, user: WorkerUser | undefined, log: ErrorLog): void {
  if (user === undefined || process.geteuid?.() !== 0) return;
  for (const file of files) {
    try {
      closeSync(openSync(file, 'a', 0o644));
    } catch (err) {
      log.emerg(formatSyscallError('open', file, err));
      continue;
    }
    try {
      chownSync(file, user.uid, -1);
    } catch (err) {
      log.emerg(formatSyscallError('chown', file, err));
    }
  }
}

/**
 * The warnings a master logs when it loads a configuration: those the directives recorded, and,
 * as root without a `user` directive, that workers keep root. nginx would run them as `nobody`
 * (ngx_core_module_init_conf(), NGX_USER); hitless keeps the master's user so that a
 * configuration that works today keeps reading the files it reads, and says so instead.
 */
export function configWarnings(config: HitlessConfig): string[] {
  const warnings = config.warnings.map((warning) => warning.message);
  if (process.geteuid?.() === 0 && !config.main.isSet('user')) {
    warnings.push('no "user" directive: worker processes run as root, as the master does (nginx would run them as "nobody")');
  }
  return warnings;
}

/** nginx's `chdir("dir") failed (2: No such file or directory)` when `dir` is no directory a worker can enter, else undefined. */
export function workingDirectoryProblem(dir: string): string | undefined {
  try {
    if (statSync(dir).isDirectory()) return undefined;
    return formatSyscallError('chdir', undefined, Object.assign(new Error('Not a directory'), { errno: 20, code: 'ENOTDIR' })).replace('chdir()', `chdir("${dir}")`);
  } catch (err) {
    return formatSyscallError('chdir', undefined, err).replace('chdir()', `chdir("${dir}")`);
  }
}

/** Every log file a worker writes and reopens: the error logs and the access logs whose path has no variable. */
export function logFilesOf(config: HitlessConfig, errorLog: readonly ErrorLogTarget[]): Set<string> {
  const files = new Set<string>();
  for (const target of errorLog) if (isLogFile(target)) files.add(target.file);
  const visit = (block: ConfBlock): void => {
    // The merged values, defaults included (logs/access.log in every http server); a block where a
    // directive is not allowed has none.
    for (const target of (block.get('error_log') as readonly ErrorLogTarget[] | undefined) ?? []) if (isLogFile(target)) files.add(target.file);
    // access_log is the http and the stream log module's; both keep `targets` with a `path`.
    const access = block.get('access_log') as { targets?: readonly { path?: unknown; syslog?: unknown }[] } | undefined;
    for (const target of access?.targets ?? []) if (typeof target.path === 'string' && !target.path.includes('$') && target.syslog === undefined) files.add(target.path);
    for (const child of block.blocks) visit(child);
  };
  visit(config.main);
  return files;
}
