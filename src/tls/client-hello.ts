/**
 * What a server reads of the client's ClientHello for `$ssl_ciphers` (SSL_get0_raw_cipherlist()),
 * `$ssl_curves` (SSL_get1_curves()) and `$ssl_curve` (SSL_get_negotiated_group()). Node exposes none
 * of them on a server socket (getEphemeralKeyInfo() returns null there), so the ClientHello is read
 * from the bytes the connection began with, and the negotiated group is worked out as OpenSSL 3.0
 * picks it (see {@link negotiatedGroup}).
 */
import { CIPHER_NAMES } from './cipher-names.js';

/** The offers of a ClientHello, in the client's order. */
export interface ClientHello {
  /** The cipher suites, GREASE and signalling values included. */
  readonly ciphers: readonly number[];
  /** supported_groups (extension 10). */
  readonly groups: readonly number[];
  /** The groups of key_share (extension 51). */
  readonly keyShares: readonly number[];
  /** legacy_session_id: a TLS 1.2 session to resume, 32 random bytes from a TLS 1.3 client in compatibility mode. */
  readonly sessionId: Buffer;
  /** The identities of pre_shared_key (extension 41): a TLS 1.3 session, a stateful ticket's being its session id. */
  readonly pskIdentities: readonly Buffer[];
  /** The host_name of server_name (extension 0), or undefined when the client sent none. */
  readonly serverName: string | undefined;
  /** The protocols of application_layer_protocol_negotiation (extension 16), in the client's order; empty without one. */
  readonly alpn: readonly string[];
}

/**
 * Reads the ClientHello at the start of `bytes` (a whole handshake message, possibly over several
 * records); undefined when the bytes are not one or end before it does.
 */
export function parseClientHello(bytes: Buffer): ClientHello | undefined {
  const chunks: Buffer[] = [];
  let collected = 0;
  let needed = 4;
  for (let pos = 0; collected < needed; ) {
    if (pos + 5 > bytes.length || bytes[pos] !== 0x16) return undefined;
    const length = bytes.readUInt16BE(pos + 3);
    const fragment = bytes.subarray(pos + 5, pos + 5 + length);
    chunks.push(fragment);
    collected += fragment.length;
    pos += 5 + length;
    if (chunks.length === 1) {
      if (fragment[0] !== 1 || fragment.length < 4) return undefined;
      needed = 4 + ((fragment[1] as number) << 16) + ((fragment[2] as number) << 8) + (fragment[3] as number);
    }
  }
  return readBody(Buffer.concat(chunks).subarray(4, needed));
}

/** The most bytes waited for before a handshake starts: a ClientHello longer than that is taken in part. */
const HELLO_WAIT_MAX = 65_536;

/**
 * Whether `bytes` begin with a ClientHello whose end is still to come (the rest of a record, or
 * of the records it spans), so that the first bytes read hold it whole: a ClientHello with a
 * large key share (X25519MLKEM768) spans two TCP segments. False for anything else, which the
 * handshake then refuses or takes as it is.
 */
export function clientHelloIncomplete(bytes: Buffer): boolean {
  if (bytes.length === 0 || bytes[0] !== 0x16 || bytes.length >= HELLO_WAIT_MAX) return false;
  let collected = 0;
  let needed = 4;
  for (let pos = 0, first = true; collected < needed; first = false) {
    if (pos + 5 > bytes.length) return true;
    if (bytes[pos] !== 0x16) return false;
    const length = bytes.readUInt16BE(pos + 3);
    const available = Math.min(length, bytes.length - pos - 5);
    if (first) {
      if (available > 0 && bytes[pos + 5] !== 1) return false;
      // A handshake header split over records: parseClientHello() does not read it either.
      if (available < 4) return available < length;
      needed = 4 + bytes.readUIntBE(pos + 6, 3);
    }
    collected += available;
    if (available < length) return collected < needed;
    pos += 5 + length;
  }
  return false;
}

function readBody(body: Buffer): ClientHello | undefined {
  try {
    let pos = 2 + 32;
    const sessionId = Buffer.from(body.subarray(pos + 1, pos + 1 + body.readUInt8(pos)));
    pos += 1 + body.readUInt8(pos);
    const cipherBytes = body.readUInt16BE(pos);
    const ciphers: number[] = [];
    for (let i = 0; i + 1 < cipherBytes; i += 2) ciphers.push(body.readUInt16BE(pos + 2 + i));
    pos += 2 + cipherBytes;
    pos += 1 + body.readUInt8(pos);
    let groups: number[] = [];
    let keyShares: number[] = [];
    let pskIdentities: Buffer[] = [];
    let serverName: string | undefined;
    let alpn: string[] = [];
    if (pos < body.length) {
      const end = pos + 2 + body.readUInt16BE(pos);
      for (pos += 2; pos + 4 <= end; ) {
        const type = body.readUInt16BE(pos);
        const data = body.subarray(pos + 4, pos + 4 + body.readUInt16BE(pos + 2));
        pos += 4 + data.length;
        if (type === 10) groups = listOf(data);
        if (type === 51) keyShares = keyShareGroups(data);
        if (type === 41) pskIdentities = identitiesOf(data);
        if (type === 0) serverName = hostNameOf(data);
        if (type === 16) alpn = protocolsOf(data);
      }
    }
    return { ciphers, groups, keyShares, sessionId, pskIdentities, serverName, alpn };
  } catch {
    // A read past the end (RangeError): a malformed ClientHello, which OpenSSL refuses anyway.
    return undefined;
  }
}

/** A list of two-byte values behind a two-byte length. */
function listOf(data: Buffer): number[] {
  const values: number[] = [];
  const length = data.readUInt16BE(0);
  for (let i = 2; i + 1 < 2 + length && i + 1 < data.length; i += 2) values.push(data.readUInt16BE(i));
  return values;
}

/** The groups of KeyShareClientHello's entries (group, key length, key). */
function keyShareGroups(data: Buffer): number[] {
  const groups: number[] = [];
  const end = 2 + data.readUInt16BE(0);
  for (let pos = 2; pos + 4 <= end && pos + 4 <= data.length; pos += 4 + data.readUInt16BE(pos + 2)) groups.push(data.readUInt16BE(pos));
  return groups;
}

/** The host_name entry of a ServerNameList (RFC 6066 section 3): type 0, a 16-bit length, the name. */
/** ProtocolNameList (RFC 7301 section 3.1): a 2-byte length, then 1-byte-length names. */
function protocolsOf(data: Buffer): string[] {
  const protocols: string[] = [];
  const end = Math.min(data.length, 2 + data.readUInt16BE(0));
  for (let pos = 2; pos < end; ) {
    const length = data.readUInt8(pos);
    protocols.push(data.toString('latin1', pos + 1, pos + 1 + length));
    pos += 1 + length;
  }
  return protocols;
}

function hostNameOf(data: Buffer): string | undefined {
  const end = 2 + data.readUInt16BE(0);
  for (let pos = 2; pos + 3 <= end; pos += 3 + data.readUInt16BE(pos + 1)) {
    if (data[pos] === 0) return data.subarray(pos + 3, pos + 3 + data.readUInt16BE(pos + 1)).toString('latin1');
  }
  return undefined;
}

/** The identities of OfferedPsks (RFC 8446 section 4.2.11): each a 16-bit length, the identity, a 32-bit age. */
function identitiesOf(data: Buffer): Buffer[] {
  const identities: Buffer[] = [];
  const end = 2 + data.readUInt16BE(0);
  for (let pos = 2; pos + 2 <= end; ) {
    const length = data.readUInt16BE(pos);
    identities.push(Buffer.from(data.subarray(pos + 2, pos + 2 + length)));
    pos += 2 + length + 4;
  }
  return identities;
}

/** `0x` and the value's four hex digits, as nginx writes what OpenSSL has no name for. */
function hexName(id: number): string {
  return `0x${id.toString(16).padStart(4, '0')}`;
}

/** `$ssl_ciphers` (`ngx_ssl_get_ciphers()`): OpenSSL's names, `0x....` for unknown values, colon-separated. */
export function cipherListText(hello: ClientHello): string {
  return hello.ciphers.map((id) => CIPHER_NAMES.get(id) ?? hexName(id)).join(':');
}

/** OBJ_nid2sn() of the groups OpenSSL 3.0's TLS knows (nid_to_group in ssl/t1_lib.c), by their id. */
const GROUP_NAMES: ReadonlyMap<number, string> = new Map([
  ...['sect163k1', 'sect163r1', 'sect163r2', 'sect193r1', 'sect193r2', 'sect233k1', 'sect233r1', 'sect239k1', 'sect283k1', 'sect283r1', 'sect409k1', 'sect409r1', 'sect571k1', 'sect571r1', 'secp160k1', 'secp160r1', 'secp160r2', 'secp192k1', 'prime192v1', 'secp224k1', 'secp224r1', 'secp256k1', 'prime256v1', 'secp384r1', 'secp521r1', 'brainpoolP256r1', 'brainpoolP384r1', 'brainpoolP512r1', 'X25519', 'X448'].map((name, i) => [i + 1, name] as const),
  ...['ffdhe2048', 'ffdhe3072', 'ffdhe4096', 'ffdhe6144', 'ffdhe8192'].map((name, i) => [256 + i, name] as const),
]);

/** The other names SSL_CTX_set1_curves_list() takes for a group: the NIST ones and secp256r1/secp192r1. */
const GROUP_ALIASES: ReadonlyMap<string, number> = new Map([
  ['p-192', 19],
  ['secp192r1', 19],
  ['p-224', 21],
  ['p-256', 23],
  ['secp256r1', 23],
  ['p-384', 24],
  ['p-521', 25],
  ['x25519', 29],
  ['x448', 30],
]);

/** A group's name as nginx prints it (`ngx_ssl_get_curve()`), `0x....` for one OpenSSL does not know. */
export function groupName(id: number): string {
  return GROUP_NAMES.get(id) ?? hexName(id);
}

/** `$ssl_curves` (`ngx_ssl_get_curves()`): the client's supported_groups by name, colon-separated. */
export function groupListText(hello: ClientHello): string {
  return hello.groups.map(groupName).join(':');
}

/** OpenSSL 3.0's default groups (supported_groups_default in ssl/t1_lib.c): `ssl_ecdh_curve auto`. */
const DEFAULT_GROUPS: readonly number[] = [29, 23, 30, 25, 24, 256, 257, 258, 259, 260];

/** The groups of an `ssl_ecdh_curve` value (`auto`, or names separated by colons), in its order. */
export function serverGroups(ecdhCurve: string | undefined): readonly number[] {
  if (ecdhCurve === undefined || ecdhCurve === 'auto') return DEFAULT_GROUPS;
  const ids: number[] = [];
  for (const name of ecdhCurve.split(':')) {
    const lower = name.toLowerCase();
    const id = GROUP_ALIASES.get(lower) ?? [...GROUP_NAMES].find(([, known]) => known.toLowerCase() === lower)?.[0];
    if (id !== undefined) ids.push(id);
  }
  return ids;
}

/** The server's side of the group choice: its groups and `ssl_prefer_server_ciphers`. */
export interface GroupSettings {
  readonly groups: readonly number[];
  readonly preferServer: boolean;
}

/**
 * `$ssl_curve`: the group OpenSSL 3.0 negotiates, worked out from the offers, as Node does not
 * report it for a server. TLS 1.3 takes the first key_share (in the client's order) the server
 * supports (tls_parse_ctos_key_share()), else asks with a HelloRetryRequest for the first shared
 * group (tls1_shared_group()), by the server's order under ssl_prefer_server_ciphers and by the
 * client's without; a TLS 1.2 ECDHE suite takes that shared group; any other key exchange none.
 * A resumed TLS 1.2 session, which exchanges no key, is reported with the group it would take.
 */
export function negotiatedGroup(hello: ClientHello, protocol: string, cipher: string, settings: GroupSettings): string {
  const supported = new Set(settings.groups);
  const offered = hello.groups.length > 0 ? hello.groups : DEFAULT_GROUPS;
  const shared = settings.preferServer ? settings.groups.find((id) => offered.includes(id)) : offered.find((id) => supported.has(id));
  if (protocol === 'TLSv1.3') {
    const share = hello.keyShares.find((id) => supported.has(id) && hello.groups.includes(id));
    const group = share ?? shared;
    return group === undefined ? '' : groupName(group);
  }
  if (!cipher.startsWith('ECDHE-') || shared === undefined) return '';
  return groupName(shared);
}
