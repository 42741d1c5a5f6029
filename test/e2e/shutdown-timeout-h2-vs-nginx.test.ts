/**
 * worker_shutdown_timeout with an HTTP/2 request in flight, side by side with Debian's nginx: a
 * graceful stop waits for the request, whose upstream never answers, until the timeout closes its
 * connection; the request is then finished and written to the access log, as nginx writes it,
 * before the worker exits.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { connect as connectH2 } from 'node:http2';
import { createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { isAlive, waitFor } from './helpers/masters.js';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;

describe('worker_shutdown_timeout with an HTTP/2 request in flight: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let silent: Server;
  const accepted: Socket[] = [];

  before(async () => {
    // An upstream that takes the connection and never answers.
    silent = createServer((socket) => {
      accepted.push(socket);
      socket.on('error', () => undefined);
      socket.resume();
    });
    silent.listen(0, '127.0.0.1');
    await once(silent, 'listening');
    const upstream = (silent.address() as { port: number }).port;
    pair = await startPair((port) => `worker_shutdown_timeout 200ms;
events {}
http {
    log_format t '$request $status';
    access_log logs/access.log t;
    server {
        listen 127.0.0.1:${port} http2;
        location / { proxy_pass http://127.0.0.1:${upstream}; proxy_read_timeout 30s; }
    }
}
`);
  });

  after(async () => {
    await pair?.stop();
    for (const socket of accepted) socket.destroy();
    silent?.close();
  });

  it('logs the request cut by the timeout before the worker exits', async () => {
    const lines: Record<string, string> = {};
    for (const name of SERVERS) {
      const count = accepted.length;
      const session = connectH2(`http://127.0.0.1:${pair.ports[name]}`);
      session.on('error', () => undefined);
      const stream = session.request({ ':path': '/slow' });
      stream.on('error', () => undefined);
      stream.resume();
      await waitFor(`${name}'s connection to the upstream`, () => (accepted.length > count ? true : undefined));
      const pid = Number(readFileSync(join(pair.dir, name, 'pid'), 'utf8'));
      process.kill(pid, 'SIGQUIT');
      await waitFor(`${name} to exit`, () => (isAlive(pid) ? undefined : true), 10_000);
      session.destroy();
      const log = join(pair.dir, name, 'logs', 'access.log');
      lines[name] = existsSync(log) ? readFileSync(log, 'latin1') : '';
    }
    assert.equal(lines['hitless'], lines['nginx']);
    assert.match(lines['hitless'] ?? '', /^GET \/slow HTTP\/2\.0 \d{3}\n$/);
  });
});
