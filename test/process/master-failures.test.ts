/**
 * What the master does when something fails, with a fake runtime standing in for the HTTP layer:
 * a configuration or a socket that fails at start-up, new workers that fail during a reload, a
 * burst of SIGHUPs, and a drain cut short by worker_shutdown_timeout.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createServer, type Server } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, masterCommand, startMaster, waitFor } from '../e2e/helpers/masters.js';
import { slowGet } from './helpers.js';

function fakeConf(port: number, body: string, extra = ''): string {
  return `# fake-listen: 127.0.0.1:${port}\n# fake-body: ${body}\n${extra}\nworker_processes 1;\nerror_log logs/error.log notice;\nevents {}\n`;
}

function runToExit(prefix: TestPrefix): { status: number | null; stderr: string } {
  const result = spawnSync(process.execPath, [...masterCommand('fake'), '-p', `${prefix.dir}/`, '-c', 'conf/hitless.conf', '-g', 'daemon off;', '-e', prefix.errorLogPath], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  return { status: result.status, stderr: result.stderr };
}

describe('start-up failures', () => {
  const prefix = new TestPrefix();
  let occupied: Server;
  let port: number;

  before(async () => {
    port = await freePort();
    occupied = createServer();
    await new Promise<void>((resolve) => occupied.listen(port, '127.0.0.1', resolve));
  });
  after(() => {
    occupied.close();
    prefix.remove();
  });

  it('exits 1 on a configuration error and says why on stderr and in the -e log', () => {
    prefix.writeConf('events {}\nworker_processes one;\n');
    const { status, stderr } = runToExit(prefix);
    assert.equal(status, 1);
    assert.equal(stderr, `hitless: [emerg] "worker_processes" directive invalid value in ${prefix.confPath}:2\n`);
    assert.match(prefix.errorLog(), /\[emerg\] \d+#0: "worker_processes" directive invalid value in /);
  });

  it('exits 1 when a listening socket cannot be bound, in nginx\'s words', () => {
    prefix.writeConf(fakeConf(port, 'x'));
    const { status, stderr } = runToExit(prefix);
    assert.equal(status, 1);
    assert.equal(stderr, `hitless: [emerg] bind() to 127.0.0.1:${port} failed (98: Address already in use)\n`);
    assert.equal(prefix.pid(), undefined);
  });
});

describe('reload failures and bursts', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: fakeConf(port, 'one', 'worker_shutdown_timeout 500ms;'), port, program: 'fake' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('keeps the old workers when the new ones fail to start', async () => {
    const workers = master.liveWorkers();
    prefix.writeConf(fakeConf(port, 'two', '# fake-fail-worker'));
    master.signal('SIGHUP');
    await prefix.waitForLog('exited before it was ready');
    await prefix.waitForLog('keeping the old configuration');
    assert.equal(await bodyOf(port), 'one\n');
    assert.deepEqual(master.liveWorkers(), workers);
  });

  it('folds a burst of SIGHUPs into at most two reloads and ends on the newest configuration', async () => {
    const before = prefix.count('[notice] ' + String(master.child.pid) + '#0: reconfiguring');
    prefix.writeConf(fakeConf(port, 'burst', 'worker_shutdown_timeout 500ms;'));
    for (let i = 0; i < 5; i++) master.signal('SIGHUP');
    await waitFor('the new body', async () => ((await bodyOf(port)) === 'burst\n' ? true : undefined));
    // A second reload, if the burst made one, starts as soon as the first ends, before the first's
    // old worker has exited: one live worker again means no reload is under way any more.
    await waitFor('one live worker', () => (master.liveWorkers().length === 1 ? true : undefined));
    const reloads = prefix.count('[notice] ' + String(master.child.pid) + '#0: reconfiguring') - before;
    assert.ok(reloads >= 1 && reloads <= 2, `${reloads} reloads`);
  });

  it('closes what is left when worker_shutdown_timeout expires during a drain', async () => {
    const slow = slowGet(port, '/slow/5000');
    await slow.started;
    master.signal('SIGQUIT');
    // A graceful stop waits for a request in flight; only worker_shutdown_timeout cuts this one.
    const answer = await slow.answer;
    assert.ok('error' in answer, `expected the request to be cut, got ${JSON.stringify(answer)}`);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
  });
});
