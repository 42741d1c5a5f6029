/**
 * THE property of hitless: a reload loses nothing. Keeps a probe's requests flowing at a master
 * while it reloads again and again, each time to a configuration with a new body, and returns the
 * probe's report. Each reload is complete before the next starts: its body is what answers.
 */
import { runProbe, type ProbeReport } from '../../../src/probe/probe.js';
import { MasterUnderTest, TestPrefix, bodyOf, waitFor } from './masters.js';

/** Options of {@link reloadUnderLoad}. */
export interface ReloadUnderLoadOptions {
  readonly master: MasterUnderTest;
  readonly prefix: TestPrefix;
  readonly port: number;
  /** The configuration whose `/` answers `body`. */
  readonly conf: (body: string) => string;
  readonly reloads: number;
  readonly newConnections: boolean;
  readonly concurrency: number;
}

/** Reloads `reloads` times under load; resolves with the probe's report and the reloads done. */
export async function reloadUnderLoad(options: ReloadUnderLoadOptions): Promise<{ report: ProbeReport; reloads: number }> {
  const stop = new AbortController();
  const probe = runProbe({
    url: `http://127.0.0.1:${options.port}/`,
    durationMs: Infinity,
    concurrency: options.concurrency,
    newConnections: options.newConnections,
    timeoutMs: 10_000,
  }, stop.signal);
  let reloads = 0;
  try {
    for (let i = 0; i < options.reloads; i++) {
      const body = `reload-${options.newConnections ? 'conn' : 'ka'}-${i}`;
      options.prefix.writeConf(options.conf(body));
      options.master.signal('SIGHUP');
      await waitFor(`reload ${i} to serve its body`, async () => ((await bodyOf(options.port)) === `${body}\n` ? true : undefined), 20_000);
      reloads++;
    }
  } finally {
    stop.abort();
  }
  return { report: await probe, reloads };
}
