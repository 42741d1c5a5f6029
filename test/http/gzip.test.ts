import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptsEncoding, gzipRatio, weakenEtag } from '../../src/http/gzip-filter.js';
import { errorOf, load } from './helpers.js';

describe('gzip directives (ngx_http_gzip_filter_module)', () => {
  it('refuses bad values in nginx\'s words', () => {
    assert.equal(errorOf('http { gzip_comp_level 10; }'), 'value must be between 1 and 9 in /x.conf:1');
    assert.equal(errorOf('http { gzip_comp_level x; }'), '"gzip_comp_level" directive invalid number in /x.conf:1');
    assert.equal(errorOf('http { gzip_window 3k; }'), '"gzip_window" directive must be 512, 1k, 2k, 4k, 8k, 16k, or 32k in /x.conf:1');
    assert.equal(errorOf('http { gzip_hash 256k; }'), '"gzip_hash" directive must be 512, 1k, 2k, 4k, 8k, 16k, 32k, 64k, or 128k in /x.conf:1');
    assert.equal(errorOf('http { gzip_proxied sometimes; }'), 'invalid value "sometimes" in /x.conf:1');
    assert.equal(errorOf('http { gzip_http_version 2.0; }'), 'invalid value "2.0" in /x.conf:1');
    assert.equal(errorOf('http { gzip_static maybe; }'), 'invalid value "maybe" in /x.conf:1');
    assert.match(errorOf('http { gzip_disable "(unclosed"; }'), /pcre2_compile\(\) failed|invalid regular expression/);
  });

  it('stores window and hash as zlib windowBits and memLevel', () => {
    const http = load('http { gzip_window 1k; gzip_hash 1k; gzip_types text/css *; }').main.child('http');
    assert.equal(http?.get('gzip_window'), 10);
    assert.equal(http?.get('gzip_hash'), 2);
    assert.equal(http?.get('gzip_types').any, true);
    assert.ok(http?.get('gzip_types').types.has('text/html'));
  });

  it('warns that gzip_buffers sets only the chunk size', () => {
    const config = load('http { gzip_buffers 16 8k; }');
    assert.ok(config.warnings.some((w) => w.message.startsWith('"gzip_buffers" sets only the size')));
  });
});

describe('ngx_http_gzip_accept_encoding()', () => {
  it('reads gzip as a token, with its q-value', () => {
    for (const yes of ['gzip', 'gzip, deflate', 'deflate,gzip', 'deflate, gzip;q=0.5', 'GZIP', 'gzip;q=1', 'gzip ; q=0.001']) assert.equal(acceptsEncoding(yes, 'gzip'), true, yes);
    for (const no of ['x-gzip', 'gzip;q=0', 'gzip;q=0.000', 'gzip;q=1.5', 'gzipper', 'identity', 'gzip;level=1']) assert.equal(acceptsEncoding(no, 'gzip'), false, no);
  });
});

describe('$gzip_ratio and the weak ETag', () => {
  it('formats the ratio as nginx, rounding at the third decimal', () => {
    assert.equal(gzipRatio(1000, 300), '3.33');
    assert.equal(gzipRatio(1000, 333), '3.00');
    assert.equal(gzipRatio(2000, 301), '6.64');
    assert.equal(gzipRatio(9995, 1000), '10.00');
  });

  it('weakens a strong ETag and drops one that is not quoted', () => {
    const headers = ['ETag', '"abc"'];
    weakenEtag(headers);
    assert.deepEqual(headers, ['ETag', 'W/"abc"']);
    const bad = ['ETag', 'abc', 'X', 'y'];
    weakenEtag(bad);
    assert.deepEqual(bad, ['X', 'y']);
  });
});
