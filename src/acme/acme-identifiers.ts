/**
 * The identifiers of an `acme_certificate`, checked and written as nginx-acme does
 * (src/conf/order.rs `try_add_identifier()`, `validate_dns_identifier()`): an IP address in its
 * canonical text, a DNS name lowercased, `.example.com` as both `www.example.com` and
 * `example.com` (nginx's server_name shorthand), a wildcard only as one leading `*.` label.
 */
import { isIP } from 'node:net';

/** One identifier of a certificate order (RFC 8555 section 7.1.4, RFC 8738 for `ip`). */
export interface AcmeIdentifier {
  readonly type: 'dns' | 'ip';
  readonly value: string;
}

/** Why a name cannot be a DNS identifier, in nginx-acme's words (`NameError`). */
function dnsNameError(name: string): string | undefined {
  type State = 'start' | 'label' | 'dot' | 'wildcard';
  let state: State = 'start';
  for (let i = 0; i < name.length; i++) {
    const ch = name.charCodeAt(i);
    const c = name[i] as string;
    // Non-printable and non-ASCII, reported as a hex byte as nginx-acme does ("invalid character d0").
    if (ch <= 0x20 || ch >= 0x7f) return `invalid character ${Buffer.from(c, 'utf8')[0]?.toString(16) ?? ''} at position ${Buffer.byteLength(name.slice(0, i), 'utf8')}`;
    if (c === '*' && state === 'start') state = 'wildcard';
    else if (c === '.' && state !== 'dot') state = 'dot';
    else if (state === 'wildcard') return `unexpected character '${c}' at position ${i}`;
    // unreserved, pct-encoded and sub-delims of RFC 3986, as ngx_http_validate_host() lets through.
    else if (/[A-Za-z0-9\-_~%!$&'()+,;=]/.test(c)) state = 'label';
    else return `unexpected character '${c}' at position ${i}`;
  }
  // A trailing dot is refused: it does not appear in the TLS layer.
  return state === 'label' ? undefined : 'does not end with a label';
}

/** The canonical text of an IP address (Rust's `IpAddr` Display, which is RFC 5952 for IPv6). */
function canonicalIp(value: string): string | undefined {
  const family = isIP(value);
  if (family === 4) return value.split('.').map((octet) => String(Number(octet))).join('.');
  if (family === 6) return new URL(`http://[${value}]/`).hostname.slice(1, -1);
  return undefined;
}

/**
 * The identifiers one `acme_certificate` argument (or `server_name` entry) stands for; throws
 * `invalid server name: ...` (nginx-acme's `IdentifierError::Invalid`) for a name it refuses.
 */
export function identifiersOf(value: string): AcmeIdentifier[] {
  const ip = canonicalIp(value);
  if (ip !== undefined) return [{ type: 'ip', value: ip }];
  const problem = dnsNameError(value);
  if (problem !== undefined) throw new Error(`invalid server name: ${problem}`);
  const name = value.toLowerCase();
  if (name.startsWith('.')) return [{ type: 'dns', value: `www${name}` }, { type: 'dns', value: name.slice(1) }];
  return [{ type: 'dns', value: name }];
}

/** nginx-acme's `CertificateOrder::first_name()`: the first DNS identifier, else the first of any kind. */
export function firstName(identifiers: readonly AcmeIdentifier[]): string | undefined {
  return (identifiers.find((id) => id.type === 'dns') ?? identifiers[0])?.value;
}
