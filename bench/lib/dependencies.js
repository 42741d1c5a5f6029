// Installs bench/package.json's dependencies (the Node.js peers) when they are missing or are not
// the pinned versions, so that one command runs a whole benchmark on a fresh clone.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * Runs `npm install` in `benchDir` if any dependency is absent or differs from the version that
 * package.json pins.
 * @param {string} benchDir
 */
export function ensureDependencies(benchDir) {
  const manifest = JSON.parse(readFileSync(join(benchDir, 'package.json'), 'utf8'));
  const stale = Object.entries(manifest.dependencies ?? {}).filter(
    ([name, version]) => installedVersion(benchDir, name) !== version,
  );
  if (stale.length === 0) return;
  process.stderr.write(`bench: npm install in ${benchDir} (missing: ${stale.map(([name]) => name).join(', ')})\n`);
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
  const result = spawnSync(npm, ['install', '--no-audit', '--no-fund'], {
    cwd: benchDir,
    stdio: ['ignore', process.stderr, process.stderr],
    timeout: 300_000,
  });
  if (result.status !== 0) {
    throw new Error(`npm install failed in ${benchDir}${result.error ? `: ${result.error.message}` : ''}`);
  }
}

/**
 * @param {string} benchDir
 * @param {string} name
 * @returns {string | undefined}
 */
function installedVersion(benchDir, name) {
  try {
    return JSON.parse(readFileSync(join(benchDir, 'node_modules', name, 'package.json'), 'utf8')).version;
  } catch {
    return undefined;
  }
}
