/**
 * A configuration generation: one validated configuration and everything the master derives from
 * it before any process changes, as nginx's `ngx_init_cycle()` builds a whole new cycle and only
 * then switches to it. If building fails, the running generation is untouched.
 */
import type { ErrorLogTarget } from '../core/log.js';
import { ConfigError, formatSyscallError } from '../core/errors.js';
import { ErrorLog, isLogFile } from '../core/log.js';
import { loadConfig } from '../conf/loader.js';
import type { HitlessConfig } from '../conf/model.js';
import { createRegistry } from '../modules.js';
import type { ListenSpec } from '../http/listen.js';
import { collectListens as collectAllListens } from './listens.js';
import type { ConfigSnapshot } from './ipc.js';

/** What the master was started with; a reload reads the same file with the same options. */
export interface GenerationSource {
  /** The main configuration file, absolute or relative to `prefix`. */
  readonly configFile: string;
  /** The prefix (`-p`). */
  readonly prefix: string;
  /** Directives given with `-g`. */
  readonly params?: string;
  /** The `-e` path (or `stderr`), used when the configuration sets no `error_log`. */
  readonly errorLogPath?: string;
  /** Lists the sockets a configuration listens on. Default: the `listen`s of the `http` and `stream` blocks. */
  readonly collectListens?: (config: HitlessConfig) => ListenSpec[];
}

/** One validated configuration and what the master derives from it. */
export interface Generation {
  /** 1 for the configuration the master started with, then one more per successful reload. */
  readonly number: number;
  readonly config: HitlessConfig;
  readonly listens: readonly ListenSpec[];
  readonly errorLog: readonly ErrorLogTarget[];
  readonly pidPath: string;
  readonly workerCount: number;
  /** What workers rebuild the configuration from. */
  readonly snapshot: ConfigSnapshot;
}

/** Reads and validates the configuration from disk; throws the {@link ConfigError} nginx would report. */
export function loadGeneration(source: GenerationSource, number: number): Generation {
  const config = loadConfig({
    file: source.configFile,
    prefix: source.prefix,
    registry: createRegistry(),
    ...(source.params === undefined ? {} : { params: source.params }),
  });
  const main = config.main;
  // `-e` replaces only the built-in default (NGX_ERROR_LOG_PATH); an error_log directive wins.
  const errorLog: readonly ErrorLogTarget[] = main.isSet('error_log') || source.errorLogPath === undefined
    ? main.get('error_log')
    : [{ file: source.errorLogPath, level: 'error' }];
  return {
    number,
    config,
    listens: (source.collectListens ?? collectAllListens)(config),
    errorLog,
    pidPath: main.get('pid') ?? '',
    workerCount: Math.max(1, main.get('worker_processes')),
    snapshot: {
      file: config.file,
      prefix: config.prefix,
      ...(source.params === undefined ? {} : { params: source.params }),
      files: config.files.map((file) => ({ path: file.path, text: file.text })),
      dataFiles: config.dataFiles,
    },
  };
}

/** Opens a generation's error log; a file that cannot be opened is a {@link ConfigError}, as in nginx. */
export function openErrorLog(targets: readonly ErrorLogTarget[]): ErrorLog {
  try {
    return new ErrorLog(targets);
  } catch (err) {
    const path = targets.find(isLogFile)?.file;
    throw new ConfigError(formatSyscallError('open', path, err), undefined, { cause: err });
  }
}
