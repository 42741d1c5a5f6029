// CPU time a server used, read from /proc as `ps -o times` would: on a machine shared with other
// work, CPU per request is steadier than requests/s.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { processTree } from './rss.js';

/**
 * utime + stime of a process and of the processes it forked (the workers), in clock ticks.
 * @param {number} pid
 * @returns {number}
 */
export function cpuTicks(pid) {
  let ticks = 0;
  for (const member of processTree(pid)) {
    try {
      const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // Fields 14 and 15 of proc(5), counted from the state (field 3) at index 0.
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process went away between the listing and the read.
    }
  }
  return ticks;
}

/**
 * Clock ticks per second (getconf CLK_TCK), 100 on Linux unless told otherwise.
 * @returns {number}
 */
export function clockTicks() {
  const out = spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' });
  return Number(out.stdout.trim()) || 100;
}
