/**
 * `resolver` and `resolver_timeout`: proxy_pass with variables to a host name resolved at request
 * time, against a real UDP DNS responder on 127.0.0.1 written here (nginx-tests' http_resolver*.t
 * do the same with their own responder).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, get, serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

/** A DNS responder: A records for the names it knows, NXDOMAIN for others, silence for `slow.test`. */
class DnsResponder {
  readonly socket: UdpSocket;
  readonly queries: { name: string; type: number }[] = [];
  readonly #records: ReadonlyMap<string, { ip: string; ttl: number }>;

  private constructor(socket: UdpSocket, records: ReadonlyMap<string, { ip: string; ttl: number }>) {
    this.socket = socket;
    this.#records = records;
    socket.on('message', (message, peer) => this.#answer(message, peer.port, peer.address));
  }

  static async start(records: Record<string, { ip: string; ttl: number }>): Promise<DnsResponder> {
    const socket = createSocket('udp4');
    await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
    return new DnsResponder(socket, new Map(Object.entries(records)));
  }

  get port(): number {
    return this.socket.address().port;
  }

  #answer(query: Buffer, port: number, address: string): void {
    // The question: labels from offset 12, then QTYPE and QCLASS (RFC 1035 section 4.1.2).
    const labels: string[] = [];
    let pos = 12;
    while (pos < query.length && query[pos] !== 0) {
      const length = query[pos] as number;
      labels.push(query.subarray(pos + 1, pos + 1 + length).toString('latin1'));
      pos += 1 + length;
    }
    const questionEnd = pos + 5;
    const name = labels.join('.').toLowerCase();
    const type = query.readUInt16BE(pos + 1);
    this.queries.push({ name, type });
    if (name === 'slow.test') return;
    const record = this.#records.get(name);
    const header = Buffer.alloc(12);
    query.copy(header, 0, 0, 2);
    const withAnswer = record !== undefined && type === 1;
    header.writeUInt16BE(record === undefined ? 0x8183 : 0x8180, 2);
    header.writeUInt16BE(1, 4);
    header.writeUInt16BE(withAnswer ? 1 : 0, 6);
    const question = query.subarray(12, questionEnd);
    const parts = [header, question];
    if (withAnswer) {
      const answer = Buffer.alloc(16);
      answer.writeUInt16BE(0xc00c, 0);
      answer.writeUInt16BE(1, 2);
      answer.writeUInt16BE(1, 4);
      answer.writeUInt32BE(record.ttl, 6);
      answer.writeUInt16BE(4, 10);
      record.ip.split('.').forEach((octet, i) => answer.writeUInt8(Number(octet), 12 + i));
      parts.push(answer);
    }
    this.socket.send(Buffer.concat(parts), port, address);
  }

  count(name: string, type: number): number {
    return this.queries.filter((query) => query.name === name && query.type === type).length;
  }

  close(): void {
    this.socket.close();
  }
}

describe('resolver: proxy_pass with variables to a host name', () => {
  let dns: DnsResponder;
  let upstream: Upstream;
  let served: Served;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-resolver-'));
    dns = await DnsResponder.start({ 'backend.test': { ip: '127.0.0.1', ttl: 300 } });
    upstream = await httpUpstream((req, res) => res.end(`upstream ${req.url ?? ''}`));
    served = await serve(
      `http {
        server {
          listen 127.0.0.1:8080;
          location /v4/ { resolver 127.0.0.1:${dns.port} ipv6=off; proxy_pass http://$arg_h:${upstream.port}; }
          location /both/ { resolver 127.0.0.1:${dns.port}; proxy_pass http://$arg_h:${upstream.port}; }
          location /slow/ { resolver 127.0.0.1:${dns.port} ipv6=off; resolver_timeout 300ms; proxy_pass http://$arg_h:${upstream.port}; }
          location /none/ { proxy_pass http://$arg_h:${upstream.port}; }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served?.stop();
    await upstream?.stop();
    dns?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const errorLog = (): string => readFileSync(join(dir, 'error.log'), 'utf8');

  it('resolves the host at request time and keeps the answer for its TTL', async () => {
    const first = await get(served.port, '/v4/a?h=backend.test');
    assert.equal(first.status, 200);
    assert.equal(first.body, 'upstream /v4/a?h=backend.test');
    const second = await get(served.port, '/v4/b?h=backend.test');
    assert.equal(second.status, 200);
    assert.equal(dns.count('backend.test', 1), 1, 'the second request used the cached answer');
    assert.equal(dns.count('backend.test', 28), 0, 'ipv6=off asks no AAAA');
  });

  it('asks for AAAA too unless ipv6=off, and uses the addresses found', async () => {
    const reply = await get(served.port, '/both/?h=Backend.Test');
    assert.equal(reply.status, 200);
    assert.equal(dns.count('backend.test', 28), 1);
  });

  it('answers 502 and logs nginx\'s words for a name that does not exist', async () => {
    const reply = await get(served.port, '/v4/?h=missing.test');
    assert.equal(reply.status, 502);
    assert.match(errorLog(), /\[error\] .*missing\.test could not be resolved \(3: Host not found\), client: 127\.0\.0\.1, server: , request: "GET \/v4\/\?h=missing\.test HTTP\/1\.1"/);
  });

  it('answers 502 after resolver_timeout when no answer comes', async () => {
    const reply = await get(served.port, '/slow/?h=slow.test');
    assert.equal(reply.status, 502);
    assert.match(errorLog(), /slow\.test could not be resolved \(110: Operation timed out\)/);
  });

  it('needs no resolver for an address, and says "no resolver defined" for a name without one', async () => {
    const address = await get(served.port, '/none/?h=127.0.0.1');
    assert.equal(address.status, 200);
    const name = await get(served.port, '/none/?h=backend.test');
    assert.equal(name.status, 502);
    assert.match(errorLog(), /no resolver defined to resolve backend\.test/);
  });
});

describe('resolver: configuration', () => {
  it('refuses what ngx_resolver_create() refuses', () => {
    assert.match(errorOf('http { resolver 127.0.0.1 valid=x; }'), /^invalid parameter: valid=x in \/x\.conf:1$/);
    assert.match(errorOf('http { resolver 127.0.0.1 ipv6=maybe; }'), /^invalid parameter: ipv6=maybe in/);
    assert.match(errorOf('http { resolver valid=30s; }'), /^no name servers defined in/);
    assert.match(errorOf('http { resolver 127.0.0.1 ipv4=off ipv6=off; }'), /^"ipv4" and "ipv6" cannot both be "off" in/);
    assert.match(errorOf('http { resolver 127.0.0.1:99999; }'), /^invalid port in resolver "127\.0\.0\.1:99999" in/);
    assert.match(errorOf('http { resolver 127.0.0.1; resolver 127.0.0.2; }'), /^"resolver" directive is duplicate in/);
  });
});
