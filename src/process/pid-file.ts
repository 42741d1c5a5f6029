/**
 * The pid file, as nginx keeps it (src/core/ngx_cycle.c `ngx_create_pidfile()`,
 * `ngx_delete_pidfile()`): the master's pid and a newline, written once the master is up, removed
 * when it exits, renamed to `<pid>.oldbin` while a new binary runs beside it.
 */
import { mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { HitlessError, formatSyscallError } from '../core/errors.js';

/** A pid file that cannot be read, written or renamed, or that holds no valid pid. */
export class PidFileError extends HitlessError {
  /** The level nginx logs this failure at. */
  readonly level: 'emerg' | 'alert' | 'error';

  constructor(message: string, level: 'emerg' | 'alert' | 'error', options?: ErrorOptions) {
    super('HITLESS_ERR_SIGNAL', message, options);
    this.level = level;
  }
}

/** The name nginx gives the old master's pid file during a binary upgrade (`NGX_OLDPID_EXT`). */
export function oldBinaryPidPath(pidPath: string): string {
  return `${pidPath}.oldbin`;
}

/**
 * Writes `pid\n`, creating the directory if needed; throws {@link PidFileError} at [emerg]. Unlike
 * nginx's truncate-then-write, the file is renamed into place, so `-s reload` or a script reading
 * it at that moment never sees it empty.
 */
export function writePidFile(pidPath: string, pid: number = process.pid): void {
  const staged = `${pidPath}.${pid}.tmp`;
  try {
    try {
      writeFileSync(staged, `${pid}\n`, { mode: 0o644 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      mkdirSync(dirname(pidPath), { recursive: true });
      writeFileSync(staged, `${pid}\n`, { mode: 0o644 });
    }
    renameSync(staged, pidPath);
  } catch (err) {
    try {
      rmSync(staged, { force: true });
    } catch {
      // Nothing was staged: the directory itself is unusable, as the error below says.
    }
    throw new PidFileError(formatSyscallError('open', pidPath, err), 'emerg', { cause: err });
  }
}

/** Removes a pid file; returns the nginx-worded failure, or undefined when it is gone. */
export function removePidFile(pidPath: string): string | undefined {
  try {
    rmSync(pidPath);
    return undefined;
  } catch (err) {
    return formatSyscallError('unlink', pidPath, err);
  }
}

/**
 * Renames a pid file (`<pid>` to `<pid>.oldbin` and back). Returns undefined, or the errno part
 * nginx appends to the line that names the failed rename: `(2: No such file or directory)`.
 */
export function renamePidFile(from: string, to: string): string | undefined {
  try {
    renameSync(from, to);
    return undefined;
  } catch (err) {
    return formatSyscallError('rename', undefined, err).slice('rename() failed '.length);
  }
}

/**
 * Reads the pid a master wrote, as `ngx_signal_process()` does: trailing CR and LF are ignored, and
 * anything but a positive decimal integer is `invalid PID number "x" in "/path"`.
 */
export function readPidFile(pidPath: string): number {
  let text: string;
  try {
    text = readFileSync(pidPath, 'latin1');
  } catch (err) {
    throw new PidFileError(formatSyscallError('open', pidPath, err), 'error', { cause: err });
  }
  const trimmed = text.replace(/[\r\n]+$/, '');
  const pid = /^[0-9]+$/.test(trimmed) ? Number(trimmed) : NaN;
  if (!Number.isSafeInteger(pid) || pid <= 0) throw new PidFileError(`invalid PID number "${trimmed}" in "${pidPath}"`, 'error');
  return pid;
}
