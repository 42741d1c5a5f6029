/**
 * Client addresses as nginx's realip module reads them: CIDR blocks (`ngx_ptocidr()`,
 * `ngx_cidr_match()`), `addr[:port]` values (`ngx_parse_addr_port()`), the rightmost untrusted
 * address of `X-Forwarded-For` (`ngx_http_get_forwarded_addr()`), and `$binary_remote_addr`.
 */
import { isIPv4, isIPv6, SocketAddress } from 'node:net';

/** A `set_real_ip_from` entry: an address block, or `unix:` for every unix-socket client. */
export type TrustedBlock = { readonly family: 'unix' } | { readonly family: 4 | 6; readonly bytes: readonly number[]; readonly prefix: number };

function ipv4Bytes(address: string): Uint8Array {
  return Uint8Array.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Uint8Array {
  let text = address;
  const tail: number[] = [];
  const lastColon = text.lastIndexOf(':');
  if (text.includes('.', lastColon)) {
    tail.push(...ipv4Bytes(text.slice(lastColon + 1)));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rest] = text.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = rest === undefined || rest === '' ? [] : rest.split(':');
  const groups = [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
  const bytes = new Uint8Array(16);
  groups.forEach((group, i) => {
    const value = parseInt(group, 16);
    bytes[i * 2] = value >> 8;
    bytes[i * 2 + 1] = value & 0xff;
  });
  if (tail.length === 4) bytes.set(tail, 12);
  return bytes;
}

/** An address in its own family; a v4-mapped IPv6 address is IPv4, as `ngx_cidr_match()` treats it. */
export function addressBytes(address: string): { family: 4 | 6; bytes: Uint8Array } | undefined {
  if (isIPv4(address)) return { family: 4, bytes: ipv4Bytes(address) };
  if (!isIPv6(address)) return undefined;
  const bytes = ipv6Bytes(address);
  const mapped = bytes.slice(0, 10).every((b) => b === 0) && bytes[10] === 0xff && bytes[11] === 0xff;
  return mapped ? { family: 4, bytes: bytes.slice(12) } : { family: 6, bytes };
}

/** `$binary_remote_addr`: 4 bytes for IPv4, 16 for IPv6, as a byte string; the text otherwise. */
export function binaryAddress(address: string): string {
  const parsed = addressBytes(address);
  return parsed === undefined ? address : Buffer.from(parsed.bytes).toString('latin1');
}

/**
 * `ngx_ptocidr()`: `addr`, `addr/bits`; undefined when invalid. Address bits below the mask are
 * cleared (nginx warns "low address bits of ... are meaningless").
 */
export function parseCidr(text: string): TrustedBlock | undefined {
  const slash = text.indexOf('/');
  const address = slash === -1 ? text : text.slice(0, slash);
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : undefined;
  if (family === undefined) return undefined;
  const bytes = family === 4 ? ipv4Bytes(address) : ipv6Bytes(address);
  const max = bytes.length * 8;
  const bitsText = slash === -1 ? String(max) : text.slice(slash + 1);
  if (!/^[0-9]+$/.test(bitsText)) return undefined;
  const prefix = Number(bitsText);
  if (prefix > max) return undefined;
  for (let bit = prefix; bit < max; bit++) bytes[bit >> 3] = (bytes[bit >> 3] as number) & ~(0x80 >> (bit & 7));
  // A plain array: the configuration model is deep-frozen, and typed arrays cannot be.
  return { family, bytes: [...bytes], prefix };
}

/** `ngx_cidr_match()`: is the address (node's text form, or `unix:`) in one of the blocks? */
export function isTrusted(address: string, blocks: readonly TrustedBlock[]): boolean {
  if (address.startsWith('unix:')) return blocks.some((block) => block.family === 'unix');
  const parsed = addressBytes(address);
  if (parsed === undefined) return false;
  return blocks.some((block) => {
    if (block.family !== parsed.family) return false;
    for (let bit = 0; bit < block.prefix; bit += 8) {
      const left = Math.min(8, block.prefix - bit);
      const mask = (0xff << (8 - left)) & 0xff;
      if (((parsed.bytes[bit >> 3] as number) & mask) !== (block.bytes[bit >> 3] as number)) return false;
    }
    return true;
  });
}

/**
 * An address as nginx prints the sockaddr it parsed it into (ngx_sock_ntop()): IPv6 lowercase and
 * compressed, `2001:Db8:0::1` as `2001:db8::1`; IPv4 and anything else as given.
 */
export function canonicalAddress(address: string): string {
  return isIPv6(address) ? new SocketAddress({ address, family: 'ipv6' }).address : address;
}

/** A client address found in a header, with its port when the header gave one. */
export interface ForwardedAddress {
  readonly address: string;
  readonly port: string;
}

/** `ngx_parse_addr_port()`: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]`, `[::1]:80`. */
export function parseAddrPort(text: string): ForwardedAddress | undefined {
  let host = text;
  let port = '';
  if (text.startsWith('[')) {
    const close = text.indexOf(']');
    if (close === -1) return undefined;
    host = text.slice(1, close);
    const after = text.slice(close + 1);
    if (after !== '') {
      if (!/^:[0-9]+$/.test(after)) return undefined;
      port = after.slice(1);
    }
  } else {
    const colon = text.indexOf(':');
    if (colon !== -1 && /^[0-9]+$/.test(text.slice(colon + 1))) {
      host = text.slice(0, colon);
      port = text.slice(colon + 1);
    }
  }
  if (port !== '' && Number(port) > 65535) return undefined;
  if (!isIPv4(host) && !isIPv6(host)) return undefined;
  return { address: canonicalAddress(host), port: port === '' || Number(port) === 0 ? '' : String(Number(port)) };
}

/**
 * `ngx_http_get_forwarded_addr_internal()`: if `from` is trusted, the last address of the list;
 * with `recursive`, walks left while the address found is trusted too. Undefined when nothing
 * changes (nginx's `NGX_DECLINED`).
 */
export function forwardedAddress(from: string, list: string, blocks: readonly TrustedBlock[], recursive: boolean): ForwardedAddress | undefined {
  if (!isTrusted(from, blocks)) return undefined;
  let end = list.length;
  while (end > 0 && (list[end - 1] === ' ' || list[end - 1] === ',')) end--;
  let start = end;
  while (start > 0 && list[start - 1] !== ' ' && list[start - 1] !== ',') start--;
  const found = parseAddrPort(list.slice(start, end));
  if (found === undefined) return undefined;
  if (recursive && start > 0) return forwardedAddress(found.address, list.slice(0, start - 1), blocks, true) ?? found;
  return found;
}
