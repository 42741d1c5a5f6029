/** The pid file as the master writes it: `pid\n`, 0644, renamed into place so no reader sees it empty. */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { PidFileError, writePidFile } from '../../src/process/pid-file.js';
import { TestPrefix, waitFor } from '../e2e/helpers/masters.js';

describe('writePidFile', () => {
  const prefix = new TestPrefix();
  after(() => prefix.remove());

  it('writes the pid and a newline, mode 0644, and leaves no temporary file behind', () => {
    const path = join(prefix.dir, 'run/sub/hitless.pid');
    writePidFile(path, 4242);
    assert.equal(readFileSync(path, 'utf8'), '4242\n');
    assert.equal(statSync(path).mode & 0o777, 0o644 & ~process.umask());
    assert.deepEqual(readdirSync(join(prefix.dir, 'run/sub')), ['hitless.pid']);
  });

  it('is never seen empty or partial by a process reading it while it is rewritten', async () => {
    const path = join(prefix.dir, 'logs/race.pid');
    const done = join(prefix.dir, 'race.done');
    writePidFile(path, 1000000);
    // The reader runs in its own process, so its reads interleave with these writes for real; it
    // reads from before the first write until after the last (at most 20 s).
    const reader = spawn(process.execPath, [
      '-e',
      `const fs = require('fs'); let reads = 0; const bad = new Set(); fs.writeSync(1, 'ready\\n'); const end = Date.now() + 20000;
       while (!fs.existsSync(${JSON.stringify(done)}) && Date.now() < end) { const text = fs.readFileSync(${JSON.stringify(path)}, 'latin1'); reads++; if (!/^[0-9]{7}\\n$/.test(text)) bad.add(JSON.stringify(text)); }
       process.stdout.write(JSON.stringify({ reads, bad: [...bad] }));`,
    ], { stdio: ['ignore', 'pipe', 'inherit'] });
    let output = '';
    reader.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const exited = new Promise((resolve) => reader.once('exit', resolve));
    await waitFor('the reader to start', () => (output.startsWith('ready\n') ? true : undefined));
    let writes = 0;
    const end = Date.now() + 1200;
    while (Date.now() < end) {
      writePidFile(path, 1000000 + (writes % 9000000));
      writes++;
      if (writes % 200 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    writeFileSync(done, '');
    await exited;
    const { reads, bad } = JSON.parse(output.slice('ready\n'.length)) as { reads: number; bad: string[] };
    assert.ok(reads > 100 && writes > 100, `only ${reads} reads and ${writes} writes overlapped`);
    assert.deepEqual(bad, []);
    assert.deepEqual(readdirSync(join(prefix.dir, 'logs')), ['race.pid']);
  });

  it('names the pid file, not its temporary, when it cannot be written', () => {
    const blocker = join(prefix.dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const path = join(blocker, 'hitless.pid');
    assert.throws(() => writePidFile(path, 1), (err: unknown) => {
      assert.ok(err instanceof PidFileError);
      assert.equal(err.level, 'emerg');
      assert.match(err.message, new RegExp(`^open\\(\\) "${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}" failed \\(20: Not a directory\\)$`));
      return true;
    });
  });
});
