/** The PROXY protocol reader and writer, versions 1 and 2. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { proxyProtocolTlv, readProxyProtocol, writeProxyProtocol, type ProxyProtocolAddresses } from '../../src/core/proxy-protocol.js';

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

/** One TLV: type, 16-bit length, value. */
function tlv(type: number, value: Buffer | string): Buffer {
  const bytes = Buffer.isBuffer(value) ? value : Buffer.from(value, 'latin1');
  const head = Buffer.from([type, 0, 0]);
  head.writeUInt16BE(bytes.length, 1);
  return Buffer.concat([head, bytes]);
}

/** A v2 PROXY TCP4 header from 192.0.2.1:123 to 192.0.2.2:5678 with `tlvs` after the addresses. */
function v2With(tlvs: Buffer): Buffer {
  const signature = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
  const addresses = Buffer.from([192, 0, 2, 1, 192, 0, 2, 2, 0, 123, 0x16, 0x2e]);
  const head = Buffer.from([0x21, 0x11, 0, 0]);
  head.writeUInt16BE(addresses.length + tlvs.length, 2);
  return Buffer.concat([signature, head, addresses, tlvs]);
}

// proxy_protocol2_tlv.t, stream_proxy_protocol2_tlv.t: $proxy_protocol_tlv_* were unknown variables.
describe('PROXY protocol v2 TLVs ($proxy_protocol_tlv_*, ngx_proxy_protocol_get_tlv())', () => {
  const ssl = Buffer.concat([Buffer.from([0x01, 0, 0, 0, 255]), tlv(0x21, 'TLSv1.2'), tlv(0x22, 'example.com'), tlv(0x25, 'RSA512')]);
  const read = readProxyProtocol(v2With(Buffer.concat([tlv(0x01, 'h2'), tlv(0x02, 'localhost'), tlv(0xae, '12345'), tlv(0x20, ssl)])));
  assert.equal(read.kind, 'header');
  const addresses = (read as { addresses: ProxyProtocolAddresses }).addresses;
  const text = (name: string): string | undefined => {
    const found = proxyProtocolTlv(addresses, name);
    return 'value' in found ? found.value.toString('latin1') : 'error' in found ? `error: ${found.error}` : undefined;
  };

  it('finds a TLV by name and by hexadecimal type, and nothing for a type not sent', () => {
    assert.equal(addresses.sourceAddress, '192.0.2.1');
    assert.equal(text('alpn'), 'h2');
    assert.equal(text('authority'), 'localhost');
    assert.equal(text('0x000ae'), '12345');
    assert.equal(text('0xAE'), '12345');
    assert.equal(text('0x000e'), undefined);
    assert.equal(text('netns'), undefined);
    assert.equal(text('ssl')?.length, ssl.length);
  });

  it('finds the ssl TLV\'s sub-TLVs after ssl_, and its verify field in decimal', () => {
    assert.equal(text('ssl_verify'), '255');
    assert.equal(text('ssl_version'), 'TLSv1.2');
    assert.equal(text('ssl_cn'), 'example.com');
    assert.equal(text('ssl_0x25'), 'RSA512');
    assert.equal(text('ssl_cipher'), undefined);
  });

  it('says what nginx logs for an unknown name, a bad type and a broken list; nothing without a v2 header', () => {
    assert.equal(text('nope'), 'error: unknown PROXY protocol TLV "nope"');
    assert.equal(text('0xzz'), 'error: invalid PROXY protocol TLV "0xzz"');
    const broken = readProxyProtocol(v2With(Buffer.from([0x01, 0x00, 0x09, 0x41])));
    assert.deepEqual(proxyProtocolTlv((broken as { addresses: ProxyProtocolAddresses }).addresses, 'alpn'), { error: 'broken PROXY protocol TLV' });
    const v1 = readProxyProtocol(Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n'));
    assert.deepEqual(proxyProtocolTlv((v1 as { addresses: ProxyProtocolAddresses }).addresses, 'alpn'), { notFound: true });
    assert.deepEqual(proxyProtocolTlv(undefined, 'alpn'), { notFound: true });
  });
});
