// CPU time used by processes that a benchmark did not start. On a small machine shared with other
// work (a test suite, another benchmark), that time is taken from the proxy under test, so a run
// should wait for a quiet machine and say how quiet it stayed.
import { readdirSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';

/** Linux reports process CPU time in USER_HZ ticks, 100 per second on every mainstream arch. */
const TICKS_PER_SECOND = 100;

/** Other processes may use this much of one CPU, in percent, and the machine still counts as quiet. */
export const QUIET_CPU_PERCENT = 10;

/** How often processes are sampled, so that short-lived ones are seen too, in milliseconds. */
const SAMPLE_INTERVAL_MS = 500;

/**
 * @typedef {object} ForeignCpu
 * @property {number} percent average CPU use of other processes during the window, in percent of one CPU
 * @property {string[]} top the busiest other commands, e.g. "wrk 97%"
 */

/** Measures the CPU time of processes for which `isOwn(pid, processGroup)` is false. */
export class ForeignCpuSampler {
  #isOwn;
  /** @type {Map<string, { ticks: number, comm: string }>} keyed by pid and start time, as pids are reused */
  #seen = new Map();
  /** @type {Map<string, number>} ticks per command name */
  #byCommand = new Map();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #timer;
  #startedAt = 0;

  /** @param {(pid: number, processGroup: number) => boolean} isOwn */
  constructor(isOwn) {
    this.#isOwn = isOwn;
  }

  /** Takes the baseline and starts sampling. */
  start() {
    this.#seen.clear();
    this.#byCommand.clear();
    this.#sample(true);
    this.#startedAt = performance.now();
    this.#timer = setInterval(() => this.#sample(false), SAMPLE_INTERVAL_MS);
  }

  /**
   * Stops sampling and reports what other processes used since `start()`.
   * @returns {ForeignCpu}
   */
  stop() {
    clearInterval(this.#timer);
    this.#sample(false);
    const seconds = Math.max((performance.now() - this.#startedAt) / 1000, 0.001);
    /** @param {number} ticks */
    const percent = (ticks) => (ticks / TICKS_PER_SECOND / seconds) * 100;
    const total = [...this.#byCommand.values()].reduce((sum, ticks) => sum + ticks, 0);
    const top = [...this.#byCommand]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 3)
      .filter(([, ticks]) => percent(ticks) >= 1)
      .map(([comm, ticks]) => `${comm} ${Math.round(percent(ticks))}%`);
    return { percent: percent(total), top };
  }

  /** @param {boolean} baseline */
  #sample(baseline) {
    for (const entry of readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      const stat = readStat(Number(entry));
      // Kernel threads (children of kthreadd, pid 2) include the softirq work that the benchmark's
      // own loopback traffic causes: not someone else's load.
      if (!stat || stat.ppid === 2 || Number(entry) === 2 || this.#isOwn(Number(entry), stat.pgrp)) continue;
      const key = `${entry}:${stat.startTime}`;
      const previous = this.#seen.get(key);
      this.#seen.set(key, { ticks: stat.ticks, comm: stat.comm });
      if (baseline) continue;
      // A process first seen after the baseline started during the window: all its time counts.
      const delta = stat.ticks - (previous?.ticks ?? 0);
      if (delta > 0) this.#byCommand.set(stat.comm, (this.#byCommand.get(stat.comm) ?? 0) + delta);
    }
  }
}

/**
 * Waits until other processes use less than `thresholdPercent` of one CPU over a one-second
 * window, or until `timeoutSeconds` have passed. Returns the last window's measure.
 * @param {ForeignCpuSampler} sampler
 * @param {{ thresholdPercent: number, timeoutSeconds: number, onBusy: (load: ForeignCpu) => void }} options
 * @returns {Promise<ForeignCpu & { quiet: boolean }>}
 */
export async function waitForQuietMachine(sampler, { thresholdPercent, timeoutSeconds, onBusy }) {
  const deadline = performance.now() + timeoutSeconds * 1000;
  let warned = false;
  for (;;) {
    sampler.start();
    await sleep(1000);
    const load = sampler.stop();
    if (load.percent < thresholdPercent) return { ...load, quiet: true };
    if (performance.now() >= deadline) return { ...load, quiet: false };
    if (!warned) onBusy(load);
    warned = true;
  }
}

/**
 * @param {number} pid
 * @returns {{ comm: string, ppid: number, pgrp: number, ticks: number, startTime: string } | undefined}
 */
function readStat(pid) {
  let text;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // proc(5): "pid (comm) state ppid pgrp ..."; comm may hold spaces and parentheses.
  const comm = text.slice(text.indexOf('(') + 1, text.lastIndexOf(')'));
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Fields counted from "state" (0): ppid 1, pgrp 2, utime 11, stime 12, starttime 19.
  return {
    comm,
    ppid: Number(fields[1]),
    pgrp: Number(fields[2]),
    ticks: Number(fields[11]) + Number(fields[12]),
    startTime: fields[19] ?? '',
  };
}
