/** The PROXY protocol reader and writer, versions 1 and 2. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { readProxyProtocol, writeProxyProtocol } from '../../src/core/proxy-protocol.js';

const addresses = { sourceAddress: '203.0.113.7', sourcePort: 5555, destinationAddress: '192.0.2.1', destinationPort: 443 };
const v6 = { sourceAddress: '2001:db8::7', sourcePort: 1, destinationAddress: '::1', destinationPort: 2 };

describe('the PROXY protocol', () => {
  it('writes and reads back v1 and v2 headers, IPv4 and IPv6', () => {
    for (const version of [1, 2] as const) {
      for (const sent of [addresses, v6]) {
        const header = writeProxyProtocol(version, sent);
        const read = readProxyProtocol(Buffer.concat([header, Buffer.from('rest')]));
        assert.deepEqual(read, { kind: 'header', length: header.length, addresses: sent }, `v${version}`);
      }
    }
    assert.equal(writeProxyProtocol(1, addresses).toString(), 'PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n');
  });

  it('writes an IPv4-mapped client as IPv4, and UNKNOWN (v1) or LOCAL (v2) for mixed families', () => {
    assert.equal(writeProxyProtocol(1, { ...addresses, sourceAddress: '::ffff:203.0.113.7' }).toString(), 'PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n');
    assert.equal(writeProxyProtocol(1, { ...addresses, destinationAddress: '::1' }).toString(), 'PROXY UNKNOWN\r\n');
    const local = readProxyProtocol(writeProxyProtocol(2, { ...addresses, destinationAddress: '::1' }));
    assert.deepEqual(local, { kind: 'header', length: 16, addresses: undefined });
  });

  it('waits for the rest of a header and refuses broken ones', () => {
    const header = writeProxyProtocol(2, addresses);
    for (let cut = 1; cut < header.length; cut++) assert.equal(readProxyProtocol(header.subarray(0, cut)).kind, 'again', `v2 cut at ${cut}`);
    assert.equal(readProxyProtocol(Buffer.from('PROXY TCP4 1.2.3.4')).kind, 'again');
    for (const broken of ['GET / HTTP/1.1\r\n', 'PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n', 'PROXY TCP4 1.2.3.400 5.6.7.8 1 2\r\n', 'PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n', `PROXY ${'x'.repeat(120)}`]) {
      assert.equal(readProxyProtocol(Buffer.from(broken)).kind, 'broken', JSON.stringify(broken));
    }
    assert.deepEqual(readProxyProtocol(Buffer.from('PROXY UNKNOWN\r\nrest')), { kind: 'header', length: 15, addresses: undefined });
  });
});
