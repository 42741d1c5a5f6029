/**
 * `server name resolve` and `service=` with a real master: the peers follow the answers of a DNS
 * server on loopback (a CNAME to follow, SRV records, a server failure that keeps the peers, an
 * NXDOMAIN that empties them), and the workers of a reload start from the last answer, as nginx's
 * zone keeps the resolved peers (upstream_resolve.t, upstream_service.t, *_reload.t).
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { startBackend, type Backend } from '../upstream/backends.js';
import { TestDnsServer } from '../core/dns-server.js';
import { MasterUnderTest, TestPrefix, freePort, runHitlessCommand, startMaster, waitFor } from './helpers/masters.js';

/** The status and `$upstream_addr` (X-IP) of a GET. */
function upstreamOf(port: number, path: string): Promise<{ status: number; ip: string } | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 3_000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, ip: String(res.headers['x-ip'] ?? '') }));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
    req.end();
  });
}

describe('upstream servers resolved at run time', () => {
  const prefix = new TestPrefix();
  const dns = new TestDnsServer();
  let master: MasterUnderTest | undefined;
  let backend: Backend | undefined;
  let port = 0;
  let conf = '';

  before(async () => {
    backend = await startBackend('live');
    const dnsPort = await dns.start();
    dns.answers.set('example.net A', { a: ['127.0.0.1'] });
    dns.answers.set('_http._tcp.example.net SRV', { srv: [{ priority: 1, weight: 5, port: backend.port, target: 'example.net' }] });
    port = await freePort();
    conf = `worker_processes 1;
error_log logs/error.log notice;
events {}
http {
    resolver 127.0.0.1:${dnsPort} valid=1s ipv6=off;
    resolver_timeout 1s;
    upstream byname {
        zone byname 64k;
        server example.net:${backend.port} resolve max_fails=0;
    }
    upstream byservice {
        zone byservice 64k;
        server example.net resolve service=http max_fails=0;
    }
    server {
        listen 127.0.0.1:${port};
        add_header X-IP $upstream_addr always;
        location / { return 200 "up\\n"; }
        location /name { proxy_pass http://byname; }
        location /service { proxy_pass http://byservice; }
    }
}
`;
    master = await startMaster({ prefix, port, program: 'hitless', conf });
  });
  after(async () => {
    await master?.stop();
    await backend?.stop();
    await dns.stop();
    prefix.remove();
  });

  const until = (path: string, ip: string, status = 200): Promise<true> =>
    waitFor(`${path} to go to ${ip} with ${status}`, async () => {
      const reply = await upstreamOf(port, path);
      return reply?.ip === ip && reply.status === status ? true : undefined;
    }, 15_000);

  it('sends requests to the address the name resolves to, and by SRV to the record\'s port', async () => {
    await until('/name', `127.0.0.1:${backend?.port}`);
    await until('/service', `127.0.0.1:${backend?.port}`);
  });

  it('follows a CNAME to its target\'s addresses', async () => {
    dns.answers.delete('example.net A');
    dns.answers.set('example.net CNAME', { cname: 'alias.example.net' });
    dns.answers.set('alias.example.net A', { a: ['127.0.0.2'] });
    await until('/name', `127.0.0.2:${backend?.port}`, 502);
    dns.answers.delete('example.net CNAME');
    dns.answers.set('example.net A', { a: ['127.0.0.1'] });
    await until('/name', `127.0.0.1:${backend?.port}`);
  });

  it('keeps the peers on a server failure, and empties the group on NXDOMAIN', async () => {
    dns.answers.set('example.net A', { rcode: 2 });
    const asked = dns.count('example.net A');
    await waitFor('two more queries', () => (dns.count('example.net A') >= asked + 2 ? true : undefined), 15_000);
    const reply = await upstreamOf(port, '/name');
    assert.deepEqual(reply, { status: 200, ip: `127.0.0.1:${backend?.port}` });
    await prefix.waitForLog('example.net could not be resolved (2: Server failure)');
    dns.answers.set('example.net A', { rcode: 3 });
    // No live upstreams: $upstream_addr names the group.
    await until('/name', 'byname', 502);
    await prefix.waitForLog('example.net could not be resolved (3: Host not found)');
    dns.answers.set('example.net A', { a: ['127.0.0.1'] });
    await until('/name', `127.0.0.1:${backend?.port}`);
    // The SRV record's target is example.net too: its group emptied with the NXDOMAIN and
    // comes back on its own timer, which the next test's reload must not race.
    await until('/service', `127.0.0.1:${backend?.port}`);
  });

  it('starts the workers of a reload from the last answer while the DNS server fails', async () => {
    dns.answers.set('example.net A', { rcode: 2 });
    dns.answers.set('_http._tcp.example.net SRV', { rcode: 2 });
    const before = prefix.count('exited with code');
    prefix.writeConf(conf.replace('worker_processes 1;', 'worker_processes 1; # reloaded'));
    master?.signal('SIGHUP');
    await waitFor('the old worker to exit', () => (prefix.count('exited with code') > before ? true : undefined), 15_000);
    assert.deepEqual(await upstreamOf(port, '/name'), { status: 200, ip: `127.0.0.1:${backend?.port}` });
    assert.deepEqual(await upstreamOf(port, '/service'), { status: 200, ip: `127.0.0.1:${backend?.port}` });
  });

  it('refuses resolve without a zone or without a resolver, in nginx\'s words, and warns that health_check skips resolved peers', async () => {
    const check = async (text: string): Promise<string> => {
      prefix.writeConf(text);
      const result = await runHitlessCommand(['-t', '-p', prefix.dir, '-c', 'conf/hitless.conf']);
      return result.stderr;
    };
    const noZone = await check('events {}\nhttp {\n resolver 127.0.0.1;\n upstream u {\n  server example.net resolve;\n }\n}\n');
    assert.match(noZone, /\[emerg\] resolving names at run time requires upstream "u" in .*:4 to be in shared memory/);
    const noResolver = await check('events {}\nhttp {\n upstream u {\n  zone u 64k;\n  server example.net resolve;\n }\n}\n');
    assert.match(noResolver, /\[emerg\] no resolver defined to resolve names at run time in upstream "u" in .*:3/);
    const port = await check('events {}\nhttp {\n resolver 127.0.0.1;\n upstream u {\n  zone u 64k;\n  server example.net:80 resolve service=http;\n }\n}\n');
    assert.match(port, /\[emerg\] service upstream "example.net:80" may not have port/);
    const checked = await check('events {}\nhttp {\n resolver 127.0.0.1;\n upstream u {\n  zone u 64k;\n  server example.net:80 resolve;\n }\n server { listen 127.0.0.1:1; location / { proxy_pass http://u; health_check; } }\n}\n');
    assert.match(checked, /\[warn\] health_check does not check the peers of "example.net:80" resolved at run time in upstream "u"/);
    prefix.writeConf(conf);
  });
});
