import assert from 'node:assert/strict';
import { fstatSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { OpenFileCache } from '../../src/http/open-file-cache.js';
import type { OpenSettings } from '../../src/http/open-file.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { configErrorOf } from '../helpers/config-error.js';
import { load } from './helpers.js';

const SYNC: OpenSettings = { symlinks: 'off', from: '', threads: false };
const THREADS: OpenSettings = { symlinks: 'off', from: '', threads: true };
const USE = { valid: 60, minUses: 1, errors: false };

/** True while `fd` is open on the file of `ino` (a closed number may be reused by the next open). */
function holds(fd: number, ino: number): boolean {
  try {
    return fstatSync(fd).ino === ino;
  } catch {
    return false;
  }
}

describe('open_file_cache (ngx_open_file_cache.c)', () => {
  let dir: TempDir;
  let now = 1000;
  const clock = (): number => now;

  before(() => {
    dir = tempDir({ 'a.txt': 'aaa', 'b.txt': 'bbb', 'c.txt': 'ccc' });
  });
  after(() => dir.remove());

  it('keeps the descriptor between uses and closes it when the entry is dropped for max', async () => {
    const cache = new OpenFileCache(2, 60, clock);
    const first = await cache.open(join(dir.path, 'a.txt'), SYNC, USE);
    first.release();
    assert.ok(holds(first.fd, first.info.ino));
    const again = await cache.open(join(dir.path, 'a.txt'), THREADS, USE);
    assert.equal(again.fd, first.fd);
    again.release();
    (await cache.open(join(dir.path, 'b.txt'), SYNC, USE)).release();
    (await cache.open(join(dir.path, 'c.txt'), SYNC, USE)).release();
    assert.equal(cache.size, 2);
    assert.equal(holds(first.fd, first.info.ino), false);
    cache.close();
  });

  it('closes the descriptor after each use until min_uses is reached', async () => {
    const cache = new OpenFileCache(10, 60, clock);
    const use = { ...USE, minUses: 2 };
    const first = await cache.open(join(dir.path, 'a.txt'), SYNC, use);
    first.release();
    assert.equal(holds(first.fd, first.info.ino), false);
    const second = await cache.open(join(dir.path, 'a.txt'), SYNC, use);
    second.release();
    assert.ok(holds(second.fd, second.info.ino));
    cache.close();
    assert.equal(holds(second.fd, second.info.ino), false);
  });

  it('drops entries unused for inactive, and a reader keeps its descriptor until it releases it', async () => {
    const cache = new OpenFileCache(10, 30, clock);
    const reading = await cache.open(join(dir.path, 'a.txt'), SYNC, USE);
    now += 31;
    (await cache.open(join(dir.path, 'b.txt'), SYNC, USE)).release();
    assert.equal(cache.size, 1);
    assert.ok(holds(reading.fd, reading.info.ino));
    reading.release();
    assert.equal(holds(reading.fd, reading.info.ino), false);
    cache.close();
  });

  it('revalidates after valid: the same inode keeps its descriptor, another one is opened', async () => {
    const cache = new OpenFileCache(10, 3600, clock);
    const path = join(dir.path, 'a.txt');
    const first = await cache.open(path, SYNC, USE);
    first.release();
    writeFileSync(path, 'longer now');
    now += 61;
    const same = await cache.open(path, SYNC, USE);
    assert.equal(same.fd, first.fd);
    assert.equal(same.info.size, 10);
    same.release();
    writeFileSync(join(dir.path, 'a.new'), 'replaced!');
    renameSync(join(dir.path, 'a.new'), path);
    now += 61;
    const other = await cache.open(path, SYNC, USE);
    assert.equal(other.info.size, 9);
    assert.notEqual(other.info.ino, first.info.ino);
    assert.equal(holds(first.fd, first.info.ino), false);
    other.release();
    cache.close();
  });

  it('caches a lookup error only with open_file_cache_errors on', async () => {
    const cache = new OpenFileCache(10, 3600, clock);
    const path = join(dir.path, 'later.txt');
    await assert.rejects(cache.open(path, SYNC, USE), { code: 'ENOENT' });
    await assert.rejects(cache.open(path, SYNC, { ...USE, errors: true }), { code: 'ENOENT' });
    writeFileSync(path, 'x');
    await assert.rejects(cache.open(path, SYNC, { ...USE, errors: true }), { code: 'ENOENT' });
    now += 61;
    const found = await cache.open(path, SYNC, { ...USE, errors: true });
    found.release();
    rmSync(path);
    cache.close();
  });

  it('checks the directive as ngx_http_core_open_file_cache() does', () => {
    assert.match(configErrorOf(() => load('http { open_file_cache inactive=10s; }'), 'no max'), /^"open_file_cache" must have the "max" parameter in \/x\.conf:1$/);
    assert.match(configErrorOf(() => load('http { open_file_cache max=0; }'), 'max=0'), /^invalid "open_file_cache" parameter "max=0" in \/x\.conf:1$/);
    assert.match(configErrorOf(() => load('http { open_file_cache max=10 inactive=1x; }'), 'inactive'), /^invalid "open_file_cache" parameter "inactive=1x" in \/x\.conf:1$/);
    assert.match(configErrorOf(() => load('http { open_file_cache_valid 1x; }'), 'valid'), /^invalid value in \/x\.conf:1$/);
    load('http { open_file_cache max=1000 inactive=20s; open_file_cache_valid 30s; open_file_cache_min_uses 2; open_file_cache_errors on; server { location / { open_file_cache off; } } }');
  });
});
