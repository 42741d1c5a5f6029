/**
 * grpc_read_timeout on a session node:http2 silently stopped reading (nghttp2 sent GOAWAY for a
 * header block its HPACK decoder refused and told JavaScript nothing): the stream must still end
 * with 504, and the shared session must take no later call (the regression: the request hung past
 * its timeout and every later call to the peer hung on the same session).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, serve, type Served } from './helpers.js';
import { rawUpstream, type Upstream } from './proxy-upstreams.js';

describe('grpc_pass: a read timeout on a session that stopped reading', () => {
  let dir = '';
  let served: Served;
  let strict: Upstream;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-grpc-stalled-'));
    // First connection: an empty Huffman string padded with 8 bits (RFC 7541 section 5.2); then sound answers.
    strict = await rawUpstream((socket, index) => {
      let seen = 0;
      socket.on('data', (chunk: Buffer) => {
        seen += chunk.length;
        if (seen < 24 + 9 + 9 || socket.writableEnded) return;
        const settings = Buffer.from('000000040000000000000000040100000000', 'hex');
        const bad = Buffer.from('0000130105000000014085b8848d36a38210014085416cee5b3f81ff', 'hex');
        const good = Buffer.from('00000101050000000188', 'hex');
        socket.write(Buffer.concat([settings, index === 0 ? bad : good]));
        // The refused block's connection stays open: a session that saw its peer's EOF would end
        // its streams at once (502); this one must be ended by the read timeout.
        if (index !== 0) socket.end();
      });
    });
    served = await serve(`http { access_log off; server { listen 127.0.0.1:8080; location / { grpc_pass 127.0.0.1:${strict.port}; grpc_read_timeout 500ms; } } }`, dir);
  });

  after(async () => {
    await served?.stop();
    await strict?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers 504, and the next call goes on a fresh session', { timeout: 10_000 }, async () => {
    assert.equal((await get(served.port, '/test.Echo/One')).status, 504);
    assert.equal((await get(served.port, '/test.Echo/Two')).status, 200);
    assert.equal(strict.connections, 2);
  });
});
