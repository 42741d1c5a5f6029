import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { RawClient, serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

describe('client_header_timeout and client_body_timeout', () => {
  let dir = '';
  let app: Upstream;
  let served: Served;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-timeouts-'));
    app = await httpUpstream((_req, res) => res.end('ok'));
    served = await serve(
      `http { server { listen 127.0.0.1:8080; client_header_timeout 150ms; client_body_timeout 150ms; location / { proxy_pass http://127.0.0.1:${app.port}; } } }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    await app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('closes a connection whose request head does not arrive in time', async () => {
    const client = await RawClient.connect(served.port);
    client.send('GET / HTTP/1.1\r\nHost: loc');
    await client.closed;
    assert.equal(app.requests.length, 0);
  });

  it('answers 408 when the body stalls, and never bothers the upstream', async () => {
    const client = await RawClient.connect(served.port);
    client.send('POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhalf');
    const reply = await client.read();
    assert.equal(reply.status, 408);
    assert.equal(reply.headers.connection, 'close');
    assert.equal(app.requests.length, 0);
    client.destroy();
  });
});
