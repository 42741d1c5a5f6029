import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { get, serve, type Served } from './helpers.js';
import { closedPort, httpUpstream, type Upstream } from './proxy-upstreams.js';

describe('error_page and proxy_intercept_errors', () => {
  let dir = '';
  let app: Upstream;
  let served: Served;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-errpage-'));
    app = await httpUpstream((req, res) => {
      const status = Number(req.url?.split('/').pop() || '200');
      const body = `upstream ${req.method} ${req.url}`;
      res.writeHead(status, { 'content-length': Buffer.byteLength(body) });
      res.end(body);
    });
    const dead = await closedPort();
    served = await serve(
      `http {
        server {
          listen 127.0.0.1:8080;
          error_page 404 /custom404;
          location = /custom404 { return 200 "custom not found for $request_uri"; }
          location = /missing-ok { error_page 404 =200 /custom404; return 404; }
          location = /away { error_page 404 https://example.test/moved; return 404; }
          location /down/ { proxy_pass http://127.0.0.1:${dead}/; error_page 502 @fallback; }
          location /down-response/ { proxy_pass http://127.0.0.1:${dead}/; error_page 502 = @fallback; }
          location @fallback { return 503 "fallback"; }
          location /up/ { proxy_pass http://127.0.0.1:${app.port}/; proxy_intercept_errors on; error_page 503 /sorry; }
          location /up-plain/ { proxy_pass http://127.0.0.1:${app.port}/up/; error_page 503 /sorry; }
          location = /sorry { proxy_pass http://127.0.0.1:${app.port}/sorry/200; }
          location = /loop { error_page 404 /nowhere; return 404; }
          location = /text { return 200 "text"; }
          location = /moved { error_page 302 /text; return 302 "there"; }
        }
      }`,
      dir,
    );
  });
  after(async () => {
    await served.stop();
    await app.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('serves the error page with the original status', async () => {
    const reply = await get(served.port, '/nothing-here');
    assert.equal(reply.status, 404);
    assert.equal(reply.body, 'custom not found for /nothing-here');
  });

  it('keeps the Location of a return 302 across its error_page redirect (rewrite.t "error 302 return 200 text")', async () => {
    const reply = await get(served.port, '/moved');
    assert.equal(reply.status, 302);
    assert.equal(reply.headers.location, 'there');
    assert.equal(reply.body, 'text');
  });

  it('changes the status with =code', async () => {
    const reply = await get(served.port, '/missing-ok');
    assert.equal(reply.status, 200);
  });

  it('redirects to a URL with 302', async () => {
    const reply = await get(served.port, '/away');
    assert.equal(reply.status, 302);
    assert.equal(reply.headers.location, 'https://example.test/moved');
  });

  it('sends a named location for a failed upstream, keeping 502 unless "=" is given', async () => {
    const kept = await get(served.port, '/down/x');
    assert.deepEqual([kept.status, kept.body], [502, 'fallback']);
    const response = await get(served.port, '/down-response/x');
    assert.deepEqual([response.status, response.body], [503, 'fallback']);
  });

  it('intercepts an upstream error only with proxy_intercept_errors on, and fetches the page with GET', async () => {
    const intercepted = await get(served.port, '/up/503', { method: 'POST' });
    assert.equal(intercepted.status, 503);
    assert.equal(intercepted.body, 'upstream GET /sorry/200');
    const passed = await get(served.port, '/up-plain/503');
    assert.equal(passed.status, 503);
    assert.equal(passed.body, 'upstream GET /up/503');
  });

  it('follows one error page only, as recursive_error_pages off does', async () => {
    const reply = await get(served.port, '/loop');
    assert.equal(reply.status, 404);
    assert.match(reply.body, /<title>404 Not Found<\/title>/);
  });
});
