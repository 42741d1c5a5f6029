/** Runs the real bin/hitless, as a user would. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

/** The executable, from the repository root. */
export const HITLESS_BIN = fileURLToPath(new URL('../../../bin/hitless', import.meta.url));
/** The repository root. */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The outcome of one run of the command. */
export interface RunResult {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `bin/hitless args...` to completion (at most 20 s) and returns what it printed. */
export function runHitless(args: readonly string[], options: { cwd?: string } = {}): RunResult {
  const result = spawnSync(process.execPath, [HITLESS_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    encoding: 'utf8',
    timeout: 20_000,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
