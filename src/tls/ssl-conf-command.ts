/**
 * `ssl_conf_command name value`: nginx hands each pair to OpenSSL's SSL_CONF_cmd() after every
 * other ssl_* setting (`ngx_ssl_conf_commands()`), so they win. Node has no SSL_CONF_cmd(); the
 * commands that map onto createSecureContext() options are applied as such, the others OpenSSL
 * knows are a [warn] at -t, and a name or an Options value OpenSSL does not know fails with
 * nginx's message.
 */
import { constants } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import type { SecureContextOptions, SecureVersion } from 'node:tls';
import { defineDirective } from '../conf/registry.js';
import { CertificateLoadError, readPemSync } from './certificate-files.js';
import { readDhParams } from './dh-params.js';

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_conf_command: readonly (readonly [name: string, value: string])[];
  }
}

/** What of SSL_CONF_cmd() Node allows, for the summaries of ssl_conf_command and proxy_ssl_conf_command. */
export const CONF_COMMANDS_MAPPED =
  "hitless maps CipherString, Ciphersuites, Curves, Groups, MinProtocol, MaxProtocol, SignatureAlgorithms, DHParameters, Certificate, PrivateKey and Options (SessionTicket, ServerPreference, PrioritizeChaCha, Compression, NoRenegotiation, EncryptThenMac, UnsafeLegacyRenegotiation, UnsafeLegacyServerConnect, AllowNoDHEKEX, NoResumptionOnRenegotiation, EmptyFragments, Bugs) onto Node's TLS options; the other commands OpenSSL knows have no effect (-t warns), as Node has no SSL_CONF_cmd(), and a name OpenSSL does not know is refused with nginx's error.";

/** The table entry, spread into the ssl module's. */
export const sslConfCommandDirective = defineDirective({
  kind: 'value',
  name: 'ssl_conf_command',
  contexts: ['http', 'server'],
  args: [2],
  repeatable: true,
  syntax: 'name value;',
  summary: `An OpenSSL configuration command applied after the other ssl_* settings. ${CONF_COMMANDS_MAPPED} File names are relative to the configuration's directory.`,
  defaultText: '—',
  default: () => [],
  parse: ([name = '', value = ''], ctx, previous) => [...(previous ?? []), confCommandPair(name, value, ctx.confPrefix)],
});

/** One `*ssl_conf_command`: ngx_ssl_conf_commands() makes a file or directory value full against the configuration's directory. */
export function confCommandPair(name: string, value: string, confPrefix: string): readonly [string, string] {
  return [name, FILE_COMMANDS.has(name) && !isAbsolute(value) ? resolve(confPrefix, value) : value];
}

/** The commands whose value is a file or a directory (SSL_CONF_TYPE_FILE, SSL_CONF_TYPE_DIR). */
const FILE_COMMANDS = new Set(['Certificate', 'PrivateKey', 'DHParameters', 'ServerInfoFile', 'ChainCAFile', 'ChainCAPath', 'VerifyCAFile', 'VerifyCAPath', 'RequestCAFile', 'RequestCAPath', 'ClientCAFile', 'ClientCAPath']);

/** OpenSSL's `ssl_option_list` (ssl/ssl_conf.c) as Node's constants: the bit, and whether the name turns it off. */
const OPTIONS: Readonly<Record<string, readonly [bit: number, inverse: boolean] | undefined>> = {
  SessionTicket: [constants.SSL_OP_NO_TICKET, true],
  EmptyFragments: [constants.SSL_OP_DONT_INSERT_EMPTY_FRAGMENTS, true],
  Bugs: [constants.SSL_OP_ALL, false],
  Compression: [constants.SSL_OP_NO_COMPRESSION, true],
  ServerPreference: [constants.SSL_OP_CIPHER_SERVER_PREFERENCE, false],
  NoResumptionOnRenegotiation: [constants.SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION, false],
  UnsafeLegacyRenegotiation: [constants.SSL_OP_ALLOW_UNSAFE_LEGACY_RENEGOTIATION, false],
  UnsafeLegacyServerConnect: [constants.SSL_OP_LEGACY_SERVER_CONNECT, false],
  EncryptThenMac: [constants.SSL_OP_NO_ENCRYPT_THEN_MAC, true],
  NoRenegotiation: [constants.SSL_OP_NO_RENEGOTIATION, false],
  AllowNoDHEKEX: [constants.SSL_OP_ALLOW_NO_DHE_KEX, false],
  PrioritizeChaCha: [constants.SSL_OP_PRIORITIZE_CHACHA, false],
};

/** Options OpenSSL knows whose bit Node does not export. */
const UNMAPPED_OPTIONS = new Set(['DHSingle', 'ECDHSingle', 'MiddleboxCompat', 'AntiReplay', 'ExtendedMasterSecret', 'CANames', 'KTLS', 'ClientRenegotiation', 'LegacyServerConnect', 'ServerRenegotiation', 'IgnoreUnexpectedEOF', 'PreferNoDHEKEX', 'StrictCertCheck', 'TxCertificateCompression', 'RxCertificateCompression', 'KTLSTxZerocopySendfile']);

/** Server commands OpenSSL knows (ssl_conf_cmds) that have no Node option. */
const UNMAPPED = new Set(['RecordPadding', 'NumTickets', 'VerifyMode', 'ChainCAFile', 'ChainCAPath', 'VerifyCAFile', 'VerifyCAPath', 'RequestCAFile', 'RequestCAPath', 'ClientCAFile', 'ClientCAPath', 'ServerInfoFile', 'ClientSignatureAlgorithms', 'ECDHParameters', 'Protocol', 'MaxPipelines']);

const PROTOCOLS: Readonly<Record<string, SecureVersion | undefined>> = { TLSv1: 'TLSv1', 'TLSv1.1': 'TLSv1.1', 'TLSv1.2': 'TLSv1.2', 'TLSv1.3': 'TLSv1.3' };

/** What the commands make of a server's options: the options, the certificate and key that replace the server's, and the [warn]s. */
export interface ConfCommandResult {
  readonly options: SecureContextOptions;
  readonly cert: string | undefined;
  readonly key: string | undefined;
  readonly warnings: readonly string[];
}

/** `ngx_ssl_conf_commands()`; throws {@link CertificateLoadError} with nginx's message for what OpenSSL refuses. */
export function applyConfCommands(base: SecureContextOptions, commands: readonly (readonly [string, string])[]): ConfCommandResult {
  const options: SecureContextOptions = { ...base };
  let secureOptions = (base.secureOptions ?? 0) | (base.honorCipherOrder === true ? constants.SSL_OP_CIPHER_SERVER_PREFERENCE : 0);
  let cert: string | undefined;
  let key: string | undefined;
  let suites: string | undefined;
  let cipherString = base.ciphers;
  const warnings: string[] = [];
  const failed = (name: string, value: string, reason: string): never => {
    throw new CertificateLoadError(`SSL_CONF_cmd("${name}", "${value}") failed (SSL: ${reason})`);
  };
  for (const [name, value] of commands) {
    switch (name) {
      case 'CipherString':
        cipherString = value;
        break;
      case 'Ciphersuites':
        suites = value;
        break;
      case 'Curves':
      case 'Groups':
        options.ecdhCurve = value;
        break;
      case 'SignatureAlgorithms':
        options.sigalgs = value;
        break;
      case 'MinProtocol':
      case 'MaxProtocol': {
        const version = PROTOCOLS[value];
        if (version === undefined && value !== 'None') failed(name, value, `error:0A000180:SSL routines::bad value:cmd=${name}, value=${value}`);
        if (name === 'MinProtocol') options.minVersion = version ?? 'TLSv1';
        else options.maxVersion = version ?? 'TLSv1.3';
        break;
      }
      case 'DHParameters':
        options.dhparam = readDhParams(value);
        break;
      case 'Certificate':
        cert = readPemSync(value, 'certificate');
        break;
      case 'PrivateKey':
        key = readPemSync(value, 'certificate key');
        break;
      case 'Options':
        for (const item of value.split(',').map((entry) => entry.trim())) {
          const off = item.startsWith('-');
          const option = off ? item.slice(1) : item;
          const known = OPTIONS[option];
          if (known === undefined) {
            if (!UNMAPPED_OPTIONS.has(option)) failed(name, value, `error:0A000180:SSL routines::bad value:cmd=Options, value=${value}`);
            warnings.push(`"ssl_conf_command Options ${item}" has no effect in hitless (Node has no such option)`);
            continue;
          }
          const [bit, inverse] = known;
          if (off !== inverse) secureOptions &= ~bit;
          else secureOptions |= bit;
        }
        break;
      default:
        if (!UNMAPPED.has(name)) failed(name, value, `error:0A000182:SSL routines::unknown cmd name:cmd=${name}`);
        warnings.push(`"ssl_conf_command ${name}" has no effect in hitless (Node has no SSL_CONF_cmd() and no option for it)`);
    }
  }
  // Node's ciphers take the TLSv1.3 suites too, and keep OpenSSL's default suites when it names none.
  const ciphers = [suites, cipherString].filter((part) => part !== undefined && part !== '').join(':');
  if (ciphers !== '') options.ciphers = ciphers;
  options.honorCipherOrder = (secureOptions & constants.SSL_OP_CIPHER_SERVER_PREFERENCE) !== 0;
  options.secureOptions = secureOptions & ~constants.SSL_OP_CIPHER_SERVER_PREFERENCE;
  return { options, cert, key, warnings };
}
