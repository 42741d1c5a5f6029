/**
 * The real binary's master under nginx's signals: reload picks up a changed `return`, a broken
 * configuration changes nothing, a killed worker is replaced, QUIT waits for a request in flight
 * and TERM does not, and the pid file lives exactly as long as the master.
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { httpConf } from './helpers/http-conf.js';
import { MasterUnderTest, TestPrefix, bodyOf, freePort, startMaster, waitFor } from './helpers/masters.js';

/**
 * A request in flight for `pauseMs`: its head is sent up to the last header, the signal is sent
 * meanwhile, then the empty line that ends the head. Resolves with the status line and body, or the
 * error that cut the connection.
 */
function requestInFlight(port: number, pauseMs: number, duringPause: () => void): Promise<{ status: string; body: string } | { error: string }> {
  return new Promise((resolve) => {
    let received = '';
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.write('GET / HTTP/1.1\r\nHost: localhost\r\n');
      setTimeout(duringPause, 50);
      setTimeout(() => socket.write('\r\n', () => undefined), pauseMs);
    });
    socket.setEncoding('utf8');
    socket.setTimeout(5_000, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
    socket.on('close', () => {
      const [head = '', body = ''] = received.split('\r\n\r\n');
      resolve(received === '' ? { error: 'closed without a response' } : { status: head.split('\r\n')[0] ?? '', body });
    });
  });
}

describe('signals to the master', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: httpConf({ port, body: 'one' }), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('writes the pid file at start', () => {
    assert.equal(prefix.pid(), master.child.pid);
  });

  it('picks up a changed return body on SIGHUP', async () => {
    prefix.writeConf(httpConf({ port, body: 'two' }));
    master.signal('SIGHUP');
    await waitFor('the new body', async () => ((await bodyOf(port)) === 'two\n' ? true : undefined));
    await prefix.waitForLog('signal 1 (SIGHUP) received, reconfiguring');
  });

  it('keeps serving the old configuration when the new one is broken, and logs the error', async () => {
    prefix.writeConf(httpConf({ port, body: 'three', main: 'worker_processes;' }));
    master.signal('SIGHUP');
    await prefix.waitForLog(`[emerg] ${master.child.pid}#0: invalid number of arguments in "worker_processes" directive in ${prefix.confPath}:3`);
    for (let i = 0; i < 5; i++) assert.equal(await bodyOf(port), 'two\n');
  });

  it('replaces a SIGKILLed worker and keeps answering', async () => {
    prefix.writeConf(httpConf({ port, body: 'two' }));
    // The newest worker: an older generation's may still be draining after the reloads above and
    // exit by itself (code 0) just as it is picked, which left this waiting for "signal 9" under load.
    const victim = master.liveWorkers().at(-1);
    assert.ok(victim !== undefined);
    process.kill(victim, 'SIGKILL');
    await prefix.waitForLog(`worker process ${victim} exited on signal 9`);
    await waitFor('the replacement', () => (master.liveWorkers().length === 2 ? true : undefined));
    for (let i = 0; i < 10; i++) assert.equal(await bodyOf(port), 'two\n');
  });

  it('waits for a request in flight on SIGQUIT, exits 0 and removes the pid file', async () => {
    const answer = await requestInFlight(port, 600, () => master.signal('SIGQUIT'));
    assert.deepEqual(answer, { status: 'HTTP/1.1 200 OK', body: 'two\n' });
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    assert.equal(existsSync(prefix.pidPath), false);
  });
});

describe('fast shutdown', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest;
  let port: number;

  before(async () => {
    port = await freePort();
    master = await startMaster({ prefix, conf: httpConf({ port, body: 'fast' }), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    prefix.remove();
  });

  it('does not wait for a request in flight on SIGTERM', async () => {
    const answer = await requestInFlight(port, 600, () => master.signal('SIGTERM'));
    assert.ok('error' in answer, `expected the request to be cut, got ${JSON.stringify(answer)}`);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
    assert.equal(existsSync(prefix.pidPath), false);
  });
});
