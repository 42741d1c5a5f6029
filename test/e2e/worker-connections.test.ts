/**
 * worker_connections is enforced as nginx enforces it (issue 15), hitless and Debian's nginx side
 * by side with `worker_connections 10` and one worker. The listening socket and the channel to
 * the master are two of the ten, as in nginx. Idle connections (accepted, nothing sent) are closed
 * oldest first to make room, with nginx's "[warn] 10 worker_connections are not enough, reusing
 * connections"; when every connection is busy (a response in progress), a new one is closed
 * with the [alert], and an upstream connection that finds no room fails the request with 500, the
 * peer not being at fault. hitless used to hold every connection it was given.
 */
import assert from 'node:assert/strict';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir } from '../helpers/tmp.js';
import { freePort, waitFor } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

/** Opens `count` connections; `head` is what each sends (nothing: an idle connection). */
async function openConnections(port: number, count: number, head = ''): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        if (head !== '') socket.write(head);
        resolve(socket);
      });
      socket.on('close', () => closed++);
      socket.on('error', () => undefined);
      socket.once('error', reject);
    })),
  );
  return { sockets, closed: () => closed };
}

/**
 * `count` connections each downloading /big and no longer reading once the response began: busy
 * for the server (its response is not sent), which nothing can close to make room. Resolves once
 * every response began, so the server has taken each request.
 */
async function busyDownloads(port: number, count: number): Promise<{ sockets: Socket[]; closed: () => number }> {
  let closed = 0;
  const sockets = await Promise.all(
    Array.from({ length: count }, () => new Promise<Socket>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => socket.write('GET /big HTTP/1.1\r\nHost: a\r\n\r\n'));
      socket.once('data', () => {
        socket.pause();
        resolve(socket);
      });
      socket.on('close', () => closed++);
      socket.on('error', () => undefined);
      socket.once('error', reject);
    })),
  );
  return { sockets, closed: () => closed };
}

/** One HTTP/1.0 request on a new connection: the status line, or '' when the server closed it without an answer. */
function request(port: number, path: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => socket.write(`GET ${path} HTTP/1.0\r\nHost: a\r\n\r\n`));
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => resolve(text.split('\r\n')[0] ?? ''));
    socket.setTimeout(10_000, () => socket.destroy());
  });
}

describe('worker_connections 10, hitless and nginx side by side', () => {
  const dir = tempDir();
  const servers: RunningServer[] = [];
  const ports = { hitless: 0, nginx: 0 };
  let upstream: Server | undefined;
  const open: Socket[] = [];
  const log = (name: string): string => readFileSync(join(dir.path, `${name}-error.log`), 'utf8');

  before(async () => {
    // Far more than the socket buffers take: a download that is not read stays in progress.
    writeFileSync(join(dir.path, 'big'), Buffer.alloc(32 * 1024 * 1024, 0x61));
    // nginx's worker runs as nobody: it must be able to read the file.
    chmodSync(dir.path, 0o755);
    upstream = createServer((_req, res) => res.end('up\n'));
    await new Promise<void>((resolve) => upstream?.listen(0, '127.0.0.1', () => resolve()));
    const upstreamPort = (upstream.address() as { port: number }).port;
    for (const name of ['hitless', 'nginx'] as const) {
      ports[name] = await freePort();
      const conf = join(dir.path, `${name}.conf`);
      writeFileSync(conf, `worker_processes 1;
pid ${dir.path}/${name}.pid;
error_log ${dir.path}/${name}-error.log info;
events { worker_connections 10; }
http {
  access_log off;
  server {
    listen 127.0.0.1:${ports[name]};
    location / { return 200 "ok\\n"; }
    location /p { proxy_pass http://127.0.0.1:${upstreamPort}/; }
    location = /big { root ${dir.path}; }
  }
}
`);
      servers.push(await startServer(name, ['-p', `${dir.path}/`, '-c', conf, '-g', 'daemon off;'], [ports[name]]));
    }
  });
  after(async () => {
    for (const socket of open) socket.destroy();
    await Promise.all(servers.map((server) => server.stop()));
    upstream?.close();
    dir.remove();
  });

  for (const name of ['nginx', 'hitless'] as const) {
    it(`${name}: with 7 busy connections a proxied request finds no room for its upstream connection (500), and with 8 a new connection is closed`, async () => {
      const busy = await busyDownloads(ports[name], 7);
      open.push(...busy.sockets);
      assert.equal(await request(ports[name], '/p'), 'HTTP/1.1 500 Internal Server Error');
      assert.match(log(name), /\[alert\] .*10 worker_connections are not enough while connecting to upstream/);
      const more = await busyDownloads(ports[name], 1);
      open.push(...more.sockets);
      assert.equal(await request(ports[name], '/'), '');
      assert.match(log(name), /\[alert\] .*10 worker_connections are not enough$/m);
      assert.equal(busy.closed() + more.closed(), 0, 'a busy connection was closed');
      for (const socket of [...busy.sockets, ...more.sockets]) socket.destroy();
    });

    it(`${name}: of 30 idle connections the 8 newest stay, and a new request is served by closing one more`, async () => {
      const idle = await openConnections(ports[name], 30);
      open.push(...idle.sockets);
      await waitFor('22 idle connections closed by the server', () => (idle.closed() >= 22 ? true : undefined));
      assert.equal(await request(ports[name], '/'), 'HTTP/1.1 200 OK');
      assert.equal(idle.closed(), 23);
      assert.match(log(name), /\[warn\] .*10 worker_connections are not enough, reusing connections/);
      for (const socket of idle.sockets) socket.destroy();
    });
  }
});
