/** open_log_file_cache's LRU on real files: kept descriptors follow a renamed file until `valid`, evicted and unkept ones reopen the path. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LogFileCache } from '../../src/http/log-file-cache.js';

describe('open_log_file_cache', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-log-cache-'));
  const caches: LogFileCache[] = [];
  const cacheOf = (spec: ConstructorParameters<typeof LogFileCache>[0]): LogFileCache => {
    const cache = new LogFileCache(spec);
    caches.push(cache);
    return cache;
  };
  after(() => {
    for (const cache of caches) cache.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const read = (name: string): string => readFileSync(join(dir, name), 'latin1');

  it('keeps the descriptors of the max most recently used paths, and closes the least recently used one for a new path', () => {
    const cache = cacheOf({ max: 2, inactiveMs: 3_600_000, minUses: 1, validMs: 3_600_000 });
    for (const name of ['lru-a', 'lru-b', 'lru-c']) cache.write(join(dir, name), `${name}\n`);
    renameSync(join(dir, 'lru-a'), join(dir, 'lru-a.moved'));
    renameSync(join(dir, 'lru-b'), join(dir, 'lru-b.moved'));
    // b is still open (written to where it went); a was evicted by c and opens its path anew.
    cache.write(join(dir, 'lru-b'), 'lru-b again\n');
    cache.write(join(dir, 'lru-a'), 'lru-a again\n');
    assert.equal(read('lru-b.moved'), 'lru-b\nlru-b again\n');
    assert.equal(read('lru-a.moved'), 'lru-a\n');
    assert.equal(read('lru-a'), 'lru-a again\n');
  });

  it('keeps a descriptor only once a path was used min_uses times', () => {
    const cache = cacheOf({ max: 10, inactiveMs: 3_600_000, minUses: 2, validMs: 3_600_000 });
    const path = join(dir, 'uses');
    cache.write(path, 'one\n');
    renameSync(path, `${path}.1`);
    cache.write(path, 'two\n');
    renameSync(path, `${path}.2`);
    cache.write(path, 'three\n');
    assert.equal(read('uses.1'), 'one\n');
    assert.equal(read('uses.2'), 'two\nthree\n');
  });

  it('checks the path again after valid, and reopens it when the file there is another', () => {
    const cache = cacheOf({ max: 10, inactiveMs: 3_600_000, minUses: 1, validMs: 0 });
    const path = join(dir, 'valid');
    cache.write(path, 'before\n');
    renameSync(path, `${path}.rotated`);
    cache.write(path, 'after\n');
    assert.equal(read('valid.rotated'), 'before\n');
    assert.equal(read('valid'), 'after\n');
  });

  it('takes no place for a path that cannot be opened, and throws what open(2) threw', () => {
    const cache = cacheOf({ max: 1, inactiveMs: 3_600_000, minUses: 1, validMs: 3_600_000 });
    const kept = join(dir, 'kept');
    cache.write(kept, 'one\n');
    assert.throws(() => cache.write(join(dir, 'absent', 'x'), 'x\n'), { code: 'ENOENT' });
    renameSync(kept, `${kept}.moved`);
    cache.write(kept, 'two\n');
    assert.equal(read('kept.moved'), 'one\ntwo\n');
  });
});
