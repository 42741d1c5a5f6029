/**
 * A session of its own (proxy_http_version 2 to a group without `keepalive`) closes after its
 * stream also when the response was not passed on: proxy_intercept_errors with an error_page
 * (grpc_pass, whose sessions are shared, gave its streams up alike). The regression: giving the stream up removed every 'end' and 'close' listener, the
 * session pool's and node:http2's own with them, so the stream was never counted out and each
 * intercepted response left its upstream connection open.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import http2, { type Http2Session } from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, serve, type Served } from './helpers.js';

describe('HTTP/2 upstreams: a stream given up for an intercepted error', () => {
  let dir = '';
  let served: Served;
  let upstream: http2.Http2Server;
  const open = new Set<Http2Session>();
  let closedOne: () => void = () => undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-h2-abandoned-'));
    upstream = http2.createServer();
    upstream.on('session', (session) => {
      open.add(session);
      session.on('close', () => {
        open.delete(session);
        closedOne();
      });
    });
    upstream.on('stream', (stream) => stream.respond({ ':status': 404 }, { endStream: true }));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as AddressInfo).port;
    served = await serve(
      `http { access_log off; server { listen 127.0.0.1:8080; error_page 404 = /page;
        location /proxy/ { proxy_pass http://127.0.0.1:${port}; proxy_http_version 2; proxy_intercept_errors on; }
        location /page { return 200 "page"; } } }`,
      dir,
    );
  });

  after(async () => {
    await served?.stop();
    for (const session of open) session.destroy();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
    rmSync(dir, { recursive: true, force: true });
  });

  /** Waits until no upstream session is open (the test's time limit bounds it). */
  async function allClosed(): Promise<void> {
    while (open.size > 0) await new Promise<void>((resolve) => (closedOne = resolve));
  }

  it('closes the session of its own after proxy_intercept_errors answered with the error page', { timeout: 5000 }, async () => {
    for (const path of ['/proxy/a', '/proxy/b']) {
      const reply = await get(served.port, path);
      assert.equal(reply.status, 200);
      assert.equal(reply.body, 'page');
    }
    await allClosed();
    assert.equal(open.size, 0);
  });
});
