/**
 * Starting a master, as nginx's main() does (src/core/nginx.c): read and validate the
 * configuration, open the listening sockets and the error log in the foreground, where a failure
 * is reported on the terminal, then either detach into the background (`daemon on`) or run the
 * master cycle here.
 */
import { closeSync, openSync } from 'node:fs';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import type { ErrorLogTarget } from '../core/log.js';
import type { HitlessConfig } from '../conf/model.js';
import { ErrorLog } from '../core/log.js';
import type { LogLevel } from '../core/parse.js';
import type { ListenSpec } from '../http/listen.js';
import { loadGeneration, openErrorLog, type Generation } from './generation.js';
import { spawnMasterWithSockets, takeInheritedSockets } from './inherited-sockets.js';
import { isMasterUp } from './ipc.js';
import { ListenError, ListeningSockets } from './listening-sockets.js';
import { MasterProcess } from './master-process.js';
import { DEFAULT_WORKER_MODULE } from './worker-process.js';
import { configWarnings } from './worker-settings.js';

/** Options of {@link runMaster}. */
export interface MasterOptions {
  /** The main configuration file, absolute or relative to `prefix` (`-c`). */
  readonly configFile: string;
  /** The prefix (`-p`). */
  readonly prefix: string;
  /** Directives given with `-g`. */
  readonly params?: string;
  /** The error log before the configuration is read, and when it sets none (`-e`): a path or `stderr`. Default: stderr. */
  readonly errorLogPath?: string;
  /** How long a draining worker gives an idle keep-alive connection to send one more request. Default: 1000 ms. */
  readonly drainGraceMs?: number;
  /** The module forked for each worker. Default: hitless's own worker, which serves http and stream (`HttpAndStreamRuntime`). */
  readonly workerModule?: string;
  /** Lists the sockets a configuration listens on. Default: those of the `http` and `stream` blocks (process/http-and-stream-runtime.ts). */
  readonly collectListens?: (config: HitlessConfig) => ListenSpec[];
}

/** The default of {@link MasterOptions.drainGraceMs}. */
export const DEFAULT_DRAIN_GRACE_MS = 1_000;

/**
 * Runs a master process until it exits and returns the exit status: 0 after a shutdown, or once a
 * daemonized master is up (in the foreground process that started it); 1 when it cannot start.
 */
export async function runMaster(options: MasterOptions): Promise<number> {
  const inherited = takeInheritedSockets();
  const startup = openStartupLog(options.errorLogPath);
  // The echo to the terminal is best effort, as nginx's ngx_write_console() is: a closed or
  // read-only fd 2 (nginx-tests' try_run() closes STDERR) must not end the master with EBADF.
  process.stderr.on('error', () => undefined);
  // nginx also echoes start-up failures to the terminal when its log is a file (ngx_use_stderr).
  const fail = (level: LogLevel, message: string): number => {
    startup.log.write(level, message);
    if (!startup.isStderr && inherited === undefined) process.stderr.write(`hitless: [${level}] ${message}\n`);
    startup.log.close();
    return 1;
  };

  let generation: Generation;
  try {
    generation = loadGeneration(options, 1);
  } catch (err) {
    if (err instanceof ConfigError) return fail(err.level, err.message);
    throw err;
  }
  // nginx logs a configuration's [warn] lines while it reads it, and echoes them to the terminal
  // (ngx_use_stderr); the daemon's parent logged them already.
  if (inherited?.via !== 'daemon') {
    const parsed = new Set(generation.config.warnings.map((warning) => warning.message));
    for (const warning of configWarnings(generation.config)) {
      startup.log.warn(warning);
      // Only the lines of the file itself are echoed, as nginx echoes what it says while parsing.
      if (!startup.isStderr && inherited === undefined && parsed.has(warning)) process.stderr.write(`hitless: [warn] ${warning}\n`);
    }
    // load_module of a module hitless has built in (core-module.ts): accepted, and said so.
    for (const module of generation.config.main.get('load_module')) startup.log.notice(`module "${module}" is built into hitless, load_module needs to load nothing`);
  }

  const sockets = new ListeningSockets(startup.log);
  let log: ErrorLog;
  try {
    for (const socket of inherited?.sockets ?? []) sockets.adopt(socket.key, socket.fd);
    sockets.open(generation.listens);
    const wanted = new Set(generation.listens.map((spec) => spec.key));
    for (const key of sockets.keys()) if (!wanted.has(key)) sockets.close(key, { keepUnixFile: true });
    log = openErrorLog(generation.errorLog);
  } catch (err) {
    sockets.closeAll({ keepUnixFile: inherited !== undefined });
    if (err instanceof ListenError || err instanceof ConfigError) return fail('emerg', err.message);
    throw err;
  }
  sockets.useLog(log);

  if (inherited === undefined && generation.config.main.get('daemon')) {
    const status = await daemonize(sockets, generation.errorLog, log);
    startup.log.close();
    log.close();
    return status;
  }
  startup.log.close();
  const master = new MasterProcess({
    source: options,
    generation,
    sockets,
    log,
    inherited,
    // nginx counts an inheriting master as daemonized too (nginx.c: `if (ngx_inherited) ngx_daemonized = 1`).
    daemonized: inherited !== undefined,
    workerModule: options.workerModule ?? DEFAULT_WORKER_MODULE,
    drainGraceMs: options.drainGraceMs ?? DEFAULT_DRAIN_GRACE_MS,
  });
  return master.run();
}

function openStartupLog(path: string | undefined): { log: ErrorLog; isStderr: boolean } {
  if (path === undefined || path === 'stderr') return { log: ErrorLog.stderr(), isStderr: true };
  try {
    return { log: new ErrorLog([{ file: path, level: 'notice' }]), isStderr: false };
  } catch (err) {
    const log = ErrorLog.stderr();
    log.alert(`could not open error log file: ${formatSyscallError('open', path, err)}`);
    return { log, isStderr: true };
  }
}

/**
 * `ngx_daemon()`: Node cannot fork(), so the foreground process starts itself again, detached
 * (setsid), hands it the listening sockets it opened, and exits 0 once the new master reports that
 * its workers are ready. The daemon's stderr is the error log file (`ngx_log_redirect_stderr()`).
 */
async function daemonize(sockets: ListeningSockets, errorLog: readonly ErrorLogTarget[], log: ErrorLog): Promise<number> {
  // ngx_log_redirect_stderr(): the first log that is a file; a syslog target has none.
  const logFile = errorLog.find((target) => target.syslog === undefined)?.file;
  const stderrFd = logFile === undefined || logFile === 'stderr' ? undefined : openSync(logFile, 'a');
  const child = spawnMasterWithSockets({
    via: 'daemon',
    sockets: sockets.descriptors(),
    detached: true,
    stdio: ['ignore', 'ignore', stderrFd ?? 'inherit'],
    ipc: true,
  });
  if (stderrFd !== undefined) closeSync(stderrFd);
  const status = await new Promise<number>((resolve) => {
    child.on('message', (message: unknown) => {
      if (isMasterUp(message)) resolve(0);
    });
    child.once('exit', (code) => resolve(code === 0 || code === null ? 1 : code));
    child.once('error', (err) => {
      log.emerg(`spawn() of the daemon failed: ${err.message}`);
      resolve(1);
    });
  });
  child.removeAllListeners();
  child.on('error', () => undefined);
  if (child.connected) child.disconnect();
  child.unref();
  // The daemon holds its own copies now; a UNIX-domain socket's file is the daemon's to remove.
  sockets.closeAll({ keepUnixFile: true });
  return status;
}

