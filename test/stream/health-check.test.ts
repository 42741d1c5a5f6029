/**
 * Active TCP health checks for stream groups, with a real master (which runs the one checker of a
 * group) and two workers: a peer whose port stops accepting is marked unhealthy and, once every
 * worker has the master's table, no worker tries it (no connect() error at all); once it accepts
 * again it rejoins.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { AdminClient } from '../../src/admin/admin-client.js';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, readyWorkers, startMaster } from '../e2e/helpers/masters.js';
import { errorOf, exchange, namedBackend, type Backend } from './helpers.js';

function conf(httpPort: number, streamPort: number, a: number, b: number): string {
  return `worker_processes 2;
error_log logs/error.log notice;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${httpPort}; location / { return 200 "up\\n"; } }
    # An http group of the same name: its health is kept apart from the stream group's.
    upstream pool { server 127.0.0.1:${b}; }
}
stream { proxy_half_close on;
    upstream pool {
        server 127.0.0.1:${a};
        server 127.0.0.1:${b};
    }
    server {
        listen 127.0.0.1:${streamPort};
        proxy_pass pool;
        proxy_connect_timeout 1s;
        health_check interval=100ms fails=1 passes=1;
    }
}
`;
}

/** A backend on a given port that answers its name and closes. */
async function namedOn(port: number, name: string): Promise<Server> {
  const server = createServer((socket) => {
    socket.on('error', () => undefined);
    socket.end(name);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  return server;
}

describe('stream: active TCP health checks', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let a: Backend;
  let b: Backend | undefined;
  let bAgain: Server | undefined;
  let bPort = 0;
  let streamPort = 0;

  before(async () => {
    a = await namedBackend('a');
    b = await namedBackend('b');
    bPort = b.port;
    const httpPort = await freePort();
    streamPort = await freePort();
    master = await startMaster({ prefix, port: httpPort, program: 'hitless', conf: conf(httpPort, streamPort, a.port, bPort) });
    // Only ready workers answer the question below that proves each has the checker's table.
    await readyWorkers(new AdminClient({ socketPath: join(prefix.dir, 'logs/admin.sock') }), 2);
  });
  after(async () => {
    await master?.stop();
    await a.stop();
    await b?.stop();
    await new Promise((resolve) => (bAgain === undefined ? resolve(undefined) : bAgain.close(resolve)));
    prefix.remove();
  });

  const answers = async (count: number): Promise<string[]> => {
    const names: string[] = [];
    for (let i = 0; i < count; i++) names.push((await exchange(streamPort, '', { timeoutMs: 5_000 })).toString());
    return names;
  };

  it('spreads sessions over both peers while both accept', async () => {
    assert.deepEqual(new Set(await answers(10)), new Set(['a', 'b']));
  });

  it('takes out a peer that stops accepting before any session tries it, and brings it back', async () => {
    await b?.stop();
    b = undefined;
    await prefix.waitForLog(`peer is unhealthy while connecting to upstream, tcp health check "" of peer 127.0.0.1:${bPort} in upstream "pool"`);
    // The master sent the new table to every worker as it logged; a question every worker answers
    // over the same ordered channel proves each one has it (a session accepted in between could
    // still have tried the peer: the window is the IPC hop, not a check interval).
    const report = await new AdminClient({ socketPath: join(prefix.dir, 'logs/admin.sock') }).upstreams({ timeoutMs: 5_000 });
    assert.deepEqual(report.workers.map((worker) => worker.answered), [true, true]);
    // A session's connect error says `client:`; the checker's own line does not.
    const tried = (): number => (prefix.errorLog().match(/connect\(\) failed [^\n]* while connecting to upstream, client:/g) ?? []).length;
    const before = tried();
    const names = await answers(20);
    assert.deepEqual(new Set(names), new Set(['a']));
    assert.equal(tried(), before, 'a worker tried the unhealthy peer');

    bAgain = await namedOn(bPort, 'b');
    await prefix.waitForLog(`peer is healthy while connecting to upstream, tcp health check "" of peer 127.0.0.1:${bPort} in upstream "pool"`);
    assert.ok((await answers(10)).includes('b'), 'the recovered peer got no session');
  });

  it('takes no uri= or match= in stream, and needs proxy_pass to a group', () => {
    const stream = (line: string): string => `stream {\nupstream u { server 127.0.0.1:1; }\nserver { listen 127.0.0.1:9; proxy_pass u; ${line} } }`;
    assert.equal(errorOf(stream('health_check uri=/x;')), 'invalid parameter "uri=/x" in /x.conf:3');
    assert.equal(errorOf(stream('health_check match=m;')), 'invalid parameter "match=m" in /x.conf:3');
    assert.equal(
      errorOf('stream {\nserver { listen 127.0.0.1:9; proxy_pass 127.0.0.1:1;\nhealth_check; } }'),
      '"health_check" requires "proxy_pass" to an upstream group in /x.conf:3',
    );
  });
});
