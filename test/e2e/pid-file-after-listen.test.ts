/**
 * The pid file appears only once every listening socket accepts connections, as nginx creates it
 * after its sockets are open: nginx-tests, systemd's `Type=forking` with `PIDFile=` and scripts
 * connect the moment the file exists. Each test polls for the file every millisecond and then
 * connects to every configured address (http and stream) at once; a refused connection fails it.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, isAlive, sleep, waitFor } from './helpers/masters.js';

function conf(http: readonly number[], stream: readonly number[]): string {
  return [
    'worker_processes 2;',
    'error_log logs/error.log notice;',
    'events {}',
    'http {',
    ...http.map((port) => `  server { listen 127.0.0.1:${port}; location / { return 200 "http ${port}\\n"; } }`),
    '}',
    'stream {',
    ...stream.map((port) => `  server { listen 127.0.0.1:${port}; return "stream ${port}\\n"; }`),
    '}',
    '',
  ].join('\n');
}

/** Polls every millisecond, for at most 20 s, until `path` holds a pid that `accept` takes. */
async function pidFileAppears(master: MasterUnderTest, accept: (pid: number) => boolean, path = master.prefix.pidPath): Promise<number> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    const pid = master.prefix.pid(path);
    if (pid !== undefined && accept(pid)) return pid;
    if (Date.now() > deadline) throw new Error(`no pid file ${path} after 20 s: ${master.stderr}${master.prefix.errorLog()}`);
    await sleep(1);
  }
}

/** Connects to the port once; resolves with 'connected' or the error code (ECONNREFUSED). */
function tryConnect(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.setTimeout(5_000, () => socket.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

async function connectToAll(ports: readonly number[]): Promise<void> {
  const results = await Promise.all(ports.map(async (port) => [port, await tryConnect(port)] as const));
  assert.deepEqual(results, ports.map((port) => [port, 'connected']));
}

async function freePorts(count: number): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort());
  return [...ports];
}

describe('pid file after listen', () => {
  const started: { master: MasterUnderTest; prefix: TestPrefix }[] = [];
  after(async () => {
    for (const { master, prefix } of started) {
      await master.stop();
      prefix.remove();
    }
  });

  function start(text: string, args: readonly string[]): { master: MasterUnderTest; prefix: TestPrefix } {
    const prefix = new TestPrefix();
    prefix.writeConf(text);
    const master = new MasterUnderTest(prefix, 'hitless', args);
    started.push({ master, prefix });
    return { master, prefix };
  }

  it('daemon off: every http and stream address accepts the moment the pid file exists', async () => {
    const [h1 = 0, h2 = 0, s1 = 0] = await freePorts(3);
    const { master } = start(conf([h1, h2], [s1]), ['-g', 'daemon off;']);
    const pid = await pidFileAppears(master, () => true);
    await connectToAll([h1, h2, s1]);
    assert.equal(pid, master.child.pid);
  });

  it('daemon on: every address accepts the moment the daemon\'s pid file exists', async () => {
    const [h1 = 0, s1 = 0] = await freePorts(2);
    const { master } = start(conf([h1], [s1]), []);
    const pid = await pidFileAppears(master, () => true);
    await connectToAll([h1, s1]);
    assert.notEqual(pid, master.child.pid);
    assert.deepEqual(await master.exited, { code: 0, signal: null });
  });

  it('binary upgrade: the new master\'s pid file appears once the addresses it adds accept', async () => {
    const [h1 = 0, s1 = 0] = await freePorts(2);
    const { master, prefix } = start(conf([h1], [s1]), ['-g', 'daemon off;']);
    const oldPid = await pidFileAppears(master, () => true);
    assert.equal(oldPid, master.child.pid);
    // Picked only now, so that no other test on the machine has the time to take them.
    const [h2 = 0, s2 = 0] = (await freePorts(4)).filter((port) => port !== h1 && port !== s1);
    prefix.writeConf(conf([h1, h2], [s1, s2]));
    process.kill(prefix.requirePid(), 'SIGUSR2');
    const newPid = await pidFileAppears(master, (pid) => pid !== oldPid);
    await connectToAll([h1, h2, s1, s2]);
    // nginx's rename: the old master's pid is in `.oldbin` while both run.
    assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), oldPid);
    assert.match(readFileSync(`/proc/${newPid}/cmdline`, 'utf8'), /^hitless: master process /);
    process.kill(oldPid, 'SIGQUIT');
    await waitFor('the old master to exit', () => (!isAlive(oldPid) ? true : undefined), 15_000);
    assert.equal(prefix.pid(`${prefix.pidPath}.oldbin`), undefined);
    assert.equal(prefix.pid(), newPid);
  });
});
