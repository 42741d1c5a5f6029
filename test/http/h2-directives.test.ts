/**
 * http2_body_preread_size, http2_chunk_size and grpc_buffer_size at load time (h2.t, grpc.t and
 * h2_request_body_preread.t refused them as unknown): checked as ngx_http_v2_preread_size() and
 * ngx_http_v2_chunk_size() check them; a preread size below the default window warns about what
 * node:http2 cannot do, grpc_buffer_size that it has no effect. What they do on the wire is in
 * test/e2e/h2-frames-vs-nginx.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from './helpers.js';

describe('http2_body_preread_size, http2_chunk_size and grpc_buffer_size', () => {
  it('take sizes where nginx takes them; only a preread size below 65535 and grpc_buffer_size warn', () => {
    const config = load(`http {
      http2_body_preread_size 128k;
      http2_chunk_size 16k;
      server {
        http2_body_preread_size 10;
        location / { http2_chunk_size 1; grpc_buffer_size 65k; }
      }
    }`);
    const lines = config.warnings.map((warning) => warning.message);
    assert.equal(lines.length, 2, lines.join('\n'));
    assert.match(lines[0] ?? '', /^"http2_body_preread_size" below 65535 holds only until a request body is read on the connection: node:http2 cannot widen one stream's window .+ in \/x\.conf:5$/);
    assert.match(lines[1] ?? '', /^"grpc_buffer_size" has no effect in hitless \(.+\) in \/x\.conf:6$/);
  });

  it('refuse what nginx refuses, in its words', () => {
    assert.match(errorOf('http { http2_chunk_size 0; }'), /^the http2 chunk size cannot be zero in \/x\.conf:1$/);
    assert.match(errorOf('http { http2_chunk_size 1q; }'), /^"http2_chunk_size" directive invalid value in \/x\.conf:1$/);
    assert.match(errorOf('http { http2_body_preread_size 2g; }'), /^the maximum body preread buffer size is 2147483647 in \/x\.conf:1$/);
    assert.match(errorOf('http { server { location / { http2_body_preread_size 1k; } } }'), /^"http2_body_preread_size" directive is not allowed here in \/x\.conf:1$/);
  });
});
