/**
 * `daemon on` and the binary upgrade (SIGUSR2), with a fake runtime standing in for the HTTP
 * layer: the foreground process exits 0 once the master is up; SIGWINCH stops the workers of a
 * daemonized master; SIGUSR2 starts a new master on the same sockets and renames the pid file.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, isAlive, startMaster, waitFor } from '../e2e/helpers/masters.js';

function fakeConf(port: number, body: string): string {
  return `# fake-listen: 127.0.0.1:${port}\n# fake-body: ${body}\nworker_processes 1;\nerror_log logs/error.log notice;\nevents {}\n`;
}

describe('daemon on (fake runtime)', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: fakeConf(port, 'daemon'), port, program: 'fake', daemon: true });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('detaches: the foreground process exits 0 and the pid file names another process', async () => {
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    const pid = prefix.pid();
    assert.ok(pid !== undefined && pid !== master.child.pid && isAlive(pid));
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^hitless: master process /);
  });

  it('stops its workers on SIGWINCH and starts them again on SIGHUP', async () => {
    const workers = master.liveWorkers();
    master.signal('SIGWINCH');
    await prefix.waitForLog('signal 28 (SIGWINCH) received, stop accepting connections');
    await waitFor('workers to exit', () => (workers.every((pid) => !isAlive(pid)) ? true : undefined));
    master.signal('SIGHUP');
    await waitFor('workers to answer again', async () => ((await bodyOf(port)) === 'daemon\n' ? true : undefined));
  });

  it('exits on SIGQUIT and removes the pid file', async () => {
    const pid = prefix.requirePid();
    master.signal('SIGQUIT');
    await waitFor('the daemon to exit', () => (!isAlive(pid) ? true : undefined));
    assert.equal(prefix.pid(), undefined);
  });
});

describe('binary upgrade on SIGUSR2 (fake runtime)', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: fakeConf(port, 'old'), port, program: 'fake' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('takes its pid file back when the new binary fails to start', async () => {
    const oldPid = prefix.requirePid();
    prefix.writeConf(`${fakeConf(port, 'broken')}bogus_directive;\n`);
    master.signal('SIGUSR2');
    await prefix.waitForLog('signal 12 (SIGUSR2) received, changing binary');
    await waitFor('the new binary to fail', () => (/new binary process \d+ exited with code 1/.test(prefix.errorLog()) ? true : undefined));
    assert.equal(prefix.pid(), oldPid);
    assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), undefined);
    assert.equal(await bodyOf(port), 'old\n');
  });

  it('starts a new master on the same sockets, renames the pid file, and lets the old one quit', async () => {
    const oldPid = prefix.requirePid();
    prefix.writeConf(fakeConf(port, 'new'));
    master.signal('SIGUSR2');
    await prefix.waitForLog('signal 12 (SIGUSR2) received, changing binary');
    const newPid = await waitFor('the new pid file', () => {
      const pid = prefix.pid();
      return pid !== undefined && pid !== oldPid ? pid : undefined;
    });
    assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), oldPid);
    await prefix.waitForLog(`start new binary process ${newPid}`);
    // Both generations accept on the one socket until the old master is told to quit.
    await waitFor('the new master to serve', async () => ((await bodyOf(port)) === 'new\n' ? true : undefined));
    master.signal('SIGUSR2');
    await prefix.waitForLog('signal 12 (SIGUSR2) received, ignoring');
    master.signal('SIGQUIT', `${prefix.pidPath}.oldbin`);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), undefined);
    assert.equal(prefix.pid(), newPid);
    for (let i = 0; i < 10; i++) assert.equal(await bodyOf(port), 'new\n');
    master.signal('SIGQUIT');
    await waitFor('the new master to exit', () => (!isAlive(newPid) ? true : undefined));
    assert.equal(prefix.pid(), undefined);
  });
});
