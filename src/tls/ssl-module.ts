/**
 * `ngx_http_ssl_module`: the directives of TLS termination in the `http` block, and the check
 * `ngx_http_ssl_init()` runs once the configuration is read (every `listen ... ssl` address needs a
 * certificate in its default server, unless the handshake is rejected), and the certificate loads of
 * `ngx_http_ssl_merge_srv_conf()`, with nginx's messages.
 */
import { statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { parseNumber, parseSize, parseTime } from '../core/parse.js';
import { isConstantTemplate, parseTemplate, TemplateSyntaxError, type Template } from '../core/variables.js';
import { defineDirective, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import { CertificateLoadError, readPasswordFile, storeKeyFile } from './certificate-files.js';
import { VERIFY_CLIENT_MODES, type VerifyClientMode } from './client-verify.js';
import { staplingDirectives } from './stapling-directives.js';
import { sslConfCommandDirective } from './ssl-conf-command.js';
import { parseCertificateCache, type CertificateCacheSetting } from './certificate-cache.js';

/** A certificate or key file: as written (for messages), and resolved against the conf prefix. */
export interface TlsFile {
  readonly written: string;
  /** The resolved path; with variables, the configuration's directory, which a relative result resolves against. */
  readonly path: string;
  /** Set when the name has variables (`ssl_certificate`, `ssl_certificate_key` only), evaluated per handshake. */
  readonly template?: Template;
  /**
   * `$acme_certificate` / `$acme_certificate_key` (nginx-acme's variables): the certificate of the
   * store named after the server's first ACME name, looked up in each handshake (acme-certificates.ts).
   */
  readonly acme?: true;
}

/** The value nginx-acme's variables stand for in `ssl_certificate` and `ssl_certificate_key`. */
const ACME_VARIABLES: Readonly<Record<string, string>> = { ssl_certificate: '$acme_certificate', ssl_certificate_key: '$acme_certificate_key' };

/** `ssl_password_file`: the file, and its passphrases as latin1 strings, read when the configuration is. */
export interface PasswordFile {
  readonly path: string;
  readonly passwords: readonly string[];
}

/**
 * `ssl_session_cache`: `builtin` is `off` (`SSL_SESS_CACHE_OFF`), `none` (the default: session IDs
 * sent, nothing stored), `default` (`builtin` without a size), a size in sessions, or unset
 * (`shared` alone); `shared` names a zone of `size` bytes. See tls/session-cache.ts.
 */
export interface SessionCacheSetting {
  readonly builtin: 'off' | 'none' | 'default' | number | undefined;
  readonly shared: { readonly name: string; readonly size: number } | undefined;
}

/** The protocol names `ssl_protocols` accepts (`ngx_http_ssl_protocols`). */
export const TLS_PROTOCOL_NAMES = ['SSLv2', 'SSLv3', 'TLSv1', 'TLSv1.1', 'TLSv1.2', 'TLSv1.3'] as const;

/** One of {@link TLS_PROTOCOL_NAMES}. */
export type TlsProtocolName = (typeof TLS_PROTOCOL_NAMES)[number];

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_certificate: readonly TlsFile[];
    ssl_certificate_key: readonly TlsFile[];
    ssl_protocols: readonly TlsProtocolName[];
    ssl_ciphers: string;
    ssl_prefer_server_ciphers: boolean;
    ssl_ecdh_curve: string;
    ssl_session_timeout: number;
    ssl_session_tickets: boolean;
    ssl_session_ticket_key: readonly TlsFile[];
    ssl_reject_handshake: boolean;
    ssl_certificate_compression: boolean;
    ssl_verify_client: VerifyClientMode;
    ssl_client_certificate: readonly TlsFile[];
    ssl_trusted_certificate: readonly TlsFile[];
    ssl_verify_depth: number;
    ssl_crl: readonly TlsFile[];
    ssl_password_file: PasswordFile | undefined;
    ssl_certificate_cache: CertificateCacheSetting | undefined;
    ssl_session_cache: SessionCacheSetting;
    ssl_dhparam: TlsFile | undefined;
    ssl_buffer_size: number;
    ssl_early_data: boolean;
  }
}

/** `ngx_conf_full_name(cf->cycle, &file, 1)`: relative paths are relative to the configuration's directory. */
/** A file's size in bytes, undefined when it cannot be read (the load reports that with nginx's message). */
function fileSize(path: string): number | undefined {
  try {
    return statSync(path).size;
  } catch {
    return undefined;
  }
}

function parseTlsFile(args: readonly string[], ctx: DirectiveContext, previous: readonly TlsFile[] | undefined): readonly TlsFile[] {
  const [written = ''] = args;
  // nginx reads ssl_client_certificate and the others as plain file names, $ included.
  if (written.includes('$')) ctx.fail(`variables in "${ctx.node.name}" are not supported by hitless`);
  if (written.startsWith('data:')) ctx.fail(`"data:" in "${ctx.node.name}" is not supported by hitless`);
  if (ctx.node.name === 'ssl_certificate_key' && written.startsWith('store:')) {
    const file = storeKeyFile(written);
    if (file === undefined) ctx.fail(`cannot load certificate key "${written}": hitless loads "store:file:..." keys only (Node has no OSSL_STORE for the other schemes)`);
    return [...(previous ?? []), { written, path: file }];
  }
  return [...(previous ?? []), { written, path: isAbsolute(written) ? written : resolve(ctx.confPrefix, written) }];
}

/**
 * `ssl_certificate` and `ssl_certificate_key`, whose names may have variables (nginx 1.15.9,
 * `ngx_http_ssl_compile_certificates()`): those are evaluated in each handshake, a relative result
 * resolved against the configuration's directory (`ngx_get_full_name(conf_prefix)`).
 */
function parseCertificateFile(args: readonly string[], ctx: DirectiveContext, previous: readonly TlsFile[] | undefined): readonly TlsFile[] {
  const [written = ''] = args;
  if (!written.includes('$')) return parseTlsFile(args, ctx, previous);
  // nginx-acme's "data:" value: the stored certificate itself, never a file.
  if (written === ACME_VARIABLES[ctx.node.name]) return [...(previous ?? []), { written, path: ctx.confPrefix, acme: true }];
  if (written.startsWith('data:')) ctx.fail(`"data:" in "${ctx.node.name}" is not supported by hitless`);
  let template: Template;
  try {
    template = parseTemplate(written);
  } catch (err) {
    if (err instanceof TemplateSyntaxError) ctx.fail(err.reason);
    throw err;
  }
  if (isConstantTemplate(template)) return parseTlsFile(args, ctx, previous);
  return [...(previous ?? []), { written, path: ctx.confPrefix, template }];
}

/** `ngx_http_ssl_password_file()` (and `proxy_ssl_password_file`'s): the file is read when the configuration is. */
export function parsePasswordFile([written = '']: readonly string[], ctx: DirectiveContext): PasswordFile {
  const path = isAbsolute(written) ? written : resolve(ctx.confPrefix, written);
  try {
    return { path, passwords: readPasswordFile(path, (file) => ctx.readData(file)).map((password) => password.toString('latin1')) };
  } catch (err) {
    if (err instanceof CertificateLoadError) ctx.fail(err.message);
    throw err;
  }
}

/** nginx's smallest shared session cache: 8 pages of 4 KiB. */
const SESSION_CACHE_MIN = 8 * 4096;

/** `ngx_http_ssl_session_cache()`, with its messages. */
function parseSessionCache(args: readonly string[], ctx: DirectiveContext): SessionCacheSetting {
  let builtin: SessionCacheSetting['builtin'];
  let shared: SessionCacheSetting['shared'];
  for (const arg of args) {
    const invalid = (): never => ctx.fail(`invalid session cache "${arg}"`);
    if (arg === 'off' || arg === 'none') builtin = arg;
    else if (arg === 'builtin') builtin = 'default';
    else if (arg.startsWith('builtin:') && arg.length > 8) builtin = parseNumber(arg.slice(8)) ?? invalid();
    else if (arg.startsWith('shared:') && arg.length > 7) {
      const colon = arg.indexOf(':', 7);
      if (colon === -1 || colon === 7) invalid();
      const size = parseSize(arg.slice(colon + 1)) ?? invalid();
      if (size < SESSION_CACHE_MIN) ctx.fail(`session cache "${arg}" is too small`);
      shared = { name: arg.slice(7, colon), size };
    } else invalid();
  }
  return { builtin, shared };
}

const flag = (args: readonly string[]): boolean => args[0] === 'on';

/** The record sizes Node's `TLSSocket.setMaxSendFragment()` takes (OpenSSL's SSL_set_max_send_fragment()). */
export const SEND_FRAGMENT_MIN = 512;
/** The largest TLS record payload (RFC 8446 section 5.1): a larger nginx buffer still writes 16k records. */
export const SEND_FRAGMENT_MAX = 16384;

/** `ngx_conf_set_size_slot` for `ssl_buffer_size`, with a [warn] for what Node cannot send. */
function parseBufferSize([value = '']: readonly string[], ctx: DirectiveContext): number {
  const size = parseSize(value) ?? ctx.fail('"ssl_buffer_size" directive invalid value');
  if (size < SEND_FRAGMENT_MIN) {
    ctx.warn(`"ssl_buffer_size" ${value} is sent as TLS records of ${SEND_FRAGMENT_MIN} bytes in hitless (the smallest record Node's setMaxSendFragment() takes)`);
  }
  return size;
}

/** The directive table of `ngx_http_ssl_module`, which stream's ssl module reuses; http/ssl-module.ts adds the http checks. */
export const sslDirectives: ConfModule = {
  name: 'ngx_http_ssl_module',
  directives: [
    defineDirective({
      kind: 'value',
      name: 'ssl_certificate',
      contexts: ['http', 'server'],
      args: [1],
      repeatable: true,
      syntax: 'file;',
      summary: 'A PEM certificate, followed by its chain, for the server\'s TLS; given several times (RSA and ECDSA), the client\'s capabilities pick one. Relative to the configuration\'s directory. With variables ($ssl_server_name), evaluated in each handshake; the loaded files are kept until one of them changes.',
      defaultText: '—',
      default: () => [],
      parse: parseCertificateFile,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_certificate_key',
      contexts: ['http', 'server'],
      args: [1],
      repeatable: true,
      syntax: 'file;',
      summary: 'The PEM private key of the ssl_certificate given in the same position; may be encrypted (ssl_password_file). "store:file:PATH" reads PATH, as the file scheme of OSSL_STORE does; other store: schemes are refused (Node has no OSSL_STORE).',
      defaultText: '—',
      default: () => [],
      parse: parseCertificateFile,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_certificate_cache',
      contexts: ['http', 'server'],
      args: '1+',
      syntax: 'off | max=N [inactive=time] [valid=time];',
      summary:
        'Caches the certificates and keys that an ssl_certificate with variables loads in handshakes: an entry younger than valid (60s) is used without looking at the file, an older one is checked by inode and mtime; entries not used for inactive (10s) go, and the least recently used beyond max. A key that needs a passphrase is never cached. Default off: every handshake sees the files as they are (hitless checks them with stat() and reloads what changed).',
      default: () => undefined,
      defaultText: 'ssl_certificate_cache off;',
      parse: (args, ctx) => parseCertificateCache(args, 'ssl_certificate_cache', (message) => ctx.fail(message)),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_password_file',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'file;',
      summary: 'Passphrases of encrypted ssl_certificate_key files, one a line, tried in order; read with the configuration.',
      defaultText: '—',
      default: () => undefined,
      parse: parsePasswordFile,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_protocols',
      contexts: ['http', 'server'],
      args: '1+',
      syntax: '[SSLv2] [SSLv3] [TLSv1] [TLSv1.1] [TLSv1.2] [TLSv1.3];',
      summary: 'The TLS versions offered; SSLv2 and SSLv3 are accepted and never negotiated, as with a current OpenSSL.',
      default: () => ['TLSv1.2', 'TLSv1.3'],
      defaultText: 'ssl_protocols TLSv1.2 TLSv1.3;',
      parse: (args, ctx) =>
        args.map((arg) => {
          // ngx_conf_set_bitmask_slot() compares caselessly.
          const name = TLS_PROTOCOL_NAMES.find((known) => known.toLowerCase() === arg.toLowerCase());
          return name ?? ctx.fail(`invalid value "${arg}"`);
        }),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_ciphers',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'ciphers;',
      summary: 'The TLSv1.2 and older cipher list, in OpenSSL\'s format; TLSv1.3 suites stay OpenSSL\'s defaults unless named here.',
      default: () => 'HIGH:!aNULL:!MD5',
      defaultText: 'ssl_ciphers HIGH:!aNULL:!MD5;',
      parse: ([value = '']) => value,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_prefer_server_ciphers',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'The server\'s cipher order wins over the client\'s.',
      default: () => false,
      defaultText: 'ssl_prefer_server_ciphers off;',
      parse: flag,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_ecdh_curve',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'curve;',
      summary: 'The key exchange groups, colon-separated (X25519:prime256v1), or auto for OpenSSL\'s list.',
      default: () => 'auto',
      defaultText: 'ssl_ecdh_curve auto;',
      parse: ([value = '']) => value,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_session_timeout',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'time;',
      summary: 'How long a client may resume a TLS session: the lifetime of a session ticket and of a session in ssl_session_cache; with ssl_session_cache shared:, also how often the zone\'s ticket key is replaced (the zone\'s shortest).',
      default: () => 300_000,
      defaultText: 'ssl_session_timeout 5m;',
      parse: ([value = ''], ctx) => parseTime(value, { seconds: true }) ?? ctx.fail('"ssl_session_timeout" directive invalid value'),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_session_cache',
      contexts: ['http', 'server'],
      args: [1, 2],
      syntax: 'off | none | [builtin[:size]] [shared:name:size];',
      summary: 'Resumption by session ID (TLSv1.2): builtin keeps sessions in each worker, shared in the master for all workers (about 4000 per megabyte, kept across reloads); off and none keep none. The default server of the address decides (docs/process-model.md).',
      default: () => ({ builtin: 'none', shared: undefined }),
      defaultText: 'ssl_session_cache none;',
      parse: parseSessionCache,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_session_tickets',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Resumption by TLS session tickets, on every worker and across reloads: the master makes the keys and sends them to the workers; a shared: zone\'s key is replaced every ssl_session_timeout, else the master\'s hourly; the key replaced still decrypts, and its tickets are renewed, until the next rotation.',
      default: () => true,
      defaultText: 'ssl_session_tickets on;',
      parse: flag,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_session_ticket_key',
      contexts: ['http', 'server'],
      args: [1],
      repeatable: true,
      syntax: 'file;',
      summary: 'A file of 48 or 80 random bytes that encrypts session tickets instead of the master\'s or the zone\'s key, never rotated; with several, the first encrypts and every one decrypts (a ticket under another is renewed). A 48-byte key is used as nginx uses it; of an 80-byte key\'s AES-256 key 16 bytes encrypt (AES-128, as Node\'s ticket callback takes). Relative to the configuration\'s directory.',
      defaultText: '—',
      default: () => [],
      parse: (args, ctx, previous) => {
        const files = parseTlsFile(args, ctx, previous);
        const file = files[files.length - 1];
        // nginx encrypts with AES-256-CBC under an 80-byte key; Node's ticket callback takes AES-128-CBC only.
        if (file !== undefined && fileSize(file.path) === 80) ctx.warn(`"ssl_session_ticket_key" "${file.written}" is an 80-byte key: hitless encrypts tickets with AES-128-CBC under the first 16 bytes of its AES-256 key (Node's ticket key callback has no AES-256), where nginx uses AES-256-CBC`);
        return files;
      },
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_reject_handshake',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'Refuses TLS handshakes that reach this server (by SNI, or without one in the default server) with an unrecognized_name alert.',
      default: () => false,
      defaultText: 'ssl_reject_handshake off;',
      parse: flag,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_certificate_compression',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary:
        'TLS 1.3 certificate compression (RFC 8879). Node 20 bundles OpenSSL 3.0, which has none (SSL_CTX_compress_certs() came with OpenSSL 3.2): on warns at -t, as nginx built with OpenSSL 3.0 does, and certificates go uncompressed; with ssl_stapling it is an error, as in nginx.',
      default: () => false,
      defaultText: 'ssl_certificate_compression off;',
      parse: flag,
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_verify_client',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'on | off | optional | optional_no_ca;',
      summary: 'Asks clients for a certificate: on refuses requests without a valid one (400, as 496 and 495), optional checks one if sent, optional_no_ca does not check it against the CAs.',
      default: () => 'off',
      defaultText: 'ssl_verify_client off;',
      // ngx_conf_set_enum_slot() compares caselessly.
      parse: ([value = ''], ctx) => VERIFY_CLIENT_MODES.find((mode) => mode === value.toLowerCase()) ?? ctx.fail(`invalid value "${value}"`),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_client_certificate',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'file;',
      summary: 'PEM CA certificates that verify client certificates; hitless sends their names to the client.',
      defaultText: '—',
      default: () => [],
      parse: (args, ctx) => parseTlsFile(args, ctx, undefined),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_trusted_certificate',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'file;',
      summary: 'PEM CA certificates that also verify client certificates. nginx does not send their names; Node sends them with those of ssl_client_certificate.',
      defaultText: '—',
      default: () => [],
      parse: (args, ctx) => parseTlsFile(args, ctx, undefined),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_verify_depth',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'number;',
      summary: 'How long a client\'s chain may be: 1 is a certificate signed by a CA of the files, each intermediate adds one.',
      default: () => 1,
      defaultText: 'ssl_verify_depth 1;',
      parse: ([value = ''], ctx) => parseNumber(value) ?? ctx.fail('"ssl_verify_depth" directive invalid number'),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_crl',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'file;',
      summary: 'PEM certificate revocation lists checked for every certificate of a client\'s chain.',
      defaultText: '—',
      default: () => [],
      parse: (args, ctx) => parseTlsFile(args, ctx, undefined),
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_dhparam',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'file;',
      summary: 'PEM Diffie-Hellman parameters (openssl dhparam, or an RFC 7919 group) that enable the DHE ciphers of TLSv1.2; without it no DHE cipher is negotiated. Read with the configuration.',
      defaultText: '—',
      default: () => undefined,
      parse: (args, ctx) => parseTlsFile(args, ctx, undefined)[0],
    }),
    defineDirective({
      kind: 'value',
      name: 'ssl_buffer_size',
      contexts: ['http', 'server'],
      args: [1],
      syntax: 'size;',
      summary: 'The largest TLS record sent (setMaxSendFragment() on each connection, the default server of the address decides, as in nginx): small records let a client start on the first bytes sooner. Below 512 bytes, 512 (Node\'s smallest, -t warns); above 16k, records of 16k, as nginx\'s writes are.',
      default: () => 16384,
      defaultText: 'ssl_buffer_size 16k;',
      parse: parseBufferSize,
    }),
    ...staplingDirectives,
    sslConfCommandDirective,
    defineDirective({
      kind: 'value',
      name: 'ssl_early_data',
      contexts: ['http', 'server'],
      args: 'flag',
      syntax: 'on | off;',
      summary: 'TLSv1.3 0-RTT data. Node\'s TLS server has no early data API (no SSL_read_early_data()), so hitless always answers in a full round trip; on is a [warn] at -t.',
      default: () => false,
      defaultText: 'ssl_early_data off;',
      parse: (args, ctx) => {
        if (args[0] === 'on') ctx.noEffect('Node\'s TLS server cannot accept 0-RTT early data: clients send it again after the handshake');
        return args[0] === 'on';
      },
    }),
  ],
};
