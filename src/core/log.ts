/**
 * The error log, in nginx's line format:
 * `2026/11/21 05:11:57 [notice] 1234#0: worker process 1240 exited with code 0`.
 * Writes are synchronous appends, as nginx's are: an error line must reach the file even when the
 * process dies right after writing it.
 */
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { LOG_LEVELS, type LogLevel } from './parse.js';
import { SyslogSender, type SyslogServer } from './syslog.js';

/** Where an `error_log` writes, and from which level on. */
export interface ErrorLogTarget {
  /** An absolute path, `stderr`, or the `syslog:...` text of a syslog target. */
  readonly file: string;
  readonly level: LogLevel;
  /** Set for `syslog:server=...`: where the lines go instead of a file. */
  readonly syslog?: SyslogServer;
}

/** True when a target writes to a file of its own (not standard error, not syslog). */
export function isLogFile(target: ErrorLogTarget): boolean {
  return target.file !== 'stderr' && target.syslog === undefined;
}

const SEVERITY: Readonly<Record<LogLevel, number>> = Object.fromEntries(LOG_LEVELS.map((level, i) => [level, i])) as Record<LogLevel, number>;

/** Formats a timestamp as nginx's error log does: `2026/11/21 05:11:57`, local time. */
export function formatErrorLogTime(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  return `${date.getFullYear()}/${pad(date.getMonth() + 1)}/${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

interface OpenTarget {
  readonly target: ErrorLogTarget;
  /** -1 for a syslog target. */
  fd: number;
  readonly syslog: SyslogSender | undefined;
}

/** An error log writing to one or more targets, each with its own least severe level. */
export class ErrorLog {
  #targets: OpenTarget[] = [];

  /** Opens every target; a file that cannot be opened throws, as nginx refuses to start then. */
  constructor(targets: readonly ErrorLogTarget[]) {
    this.#targets = targets.map((target) => ({
      target,
      fd: target.syslog === undefined ? openTarget(target) : -1,
      syslog: target.syslog === undefined ? undefined : new SyslogSender(target.syslog),
    }));
  }

  /** A log that writes to standard error from `level` on (before any configuration is read). */
  static stderr(level: LogLevel = 'notice'): ErrorLog {
    return new ErrorLog([{ file: 'stderr', level }]);
  }

  /** Writes one line to every target whose level admits `level`. `connection` adds nginx's `*N`. */
  write(level: LogLevel, message: string, connection?: number): void {
    const severity = SEVERITY[level];
    const line = `${formatErrorLogTime(new Date())} [${level}] ${process.pid}#0: ${connection === undefined ? '' : `*${connection} `}${message}\n`;
    for (const open of this.#targets) {
      if (severity > SEVERITY[open.target.level]) continue;
      if (open.syslog !== undefined) {
        // ngx_syslog_writer(): the whole line without its newline, at the line's own severity.
        open.syslog.sendErrorLine(line.slice(0, -1), severity);
        continue;
      }
      try {
        writeSync(open.fd, line);
      } catch {
        // A full disk or a closed stderr must not take the server down; nginx ignores it too.
      }
    }
  }

  emerg(message: string): void { this.write('emerg', message); }
  alert(message: string): void { this.write('alert', message); }
  crit(message: string): void { this.write('crit', message); }
  error(message: string, connection?: number): void { this.write('error', message, connection); }
  warn(message: string, connection?: number): void { this.write('warn', message, connection); }
  notice(message: string): void { this.write('notice', message); }
  info(message: string, connection?: number): void { this.write('info', message, connection); }
  debug(message: string, connection?: number): void { this.write('debug', message, connection); }

  /** True when some target would write a line of this level (to skip building costly messages). */
  enabled(level: LogLevel): boolean {
    return this.#targets.some((open) => SEVERITY[level] <= SEVERITY[open.target.level]);
  }

  /** Reopens every file target (SIGUSR1), so that rotated logs are written anew. */
  reopen(): void {
    for (const open of this.#targets) {
      if (!isLogFile(open.target)) continue;
      const fd = openTarget(open.target);
      const old = open.fd;
      open.fd = fd;
      closeSync(old);
    }
  }

  /** Closes every file target. */
  close(): void {
    for (const open of this.#targets) {
      if (open.syslog !== undefined) open.syslog.close();
      else if (open.target.file !== 'stderr') closeSync(open.fd);
    }
    this.#targets = [];
  }
}

/**
 * The error logs of the levels below main that set `error_log` (http, server, location; stream,
 * server), one per level; a level without one writes to the enclosing level's, and the outermost
 * to the process's log (ngx_http_core_merge_loc_conf() inherits `error_log` the same way).
 */
export class LevelErrorLogs {
  readonly #main: ErrorLog;
  readonly #logs = new Map<readonly ErrorLogTarget[], ErrorLog>();

  /** `main` is the process's log, written to where no level sets its own. */
  constructor(main: ErrorLog) {
    this.#main = main;
  }

  /** The log of one level: `targets` as set there (undefined when none is), opened once per distinct list. */
  of(targets: readonly ErrorLogTarget[] | undefined): ErrorLog {
    if (targets === undefined) return this.#main;
    let log = this.#logs.get(targets);
    if (log === undefined) {
      log = new ErrorLog(targets);
      this.#logs.set(targets, log);
    }
    return log;
  }

  /** Reopens every level's files (SIGUSR1). */
  reopen(): void {
    for (const log of this.#logs.values()) log.reopen();
  }

  /** Closes every level's files. */
  close(): void {
    for (const log of this.#logs.values()) log.close();
    this.#logs.clear();
  }
}

function openTarget(target: ErrorLogTarget): number {
  if (target.file === 'stderr') return 2;
  mkdirSync(dirname(target.file), { recursive: true });
  return openSync(target.file, 'a', 0o644);
}
