/** Runs `hitless deploy` in-process, capturing what it prints. */
import { Writable } from 'node:stream';
import { deployCommand } from '../../../src/cli/deploy-command.js';
import type { DeployReport } from '../../../src/deploy/index.js';

/** What one run printed and returned. */
export interface DeployRun {
  readonly status: number;
  readonly stdout: string;
  readonly stderr: string;
  /** The parsed report, when the run had --json. */
  readonly report: DeployReport | undefined;
}

/** Everything every run in this process printed, for the secret check. */
export const printed: string[] = [];

function sink(into: string[]): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      into.push(chunk.toString());
      callback();
    },
  });
}

/** `hitless deploy ...args`. */
export async function runDeploy(args: readonly string[]): Promise<DeployRun> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await deployCommand([...args], { stdout: sink(out), stderr: sink(err) });
  const stdout = out.join('');
  const stderr = err.join('');
  printed.push(stdout, stderr);
  let report: DeployReport | undefined;
  if (args.includes('--json')) report = JSON.parse(stdout) as DeployReport;
  return { status, stdout, stderr, report };
}
