/** `-s stop|quit|reopen|reload`: the pid file read as nginx reads it, and nginx's messages. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { PidFileError, readPidFile, signalMaster } from '../../src/process/index.js';
import { TestPrefix, waitFor } from '../e2e/helpers/masters.js';

describe('signalMaster', () => {
  const prefix = new TestPrefix();
  after(() => prefix.remove());

  it('reports a missing pid file as nginx does', () => {
    assert.throws(() => signalMaster(prefix.pidPath, 'reload'), (err: unknown) => {
      assert.ok(err instanceof PidFileError);
      assert.equal(err.message, `open() "${prefix.pidPath}" failed (2: No such file or directory)`);
      assert.equal(err.code, 'HITLESS_ERR_SIGNAL');
      return true;
    });
  });

  it('refuses a pid file that holds no number', () => {
    writeFileSync(prefix.pidPath, 'x\n');
    assert.throws(() => signalMaster(prefix.pidPath, 'stop'), { message: `invalid PID number "x" in "${prefix.pidPath}"` });
    writeFileSync(prefix.pidPath, '');
    assert.throws(() => readPidFile(prefix.pidPath), { message: `invalid PID number "" in "${prefix.pidPath}"` });
  });

  it('reports a pid with no process behind it as kill() failed at [alert]', async () => {
    const child = spawn(process.execPath, ['-e', '']);
    const pid = child.pid;
    assert.ok(pid !== undefined);
    await new Promise((resolve) => child.once('exit', resolve));
    writeFileSync(prefix.pidPath, `${pid}\n`);
    assert.throws(() => signalMaster(prefix.pidPath, 'reload'), (err: unknown) => {
      assert.ok(err instanceof PidFileError);
      assert.equal(err.message, `kill(${pid}, 1) failed (3: No such process)`);
      assert.equal(err.level, 'alert');
      return true;
    });
  });

  it('sends the signal each command names, ignoring a trailing CR LF', async () => {
    const child = spawn(process.execPath, ['-e', 'process.on("SIGUSR1", () => process.exit(7)); process.stdout.write("ready"); setTimeout(() => {}, 10000)']);
    after(() => child.kill('SIGKILL'));
    const exited = new Promise((resolve) => child.once('exit', resolve));
    assert.ok(child.pid !== undefined);
    writeFileSync(prefix.pidPath, `${child.pid}\r\n`);
    // The child installs its handler only once it runs; until then SIGUSR1 would kill it differently.
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    await waitFor('the child to install its handler', () => (output === 'ready' ? true : undefined));
    assert.equal(signalMaster(prefix.pidPath, 'reopen'), child.pid);
    assert.equal(await exited, 7);
  });
});
