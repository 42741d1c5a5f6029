/**
 * Regression: a client that gave up mid-response took its peer's active count with it. With
 * `max_conns`, two peers showed `full` after 20 aborts and every later request got 502 "no live
 * upstreams" until a reload (issue 12). The upstream cycle now gives the peer back exactly once
 * per attempt, client aborts included: after 1,000 aborts every peer shows ACTIVE 0 in the admin
 * API and in `hitless upstreams`, and the next 1,000 requests all succeed.
 */
import assert from 'node:assert/strict';
import { createServer, type Server, type ServerResponse } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/admin-client.js';
import type { UpstreamsReport } from '../../src/upstream/upstream-report.js';
import { MasterUnderTest, TestPrefix, freePort, get, readyWorkers, runHitlessCommand, startMaster, waitFor } from './helpers/masters.js';

/** A peer that answers `/fast` at once and sends `/slow`'s head and first bytes, then holds the rest. */
async function startPeer(): Promise<{ port: number; held: Set<ServerResponse>; stop(): Promise<void> }> {
  const held = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    if (req.url === '/slow') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
      res.write('partial');
      held.add(res);
      res.once('close', () => held.delete(res));
      return;
    }
    res.end('fast');
  });
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    held,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * Asks for `/slow` and goes away as soon as the first body bytes arrive: true for such a
 * mid-response abort, false when hitless answered otherwise (a 502 while the peers were full).
 */
function abortMidResponse(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let seen = '';
    const timer = setTimeout(() => socket.destroy(), 5_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      seen += chunk;
      if (seen.includes('partial') || seen.includes('\r\n\r\n')) socket.destroy();
    });
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(seen.startsWith('HTTP/1.1 200') && seen.includes('partial'));
    });
    socket.once('error', () => undefined);
    socket.write('GET /slow HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
}

function peersOf(report: UpstreamsReport): UpstreamsReport['upstreams'][number]['peers'] {
  return report.upstreams.find((group) => group.name === 'capped')?.peers ?? [];
}

describe('a client abort mid-response releases its peer (least_conn, max_conns=10)', () => {
  const prefix = new TestPrefix();
  const socket = join(prefix.dir, 'logs/admin.sock');
  let master: MasterUnderTest | undefined;
  let port = 0;
  const peers: Awaited<ReturnType<typeof startPeer>>[] = [];
  let admin: AdminClient;

  before(async () => {
    peers.push(await startPeer(), await startPeer());
    const [a, b] = peers as [Awaited<ReturnType<typeof startPeer>>, Awaited<ReturnType<typeof startPeer>>];
    port = await freePort();
    master = await startMaster({
      prefix,
      port,
      program: 'hitless',
      conf: `worker_processes 1;
error_log logs/error.log notice;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    upstream capped {
        zone capped 64k;
        least_conn;
        server 127.0.0.1:${a.port} max_conns=10;
        server 127.0.0.1:${b.port} max_conns=10;
    }
    server {
        listen 127.0.0.1:${port};
        location = / { return 200 "up\\n"; }
        location / { proxy_pass http://capped; }
    }
}
`,
    });
    admin = new AdminClient({ socketPath: socket });
    await readyWorkers(admin, 1);
  });
  after(async () => {
    await master?.stop();
    for (const peer of peers) await peer.stop();
    prefix.remove();
  });

  it('1,000 client aborts leave every peer at ACTIVE 0, and the next 1,000 requests all succeed', async () => {
    const ABORTS = 1_000;
    const CONCURRENCY = 10;
    let aborted = 0;
    let asked = 0;
    // Bounded: a 502 while the peers were still full is allowed, but only so many of them.
    while (aborted < ABORTS && asked < ABORTS * 2) {
      const batch = Math.min(CONCURRENCY, ABORTS - aborted);
      asked += batch;
      const results = await Promise.all(Array.from({ length: batch }, () => abortMidResponse(port)));
      aborted += results.filter(Boolean).length;
    }
    assert.equal(aborted, ABORTS, `only ${aborted} of ${asked} requests got a response to abort`);

    const report = await waitFor('every peer to be given back', async () => {
      const answer = await admin.upstreams();
      const capped = peersOf(answer);
      return capped.length === 2 && capped.every((peer) => peer.active === 0) ? answer : undefined;
    });
    assert.deepEqual(peersOf(report).map((peer) => peer.state), ['up', 'up']);
    assert.ok(peersOf(report).every((peer) => peer.requests >= ABORTS / 4), JSON.stringify(peersOf(report)));
    const cli = await runHitlessCommand(['upstreams', 'capped', '--socket', socket]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.doesNotMatch(cli.stdout, /full/, cli.stdout);

    const noLiveBefore = prefix.count('no live upstreams');
    let ok = 0;
    const failures: string[] = [];
    for (let sent = 0; sent < 1_000; sent += 20) {
      const replies = await Promise.all(Array.from({ length: 20 }, () => get(port, '/fast')));
      for (const reply of replies) {
        if ('status' in reply && reply.status === 200 && reply.body === 'fast') ok++;
        else failures.push(JSON.stringify(reply));
      }
    }
    assert.equal(ok, 1_000, failures.slice(0, 5).join('\n'));
    assert.equal(prefix.count('no live upstreams'), noLiveBefore, prefix.errorLog().slice(-2_000));
    // hitless closed every aborted request's upstream connection too.
    await waitFor('the peers to see every aborted request closed', () => (peers.every((peer) => peer.held.size === 0) ? true : undefined));
  });
});
