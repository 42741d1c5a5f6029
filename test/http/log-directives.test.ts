/** access_log with variables and gzip, and open_log_file_cache: what -t accepts and nginx's words for what it refuses. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

const inServer = (directives: string): string => `http { log_format t $uri; server { ${directives} } }`;

describe('access_log with variables, gzip and open_log_file_cache', () => {
  it('makes a path with variables absolute against the prefix and keeps it unbuffered', () => {
    const config = load(inServer('access_log logs/$host.log t; open_log_file_cache max=10 inactive=30s min_uses=2 valid=2m;'), '/srv/p');
    const server = config.main.child('http')?.blocks[0];
    const target = server?.get('access_log').targets[0];
    assert.equal(target?.path, '/srv/p/logs/$host.log');
    assert.ok(target?.pathTemplate !== undefined);
    assert.equal(target?.buffer, undefined);
    assert.deepEqual(server?.get('open_log_file_cache'), { max: 10, inactiveMs: 30_000, minUses: 2, validMs: 120_000 });
  });

  it('gives gzip level 1 and a 64k buffer by default, and keeps a given buffer', () => {
    const config = load(inServer('access_log /l/a.log t gzip; access_log /l/b.log t gzip=9 buffer=1k flush=1s;'));
    const [a, b] = config.main.child('http')?.blocks[0]?.get('access_log').targets ?? [];
    assert.deepEqual([a?.gzip, a?.buffer], [1, 65536]);
    assert.deepEqual([b?.gzip, b?.buffer, b?.flush], [9, 1024, 1000]);
  });

  it('inherits open_log_file_cache, and off turns it off', () => {
    const config = load('http { open_log_file_cache max=3; server { location / { } location /off { open_log_file_cache off; } } }');
    const [inherits, off] = config.main.child('http')?.blocks[0]?.blocks ?? [];
    assert.equal(inherits?.get('open_log_file_cache')?.max, 3);
    assert.equal(off?.get('open_log_file_cache'), undefined);
  });

  const refusals: readonly (readonly [string, string])[] = [
    ['access_log logs/$host.log t buffer=4k;', 'buffered logs cannot have variables in name'],
    ['access_log logs/$host.log t gzip;', 'buffered logs cannot have variables in name'],
    ['access_log /l/a.log t gzip=0;', 'invalid compression level "0"'],
    ['access_log /l/a.log t gzip=10;', 'invalid compression level "10"'],
    ['access_log /l/a.log t gzip=;', 'invalid compression level ""'],
    ['access_log /l/a.log t gzip=x;', 'invalid compression level "x"'],
    ['access_log /l/a.log t buffer=1k; access_log /l/a.log t buffer=1k gzip;', 'access_log "/l/a.log" already defined with conflicting parameters'],
    ['access_log logs/$nosuch.log t;', 'unknown "nosuch" variable'],
    ['open_log_file_cache inactive=10s;', '"open_log_file_cache" must have "max" parameter'],
    ['open_log_file_cache max=0;', '"open_log_file_cache" must have "max" parameter'],
    ['open_log_file_cache max=x;', 'invalid "open_log_file_cache" parameter "max=x"'],
    ['open_log_file_cache max=2 inactive=1ms;', 'invalid "open_log_file_cache" parameter "inactive=1ms"'],
    ['open_log_file_cache max=2 foo;', 'invalid "open_log_file_cache" parameter "foo"'],
    ['open_log_file_cache max=2; open_log_file_cache max=3;', '"open_log_file_cache" directive is duplicate'],
  ];
  for (const [directives, message] of refusals) {
    it(`refuses ${directives}`, () => {
      assert.match(errorOf(inServer(directives)), new RegExp(`^${message.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
    });
  }
});
