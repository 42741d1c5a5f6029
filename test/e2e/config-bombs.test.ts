/**
 * Configuration bombs (issue 15): what used to end `-t` or a reload in a RangeError with a stack
 * trace, or hang it, gets a located error in nginx's voice, and a legitimate large configuration
 * (a map of 200,000 entries, a file of 200,000 lines) loads; a device (`/dev/zero`) reads as
 * empty, as nginx reads it. Every case runs the real bin/hitless;
 * the 20 s limit of runHitless is a guard against a hang, not a measure of speed.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { runHitless, type RunResult } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';
import { freePort, get, startMaster, TestPrefix, waitFor, type MasterUnderTest } from './helpers/masters.js';

const dir = tempDir();

/** `-t` on a configuration file written into the test's directory. */
function configTest(name: string, text: string): RunResult {
  return runHitless(['-t', '-c', dir.write(name, text)]);
}

/** Neither a JavaScript error nor a stack trace reached the operator. */
function assertNoStackTrace(result: RunResult): void {
  assert.doesNotMatch(result.stderr, /RangeError|TypeError|^\s+at /m, result.stderr);
}

describe('configuration bombs', () => {
  after(() => dir.remove());

  it('10,000 nested locations: a located error at the depth limit, no stack overflow', () => {
    const depth = 10_000;
    const result = configTest('nested-locations.conf', `events {}\nhttp {\nserver {\nlisten 127.0.0.1:1;\n${'location /a {\n'.repeat(depth)}${'}\n'.repeat(depth)}}\n}\n`);
    assertNoStackTrace(result);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /\[emerg\] blocks and includes nested more than 100 deep in .*nested-locations\.conf:103$/m);
  });

  it('100,000 nested http blocks: nginx\'s "not allowed here" at the second one', () => {
    const depth = 100_000;
    const result = configTest('nested-http.conf', `events {}\n${'http {\n'.repeat(depth)}${'}\n'.repeat(depth)}`);
    assertNoStackTrace(result);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /\[emerg\] "http" directive is not allowed here in .*nested-http\.conf:3$/m);
  });

  it('an include nesting itself through other files ends at the depth limit', () => {
    // a.conf includes b.conf which includes a.conf under another name: no cycle by path, only depth.
    for (let i = 0; i < 120; i++) dir.write(`chain/${i}.conf`, `include ${join(dir.path, `chain/${i + 1}.conf`)};\n`);
    dir.write('chain/120.conf', '');
    const result = configTest('chain.conf', `events {}\ninclude ${join(dir.path, 'chain/0.conf')};\n`);
    assertNoStackTrace(result);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /\[emerg\] blocks and includes nested more than 100 deep in .*chain\/99\.conf:1$/m);
  });

  it('a map of 200,000 entries (a redirect list) loads', () => {
    const entries = Array.from({ length: 200_000 }, (_, i) => `/old/${i} /new/${i};\n`).join('');
    const result = configTest('big-map.conf', `events {}\nhttp {\nmap $uri $target {\n${entries}}\nserver {\nlisten 127.0.0.1:1;\nlocation / { return 301 $target; }\n}\n}\n`);
    assertNoStackTrace(result);
    assert.equal(result.status, 0, result.stderr);
  });

  it('a file of 200,000 top-level lines is read (nginx\'s "duplicate" on the second)', () => {
    const result = configTest('long-file.conf', `events {}\n${'worker_priority 0;\n'.repeat(200_000)}`);
    assertNoStackTrace(result);
    assert.match(result.stderr, /\[emerg\] "worker_priority" directive is duplicate in .*long-file\.conf:3$/m);
  });

  it('include /dev/zero reads as empty, as nginx reads a device up to its size (0), and never hangs', () => {
    const result = configTest('zero.conf', 'events {}\ninclude /dev/zero;\ninclude /dev/null;\n');
    assertNoStackTrace(result);
    assert.equal(result.status, 0, result.stderr);
  });

  it('include of a FIFO with no writer is refused at once, also through a glob', () => {
    const fifo = join(dir.path, 'fifos/pipe.conf');
    dir.write('fifos/.keep', '');
    execFileSync('mkfifo', [fifo]);
    for (const target of [fifo, join(dir.path, 'fifos/*.conf')]) {
      const result = configTest('fifo.conf', `events {}\ninclude ${target};\n`);
      assertNoStackTrace(result);
      assert.equal(result.status, 1);
      assert.match(result.stderr, new RegExp(`\\[emerg\\] "${fifo}" is not a regular file in .*fifo\\.conf:2$`, 'm'));
    }
  });

  it('a file over 128 MiB is refused before it is read', () => {
    const big = join(dir.path, 'huge.conf');
    // Sparse: no disk is written, the size is what counts.
    const fd = openSync(big, 'w');
    ftruncateSync(fd, 128 * 1024 * 1024 + 1);
    closeSync(fd);
    const result = configTest('huge-include.conf', `events {}\ninclude ${big};\n`);
    assertNoStackTrace(result);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /\[emerg\] ".*huge\.conf" is too large: 134217729 bytes, at most 134217728 in .*huge-include\.conf:2$/m);
  });

  describe('a reload onto a bomb', () => {
    const prefix = new TestPrefix();
    let master: MasterUnderTest | undefined;
    after(async () => {
      await master?.stop();
      prefix.remove();
    });

    it('is refused with the located error, and the old generation keeps serving', async () => {
      const port = await freePort();
      const good = `worker_processes 1;\nevents {}\nhttp {\nserver {\nlisten 127.0.0.1:${port};\nlocation / { return 200 "old\\n"; }\n}\n}\n`;
      master = await startMaster({ prefix, conf: good, port, program: 'hitless' });
      const fifo = join(prefix.dir, 'conf/pipe.conf');
      execFileSync('mkfifo', [fifo]);
      prefix.writeConf(good.replace('events {}', `events {}\ninclude ${fifo};`));
      master.signal('SIGHUP');
      await prefix.waitForLog(`"${fifo}" is not a regular file in ${prefix.confPath}:3`);
      await waitFor('the old generation to answer', async () => {
        const reply = await get(port);
        return 'body' in reply && reply.body === 'old\n' ? true : undefined;
      });
    });
  });
});
