/**
 * `random two` (least_conn of two draws) with `zone` under a real master and two workers: the
 * active connections of every worker are compared, as nginx's `peer->conns` in the zone is, so
 * that a connection held to one peer sends the next ones to the other whichever worker accepts
 * them (nginx-tests' stream_upstream_random.t "random wait", which failed under load: with
 * per-worker counts the worker that had not taken the held connection drew at random). The
 * admin API shows when the other worker heard of a count (its `otherActive`), so the test waits
 * on that instead of on time.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, connect, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/admin-client.js';
import type { UpstreamsReport } from '../../src/upstream/upstream-report.js';
import { MasterUnderTest, TestPrefix, freePort, readyWorkers, startMaster, waitFor } from './helpers/masters.js';

/** A TCP peer that writes its name and keeps the connection until the client closes it. */
async function namedPeer(name: string): Promise<{ server: Server; port: number; closed: () => Promise<void> }> {
  const open = new Set<Socket>();
  const server = createServer((socket) => {
    open.add(socket);
    socket.on('error', () => undefined);
    socket.once('close', () => open.delete(socket));
    socket.write(name);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const closed = async (): Promise<void> => {
    for (const socket of [...open]) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  };
  return { server, port: (server.address() as AddressInfo).port, closed };
}

/** Connects to hitless's stream port and resolves with the socket and the name the peer wrote. */
function reach(port: number): Promise<{ socket: Socket; name: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    socket.setTimeout(10_000, () => socket.destroy(new Error('no peer name within 10 s')));
    socket.once('error', reject);
    socket.once('data', (chunk: Buffer) => resolve({ socket, name: chunk.toString('latin1') }));
  });
}

describe('random two with zone compares the active connections of every worker', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let admin: AdminClient;
  const peers: Awaited<ReturnType<typeof namedPeer>>[] = [];
  const held: Socket[] = [];
  let stream = 0;

  before(async () => {
    peers.push(await namedPeer('a'), await namedPeer('b'));
    const port = await freePort();
    stream = await freePort();
    const [a, b] = peers as [(typeof peers)[0], (typeof peers)[0]];
    master = await startMaster({
      prefix,
      port,
      program: 'hitless',
      conf: `worker_processes 2;
error_log logs/error.log notice;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${port}; location / { return 200 "up\\n"; } }
}
stream {
    upstream lc {
        zone lc 64k;
        random two;
        server 127.0.0.1:${a.port};
        server 127.0.0.1:${b.port};
    }
    server { listen 127.0.0.1:${stream}; proxy_pass lc; }
}
`,
    });
    admin = new AdminClient({ socketPath: join(prefix.dir, 'logs/admin.sock') });
    await readyWorkers(admin, 2);
  });
  after(async () => {
    for (const socket of held) socket.destroy();
    await master?.stop();
    for (const peer of peers) await peer.closed();
    prefix.remove();
  });

  /** Resolves once every worker counts `conns` connections to the peer named by its port, its own and the others' together. */
  const counted = (port: number, conns: number): Promise<true> =>
    waitFor(`every worker to count ${conns} connections to ${port}`, async () => {
      const report: UpstreamsReport = await admin.upstreams();
      const views = report.upstreams.find((group) => group.name === 'lc')?.peers.find((peer) => peer.peer === `127.0.0.1:${port}`)?.workers ?? [];
      return views.length === 2 && views.every((view) => view.active + (view.otherActive ?? 0) === conns) ? true : undefined;
    });

  it('sends every new connection to the peer without the held one, whichever worker accepts it', async () => {
    const first = await reach(stream);
    held.push(first.socket);
    const [a, b] = peers as [(typeof peers)[0], (typeof peers)[0]];
    const [busy, other] = first.name === 'a' ? [a, b] : [b, a];
    const otherName = first.name === 'a' ? 'b' : 'a';
    await counted(busy.port, 1);
    for (let i = 0; i < 10; i++) {
      const next = await reach(stream);
      assert.equal(next.name, otherName, `connection ${i + 1} went to the peer that holds the first one`);
      next.socket.destroy();
      await counted(other.port, 0);
    }
  });
});
