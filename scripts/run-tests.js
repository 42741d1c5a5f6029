#!/usr/bin/env node
// Runs the compiled suite (build/test/**/*.test.js) with node's own test runner.
// Arguments narrow the run to files whose path contains any of them: `npm test -- conf/ e2e/reload`.
import { spawn } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('../build/test/', import.meta.url).pathname;

function collect(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return collect(path);
    return entry.name.endsWith('.test.js') ? [path] : [];
  });
}

const filters = process.argv.slice(2);
const files = collect(root)
  .filter((file) => filters.length === 0 || filters.some((f) => relative(root, file).includes(f.replace(/\.ts$/, ''))))
  .sort();
if (files.length === 0) {
  console.error('run-tests: no test files matched');
  process.exit(1);
}
// The runner gets a process group of its own: a test that signals its group by mistake (a pid of
// 0) then fails the run with a message here, instead of killing npm and the CI script silently.
const runner = spawn(process.execPath, ['--test', '--test-concurrency=2', ...files], { stdio: 'inherit', detached: true });
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    try {
      process.kill(-runner.pid, signal);
    } catch {
      // The group is gone already.
    }
  });
}
runner.on('exit', (code, signal) => {
  if (signal !== null) console.error(`run-tests: the test runner was killed by ${signal}`);
  process.exit(code ?? 1);
});
