/**
 * Reloads with a real master under stream sessions: a session opened before the reload lives on
 * its draining worker until it ends, new sessions are served throughout (none refused), and
 * worker_shutdown_timeout ends what is left.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, isAlive, sleep, startMaster, waitFor } from '../e2e/helpers/masters.js';
import { echoBackend, exchange, type Backend } from './helpers.js';

function conf(httpPort: number, streamPort: number, backend: number, extra = ''): string {
  return `worker_processes 2;
error_log logs/error.log notice;
${extra}
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${httpPort}; location / { return 200 "up\\n"; } }
}
stream { proxy_half_close on;
    server { listen 127.0.0.1:${streamPort}; proxy_pass 127.0.0.1:${backend}; }
}
`;
}

/** A long-lived session: writes a line and resolves its echo. */
class Session {
  readonly socket: Socket;
  closed = false;
  #received = '';

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1' });
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => (this.#received += chunk));
    this.socket.on('close', () => (this.closed = true));
    this.socket.on('error', () => undefined);
  }

  async echo(text: string): Promise<string> {
    const start = this.#received.length;
    this.socket.write(text);
    return waitFor(`echo of ${text}`, () => (this.#received.length >= start + text.length ? this.#received.slice(start, start + text.length) : undefined), 5_000);
  }
}

describe('stream sessions across a reload', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let backend: Backend;
  let httpPort = 0;
  let streamPort = 0;

  before(async () => {
    backend = await echoBackend();
    httpPort = await freePort();
    streamPort = await freePort();
    master = await startMaster({ prefix, port: httpPort, program: 'hitless', conf: conf(httpPort, streamPort, backend.port) });
  });
  after(async () => {
    await master?.stop();
    await backend.stop();
    prefix.remove();
  });

  it('keeps an open session on the old worker until it ends, and refuses no new session meanwhile', async () => {
    assert.ok(master !== undefined);
    const firstWorkers = await waitFor('two workers', () => (master?.liveWorkers().length === 2 ? master.liveWorkers() : undefined));
    const long = new Session(streamPort);
    assert.equal(await long.echo('before\n'), 'before\n');

    // New sessions, one after another, for the whole reload: each must echo.
    let stop = false;
    let served = 0;
    const failures: string[] = [];
    const load = (async () => {
      while (!stop) {
        try {
          const answer = (await exchange(streamPort, `n${served}`, { timeoutMs: 5_000 })).toString();
          if (answer === `n${served}`) served++;
          else failures.push(`got ${JSON.stringify(answer)}`);
        } catch (err) {
          failures.push(String(err));
        }
      }
    })();

    prefix.writeConf(conf(httpPort, streamPort, backend.port, '# reloaded'));
    master.signal('SIGHUP');
    await prefix.waitForLog('gracefully shutting down', 2);
    const newWorkers = await waitFor('the new workers', () => {
      const fresh = master?.liveWorkers().filter((pid) => !firstWorkers.includes(pid)) ?? [];
      return fresh.length === 2 ? fresh : undefined;
    });
    await sleep(300);
    stop = true;
    await load;
    assert.deepEqual(failures, []);
    assert.ok(served > 0);

    // The old session still works, served by its draining worker, which is still alive for it.
    assert.equal(long.closed, false);
    assert.equal(await long.echo('after\n'), 'after\n');
    assert.equal(firstWorkers.filter(isAlive).length, 1, prefix.errorLog());

    // Once it ends, its worker exits.
    long.socket.end();
    await waitFor('the old workers to exit', () => (firstWorkers.some(isAlive) ? undefined : true));
    assert.deepEqual(master.liveWorkers().sort(), [...newWorkers].sort());
  });
});

describe('worker_shutdown_timeout under a stream session', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let backend: Backend;
  let httpPort = 0;
  let streamPort = 0;

  before(async () => {
    backend = await echoBackend();
    httpPort = await freePort();
    streamPort = await freePort();
    master = await startMaster({ prefix, port: httpPort, program: 'hitless', conf: conf(httpPort, streamPort, backend.port, 'worker_shutdown_timeout 500ms;') });
  });
  after(async () => {
    await master?.stop();
    await backend.stop();
    prefix.remove();
  });

  it('closes a session still open when the draining worker\'s timeout passes', async () => {
    assert.ok(master !== undefined);
    await waitFor('two workers', () => (master?.liveWorkers().length === 2 ? true : undefined));
    const long = new Session(streamPort);
    assert.equal(await long.echo('hello\n'), 'hello\n');
    master.signal('SIGHUP');
    await prefix.waitForLog('gracefully shutting down', 2);
    await waitFor('the session to be closed', () => (long.closed ? true : undefined), 10_000);
    // A new session is served by the new workers.
    assert.equal((await exchange(streamPort, 'fresh')).toString(), 'fresh');
  });
});
