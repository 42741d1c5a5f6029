import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveHostSync } from '../../src/core/hosts.js';
import { collectListens } from '../../src/http/runtime.js';
import { errorOf, load } from './helpers.js';

function listensOf(lines: string) {
  const server = load(`http { server { ${lines} } }`).main.child('http')?.child('server');
  assert.ok(server);
  return server.get('listen');
}

function keysOf(http: string): string[] {
  return collectListens(load(`http { ${http} }`)).map((spec) => spec.key);
}

describe('listen: addresses as ngx_parse_url() reads them', () => {
  const cases: [string, Partial<{ family: string; address: string; port: number; wildcard: boolean; addrText: string }>][] = [
    ['listen 8080;', { family: 'inet', address: '0.0.0.0', port: 8080, wildcard: true, addrText: '0.0.0.0:8080' }],
    ['listen *:81;', { family: 'inet', address: '0.0.0.0', port: 81, wildcard: true }],
    ['listen 127.0.0.1;', { family: 'inet', address: '127.0.0.1', port: 80, wildcard: false, addrText: '127.0.0.1:80' }],
    ['listen 127.0.0.1:8000;', { address: '127.0.0.1', port: 8000 }],
    ['listen 0.0.0.0:8000;', { address: '0.0.0.0', wildcard: true }],
    ['listen [::]:8000;', { family: 'inet6', address: '::', wildcard: true, addrText: '[::]:8000' }],
    ['listen [0:0::1];', { family: 'inet6', address: '::1', port: 80, addrText: '[::1]:80' }],
    ['listen unix:/run/hitless.sock;', { family: 'unix', address: '/run/hitless.sock', port: 0, addrText: 'unix:/run/hitless.sock' }],
  ];
  for (const [line, expected] of cases) {
    it(line, () => {
      const [listen] = listensOf(line);
      assert.ok(listen);
      for (const [key, value] of Object.entries(expected)) assert.equal(listen[key as keyof typeof listen], value, key);
    });
  }

  it('resolves names from /etc/hosts, one entry per address (localhost)', () => {
    const listens = listensOf('listen localhost:8080;');
    assert.ok(listens.length >= 1);
    assert.ok(listens.every((listen) => listen.port === 8080 && !listen.wildcard));
    assert.deepEqual(resolveHostSync('localhost', '/nonexistent'), ['127.0.0.1']);
  });

  it('keeps the parameters, including those later issues will act on', () => {
    const [listen] = listensOf('listen 443 ssl http2 proxy_protocol default_server reuseport backlog=100 rcvbuf=8k so_keepalive=30s::10; ssl_reject_handshake on;');
    assert.ok(listen);
    assert.equal(listen.ssl && listen.http2 && listen.proxyProtocol && listen.defaultServer && listen.reuseport, true);
    assert.equal(listen.backlog, 100);
    assert.equal(listen.rcvbuf, 8192);
    assert.equal(listen.soKeepalive, '30s::10');
    assert.equal(listen.set, true);
  });

  it('defaults to *:80 as root and *:8000 otherwise', () => {
    const [listen] = listensOf('');
    assert.ok(listen);
    assert.equal(listen.port, process.getuid?.() === 0 ? 80 : 8000);
    assert.equal(listen.wildcard, true);
    assert.equal(listen.implicit, true);
  });

  it('a port range is one entry per port, each with its own address text (ngx_inet_add_addr())', () => {
    const texts = (line: string) => listensOf(line).map((listen) => listen.addrText);
    assert.deepEqual(texts('listen 127.0.0.1:8182-8184;'), ['127.0.0.1:8182', '127.0.0.1:8183', '127.0.0.1:8184']);
    assert.deepEqual(texts('listen [::1]:8182-8183;'), ['[::1]:8182', '[::1]:8183']);
    assert.deepEqual(texts('listen 8000-8001;'), ['0.0.0.0:8000', '0.0.0.0:8001']);
    assert.deepEqual(texts('listen *:8000-8000;'), ['0.0.0.0:8000']);
    assert.deepEqual(keysOf('server { listen 127.0.0.1:8182-8183 default_server; }'), ['127.0.0.1:8182', '127.0.0.1:8183']);
  });

  it('takes ipv6only=off and makes it part of the socket', () => {
    assert.equal(listensOf('listen [::]:80 ipv6only=off;')[0]?.ipv6only, false);
    assert.equal(collectListens(load('http { server { listen [::]:80 ipv6only=off; } }'))[0]?.ipv6only, false);
    assert.equal(collectListens(load('http { server { listen [::]:80; } }'))[0]?.ipv6only, true);
  });
});

describe('listen: nginx error messages', () => {
  const at = ' in /x.conf:2';
  const cases: [string, string][] = [
    ['listen x:80000;', 'invalid port in "x:80000" of the "listen" directive'],
    ['listen 127.0.0.1:0;', 'invalid port in "127.0.0.1:0" of the "listen" directive'],
    ['listen 70000;', 'invalid port in "70000" of the "listen" directive'],
    ['listen 127.0.0.1:x;', 'invalid port in "127.0.0.1:x" of the "listen" directive'],
    ['listen 127.0.0.1:8183-8182;', 'invalid port range in "127.0.0.1:8183-8182" of the "listen" directive'],
    ['listen [::1]:90-80;', 'invalid port range in "[::1]:90-80" of the "listen" directive'],
    ['listen 90-80;', 'invalid port range in "90-80" of the "listen" directive'],
    ['listen 127.0.0.1:80-70000;', 'invalid port in "127.0.0.1:80-70000" of the "listen" directive'],
    ['listen 127.0.0.1:0-80;', 'invalid port in "127.0.0.1:0-80" of the "listen" directive'],
    ['listen 80-x;', 'host not found in "80-x" of the "listen" directive'],
    ['listen no-such-host.invalid:80;', 'host not found in "no-such-host.invalid:80" of the "listen" directive'],
    ['listen :80;', 'no host in ":80" of the "listen" directive'],
    ['listen 127.0.0.1/x;', 'invalid host in "127.0.0.1/x" of the "listen" directive'],
    ['listen [::1;', 'invalid host in "[::1" of the "listen" directive'],
    ['listen [::1]x;', 'invalid host in "[::1]x" of the "listen" directive'],
    ['listen [zz]:80;', 'invalid IPv6 address in "[zz]:80" of the "listen" directive'],
    ['listen unix:;', 'no path in the unix domain socket in "unix:" of the "listen" directive'],
    ['listen 80 backlog=x;', 'invalid backlog "backlog=x"'],
    ['listen 80 backlog=0;', 'invalid backlog "backlog=0"'],
    ['listen 80 rcvbuf=1q;', 'invalid rcvbuf "rcvbuf=1q"'],
    ['listen [::]:80 ipv6only=of;', 'invalid ipv6only flags "of"'],
    ['listen [::]:80 ipv6only=yes;', 'invalid parameter "ipv6only=yes"'],
    ['listen 80 so_keepalive=maybe;', 'invalid so_keepalive value: "maybe"'],
    ['listen 80 fast;', 'invalid parameter "fast"'],
  ];
  for (const [line, message] of cases) {
    it(message, () => assert.equal(errorOf(`http {\n server { ${line} } }`), `${message}${at}`));
  }

  it('a duplicate default server for 0.0.0.0:80', () => {
    assert.equal(
      errorOf('http {\nserver { listen 80 default_server; }\nserver { listen *:80 default_server; } }'),
      'a duplicate default server for 0.0.0.0:80 in /x.conf:3',
    );
  });

  it('duplicate listen options for 0.0.0.0:80', () => {
    assert.equal(errorOf('http {\nserver { listen 80 backlog=10; }\nserver { listen 80 reuseport; } }'), 'duplicate listen options for 0.0.0.0:80 in /x.conf:3');
  });

  it('a duplicate listen 127.0.0.1:80', () => {
    assert.equal(errorOf('http {\nserver { listen 127.0.0.1:80;\nlisten 127.0.0.1; } }'), 'a duplicate listen 127.0.0.1:80 in /x.conf:3');
  });

  it('allows one server to set options and others to share the address', () => {
    assert.deepEqual(keysOf('server { listen 80 backlog=10 default_server; } server { listen 80; }'), ['*:80']);
  });
});

describe('collectListens: the sockets to bind, keyed stably', () => {
  it('keys each socket by address', () => {
    assert.deepEqual(keysOf('server { listen 127.0.0.1:8080; listen [::1]:8080; listen *:9090; listen unix:/tmp/h.sock; }'), [
      '127.0.0.1:8080',
      '[::1]:8080',
      '*:9090',
      'unix:/tmp/h.sock',
    ]);
  });

  it('binds the wildcard to 0.0.0.0 (IPv4 only, as nginx) and keeps one socket per address:port', () => {
    const [spec] = collectListens(load('http { server { listen 8080; } server { listen 0.0.0.0:8080; } }'));
    assert.deepEqual(spec, { key: '*:8080', host: '0.0.0.0', port: 8080, ipv6only: false, backlog: 511 });
  });

  it('serves an address without bind from the wildcard of its port, as ngx_http_init_listening() does', () => {
    assert.deepEqual(keysOf('server { listen 127.0.0.1:8080; } server { listen 8080; }'), ['*:8080']);
    assert.deepEqual(keysOf('server { listen 127.0.0.1:8080 bind; } server { listen 8080; }'), ['127.0.0.1:8080', '*:8080']);
    assert.deepEqual(keysOf('server { listen 127.0.0.1:8080; } server { listen 127.0.0.2:8080; }'), ['127.0.0.1:8080', '127.0.0.2:8080']);
  });

  it('keeps IPv4 and IPv6 wildcards apart', () => {
    assert.deepEqual(keysOf('server { listen 80; listen [::]:80; }'), ['*:80', '[::]:80']);
  });

  it('returns nothing without an http block', () => {
    assert.deepEqual(collectListens(load('')), []);
  });
});
