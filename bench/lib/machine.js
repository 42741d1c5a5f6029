// What a benchmark ran on, so that a figure is never read without its machine.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, release, totalmem } from 'node:os';

/**
 * @typedef {object} Machine
 * @property {number} cpus what `nproc` prints
 * @property {string} cpuModel "model name" from /proc/cpuinfo
 * @property {string} memory total memory, e.g. "23.5 GiB"
 * @property {string} kernel
 * @property {string} node
 */

/** @returns {Machine} */
export function describeMachine() {
  return {
    cpus: availableParallelism(),
    cpuModel: cpuModel(),
    memory: `${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    kernel: `Linux ${release()}`,
    node: process.version,
  };
}

/** @returns {string} */
function cpuModel() {
  try {
    const match = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    return match?.[1]?.trim() ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/**
 * The first line a tool prints about its version, whatever the stream and the exit status
 * (`nginx -v` writes to stderr, `wrk -v` exits with 1). Undefined if the tool cannot be run.
 * @param {string} command
 * @param {string[]} args
 * @returns {Promise<string | undefined>}
 */
export function commandVersion(command, args) {
  return new Promise((resolve) => {
    execFile(command, args, { timeout: 5000 }, (err, stdout, stderr) => {
      const text = `${stdout}${stderr}`.trim();
      if (err && /** @type {NodeJS.ErrnoException} */ (err).code === 'ENOENT') resolve(undefined);
      else resolve(text ? (text.split('\n')[0] ?? '').replace(/\s+Copyright.*$/, '').trim() : undefined);
    });
  });
}
