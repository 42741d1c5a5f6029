/** The deploy lock: exclusive, waited for, broken when its owner died, and deploys never interleave. */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { deploy, type DeployEvent } from '../../src/deploy/index.js';
import { DeployError } from '../../src/deploy/deploy-error.js';
import { DeployLock, isStale, readLockOwner } from '../../src/deploy/lock.js';
import { CommandTarget } from '../../src/deploy/targets/command.js';
import { tempDir } from '../helpers/tmp.js';
import { fixture } from './helpers/nginx.js';

/** A pid that is certainly not running: a child that already exited. */
function deadPid(): number {
  const child = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
  return Number(child.stdout);
}

describe('deploy lock', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('is exclusive, holds the owner\'s pid, and is gone once released', async () => {
    const path = join(dir.path, 'a.lock');
    const lock = await DeployLock.acquire(path);
    assert.deepEqual((await readLockOwner(path))?.pid, process.pid);
    await assert.rejects(DeployLock.acquire(path, { timeoutMs: 0 }), (err: unknown) => {
      assert.ok(err instanceof DeployError);
      assert.equal(err.code, 'HITLESS_ERR_DEPLOY_LOCK');
      assert.match(err.message, new RegExp(`pid ${process.pid} on `));
      return true;
    });
    await lock.release();
    const again = await DeployLock.acquire(path, { timeoutMs: 0 });
    await again.release();
  });

  it('waits for the holder to release it', async () => {
    const path = join(dir.path, 'b.lock');
    const first = await DeployLock.acquire(path);
    setTimeout(() => void first.release(), 150);
    const second = await DeployLock.acquire(path, { timeoutMs: 5000, pollMs: 20 });
    assert.equal(first.held, false);
    await second.release();
  });

  it('breaks a lock whose owner died on this host, but not one from another host', async () => {
    const path = join(dir.path, 'c.lock');
    const pid = deadPid();
    writeFileSync(path, `${pid}\n${hostname()}\n2024-01-01T00:00:00.000Z\n`);
    assert.equal(isStale({ pid, host: hostname(), since: '' }), true);
    const lock = await DeployLock.acquire(path, { timeoutMs: 0 });
    assert.equal((await readLockOwner(path))?.pid, process.pid);
    await lock.release();

    writeFileSync(path, `${pid}\nsome-other-host\n2024-01-01T00:00:00.000Z\n`);
    await assert.rejects(DeployLock.acquire(path, { timeoutMs: 0 }), /Another deploy holds the lock/);
    assert.equal(readFileSync(path, 'utf8').split('\n')[1], 'some-other-host');
  });

  it('serialises two deploys to the same target: their steps never interleave', async () => {
    const certPath = dir.write('srv/a.crt', '');
    const keyPath = dir.write('srv/a.key', '');
    const target = new CommandTarget({
      certPath,
      keyPath,
      validateCommand: ['sleep', '0.1'],
      reloadCommand: ['sleep', '0.1'],
    });
    const timeline: string[] = [];
    const record = (who: string) => (event: DeployEvent) => {
      if (event.type === 'step') timeline.push(`${who}:${event.step.name}`);
    };
    const material = (name: string) => ({ certificate: readFileSync(fixture(`${name}.fullchain.crt`)), key: readFileSync(fixture(`${name}.key`)) });
    const [one, two] = await Promise.all([
      deploy({ kind: 'certificate', target, names: ['a.test'], input: material('a-rsa') }, { onEvent: record('one'), verify: false }),
      deploy({ kind: 'certificate', target, names: ['a.test'], input: material('a-ec') }, { onEvent: record('two'), verify: false }),
    ]);
    assert.equal(one.outcome, 'deployed');
    assert.equal(two.outcome, 'deployed');
    const locked = timeline.filter((entry) => !entry.endsWith(':read'));
    const firstOwner = (locked[0] as string).split(':')[0];
    const switchAt = locked.findIndex((entry) => !entry.startsWith(`${firstOwner}:`));
    assert.ok(locked.slice(switchAt).every((entry) => !entry.startsWith(`${firstOwner}:`)), timeline.join(' '));
    assert.equal(locked[switchAt - 1], `${firstOwner}:cleanup`);
  });
});
