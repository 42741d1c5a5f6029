/**
 * The PROXY protocol (haproxy's proxy-protocol.txt, versions 1 and 2): reading the header a
 * `listen ... proxy_protocol` connection starts with (nginx's `ngx_proxy_protocol_read()`), and
 * writing one before the bytes passed to an upstream (`proxy_protocol on`).
 */
import { isIPv4, isIPv6 } from 'node:net';

/** The addresses a header carries; undefined fields for `PROXY UNKNOWN` and v2 `LOCAL`. */
export interface ProxyProtocolAddresses {
  readonly sourceAddress: string;
  readonly sourcePort: number;
  readonly destinationAddress: string;
  readonly destinationPort: number;
  /** A v2 header's TLVs after the addresses, as sent (`$proxy_protocol_tlv_*`); undefined for v1 or none. */
  readonly tlvs?: Buffer | undefined;
}

/** The outcome of reading: more bytes needed, a broken header, or the header and its length. */
export type ProxyProtocolRead =
  | { readonly kind: 'again' }
  | { readonly kind: 'broken' }
  | { readonly kind: 'header'; readonly length: number; readonly addresses: ProxyProtocolAddresses | undefined };

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** A v1 line is at most 107 bytes, CRLF included. */
const V1_MAX = 107;

function readV1(data: Buffer): ProxyProtocolRead {
  const end = data.indexOf('\r\n');
  if (end === -1) return data.length >= V1_MAX ? { kind: 'broken' } : { kind: 'again' };
  if (end + 2 > V1_MAX) return { kind: 'broken' };
  const words = data.subarray(0, end).toString('latin1').split(' ');
  const length = end + 2;
  if (words[1] === 'UNKNOWN') return { kind: 'header', length, addresses: undefined };
  if (words.length !== 6) return { kind: 'broken' };
  const [, family, source = '', destination = '', sourcePort = '', destinationPort = ''] = words;
  const valid = family === 'TCP4' ? isIPv4(source) && isIPv4(destination) : family === 'TCP6' ? isIPv6(source) && isIPv6(destination) : false;
  const port = (text: string): number => (/^[0-9]{1,5}$/.test(text) && Number(text) <= 65535 ? Number(text) : -1);
  if (!valid || port(sourcePort) < 0 || port(destinationPort) < 0) return { kind: 'broken' };
  return { kind: 'header', length, addresses: { sourceAddress: source, sourcePort: port(sourcePort), destinationAddress: destination, destinationPort: port(destinationPort) } };
}

function readV2(data: Buffer): ProxyProtocolRead {
  if (data.length < 16) return { kind: 'again' };
  const versionCommand = data[12] as number;
  if (versionCommand >> 4 !== 2) return { kind: 'broken' };
  const length = 16 + data.readUInt16BE(14);
  if (data.length < length) return { kind: 'again' };
  const command = versionCommand & 0x0f;
  if (command === 0) return { kind: 'header', length, addresses: undefined };
  if (command !== 1) return { kind: 'broken' };
  const family = data[13] as number;
  const body = data.subarray(16, length);
  // ngx_proxy_protocol_v2_read() keeps what follows the addresses for ngx_proxy_protocol_get_tlv().
  const tlvsAfter = (offset: number): { tlvs?: Buffer } => (body.length > offset ? { tlvs: Buffer.from(body.subarray(offset)) } : {});
  if (family === 0x11 && body.length >= 12) {
    const ip = (offset: number): string => [...body.subarray(offset, offset + 4)].join('.');
    return { kind: 'header', length, addresses: { sourceAddress: ip(0), destinationAddress: ip(4), sourcePort: body.readUInt16BE(8), destinationPort: body.readUInt16BE(10), ...tlvsAfter(12) } };
  }
  if (family === 0x21 && body.length >= 36) {
    const ip = (offset: number): string => {
      const groups: string[] = [];
      for (let i = 0; i < 16; i += 2) groups.push(body.readUInt16BE(offset + i).toString(16));
      return new URL(`http://[${groups.join(':')}]/`).hostname.slice(1, -1);
    };
    return { kind: 'header', length, addresses: { sourceAddress: ip(0), destinationAddress: ip(16), sourcePort: body.readUInt16BE(32), destinationPort: body.readUInt16BE(34), ...tlvsAfter(36) } };
  }
  // Other families (unix, unspecified) carry nothing nginx uses.
  return { kind: 'header', length, addresses: undefined };
}

/** A broken header as nginx's `broken header: "..."` line shows it: its first 107 bytes, line ends dropped. */
export function brokenHeaderText(data: Buffer): string {
  return data.subarray(0, V1_MAX).toString('latin1').replace(/[\r\n]/g, '');
}

/** Reads a header at the start of `data` (everything the client sent so far). */
export function readProxyProtocol(data: Buffer): ProxyProtocolRead {
  const signature = Math.min(data.length, V2_SIGNATURE.length);
  if (data.subarray(0, signature).equals(V2_SIGNATURE.subarray(0, signature)) && data.length > 0) {
    return data.length < V2_SIGNATURE.length ? { kind: 'again' } : readV2(data);
  }
  const prefix = Math.min(data.length, 6);
  if (!data.subarray(0, prefix).equals(Buffer.from('PROXY ').subarray(0, prefix))) return { kind: 'broken' };
  return readV1(data);
}

/** Strips an IPv4-mapped IPv6 address to its IPv4 form, as the header's family needs. */
function plain(address: string): string {
  return address.startsWith('::ffff:') && isIPv4(address.slice(7)) ? address.slice(7) : address;
}

/** The header to send upstream; `UNKNOWN` (v1) or `LOCAL` (v2) when the addresses are not both IPv4 or both IPv6. */
export function writeProxyProtocol(version: 1 | 2, addresses: ProxyProtocolAddresses): Buffer {
  const source = plain(addresses.sourceAddress);
  const destination = plain(addresses.destinationAddress);
  const family = isIPv4(source) && isIPv4(destination) ? 4 : isIPv6(source) && isIPv6(destination) ? 6 : 0;
  if (version === 1) {
    if (family === 0) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
    return Buffer.from(`PROXY TCP${family} ${source} ${destination} ${addresses.sourcePort} ${addresses.destinationPort}\r\n`, 'latin1');
  }
  if (family === 0) return Buffer.concat([V2_SIGNATURE, Buffer.from([0x20, 0x00, 0x00, 0x00])]);
  const body = Buffer.alloc(family === 4 ? 12 : 36);
  const size = family === 4 ? 4 : 16;
  writeAddress(body, 0, source, family);
  writeAddress(body, size, destination, family);
  body.writeUInt16BE(addresses.sourcePort, size * 2);
  body.writeUInt16BE(addresses.destinationPort, size * 2 + 2);
  const header = Buffer.from([0x21, family === 4 ? 0x11 : 0x21, 0, 0]);
  header.writeUInt16BE(body.length, 2);
  return Buffer.concat([V2_SIGNATURE, header, body]);
}

function writeAddress(target: Buffer, offset: number, address: string, family: 4 | 6): void {
  if (family === 4) {
    address.split('.').forEach((octet, i) => target.writeUInt8(Number(octet), offset + i));
    return;
  }
  const [head = '', tail] = address.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? left : [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  groups.forEach((group, i) => target.writeUInt16BE(parseInt(group, 16), offset + i * 2));
}

/** The TLV types `$proxy_protocol_tlv_<name>` knows by name (ngx_proxy_protocol_tlv_entries). */
const TLV_TYPES: Readonly<Record<string, number>> = { alpn: 0x01, authority: 0x02, unique_id: 0x05, ssl: 0x20, netns: 0x30 };
/** The sub-TLVs of the `ssl` TLV, as `ssl_<name>` (ngx_proxy_protocol_tlv_ssl_entries). */
const SSL_TLV_TYPES: Readonly<Record<string, number>> = { version: 0x21, cn: 0x22, cipher: 0x23, sig_alg: 0x24, key_alg: 0x25 };
/** The `ssl` TLV's own fields before its sub-TLVs: client (1 byte) and verify (4). */
const SSL_TLV_HEADER = 5;

/** What a TLV lookup found: its bytes, nothing (not found), or a broken list or an unknown name (nginx's [error]). */
export type TlvLookup = { readonly value: Buffer } | { readonly notFound: true } | { readonly error: string };

function lookupTlv(tlvs: Buffer, type: number): TlvLookup {
  let offset = 0;
  while (offset < tlvs.length) {
    if (tlvs.length - offset < 3) return { error: 'broken PROXY protocol TLV' };
    const tlvType = tlvs[offset] as number;
    const length = tlvs.readUInt16BE(offset + 1);
    offset += 3;
    if (tlvs.length - offset < length) return { error: 'broken PROXY protocol TLV' };
    if (tlvType === type) return { value: tlvs.subarray(offset, offset + length) };
    offset += length;
  }
  return { notFound: true };
}

/**
 * `$proxy_protocol_tlv_<name>` (ngx_proxy_protocol_get_tlv()): a TLV by name (`alpn`,
 * `authority`, `unique_id`, `ssl`, `netns`) or by hexadecimal type (`0x1f`), or, after `ssl_`, a
 * sub-TLV of the ssl TLV by name or type, and `ssl_verify`, the ssl TLV's verify field in decimal.
 * Not found without a v2 header with addresses.
 */
export function proxyProtocolTlv(addresses: ProxyProtocolAddresses | undefined, name: string): TlvLookup {
  if (addresses === undefined) return { notFound: true };
  let tlvs = addresses.tlvs ?? Buffer.alloc(0);
  let key = name;
  let names = TLV_TYPES;
  if (key.startsWith('ssl_')) {
    const ssl = lookupTlv(tlvs, TLV_TYPES['ssl'] as number);
    if (!('value' in ssl)) return ssl;
    if (ssl.value.length < SSL_TLV_HEADER) return { error: 'broken PROXY protocol TLV' };
    key = key.slice(4);
    if (key === 'verify') return { value: Buffer.from(String(ssl.value.readUInt32BE(1)), 'latin1') };
    tlvs = ssl.value.subarray(SSL_TLV_HEADER);
    names = SSL_TLV_TYPES;
  }
  if (key.startsWith('0x')) {
    // ngx_hextoi(): hexadecimal digits only, at least one.
    const digits = key.slice(2);
    if (!/^[0-9a-f]+$/i.test(digits)) return { error: `invalid PROXY protocol TLV "${name}"` };
    const type = parseInt(digits, 16);
    return type > 0xff ? { notFound: true } : lookupTlv(tlvs, type);
  }
  const type = Object.hasOwn(names, key) ? names[key] : undefined;
  if (type === undefined) return { error: `unknown PROXY protocol TLV "${name}"` };
  return lookupTlv(tlvs, type);
}

/**
 * The getter of `$proxy_protocol_tlv_<suffix>`: the TLV's bytes as a byte string, undefined when
 * not found. nginx fails the variable (and what uses it) on a broken list or an unknown name and
 * logs it at [error]; a variable getter here has no error log, so it is not found then.
 */
export function proxyProtocolTlvGetter(suffix: string): (addresses: ProxyProtocolAddresses | undefined) => string | undefined {
  return (addresses) => {
    const found = proxyProtocolTlv(addresses, suffix);
    return 'value' in found ? found.value.toString('latin1') : undefined;
  };
}
