/** realip: $remote_addr from a trusted source's header, the original kept in $realip_remote_addr. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { errorOf, get, load, serve, type Served } from './helpers.js';
import { canonicalAddress, forwardedAddress, isTrusted, parseAddrPort, parseCidr } from '../../src/http/realip.js';

describe('realip directives', () => {
  it('parses addresses, blocks and unix:', () => {
    const http = load('http { set_real_ip_from 10.0.0.0/8; set_real_ip_from ::1; set_real_ip_from unix:; real_ip_header X-Forwarded-For; real_ip_recursive on; }').main.child('http');
    assert.equal(http?.get('set_real_ip_from').length, 3);
    assert.deepEqual(http?.get('real_ip_header'), { kind: 'x-forwarded-for' });
    assert.equal(http?.get('real_ip_recursive'), true);
  });

  it('refuses what nginx refuses', () => {
    assert.match(errorOf('http { set_real_ip_from 1.2.3.4/33; }'), /^host not found in set_real_ip_from "1\.2\.3\.4\/33" in/);
    assert.match(errorOf('http { real_ip_recursive maybe; }'), /it must be "on" or "off"/);
    assert.match(errorOf('http { real_ip_header; }'), /^invalid number of arguments in "real_ip_header" directive/);
  });

  it('matches blocks as ngx_cidr_match() does, v4-mapped addresses as IPv4', () => {
    const blocks = [parseCidr('10.1.0.0/16'), parseCidr('2001:db8::/32')].filter((b) => b !== undefined);
    assert.equal(isTrusted('10.1.200.3', blocks), true);
    assert.equal(isTrusted('::ffff:10.1.2.3', blocks), true);
    assert.equal(isTrusted('10.2.0.1', blocks), false);
    assert.equal(isTrusted('2001:db8:1::5', blocks), true);
    assert.equal(isTrusted('unix:', blocks), false);
    assert.deepEqual(parseAddrPort('[::1]:8080'), { address: '::1', port: '8080' });
    assert.deepEqual(parseAddrPort('1.2.3.4:99'), { address: '1.2.3.4', port: '99' });
    // As ngx_sock_ntop() prints the sockaddr nginx parsed: lowercase, compressed.
    assert.deepEqual(parseAddrPort('[2001:Db8:0:0::1]:80'), { address: '2001:db8::1', port: '80' });
    assert.equal(canonicalAddress('2001:DB8::0:1'), '2001:db8::1');
    assert.equal(canonicalAddress('::FFFF:192.0.2.1'), '::ffff:192.0.2.1');
    assert.equal(parseAddrPort('unknown'), undefined);
  });

  it('walks X-Forwarded-For from the right while addresses are trusted, with real_ip_recursive', () => {
    const trusted = [parseCidr('10.0.0.0/8')].filter((b) => b !== undefined);
    assert.equal(forwardedAddress('10.0.0.1', '1.1.1.1, 10.0.0.2, 10.0.0.3', trusted, false)?.address, '10.0.0.3');
    assert.equal(forwardedAddress('10.0.0.1', '1.1.1.1, 10.0.0.2, 10.0.0.3', trusted, true)?.address, '1.1.1.1');
    assert.equal(forwardedAddress('10.0.0.1', '10.0.0.2, 10.0.0.3', trusted, true)?.address, '10.0.0.2');
    assert.equal(forwardedAddress('192.0.2.1', '1.1.1.1', trusted, true), undefined);
  });
});

describe('realip at request time', () => {
  let served: Served;
  before(async () => {
    served = await serve(`http {
      server {
        listen 127.0.0.1:18081;
        set_real_ip_from 127.0.0.0/8;
        real_ip_header X-Forwarded-For;
        real_ip_recursive on;
        location / { return 200 "$remote_addr|$remote_port|$realip_remote_addr"; }
      }
      server {
        listen 127.0.0.1:18082;
        set_real_ip_from 192.0.2.0/24;
        location / { return 200 "$remote_addr|$realip_remote_addr"; }
      }
    }`, '/tmp/');
  });
  after(() => served.stop());

  it('takes the rightmost untrusted address from a trusted connection', async () => {
    const reply = await get(served.port, '/', { headers: { 'x-forwarded-for': '203.0.113.9, 127.0.0.5' } });
    assert.equal(reply.body, '203.0.113.9||127.0.0.1');
    const withPort = await get(served.port, '/', { headers: { 'x-forwarded-for': '203.0.113.9:4711' } });
    assert.equal(withPort.body, '203.0.113.9|4711|127.0.0.1');
    const v6 = await get(served.port, '/', { headers: { 'x-forwarded-for': '2001:DB8::1' } });
    assert.equal(v6.body, '2001:db8::1||127.0.0.1');
  });

  it('keeps the connection address without the header or from an untrusted source', async () => {
    assert.match((await get(served.port, '/')).body, /^127\.0\.0\.1\|\d+\|127\.0\.0\.1$/);
    const [, second] = [...served.ports.values()];
    const reply = await get(second ?? 0, '/', { headers: { 'x-real-ip': '203.0.113.9' } });
    assert.equal(reply.body, '127.0.0.1|127.0.0.1');
  });
});
