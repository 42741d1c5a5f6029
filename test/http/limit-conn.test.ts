/** limit_conn: parsing and errors, and concurrent requests to a slow upstream counted per key. */
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, get, load, serve, turns, type Served } from './helpers.js';

describe('limit_conn directives', () => {
  it('loads zones and limits', () => {
    const http = load('http { limit_conn_zone $binary_remote_addr zone=addr:1m; limit_conn addr 10; }').main.child('http');
    assert.deepEqual(http?.get('limit_conn').map((rule) => [rule.zone, rule.conn]), [['addr', 10]]);
    assert.equal(http?.get('limit_conn_status'), 503);
  });

  it('refuses what nginx refuses, in its words', () => {
    const zone = 'limit_conn_zone $binary_remote_addr zone=addr:1m;';
    assert.match(errorOf('http { limit_conn_zone $uri zone=:1m; }'), /^"limit_conn_zone" must have "zone" parameter in/);
    assert.match(errorOf('http { limit_conn_zone $uri zone=a:1m x; }'), /^invalid number of arguments in "limit_conn_zone" directive/);
    assert.match(errorOf('http { limit_conn_zone $uri rate=1; }'), /^invalid parameter "rate=1" in/);
    assert.match(errorOf(`http { ${zone} limit_conn_zone $uri zone=addr:1m; }`), /^limit_conn_zone "addr" is already bound to key "\$binary_remote_addr" in/);
    assert.match(errorOf(`http { ${zone} limit_conn addr 0; }`), /^invalid number of connections "0" in/);
    assert.match(errorOf(`http { ${zone} limit_conn addr 65536; }`), /^connection limit must be less 65536 in/);
    assert.match(errorOf(`http { ${zone} limit_conn addr 1; limit_conn addr 2; }`), /^"limit_conn" directive is duplicate in/);
    assert.match(errorOf(`http { ${zone} server { location / { limit_conn other 1; } } }`), /^zero size shared memory zone "other"$/);
    assert.match(errorOf(`http { ${zone} limit_conn_status 600; }`), /^value must be between 400 and 599 in/);
  });
});

describe('limit_conn over loopback', () => {
  let upstream: Server;
  let served: Served;
  const held: ServerResponse[] = [];
  let arrived = 0;

  before(async () => {
    upstream = createServer((_req: IncomingMessage, res: ServerResponse) => {
      arrived++;
      held.push(res);
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    const port = typeof address === 'object' && address !== null ? address.port : 0;
    served = await serve(`http {
      limit_conn_zone $binary_remote_addr zone=addr:1m;
      server {
        listen 127.0.0.1:18092;
        add_header X-Conn $limit_conn_status always;
        location / { limit_conn addr 2; proxy_pass http://127.0.0.1:${port}; }
      }
    }`, '/tmp/', new ErrorLog([]));
  });
  after(async () => {
    for (const res of held) res.destroy();
    await served.stop();
    upstream.close();
    upstream.closeAllConnections();
  });

  it('lets 2 requests per address reach the upstream at once and rejects the others with 503', async () => {
    const pending = Array.from({ length: 5 }, () => get(served.port, '/slow'));
    const settled: number[] = [];
    pending.forEach((p) => void p.then((r) => settled.push(r.status)));
    while (settled.length < 3 || arrived < 2) await turns(5);
    assert.deepEqual(settled, [503, 503, 503]);
    assert.equal(arrived, 2);
    for (const res of held.splice(0)) res.end('done');
    const replies = await Promise.all(pending);
    assert.equal(replies.filter((r) => r.status === 200).length, 2);
    assert.equal(replies.filter((r) => r.headers['x-conn'] === 'REJECTED').length, 3);
  });

  it('gives the counts back when requests end', async () => {
    const next = get(served.port, '/again');
    while (arrived < 3) await turns(5);
    for (const res of held.splice(0)) res.end('again');
    const reply = await next;
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-conn'], 'PASSED');
  });
});
