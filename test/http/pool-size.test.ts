/**
 * connection_pool_size and request_pool_size (http_header_buffers.t refused them as unknown):
 * checked as ngx_http_core_pool_size() checks them, then a [warn] that they have no effect.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

describe('connection_pool_size and request_pool_size', () => {
  it('are accepted in http and server with a [warn] each that they have no effect', () => {
    const config = load(`http {
      connection_pool_size 1024;
      server {
        request_pool_size 8k;
      }
    }`);
    const lines = config.warnings.map((warning) => warning.message);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0] ?? '', /^"connection_pool_size" has no effect in hitless \(V8 allocates .+\) in \/x\.conf:2$/);
    assert.match(lines[1] ?? '', /^"request_pool_size" has no effect in hitless \(.+\) in \/x\.conf:4$/);
  });

  it('refuse what nginx refuses, in its words', () => {
    assert.match(errorOf('http { connection_pool_size 64; }'), /^the pool size must be no less than 112 in \/x\.conf:1$/);
    assert.match(errorOf('http { request_pool_size 1000; }'), /^the pool size must be a multiple of 16 in \/x\.conf:1$/);
    assert.match(errorOf('http { request_pool_size 4q; }'), /^"request_pool_size" directive invalid value in \/x\.conf:1$/);
    assert.match(errorOf('http { server { location / { request_pool_size 4k; } } }'), /^"request_pool_size" directive is not allowed here in \/x\.conf:1$/);
  });
});
