/**
 * The OCSP stapling directives of `ngx_http_ssl_module` (`ssl_stapling`, `ssl_stapling_file`,
 * `ssl_stapling_responder`, `ssl_stapling_verify`); what they do is in tls/ocsp-stapling.ts.
 */
import { isAbsolute, resolve } from 'node:path';
import { defineDirective, type DirectiveContext } from '../conf/registry.js';
import { flagDirective } from '../conf/values.js';

/** A stapling file as written (for messages) and resolved against the configuration's directory. */
export interface StaplingFile {
  readonly written: string;
  readonly path: string;
}

declare module '../conf/registry.js' {
  interface DirectiveValues {
    ssl_stapling: boolean;
    ssl_stapling_file: StaplingFile | undefined;
    ssl_stapling_responder: string | undefined;
    ssl_stapling_verify: boolean;
  }
}

/** `ngx_conf_full_name(cf->cycle, file, 1)`, as ngx_ssl_stapling_file() resolves it. */
function parseFile([written = '']: readonly string[], ctx: DirectiveContext): StaplingFile {
  return { written, path: isAbsolute(written) ? written : resolve(ctx.confPrefix, written) };
}

/** The table entries, spread into the ssl module's. */
export const staplingDirectives = [
  flagDirective(
    'ssl_stapling',
    'Staples the OCSP response of the server\'s certificate to handshakes that ask for one: each worker asks the responder (the certificate\'s, or ssl_stapling_responder) on the first such handshake, which gets none, keeps a good response until its nextUpdate and refreshes it an hour on (never sooner than 5 minutes, 5 minutes after an error). A revoked or unknown status is never stapled.',
    false,
    ['http', 'server'],
  ),
  defineDirective({
    kind: 'value',
    name: 'ssl_stapling_file',
    contexts: ['http', 'server'],
    args: [1],
    syntax: 'file;',
    summary: 'A DER OCSP response (openssl ocsp -respout) stapled as is instead of asking the responder; read with the configuration.',
    defaultText: '—',
    default: () => undefined,
    parse: parseFile,
  }),
  defineDirective({
    kind: 'value',
    name: 'ssl_stapling_responder',
    contexts: ['http', 'server'],
    args: [1],
    syntax: 'url;',
    summary: 'The OCSP responder (http:// only) asked instead of the certificate\'s Authority Information Access URL. A host name is resolved with resolver, else with the system\'s resolver as nginx does at startup.',
    defaultText: '—',
    default: () => undefined,
    parse: ([value = '']) => value,
  }),
  flagDirective(
    'ssl_stapling_verify',
    'Verifies the responder\'s certificate against ssl_trusted_certificate (OCSP_basic_verify() without OCSP_NOVERIFY); the response\'s signature is checked either way.',
    false,
    ['http', 'server'],
  ),
];
