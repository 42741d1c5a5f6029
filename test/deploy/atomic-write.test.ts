/** Atomic writes (mode from creation, rename, durability calls) and backups (names, modes, pruning). */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { stageFile, writeFileAtomic, writeNewFile } from '../../src/core/atomic-write.js';
import { backupFile, backupPath, backupStamp, listBackups, pruneBackups } from '../../src/deploy/backup.js';
import { FileChangeSet } from '../../src/deploy/file-change.js';
import { tempDir } from '../helpers/tmp.js';

// strace is installed by .ci/run; it shows the syscalls, which nothing else can.
const STRACE = '/usr/bin/strace';
const atomicWriteModule = fileURLToPath(new URL('../../src/core/atomic-write.js', import.meta.url));

describe('atomic writes', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('creates every temporary file 0600 with O_EXCL, and only then widens it to the destination\'s mode', () => {
    const dest = dir.write('traced/traced.key', 'old');
    const script = `import { stageFile } from ${JSON.stringify(atomicWriteModule)};\nawait stageFile(${JSON.stringify(dest)}, Buffer.from('x'), { mode: 0o640 });\n`;
    const trace = join(dir.path, 'traced/trace.txt');
    const result = spawnSync(STRACE, ['-f', '-e', 'trace=openat,fchmod,chmod', '-o', trace, process.execPath, '--input-type=module', '-e', script], { encoding: 'utf8' });
    if (result.status !== 0 && /ptrace|Operation not permitted/.test(result.stderr)) return; // No ptrace in this sandbox.
    assert.equal(result.status, 0, result.stderr);
    const lines = readFileSync(trace, 'utf8').split('\n');
    const open = lines.findIndex((line) => line.includes('.traced.key.hitless-tmp.'));
    assert.match(lines[open] ?? '', /O_WRONLY\|O_CREAT\|O_EXCL\|O_NOFOLLOW.*, 0600\)/);
    const chmods = lines.filter((line) => /\bf?chmod\(/.test(line));
    assert.deepEqual(chmods.map((line) => /, (0\d+)\)/.exec(line)?.[1]), ['0640']);
  });

  it('gives the destination mode even under umask 0, and never leaves the temporary file', async () => {
    const old = process.umask(0);
    try {
      const key = join(dir.path, 'a.key');
      await writeFileAtomic(key, Buffer.from('k1'), { mode: 0o600 });
      assert.equal(statSync(key).mode & 0o777, 0o600);
      const cert = join(dir.path, 'a.crt');
      await writeFileAtomic(cert, Buffer.from('c1'), { mode: 0o644 });
      assert.equal(statSync(cert).mode & 0o777, 0o644);
    } finally {
      process.umask(old);
    }
    assert.deepEqual(readdirSync(dir.path).filter((name) => name.includes('hitless-tmp')), []);
  });

  it('stages beside the destination under a hidden name, and refuses to reuse an existing file', async () => {
    const dest = join(dir.path, 'b.crt');
    const staged = await stageFile(dest, Buffer.from('new'), { mode: 0o644 });
    assert.equal(join(staged, '..'), dir.path);
    assert.match(staged, /\/\.b\.crt\.hitless-tmp\.\d+\.[0-9a-f]{8}$/);
    await assert.rejects(writeNewFile(staged, Buffer.from('again'), { mode: 0o644 }), { code: 'EEXIST' });
    assert.equal(readFileSync(staged, 'utf8'), 'new');
  });

  it('replaces a file so that readers see the old bytes or the new, never a mix', async () => {
    const dest = join(dir.path, 'big.crt');
    const a = Buffer.alloc(1 << 20, 'a');
    const b = Buffer.alloc(1 << 20, 'b');
    writeFileSync(dest, a);
    let reads = 0;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const bytes = readFileSync(dest);
        assert.ok(bytes.equals(a) || bytes.equals(b), 'a torn read');
        reads++;
        await new Promise((resolve) => setImmediate(resolve));
      }
    })();
    for (let i = 0; i < 20; i++) await writeFileAtomic(dest, i % 2 === 0 ? b : a, { mode: 0o644 });
    stop = true;
    await reader;
    assert.ok(reads > 0);
  });

  it('removes temporary files a dead deploy left beside a destination, and only those', async () => {
    const dest = dir.write('left/x.crt', 'x');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' }).stdout;
    const stale = dir.write(`left/.x.crt.hitless-tmp.${dead}.0123abcd`, 'old');
    const mine = dir.write(`left/.x.crt.hitless-stage.${process.pid}.0123abcd`, 'in use');
    const other = dir.write(`left/.x.crt.hitless-tmp.${dead}.nothex`, 'not ours');
    await FileChangeSet.open([{ destination: { role: 'certificate', path: dest }, data: Buffer.from('y') }], { keepBackups: 5, now: new Date() }, async () => undefined);
    assert.deepEqual([existsSync(stale), existsSync(mine), existsSync(other)], [false, true, true]);
  });

  it('keeps the owner of the destination', async () => {
    const dest = join(dir.path, 'owned.crt');
    writeFileSync(dest, 'old');
    chownSync(dest, 4321, 4322);
    await writeFileAtomic(dest, Buffer.from('new'), { mode: 0o644, uid: 4321, gid: 4322 });
    const stat = statSync(dest);
    assert.deepEqual([stat.uid, stat.gid], [4321, 4322]);
  });
});

describe('backups', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('names backups <file>.hitless-bak.<timestamp>, sortable, hidden for configuration files', () => {
    const stamp = backupStamp(new Date('2024-01-02T03:04:05.678Z'));
    assert.equal(stamp, '20240102T030405.678Z');
    assert.equal(backupPath('/etc/ssl/a.crt', stamp, false), '/etc/ssl/a.crt.hitless-bak.20240102T030405.678Z');
    assert.equal(backupPath('/etc/nginx/sites-enabled/a', stamp, true), '/etc/nginx/sites-enabled/.a.hitless-bak.20240102T030405.678Z');
  });

  it('never overwrites a backup taken in the same millisecond', async () => {
    const path = join(dir.path, 'same.crt');
    const first = await backupFile(path, Buffer.from('1'), { mode: 0o644 }, { stamp: 'T1', hidden: false });
    const second = await backupFile(path, Buffer.from('2'), { mode: 0o644 }, { stamp: 'T1', hidden: false });
    assert.notEqual(first, second);
    assert.equal(readFileSync(first, 'utf8'), '1');
  });

  it('keeps the newest N and deletes the rest', async () => {
    const path = join(dir.path, 'pruned.crt');
    for (let i = 0; i < 7; i++) await backupFile(path, Buffer.from(String(i)), { mode: 0o644 }, { stamp: backupStamp(new Date(Date.UTC(2024, 0, 1, 0, 0, i))), hidden: false });
    const removed = await pruneBackups(path, 5);
    assert.equal(removed.length, 2);
    const kept = await listBackups(path);
    assert.deepEqual(kept.map((p) => readFileSync(p, 'utf8')), ['2', '3', '4', '5', '6']);
  });

  it('backs a key up 0600 whatever its mode, and a certificate with its own mode', async () => {
    const key = dir.write('k/site.key', 'KEY');
    const cert = dir.write('k/site.crt', 'CERT');
    chmodSync(key, 0o640);
    chmodSync(cert, 0o444);
    const change = await FileChangeSet.open(
      [
        { destination: { role: 'key', path: key }, data: Buffer.from('KEY2') },
        { destination: { role: 'certificate', path: cert }, data: Buffer.from('CERT2') },
      ],
      { keepBackups: 5, now: new Date() },
      async () => undefined,
    );
    await change.stage();
    await change.backup();
    await change.commit();
    const [keyReport, certReport] = change.files();
    assert.equal(statSync(keyReport?.backup as string).mode & 0o777, 0o600);
    assert.equal(statSync(certReport?.backup as string).mode & 0o777, 0o444);
    assert.equal(statSync(key).mode & 0o777, 0o640, 'the live key keeps its mode');
    assert.equal(keyReport?.sha256, undefined, 'no digest of a key in reports');
    await change.restore();
    assert.equal(readFileSync(key, 'utf8'), 'KEY');
    assert.equal(readFileSync(cert, 'utf8'), 'CERT');
    assert.equal(statSync(key).mode & 0o777, 0o640);
  });
});
