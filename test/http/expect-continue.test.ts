/** `Expect: 100-continue` as ngx_http_test_expect() answers it (nginx-tests http_expect_100_continue.t). */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { RawClient, serve, type Served } from './helpers.js';

describe('Expect: 100-continue', () => {
  let dir: TempDir;
  let backend: Server;
  let served: Served;

  before(async () => {
    dir = tempDir();
    backend = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.end('upstream'));
    });
    await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
    const address = backend.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    served = await serve(`http { server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:${port}; } } }`, `${dir.path}/`);
  });

  after(async () => {
    await served?.stop();
    backend?.close();
    dir?.remove();
  });

  const exchange = async (version: string, expect: string): Promise<string> => {
    const client = await RawClient.connect(served.port);
    let received = '';
    client.socket.on('data', (chunk: string) => (received += chunk));
    try {
      client.send(`POST / HTTP/${version}\r\nHost: localhost\r\nExpect: ${expect}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
      await client.untilEnded();
      return received;
    } finally {
      client.destroy();
    }
  };

  it('is answered with 100 Continue before a proxied empty body (the expectation is tested before the length)', async () => {
    assert.match(await exchange('1.1', '100-continue'), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    assert.match(await exchange('1.1', '100-Continue'), /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
  });

  it('is not answered for HTTP/1.0', async () => {
    assert.match(await exchange('1.0', '100-continue'), /^HTTP\/1\.1 200 OK\r\n/);
  });
});
