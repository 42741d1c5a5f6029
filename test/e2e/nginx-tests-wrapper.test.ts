/**
 * scripts/nginx-tests-wrapper, what nginx's own test suite runs as its nginx binary: `-V` gets the
 * version line nginx-tests' has_version() reads, then hitless's own -V; any other call is
 * hitless's, exit status and output unchanged.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { REPO_ROOT, runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';

const WRAPPER = join(REPO_ROOT, 'scripts/nginx-tests-wrapper');

function runWrapper(args: readonly string[], env: Readonly<Record<string, string>> = {}): { status: number | null; output: string } {
  const result = spawnSync(WRAPPER, args, { encoding: 'utf8', timeout: 20_000, env: { ...process.env, ...env } });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('scripts/nginx-tests-wrapper', () => {
  const dir = tempDir({ 'bad.conf': 'events {}\nhttp {\n  proxiy_pass x;\n}\n' });
  after(() => dir.remove());

  it('-V: the reference nginx version first (lib/Test/Nginx.pm has_version()), then hitless -V as it is', () => {
    const result = runWrapper(['-V'], { NGINX_TESTS_VERSION: '1.31.4' });
    assert.equal(result.status, 0);
    const [first, ...rest] = result.output.trimEnd().split('\n');
    assert.match(first ?? '', /^nginx version: nginx\/1\.31\.4( |$)/);
    assert.equal(rest.join('\n'), runHitless(['-V']).stderr.trimEnd());
  });

  it('-V without NGINX_TESTS_VERSION claims no nginx version', () => {
    const result = runWrapper(['-V'], { NGINX_TESTS_VERSION: '' });
    assert.doesNotMatch(result.output, /nginx version:/);
    assert.match(result.output, /^configure arguments: /m);
  });

  it('any other call is hitless itself: -t on a bad file fails with hitless\'s message', () => {
    const result = runWrapper(['-t', '-c', join(dir.path, 'bad.conf')]);
    assert.equal(result.status, 1);
    assert.match(result.output, /unknown directive "proxiy_pass" in \S+bad\.conf:3/);
  });
});
