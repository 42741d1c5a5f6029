/**
 * A proxied connection upgraded by a 101, side by side with Debian's nginx: the request's access
 * log line is written when the tunnel closes, with the bytes the tunnel carried to the client in
 * $bytes_sent and $body_bytes_sent (ngx_http_upstream_upgrade()).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;
const PAYLOAD = 'x'.repeat(100_000);

describe('the log line of an upgraded connection: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: Server;

  before(async () => {
    // Answers the upgrade, sends the payload through the tunnel, and closes.
    upstream = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.once('data', () => {
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\n');
        socket.end(PAYLOAD);
      });
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const port = (upstream.address() as { port: number }).port;
    pair = await startPair((listen) => `events {}
http {
    log_format bytes '$status $bytes_sent $body_bytes_sent';
    access_log logs/bytes.log bytes;
    server {
        listen 127.0.0.1:${listen};
        location / {
            proxy_pass http://127.0.0.1:${port};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection upgrade;
        }
    }
}
`);
  });

  after(async () => {
    await pair?.stop();
    upstream?.close();
  });

  it('counts the tunnel\'s bytes, the head left out of $body_bytes_sent', async () => {
    const lines: Record<string, string> = {};
    for (const name of SERVERS) {
      const socket = createConnection(pair.ports[name], '127.0.0.1');
      let received = 0;
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.write('GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: test\r\nConnection: upgrade\r\n\r\n');
      await once(socket, 'end');
      socket.destroy();
      const log = join(pair.dir, name, 'logs', 'bytes.log');
      for (let i = 0; i < 250 && !(existsSync(log) && readFileSync(log, 'latin1').includes('\n')); i++) await new Promise((resolve) => setTimeout(resolve, 20));
      lines[name] = readFileSync(log, 'latin1');
      const [status, bytes, body] = (lines[name] ?? '').trim().split(' ');
      assert.equal(status, '101', name);
      assert.equal(Number(bytes), received, `${name}: $bytes_sent is what the client read`);
      assert.equal(Number(body), PAYLOAD.length, `${name}: $body_bytes_sent is the tunnel's`);
    }
  });
});
