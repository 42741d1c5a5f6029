/**
 * The resolver's DNS client against a DNS server on loopback: TTLs, a CNAME whose target must be
 * asked for (node:dns stopped there with "Server failure"), SRV records with their targets, a
 * truncated answer asked again over TCP, and the server's RCODE kept as nginx's error code.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { DnsClient, dnsErrorText } from '../../src/core/dns-client.js';
import { TestDnsServer } from './dns-server.js';

describe('the resolver DNS client', () => {
  const dns = new TestDnsServer();
  let client: DnsClient;
  const options = { ipv4: true, ipv6: true, timeoutMs: 2_000 };

  before(async () => {
    const port = await dns.start();
    client = new DnsClient([{ host: '127.0.0.1', port }]);
  });
  after(async () => {
    client.close();
    await dns.stop();
  });

  it('reads A and AAAA records with their least TTL', async () => {
    dns.ttl = 7;
    dns.answers.set('example.net A', { a: ['127.0.0.201', '127.0.0.202'] });
    dns.answers.set('example.net AAAA', { aaaa: ['fe80::1'] });
    const answer = await client.resolveAddresses('example.net', options);
    assert.deepEqual(answer, { code: 0, addresses: ['127.0.0.201', '127.0.0.202', 'fe80::1'], ttl: 7 });
    dns.answers.clear();
    dns.ttl = 1;
  });

  it('asks again for the target of a CNAME that comes without addresses', async () => {
    dns.answers.set('www.example.net CNAME', { cname: 'alias.example.net' });
    dns.answers.set('alias.example.net A', { a: ['127.0.0.203'] });
    const answer = await client.resolveAddresses('www.example.net', { ...options, ipv6: false });
    assert.deepEqual(answer, { code: 0, addresses: ['127.0.0.203'], ttl: 1 });
    assert.equal(dns.count('alias.example.net A'), 1);
    dns.answers.clear();
  });

  it('keeps the RCODE of a failed answer, and calls a name without records NXDOMAIN', async () => {
    dns.answers.set('bad.example.net A', { rcode: 2 });
    dns.answers.set('bad.example.net AAAA', { rcode: 2 });
    const failed = await client.resolveAddresses('bad.example.net', options);
    assert.equal(failed.code, 2);
    assert.equal(dnsErrorText(failed.code), 'Server failure');
    const empty = await client.resolveAddresses('empty.example.net', options);
    assert.equal(empty.code, 3);
    dns.answers.clear();
  });

  it('resolves a service to its targets, and a truncated answer over TCP', async () => {
    dns.answers.set('_http._tcp.example.net SRV', { truncated: { srv: [{ priority: 1, weight: 0, port: 8080, target: 'a.example.net' }, { priority: 2, weight: 5, port: 8081, target: 'b.example.net' }] } });
    dns.answers.set('a.example.net A', { a: ['127.0.0.1'] });
    dns.answers.set('b.example.net A', { a: ['127.0.0.2'] });
    const answer = await client.resolveService('http', 'example.net', { ...options, ipv6: false });
    assert.equal(answer.code, 0);
    assert.deepEqual(answer.addresses, [
      { address: '127.0.0.1', port: 8080, priority: 1, weight: 1, name: 'a.example.net' },
      { address: '127.0.0.2', port: 8081, priority: 2, weight: 5, name: 'b.example.net' },
    ]);
    dns.answers.clear();
  });

  it('fails a name when either family\'s answer is an error, and keeps a repeated address', async () => {
    dns.answers.set('n-e.example.net A', { a: ['127.0.0.201'] });
    dns.answers.set('n-e.example.net AAAA', { rcode: 2 });
    assert.equal((await client.resolveAddresses('n-e.example.net', options)).code, 2);
    dns.answers.set('twice.example.net A', { a: ['127.0.0.2', '127.0.0.2', '127.0.0.1'] });
    assert.deepEqual((await client.resolveAddresses('twice.example.net', { ...options, ipv6: false })).addresses, ['127.0.0.2', '127.0.0.2', '127.0.0.1']);
    dns.answers.clear();
  });

  it('follows the CNAME of the last answer only (AAAA\'s), as nginx does', async () => {
    dns.answers.set('alias2.example.net A', { a: ['127.0.0.201'] });
    dns.answers.set('alias2.example.net AAAA', { aaaa: ['fe80::1'] });
    // A: a CNAME, AAAA: nothing: not followed.
    dns.answers.set('c-z.example.net A', { cname: 'alias2.example.net' });
    assert.equal((await client.resolveAddresses('c-z.example.net', options)).code, 3);
    // A: nothing, AAAA: a CNAME: followed for both families.
    dns.answers.set('z-c.example.net AAAA', { cname: 'alias2.example.net' });
    assert.deepEqual((await client.resolveAddresses('z-c.example.net', options)).addresses, ['127.0.0.201', 'fe80::1']);
    dns.answers.clear();
  });

  it('reports a timeout as nginx does (110) when nobody answers', async () => {
    const silent = new DnsClient([{ host: '127.0.0.1', port: 9 }]);
    const answer = await silent.resolveAddresses('example.net', { ...options, timeoutMs: 200 });
    silent.close();
    assert.equal(answer.code, 110);
  });
});
