import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:net';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { HttpRuntime } from '../../src/http/runtime.js';
import { load, RawClient, turns } from './helpers.js';

const CONFIG = (body: string): string => `http { access_log off; server { listen 127.0.0.1:8080; location / { return 200 "${body} $connection_requests"; } } }`;

/** A listening socket as the master owns it, and a runtime attached to it. */
async function listen(): Promise<{ server: Server; port: number }> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return { server, port: typeof address === 'object' && address !== null ? address.port : 0 };
}

function runtime(body: string): HttpRuntime {
  return new HttpRuntime(load(CONFIG(body)), { log: new ErrorLog([]) });
}

describe('HttpRuntime.drain: reloads no client notices', () => {
  let server: Server;
  let port: number;
  const runtimes: HttpRuntime[] = [];
  const clients: RawClient[] = [];

  beforeEach(async () => {
    ({ server, port } = await listen());
  });

  afterEach(() => {
    for (const client of clients.splice(0)) client.destroy();
    for (const rt of runtimes.splice(0)) rt.close();
    server.close();
  });

  const start = (body: string): HttpRuntime => {
    const rt = runtime(body);
    runtimes.push(rt);
    rt.attach('127.0.0.1:8080', server);
    return rt;
  };

  const client = async (): Promise<RawClient> => {
    const c = await RawClient.connect(port);
    clients.push(c);
    return c;
  };

  it('answers a keep-alive client that sends during the drain with Connection: close, and no reset', async () => {
    const old = start('old');
    const c = await client();
    const before = await c.get('/one');
    assert.equal(before.headers.connection, 'keep-alive');
    const drained = old.drain({ graceMs: 60_000 });
    const during = await c.get('/two');
    assert.equal(during.status, 200);
    assert.equal(during.body, 'old 2');
    assert.equal(during.headers.connection, 'close');
    await c.untilEnded();
    await drained;
    assert.equal(c.error, undefined);
    assert.equal(old.connections, 0);
  });

  it('closes an idle keep-alive connection after the grace period, not when the drain starts', async () => {
    const old = start('old');
    const c = await client();
    await c.get('/one');
    const drained = old.drain({ graceMs: 50 });
    await turns(5);
    assert.equal(c.ended, false);
    assert.equal(old.connections, 1);
    await drained;
    await c.untilEnded();
    assert.equal(c.error, undefined);
  });

  it('does not close under a client that has begun a request when the grace ends', async () => {
    const old = start('old');
    const c = await client();
    await c.get('/one');
    c.send('GET /two HTTP/1.1\r\nHo');
    await turns(5);
    const drained = old.drain({ graceMs: 10 });
    // Well past the grace: the half-sent request must still get its answer.
    await new Promise((resolve) => setTimeout(resolve, 100));
    c.send('st: localhost\r\n\r\n');
    const reply = await c.read();
    assert.equal(reply.body, 'old 2');
    assert.equal(reply.headers.connection, 'close');
    await drained;
    assert.equal(c.error, undefined);
  });

  it('hands new connections to the next generation while the old one finishes its own', async () => {
    const old = start('old');
    const kept = await client();
    await kept.get('/one');
    const drained = old.drain({ graceMs: 60_000 });
    start('new');
    const fresh = await client();
    assert.equal((await fresh.get('/')).body, 'new 1');
    assert.equal((await fresh.get('/')).headers.connection, 'keep-alive');
    const last = await kept.get('/two');
    assert.equal(last.body, 'old 2');
    assert.equal(last.headers.connection, 'close');
    await drained;
    assert.equal(kept.error, undefined);
    assert.equal(fresh.ended, false);
  });

  it('resolves at once when there is no connection', async () => {
    const old = start('old');
    await old.drain();
    assert.equal(old.connections, 0);
  });

  it('close() destroys every connection at once', async () => {
    const old = start('old');
    const c = await client();
    await c.get('/one');
    old.close();
    await c.closed;
    assert.equal(old.connections, 0);
    assert.throws(() => old.attach('127.0.0.1:8080', server), /stopping/);
  });
});
