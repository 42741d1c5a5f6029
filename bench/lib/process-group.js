// Starts the servers a benchmark needs and stops every one of them, on success, on failure and on
// Ctrl-C. Each child runs in its own process group, so that stopping nginx's master or hitless's
// master also stops the workers it forked, and nothing that this script did not start is touched.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** How long a child gets to exit after SIGTERM before it is sent SIGKILL, in milliseconds. */
const STOP_GRACE_MS = 3000;

/** A set of child processes that are stopped together. */
export class ProcessGroup {
  /** @type {Set<import('node:child_process').ChildProcess>} */
  #children = new Set();
  #onSignal = (/** @type {NodeJS.Signals} */ signal) => {
    process.stderr.write(`\nbench: ${signal}: stopping everything this run started\n`);
    this.#killAllNow();
    // The conventional exit status of a process ended by a signal: 128 + its number.
    process.exit(signal === 'SIGINT' ? 130 : signal === 'SIGHUP' ? 129 : 143);
  };
  #onExit = () => this.#killAllNow();

  constructor() {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(signal, this.#onSignal);
    // 'exit' handlers must be synchronous; process.kill is.
    process.on('exit', this.#onExit);
  }

  /**
   * Starts a command; its stdout and stderr go to `logFile`. Resolves once it has spawned.
   * @param {string} command
   * @param {string[]} args
   * @param {{ logFile: string, cwd?: string }} options
   * @returns {Promise<import('node:child_process').ChildProcess>}
   */
  async start(command, args, { logFile, cwd }) {
    const log = openSync(logFile, 'a');
    try {
      const child = spawn(command, args, { cwd, detached: true, stdio: ['ignore', log, log] });
      this.#children.add(child);
      child.once('exit', () => this.#children.delete(child));
      await new Promise((resolve, reject) => {
        child.once('spawn', resolve);
        child.once('error', reject);
      });
      return child;
    } finally {
      closeSync(log);
    }
  }

  /**
   * Adds a child that the caller spawned itself, with `detached: true`, so that it is stopped with
   * the others.
   * @param {import('node:child_process').ChildProcess} child
   */
  track(child) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    this.#children.add(child);
    child.once('exit', () => this.#children.delete(child));
  }

  /**
   * Whether `processGroup` is the group of a child of this set (each child leads its own group,
   * which its own children, such as nginx's workers, share).
   * @param {number} processGroup
   */
  ownsProcessGroup(processGroup) {
    for (const child of this.#children) if (child.pid === processGroup) return true;
    return false;
  }

  /**
   * Stops one child and its process group: SIGTERM, then SIGKILL after a grace period.
   * @param {import('node:child_process').ChildProcess} child
   */
  async stop(child) {
    if (!this.#children.has(child) || child.pid === undefined) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    signalGroup(child.pid, 'SIGTERM');
    const timedOut = await Promise.race([exited.then(() => false), sleep(STOP_GRACE_MS).then(() => true)]);
    // Even after the leader has exited, a worker it forked may linger in the group.
    signalGroup(child.pid, 'SIGKILL');
    if (timedOut) await exited;
    this.#children.delete(child);
  }

  /** Stops every child still running and removes the signal handlers. */
  async stopAll() {
    await Promise.all([...this.#children].map((child) => this.stop(child)));
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.off(signal, this.#onSignal);
    process.off('exit', this.#onExit);
  }

  #killAllNow() {
    for (const child of this.#children) {
      if (child.pid !== undefined) signalGroup(child.pid, 'SIGKILL');
    }
    this.#children.clear();
  }
}

/**
 * Sends a signal to the process group led by `pid` (the child was spawned detached, so its pid is
 * its group id). A group that is already gone is not an error.
 * @param {number} pid
 * @param {NodeJS.Signals} signal
 */
function signalGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch (err) {
    if (/** @type {NodeJS.ErrnoException} */ (err).code !== 'ESRCH') throw err;
  }
}

/**
 * The last lines of a log file, for an error message about a child that failed to start.
 * @param {string} file
 * @param {number} [lines] default 5
 * @returns {string}
 */
export function tailOf(file, lines = 5) {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}
