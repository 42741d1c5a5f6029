/**
 * `resolver` in stream: proxy_pass with variables to a name resolved at session time
 * (stream_resolver.t), and `server ... resolve` in a stream upstream group that follows the
 * answers, against a DNS server on loopback.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TestDnsServer } from '../core/dns-server.js';
import { exchange, memoryLog, namedBackend, serveStream, type Backend } from './helpers.js';

describe('the stream resolver', () => {
  const dns = new TestDnsServer();
  let dnsPort = 0;
  let backend: Backend | undefined;

  before(async () => {
    dnsPort = await dns.start();
    backend = await namedBackend('resolved');
  });
  after(async () => {
    await backend?.stop();
    await dns.stop();
  });

  it('resolves the host of proxy_pass with variables at session time, and logs a name not found', async () => {
    dns.answers.set('a.example.com A', { a: ['127.0.0.1'] });
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on;
      resolver 127.0.0.1:${dnsPort} ipv6=off;
      map $server_port $target { default a.example.com:${backend?.port}; }
      server { listen 127.0.0.1:1; proxy_pass $target; }
      server { listen 127.0.0.1:2; proxy_pass nx.example.com:$server_port; }
    }`, '/tmp', log);
    try {
      assert.equal((await exchange(proxy.ports[0] ?? 0, '')).toString(), 'resolved');
      assert.equal((await exchange(proxy.ports[1] ?? 0, '')).toString(), '');
      assert.ok(lines.some((line) => line.includes('nx.example.com could not be resolved (3: Host not found)')), lines.join('\n'));
    } finally {
      await proxy.stop();
      dns.answers.clear();
    }
  });

  it('follows the answers for a stream upstream server with resolve', async () => {
    dns.answers.set('up.example.com A', { a: ['127.0.0.2'] });
    const proxy = await serveStream(`stream { proxy_half_close on;
      resolver 127.0.0.1:${dnsPort} valid=1s ipv6=off;
      upstream u { zone u 64k; server up.example.com:${backend?.port} resolve; }
      server { listen 127.0.0.1:1; proxy_pass u; proxy_connect_timeout 200ms; }
    }`);
    try {
      // 127.0.0.2 has no listener: the session fails until the name moves to 127.0.0.1.
      for (let i = 0; i < 50 && dns.count('up.example.com A') === 0; i++) await new Promise((resolve) => setTimeout(resolve, 50));
      assert.equal((await exchange(proxy.port, '')).toString(), '');
      dns.answers.set('up.example.com A', { a: ['127.0.0.1'] });
      let answer = '';
      for (let i = 0; i < 60 && answer !== 'resolved'; i++) {
        answer = (await exchange(proxy.port, '')).toString();
        if (answer !== 'resolved') await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.equal(answer, 'resolved');
      assert.ok(dns.count('up.example.com A') >= 2);
    } finally {
      await proxy.stop();
      dns.answers.clear();
    }
  });
});
