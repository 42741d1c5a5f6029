import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { parseCommandLine } from '../../src/cli/options.js';

describe('command line, as ngx_get_options() reads it', () => {
  it('groups flags and takes values attached or separate', () => {
    const line = parseCommandLine(['-tq', '-cfile.conf', '-p', '/srv/', '-g', 'daemon off;', '-e', 'stderr']);
    assert.equal(line.test, true);
    assert.equal(line.quiet, true);
    assert.equal(line.configFile, 'file.conf');
    assert.equal(line.prefix, '/srv/');
    assert.equal(line.params, 'daemon off;');
    assert.equal(line.errorLog, 'stderr');
  });

  it('makes -T a test that dumps, -V a version with configure options, -h help', () => {
    assert.deepEqual([parseCommandLine(['-T']).test, parseCommandLine(['-T']).dump], [true, true]);
    assert.deepEqual([parseCommandLine(['-V']).version, parseCommandLine(['-V']).configureOptions], [true, true]);
    assert.deepEqual([parseCommandLine(['-?']).help, parseCommandLine(['-h']).version], [true, true]);
  });

  it('accepts the four signals', () => {
    for (const signal of ['stop', 'quit', 'reopen', 'reload'] as const) {
      assert.equal(parseCommandLine(['-s', signal]).signal, signal);
      assert.equal(parseCommandLine([`-s${signal}`]).signal, signal);
    }
  });

  const refused: [string[], string][] = [
    [['x'], 'invalid option: "x"'],
    [['-x'], 'invalid option: "x"'],
    [['-tx'], 'invalid option: "x"'],
    [['-s', 'restart'], 'invalid option: "-s restart"'],
    [['-s'], 'option "-s" requires parameter'],
    [['-c'], 'option "-c" requires file name'],
    [['-e'], 'option "-e" requires file name'],
    [['-p'], 'option "-p" requires directory name'],
    [['-g'], 'option "-g" requires parameter'],
  ];
  for (const [argv, message] of refused) {
    it(`refuses ${argv.join(' ')}: ${message}`, () => {
      assert.throws(() => parseCommandLine(argv), (err: unknown) => err instanceof UsageError && err.message === message);
    });
  }
});
