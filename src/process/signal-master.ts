/**
 * `hitless -s stop|quit|reopen|reload`: reads the pid file and signals the master, with the
 * messages of nginx's `ngx_signal_process()` and `ngx_os_signal_process()`.
 */
import { constants } from 'node:os';
import { formatSyscallError } from '../core/errors.js';
import { PidFileError, readPidFile } from './pid-file.js';

/** What `-s` can ask of a running master. */
export type MasterCommand = 'stop' | 'quit' | 'reopen' | 'reload';

/** The signal each `-s` command sends, as nginx's `signals[]` table maps them (ngx_process.c). */
export const COMMAND_SIGNALS: Readonly<Record<MasterCommand, NodeJS.Signals>> = {
  stop: 'SIGTERM',
  quit: 'SIGQUIT',
  reopen: 'SIGUSR1',
  reload: 'SIGHUP',
};

/**
 * Sends a command's signal to the master whose pid the file holds and returns that pid. Throws
 * {@link PidFileError}: `open() "/x/logs/hitless.pid" failed (2: No such file or directory)`,
 * `invalid PID number "x" in "/path"`, or `kill(123, 1) failed (3: No such process)` at [alert].
 */
export function signalMaster(pidPath: string, command: MasterCommand): number {
  const signal = COMMAND_SIGNALS[command];
  const pid = readPidFile(pidPath);
  try {
    process.kill(pid, signal);
  } catch (err) {
    const call = `kill(${pid}, ${constants.signals[signal]})`;
    throw new PidFileError(formatSyscallError(call, undefined, err).replace(`${call}()`, call), 'alert', { cause: err });
  }
  return pid;
}
