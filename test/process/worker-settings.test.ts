/**
 * What the master derives for each worker from the configuration: its environment as
 * ngx_set_environment() builds it, its CPUs as ngx_get_cpu_affinity() picks them, the log files it
 * reopens, and nginx's chdir() failure.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigText } from '../../src/conf/loader.js';
import { createRegistry } from '../../src/modules.js';
import { cpusOfWorker, logFilesOf, workerEnvironment, workingDirectoryProblem } from '../../src/process/worker-settings.js';

const registry = createRegistry();

function load(text: string) {
  return loadConfigText(text, registry, { file: '/etc/hitless/hitless.conf', prefix: '/srv/hitless/' });
}

describe('workerEnvironment', () => {
  const parent = { PATH: '/bin', HOME: '/root', TZ: 'Europe/Paris', KEEP: 'k', NODE_OPTIONS: '--x', UV_THREADPOOL_SIZE: '8', SECRET: 's' };

  it('keeps TZ and Node\'s and libuv\'s variables only, without env', () => {
    assert.deepEqual(workerEnvironment(load('events {}\n'), parent), { TZ: 'Europe/Paris', NODE_OPTIONS: '--x', UV_THREADPOOL_SIZE: '8' });
  });

  it('keeps `env NAME` when the master has it and sets `env NAME=value`', () => {
    const env = workerEnvironment(load('env KEEP;\nenv ABSENT;\nenv SET=v;\nenv TZ=UTC;\nevents {}\n'), parent);
    assert.deepEqual(env, { NODE_OPTIONS: '--x', UV_THREADPOOL_SIZE: '8', KEEP: 'k', SET: 'v', TZ: 'UTC' });
  });
});

describe('cpusOfWorker', () => {
  it('gives each worker its mask and every further worker the last one', () => {
    const affinity = { auto: false, masks: [[0], [1, 2]] };
    assert.deepEqual([0, 1, 2, 3].map((slot) => cpusOfWorker(affinity, slot)), [[0], [1, 2], [1, 2], [1, 2]]);
  });

  it('with auto, binds workers to the mask\'s CPUs one each, in turn', () => {
    const affinity = { auto: true, masks: [[1, 3]] };
    assert.deepEqual([0, 1, 2].map((slot) => cpusOfWorker(affinity, slot)), [[1], [3], [1]]);
  });
});

describe('logFilesOf', () => {
  it('lists the error logs and the access logs, the default access log included', () => {
    const config = load([
      'error_log logs/main.log;',
      'error_log stderr;',
      'events {}',
      'http {',
      '  server { listen 127.0.0.1:1; error_log logs/server.log; access_log logs/a.log; location / { access_log logs/b.log; } }',
      '  server { listen 127.0.0.1:2; }',
      '}',
      '',
    ].join('\n'));
    const files = [...logFilesOf(config, config.main.get('error_log'))].sort();
    assert.deepEqual(files, ['/srv/hitless/logs/a.log', '/srv/hitless/logs/access.log', '/srv/hitless/logs/b.log', '/srv/hitless/logs/main.log', '/srv/hitless/logs/server.log']);
  });
});

describe('workingDirectoryProblem', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-workdir-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is nginx\'s chdir() failure for a missing directory or a file, and nothing for a directory', () => {
    assert.equal(workingDirectoryProblem(dir), undefined);
    assert.equal(workingDirectoryProblem(join(dir, 'none')), `chdir("${join(dir, 'none')}") failed (2: No such file or directory)`);
    writeFileSync(join(dir, 'file'), '');
    assert.equal(workingDirectoryProblem(join(dir, 'file')), `chdir("${join(dir, 'file')}") failed (20: Not a directory)`);
  });
});
