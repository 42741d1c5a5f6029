import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acceptsBrotli } from '../../src/http/brotli-module.js';
import { errorOf, load } from './helpers.js';

describe('brotli directives (google/ngx_brotli)', () => {
  it('refuses bad values in the module\'s words', () => {
    assert.equal(errorOf('http { brotli_comp_level 12; }'), 'value must be between 0 and 11 in /x.conf:1');
    assert.equal(errorOf('http { brotli_comp_level x; }'), '"brotli_comp_level" directive invalid number in /x.conf:1');
    assert.equal(errorOf('http { brotli_window 3k; }'), '"brotli_window" directive must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, 512k, 1m, 2m, 4m, 8m or 16m in /x.conf:1');
    assert.equal(errorOf('http { brotli_window 32m; }'), '"brotli_window" directive must be 1k, 2k, 4k, 8k, 16k, 32k, 64k, 128k, 256k, 512k, 1m, 2m, 4m, 8m or 16m in /x.conf:1');
    assert.equal(errorOf('http { brotli_min_length x; }'), '"brotli_min_length" directive invalid value in /x.conf:1');
    assert.equal(errorOf('http { brotli_static maybe; }'), 'invalid value "maybe" in /x.conf:1');
    assert.equal(errorOf('http { brotli_buffers 0 4k; }'), '"brotli_buffers" directive invalid value in /x.conf:1');
  });

  it('has ngx_brotli\'s defaults and stores the window as its log2', () => {
    const http = load('http { brotli_window 1k; }').main.child('http');
    assert.equal(http?.get('brotli'), false);
    assert.equal(http?.get('brotli_comp_level'), 6);
    assert.equal(http?.get('brotli_min_length'), 20);
    assert.equal(http?.get('brotli_window'), 10);
    assert.equal(http?.get('brotli_static'), 'off');
    assert.ok(http?.get('brotli_types').types.has('text/html'));
    assert.equal(load('http { }').main.child('http')?.get('brotli_window'), 19);
  });

  it('warns at -t that brotli_buffers is ignored', () => {
    const config = load('http { brotli_buffers 16 8k; }');
    assert.ok(config.warnings.some((w) => w.reason === '"brotli_buffers" is deprecated and ignored, as in ngx_brotli'));
  });
});

describe('ngx_brotli check_accept_encoding()', () => {
  it('takes br as a token, refused only by a q of zero', () => {
    for (const yes of ['br', 'gzip, br', 'gzip,br', 'BR', 'br;q=1', 'br;q=0.5', 'br ; q = 0.001', 'br;level=1', 'br , gzip', 'xbr, br']) assert.equal(acceptsBrotli(yes), true, yes);
    for (const no of [undefined, '', 'b', 'brotli', 'xbr', 'br;q=0', 'br;q=0.', 'br;q=0.0', 'br;q=0.000', 'br;q=0.0001', 'br;q=0,gzip', 'gzip;q=1']) assert.equal(acceptsBrotli(no), false, String(no));
  });
});
