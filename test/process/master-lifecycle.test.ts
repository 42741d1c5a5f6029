/**
 * The master and its workers, with a fake runtime standing in for the HTTP layer: the pid file,
 * process titles, replacing a killed worker, reload and a failed reload, graceful and fast
 * shutdown, log reopening, and adding and removing a listening socket on reload.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, get, isAlive, startMaster, waitFor } from '../e2e/helpers/masters.js';
import { slowGet } from './helpers.js';

function fakeConf(port: number, body: string, extra = ''): string {
  return [
    `# fake-listen: 127.0.0.1:${port}`,
    extra,
    `# fake-body: ${body}`,
    'worker_processes 2;',
    'error_log logs/error.log notice;',
    'events {}',
    '',
  ].join('\n');
}

describe('master process lifecycle (fake runtime)', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: fakeConf(port, 'one'), port, program: 'fake' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('writes its pid to the pid file and titles its processes as nginx does', async () => {
    const pid = prefix.pid();
    assert.equal(pid, master.child.pid);
    assert.match(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /^hitless: master process /);
    await waitFor('two workers', () => (master.liveWorkers().length === 2 ? true : undefined));
    // A worker titles itself once its code has loaded, a moment after it appears.
    for (const worker of master.liveWorkers()) {
      await waitFor(`worker ${worker}'s title`, () => (readFileSync(`/proc/${worker}/cmdline`, 'utf8').startsWith('hitless: worker process') ? true : undefined));
    }
  });

  it('replaces a worker killed with SIGKILL at once and keeps answering', async () => {
    const [victim] = master.liveWorkers();
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await prefix.waitForLog(`[alert] ${master.child.pid}#0: worker process ${victim} exited on signal 9`);
    await waitFor('a replacement worker', () => (master.liveWorkers().length === 2 && !master.liveWorkers().includes(victim) ? true : undefined));
    assert.equal(await bodyOf(port), 'one\n');
  });

  it('reloads on SIGHUP: new workers serve the new body, old ones exit with code 0', async () => {
    const before = master.liveWorkers();
    prefix.writeConf(fakeConf(port, 'two'));
    master.signal('SIGHUP');
    await prefix.waitForLog('signal 1 (SIGHUP) received, reconfiguring');
    await waitFor('the new body', async () => ((await bodyOf(port)) === 'two\n' ? true : undefined));
    for (const pid of before) await prefix.waitForLog(`worker process ${pid} exited with code 0`);
  });

  it('keeps serving the old configuration when the new one is broken, and logs why at [emerg]', async () => {
    const workers = master.liveWorkers();
    prefix.writeConf(`${fakeConf(port, 'three')}\nbogus_directive on;\n`);
    master.signal('SIGHUP');
    await prefix.waitForLog(`[emerg] ${master.child.pid}#0: unknown directive "bogus_directive" in ${prefix.confPath}:8`);
    assert.equal(await bodyOf(port), 'two\n');
    assert.deepEqual(master.liveWorkers().sort(), workers.sort());
  });

  it('opens a listening socket a reload adds and closes one it removes', async () => {
    const second = await freePort();
    prefix.writeConf(fakeConf(port, 'four', `# fake-listen: 127.0.0.1:${second}`));
    master.signal('SIGHUP');
    await waitFor('the added port', async () => ((await bodyOf(second)) === 'four\n' ? true : undefined));
    prefix.writeConf(fakeConf(second, 'five'));
    master.signal('SIGHUP');
    await waitFor('the new body on the kept port', async () => ((await bodyOf(second)) === 'five\n' ? true : undefined));
    await waitFor('the removed port to refuse', async () => {
      const result = await get(port);
      return 'error' in result && result.error === 'ECONNREFUSED' ? true : undefined;
    });
    port = second;
  });

  it('reopens its log on SIGUSR1', async () => {
    renameSync(prefix.errorLogPath, `${prefix.errorLogPath}.1`);
    master.signal('SIGUSR1');
    await waitFor('a new error log', () => (existsSync(prefix.errorLogPath) ? true : undefined));
    await prefix.waitForLog('reopening logs');
  });

  it('waits for a request in flight on SIGQUIT, then exits 0 and removes the pid file', async () => {
    const slow = slowGet(port, '/slow/700');
    await slow.started;
    master.signal('SIGQUIT');
    const answer = await slow.answer;
    assert.deepEqual(answer, { status: 200, body: 'five\n' });
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    assert.equal(existsSync(prefix.pidPath), false);
    assert.match(prefix.errorLog(), /signal 3 \(SIGQUIT\) received, shutting down/);
    assert.match(prefix.errorLog(), /gracefully shutting down/);
    assert.match(prefix.errorLog(), /\[notice\] \d+#0: exit$/m);
  });
});

describe('fast shutdown (fake runtime)', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: fakeConf(port, 'fast'), port, program: 'fake' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('does not wait for a request in flight on SIGTERM', async () => {
    const slow = slowGet(port, '/slow/5000');
    await slow.started;
    const workers = master.liveWorkers();
    master.signal('SIGTERM');
    const answer = await slow.answer;
    assert.ok('error' in answer, `expected the request to fail, got ${JSON.stringify(answer)}`);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    assert.match(prefix.errorLog(), /signal 15 \(SIGTERM\) received, exiting/);
    assert.equal(existsSync(prefix.pidPath), false);
    await waitFor('workers to exit', () => (workers.every((pid) => !isAlive(pid)) ? true : undefined));
  });
});
