/**
 * proxy_pass with variables and `resolver`, for what node:dns did not do as nginx does
 * (http_resolver.t, http_resolver_aaaa.t, http_resolver_cname.t): a CNAME whose target must be
 * asked for, an answer with a TTL of 0 that the request that asked still uses, and peers that
 * keep no failure for the next request.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { TestDnsServer } from '../core/dns-server.js';
import { get, serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

describe('resolver: nginx\'s rules for proxy_pass with variables', () => {
  const dns = new TestDnsServer();
  let upstream: Upstream;
  let served: Served;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-resolver-rules-'));
    const dnsPort = await dns.start();
    upstream = await httpUpstream((_req, res) => res.end('upstream'));
    served = await serve(
      `http {
        server {
          listen 127.0.0.1:8080;
          location / {
            resolver 127.0.0.1:${dnsPort} ipv6=off;
            proxy_pass http://$arg_h:${upstream.port};
            proxy_connect_timeout 1s;
            add_header X-IP $upstream_addr;
          }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served?.stop();
    await upstream?.stop();
    await dns.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('asks for the target of a CNAME answered without addresses', async () => {
    dns.answers.set('www.test CNAME', { cname: 'backend.test' });
    dns.answers.set('backend.test A', { a: ['127.0.0.1'] });
    const reply = await get(served.port, '/?h=www.test');
    assert.equal(reply.status, 200);
    assert.equal(dns.count('backend.test A'), 1);
  });

  it('uses an answer with a TTL of 0 for the request that asked', async () => {
    dns.ttl = 0;
    dns.answers.set('zero.test A', { a: ['127.0.0.1'] });
    try {
      assert.equal((await get(served.port, '/?h=zero.test')).status, 200);
    } finally {
      dns.ttl = 1;
    }
  });

  it('tries a peer that failed in the last request again, as nginx makes the peers per request', async () => {
    dns.ttl = 300;
    // 127.0.0.2 has no listener on the upstream's port: the first try there fails.
    dns.answers.set('many.test A', { a: ['127.0.0.2', '127.0.0.1'] });
    try {
      // With the failure kept (max_fails=1 for 10s), 127.0.0.2 would be tried in one request only.
      let tried = 0;
      for (let i = 0; i < 4; i++) {
        const reply = await get(served.port, '/?h=many.test');
        assert.equal(reply.status, 200);
        if (String(reply.headers['x-ip']).includes(`127.0.0.2:${upstream.port}`)) tried++;
      }
      assert.ok(tried >= 2, `127.0.0.2 tried in ${tried} of 4 requests`);
      assert.equal(dns.count('many.test A'), 1, 'the later requests used the cached answer');
    } finally {
      dns.ttl = 1;
    }
  });
});
