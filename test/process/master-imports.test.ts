// What the master loads (issue 20, memory): the master parses the configuration and owns the
// listening sockets, a worker serves them. A static import from the master's side into a
// worker's runtime (the request pipeline, the h1/h2 engines, the stream proxy) or into a
// subcommand of the CLI (deploy, probe) keeps those modules in the master's heap for its whole
// life. This walks the compiled files (build/src), whose imports are the ones Node loads: `import
// type` is gone there, and a dynamic `import()` is not followed, as Node loads it only when it runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { dirname, join, posix } from 'node:path';
import { fileURLToPath } from 'node:url';

const buildSrc = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

const STATIC_IMPORT = /^(?:import|export)\s[^;]*?\bfrom\s*'([^']+)'|^import\s*'([^']+)'/gm;

/** Every compiled module a static import chain from `entry` reaches, each with the module that first imported it. */
function staticReach(entry: string): Map<string, string> {
  const reached = new Map<string, string>([[entry, '']]);
  const pending = [entry];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    const text = readFileSync(join(buildSrc, file), 'utf8');
    for (const match of text.matchAll(STATIC_IMPORT)) {
      const specifier = match[1] ?? match[2];
      if (specifier === undefined || !specifier.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), specifier));
      if (reached.has(target)) continue;
      reached.set(target, file);
      pending.push(target);
    }
  }
  return reached;
}

function chain(reached: Map<string, string>, file: string): string {
  const links = [file];
  for (let from = reached.get(file); from !== undefined && from !== ''; from = reached.get(from)) links.push(from);
  return links.join(' <- ');
}

/** Modules only a worker runs, or only a subcommand: none may be in the master's static graph. */
const WORKER_OR_SUBCOMMAND_ONLY = [
  /^process\/worker\.js$/,
  /^process\/http-and-stream-runtime\.js$/,
  /^http\/runtime\.js$/,
  /^http\/handler\.js$/,
  /^http\/pipeline\.js$/,
  /^http\/h1\/server-connection\.js$/,
  /^http\/h2\//,
  /^http\/(proxy|fastcgi|grpc|static|autoindex)\.js$/,
  /^stream\/runtime\.js$/,
  /^stream\/connection\.js$/,
  /^deploy\//,
  /^probe\//,
  /^cli\/(deploy|probe|certs|upstreams)-command\.js$/,
];

for (const entry of ['cli/main.js', 'process/master.js']) {
  test(`the master (${entry}) imports no worker-only or subcommand module statically`, () => {
    const reached = staticReach(entry);
    const offending = [...reached.keys()].filter((file) => WORKER_OR_SUBCOMMAND_ONLY.some((pattern) => pattern.test(file)));
    assert.deepEqual(offending.map((file) => chain(reached, file)), []);
  });
}

test('the worker still reaches its runtime (the walk follows the imports it should)', () => {
  const reached = staticReach('process/worker-main.js');
  for (const file of ['process/http-and-stream-runtime.js', 'http/runtime.js', 'http/h1/server-connection.js', 'stream/runtime.js']) {
    assert.ok(reached.has(file), `${file} is not reached from process/worker-main.js`);
  }
});
