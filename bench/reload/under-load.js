// Runs a load while a server is reloaded again and again: the schedule that bench/reload/ and
// bench/edge/ share, so that "20 reloads in 12 s" means the same thing in both.
import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Starts `runLoad()`, then, from 0.5 s in, calls `reload(i)` `count` times, evenly spread over the
 * load's `seconds` minus its first and last half second. Resolves with the load's result and the
 * number of reloads made.
 * @template T
 * @param {() => Promise<T>} runLoad
 * @param {{ seconds: number, count: number, reload: (generation: number) => void }} schedule
 * @returns {Promise<{ result: T, reloads: number }>}
 */
export async function loadWhileReloading(runLoad, { seconds, count, reload }) {
  const load = runLoad();
  // A load that fails early must not leave the reload loop running on.
  let failed = false;
  load.catch(() => (failed = true));
  let reloads = 0;
  if (count > 0) {
    const interval = (seconds * 1000 - 1000) / count;
    await sleep(500);
    for (let i = 0; i < count && !failed; i++) {
      reload(i);
      reloads++;
      await sleep(interval);
    }
  }
  return { result: await load, reloads };
}
