import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { configureArguments } from '../../src/cli/version.js';
import { createRegistry } from '../../src/modules.js';
import { errorOf, load } from './helpers.js';

describe('gunzip directives (ngx_http_gunzip_filter_module)', () => {
  it('refuses bad values in nginx\'s words', () => {
    assert.equal(errorOf('http { gunzip maybe; }'), 'invalid value "maybe" in "gunzip" directive, it must be "on" or "off" in /x.conf:1');
    assert.equal(errorOf('http { gunzip_buffers 0 4k; }'), '"gunzip_buffers" directive invalid value in /x.conf:1');
    assert.equal(errorOf('http { gunzip_buffers 4 x; }'), '"gunzip_buffers" directive invalid value in /x.conf:1');
    assert.equal(errorOf('http { server { location / { if ($uri) { gunzip on; } } } }'), '"gunzip" directive is not allowed here in /x.conf:1');
  });

  it('warns at -t that gunzip_buffers sets only the chunk size', () => {
    const config = load('http { gunzip on; gunzip_buffers 4 16k; }');
    assert.ok(config.warnings.some((w) => w.reason === '"gunzip_buffers" sets only the size of zlib\'s output chunks in hitless; the number 4 is not used (the stream\'s back-pressure bounds the memory of a response)'));
  });

  it('is in -V as --with-http_gunzip_module', () => {
    assert.match(configureArguments(createRegistry()), / --with-http_gunzip_module( |$)/);
  });
});
