/**
 * `ngx_http_acme_module` (nginx/nginx-acme, src/conf.rs): `acme_issuer`, `acme_shared_zone` and
 * `acme_certificate`, with nginx-acme's defaults and `-t` messages. The `acme_issuer` block's
 * directives are nginx-acme's own table (`NGX_HTTP_ACME_ISSUER_COMMANDS`), read here as its
 * `cmd_add_issuer_block()` reads them, messages included. The master's ACME manager reads the
 * result through acme-config.ts; workers answer the challenges (tls/acme-challenges.ts).
 */
import { createPrivateKey } from 'node:crypto';
import { isAbsolute, resolve } from 'node:path';
import { parseSize } from '../core/parse.js';
import type { ConfigLocation } from '../core/errors.js';
import { defineDirective, failAt, type ConfModule, type DirectiveContext } from '../conf/registry.js';
import type { ConfNode, DirectiveNode } from '../conf/parser.js';
import { errnoMessage, errnoNumber } from '../core/errno.js';
import { openFailure } from '../tls/certificate-files.js';
import { acmeSettingsOf, type AcmeChallengeType, type AcmeIssuerDirective, type AcmeSharedZone, type AcmeCertificateDirective } from './acme-config.js';
import { identifiersOf, type AcmeIdentifier } from './acme-identifiers.js';

/** A key nginx-acme generates (`PrivateKey::Ecdsa`, `PrivateKey::Rsa`), or a file (`PrivateKey::File`). */
type PrivateKeySetting = { readonly kind: 'ecdsa' | 'rsa'; readonly bits: number } | { readonly kind: 'file'; readonly path: string };

/** nginx-acme's `PrivateKey::try_from()`: `ecdsa[:256|384|521]`, `rsa[:2048|3072|4096]`, else a file; throws its PKeyParseError text. */
function parsePrivateKey(value: string): PrivateKeySetting {
  const colon = value.indexOf(':');
  const alg = colon === -1 ? value : value.slice(0, colon);
  const size = colon === -1 ? undefined : value.slice(colon + 1);
  if (alg === 'ecdsa') {
    if (size === undefined || size === '256') return { kind: 'ecdsa', bits: 256 };
    if (size === '384' || size === '521') return { kind: 'ecdsa', bits: Number(size) };
    throw new Error('unsupported curve');
  }
  if (alg === 'rsa') {
    if (size === undefined || size === '2048') return { kind: 'rsa', bits: 2048 };
    if (size === '3072' || size === '4096') return { kind: 'rsa', bits: Number(size) };
    throw new Error('unsupported key size');
  }
  return { kind: 'file', path: value };
}

/** The arguments each `acme_issuer` directive takes (nginx-acme's `type_` flags): a list of counts, or a flag. */
const ISSUER_DIRECTIVES: Readonly<Record<string, readonly number[] | 'flag'>> = {
  uri: [1],
  account_key: [1],
  challenge: [1, 2],
  common_name_in_csr: 'flag',
  contact: [1],
  external_account_key: [2],
  preferred_chain: [1],
  profile: [1, 2],
  ssl_trusted_certificate: [1],
  ssl_verify: 'flag',
  state_path: [1],
  accept_terms_of_service: [0],
};

/** An issuer's block as it is being read: what each directive set, undefined while unset. */
interface IssuerDraft {
  uri?: string;
  accountKey?: PrivateKeySetting;
  challenge?: { type: AcmeChallengeType; command: string | undefined };
  commonNameInCsr?: boolean;
  contact: string[];
  externalAccountKey?: { kid: string; file: string; key: string };
  preferredChain?: string;
  profile?: { name: string; require: boolean };
  trustedCertificate?: string;
  verify?: boolean;
  statePath?: string | null;
  acceptTermsOfService?: boolean;
}

/** RFC 3986 scheme, as nginx-acme's `has_scheme()` looks for one before it adds `mailto:`. */
function hasScheme(value: string): boolean {
  return /^[A-Za-z][A-Za-z0-9+.-]*:/.test(value);
}

/** Rust's `io::Error` text, as nginx-acme prints a file it cannot read: `No such file or directory (os error 2)`. */
function ioErrorText(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code ?? '';
  const errno = errnoNumber(code);
  const message = errnoMessage(code);
  return errno !== undefined && message !== undefined ? `${message} (os error ${errno})` : err instanceof Error ? err.message : String(err);
}

/** `ngx_decode_base64url()`: the base64url alphabet without padding; undefined when it is not. */
function decodeBase64url(text: string): Buffer | undefined {
  if (!/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return undefined;
  return Buffer.from(text, 'base64url');
}

/** Reads one directive of an `acme_issuer` block into the draft: nginx-acme's `cmd_issuer_*` handlers. */
function readIssuerDirective(node: DirectiveNode, draft: IssuerDraft, ctx: DirectiveContext): void {
  const location: ConfigLocation = { file: node.file, line: node.line };
  const args = node.args;
  const spec = ISSUER_DIRECTIVES[node.name];
  if (spec === undefined || node.block !== undefined) failAt(location, `unknown directive "${node.name}"`);
  if (spec === 'flag' ? args.length !== 1 : !spec.includes(args.length)) failAt(location, `invalid number of arguments in "${node.name}"`);
  // cmd_add_issuer_block() prints a handler's answer with Rust's {:?} of a CStr: in quotes.
  const refuse = (reason: string): never => failAt(location, `"${node.name}" directive "${reason}"`);
  // ngx_conf_t's error(): the directive's name, a colon, the error.
  const error = (reason: string): never => failAt(location, `${node.name}: ${reason}`);
  const [first = '', second] = args;
  const flag = (set: boolean | undefined): boolean => {
    // ngx_conf_set_flag_slot()
    if (set !== undefined) refuse('is duplicate');
    if (first.toLowerCase() === 'on') return true;
    if (first.toLowerCase() === 'off') return false;
    return failAt(location, `invalid value "${first}" in "${node.name}" directive, it must be "on" or "off"`);
  };
  switch (node.name) {
    case 'uri': {
      // The last one wins: cmd_issuer_set_uri() has no duplicate check.
      let url: URL;
      try {
        url = new URL(first);
      } catch {
        return failAt(location, `invalid URI "${first}" in "uri" directive`);
      }
      if (url.protocol !== 'https:' && url.protocol !== 'http:') failAt(location, `invalid URI "${first}" in "uri" directive`);
      draft.uri = first;
      return;
    }
    case 'account_key':
      if (draft.accountKey !== undefined) refuse('is duplicate');
      try {
        draft.accountKey = parsePrivateKey(first);
      } catch (err) {
        error((err as Error).message);
      }
      if (draft.accountKey?.kind === 'file') draft.accountKey = { kind: 'file', path: isAbsolute(first) ? first : resolve(ctx.confPrefix, first) };
      return;
    case 'challenge': {
      if (draft.challenge !== undefined) refuse('is duplicate');
      const type = first === 'http' || first === 'http-01' ? 'http-01' : first === 'tls-alpn' || first === 'tls-alpn-01' ? 'tls-alpn-01' : first === 'dns' || first === 'dns-01' ? 'dns-01' : undefined;
      if (type === undefined) failAt(location, `unsupported challenge: ${first}`);
      // `challenge dns-01 command=...` is hitless's; nginx-acme's challenge takes one argument.
      if (type === 'dns-01') {
        if (second === undefined || !second.startsWith('command=') || second.length === 'command='.length) failAt(location, '"challenge dns-01" must have "command=" parameter');
        draft.challenge = { type, command: second.slice('command='.length) };
        return;
      }
      if (second !== undefined) failAt(location, `invalid number of arguments in "${node.name}"`);
      draft.challenge = { type, command: undefined };
      return;
    }
    case 'common_name_in_csr':
      draft.commonNameInCsr = flag(draft.commonNameInCsr);
      // src/acme/certificate-request.ts names the first DNS name (up to 64 characters) as the Subject CN, always.
      if (!draft.commonNameInCsr) ctx.warn('"common_name_in_csr off" has no effect in hitless (the certificate request sets the first DNS name as Subject Common Name)', location);
      return;
    case 'contact':
      if (first === '') refuse('invalid value');
      draft.contact.push(hasScheme(first) ? first : `mailto:${first}`);
      return;
    case 'external_account_key': {
      if (draft.externalAccountKey !== undefined) refuse('is duplicate');
      if (first === '' || second === undefined || second === '') return refuse('invalid value');
      let text: string;
      let file = '';
      if (second.startsWith('data:')) text = second.slice('data:'.length);
      else {
        file = isAbsolute(second) ? second : resolve(ctx.confPrefix, second);
        try {
          text = ctx.readData(file).toString('latin1');
        } catch (err) {
          return error(ioErrorText(err));
        }
      }
      const key = decodeBase64url(text.trim());
      if (key === undefined) refuse('invalid base64url encoded value');
      draft.externalAccountKey = { kid: first, file, key: text.trim() };
      return;
    }
    case 'preferred_chain':
      if (draft.preferredChain !== undefined) refuse('is duplicate');
      draft.preferredChain = first;
      ctx.warn('"preferred_chain" has no effect in hitless (the default chain of the ACME server is used)', location);
      return;
    case 'profile':
      if (draft.profile !== undefined) refuse('is duplicate');
      if (second !== undefined && second !== 'require') refuse('invalid value');
      draft.profile = { name: first, require: second === 'require' };
      ctx.warn('"profile" has no effect in hitless (no certificate profile is requested)', location);
      return;
    case 'ssl_trusted_certificate':
      // ngx_conf_set_str_slot()
      if (draft.trustedCertificate !== undefined) refuse('is duplicate');
      draft.trustedCertificate = isAbsolute(first) ? first : resolve(ctx.confPrefix, first);
      return;
    case 'ssl_verify':
      draft.verify = flag(draft.verify);
      return;
    case 'state_path':
      if (draft.statePath !== undefined) refuse('is duplicate');
      // ngx_conf_set_path_slot(): relative to the prefix; `off` stores nothing.
      draft.statePath = first === 'off' ? null : isAbsolute(first) ? first : resolve(ctx.prefix, first);
      return;
    case 'accept_terms_of_service':
      if (draft.acceptTermsOfService !== undefined) refuse('is duplicate');
      draft.acceptTermsOfService = true;
      return;
  }
}

/** nginx-acme's `Issuer::init()` once the block is read: `uri` is required, the account key loads, the defaults. */
function finishIssuer(name: string, draft: IssuerDraft, ctx: DirectiveContext): AcmeIssuerDirective {
  if (draft.uri === undefined) ctx.fail('acme_issuer: "uri" is missing');
  const key = draft.accountKey ?? { kind: 'ecdsa', bits: 256 };
  if (key.kind === 'file') {
    let pem: string;
    try {
      pem = ctx.readData(key.path).toString('latin1');
    } catch (err) {
      return ctx.fail(`acme_issuer: cannot load account key: ${openFailure('certificate key', key.path, err).message}`);
    }
    let type: string | undefined;
    try {
      const object = createPrivateKey(pem);
      type = object.asymmetricKeyType;
      const curve = object.asymmetricKeyDetails?.namedCurve;
      if (type === 'ec' && curve !== 'prime256v1' && curve !== 'secp384r1' && curve !== 'secp521r1') type = `ec ${curve ?? ''}`;
    } catch {
      ctx.fail(`acme_issuer: cannot load account key: cannot load certificate key "${key.path}": PEM_read_bio_PrivateKey() failed`);
    }
    // RFC 7518: ES256, ES384, ES512 or RS256 sign the requests.
    if (type !== 'ec' && type !== 'rsa') ctx.fail(`acme_issuer: cannot load account key: unsupported key type "${type ?? ''}" in "${key.path}"`);
  }
  return {
    name,
    uri: draft.uri,
    contact: draft.contact,
    accountKey: key.kind === 'file' ? key.path : undefined,
    accountKeyType: key.kind === 'file' ? '' : `${key.kind}:${key.bits}`,
    externalAccountKey: draft.externalAccountKey,
    trustedCertificate: draft.trustedCertificate,
    verify: draft.verify ?? true,
    // default_state_path(): acme_<name>, relative to the prefix (no NGX_ACME_STATE_PREFIX in hitless).
    statePath: draft.statePath === null ? undefined : (draft.statePath ?? resolve(ctx.prefix, `acme_${name}`)),
    acceptTermsOfService: draft.acceptTermsOfService ?? false,
    challenge: draft.challenge?.type ?? 'http-01',
    dnsCommand: draft.challenge?.command,
    commonNameInCsr: draft.commonNameInCsr ?? false,
    preferredChain: draft.preferredChain,
    profile: draft.profile,
    where: ctx.location,
  };
}

/** `acme_issuer NAME { ... }`: nginx-acme's `cmd_add_issuer()`. */
function parseIssuer(args: readonly string[], nodes: readonly ConfNode[], ctx: DirectiveContext, previous: readonly AcmeIssuerDirective[] | undefined): readonly AcmeIssuerDirective[] {
  const [name = ''] = args;
  if (previous?.some((issuer) => issuer.name === name)) ctx.fail('"acme_issuer" directive is duplicate');
  const draft: IssuerDraft = { contact: [] };
  for (const node of nodes) {
    if (node.kind === 'error') throw node.error;
    readIssuerDirective(node, draft, ctx);
  }
  return [...(previous ?? []), finishIssuer(name, draft, ctx)];
}

/** `acme_shared_zone zone=NAME:SIZE`: nginx-acme's `cmd_set_shared_zone()`. */
function parseSharedZone([value = '']: readonly string[], ctx: DirectiveContext): AcmeSharedZone {
  if (!value.startsWith('zone=')) ctx.fail('"acme_shared_zone" must have "zone" parameter');
  const spec = value.slice('zone='.length);
  const colon = spec.indexOf(':');
  const size = colon === -1 ? undefined : parseSize(spec.slice(colon + 1));
  if (colon === -1 || size === undefined) ctx.fail(`acme_shared_zone: invalid zone size "${spec}"`);
  const name = spec.slice(0, colon);
  // acme_zone_min_size(): 8 pages.
  if (size < 8 * 4096) ctx.fail(`acme_shared_zone: zone ${name} is too small`);
  ctx.noEffect('the master keeps the ACME state and sends the challenges to every worker');
  return { name, size };
}

/** `acme_certificate ISSUER [identifier ...] [key=ALG[:SIZE]]`: nginx-acme's `cmd_add_certificate()`. */
function parseCertificate(args: readonly string[], ctx: DirectiveContext): AcmeCertificateDirective {
  const [issuer = '', ...rest] = args;
  if (issuer === '') ctx.fail('"acme_certificate" directive "issuer" is missing');
  let key: PrivateKeySetting = { kind: 'ecdsa', bits: 256 };
  const identifiers: AcmeIdentifier[] = [];
  for (const value of rest) {
    if (value.startsWith('key=')) {
      try {
        key = parsePrivateKey(value.slice('key='.length));
      } catch (err) {
        ctx.fail(`acme_certificate: ${(err as Error).message}`);
      }
      if (key.kind === 'file') ctx.fail('"acme_certificate" directive invalid "key" value');
      continue;
    }
    if (value === '') ctx.fail('"acme_certificate" directive invalid value');
    try {
      identifiers.push(...identifiersOf(value));
    } catch (err) {
      ctx.fail(`acme_certificate: ${(err as Error).message}`);
    }
  }
  return { issuer, identifiers, keyType: key.kind, keyBits: key.bits, where: ctx.location };
}

/** nginx-acme's directives, and its postconfiguration's checks. */
export const httpAcmeModule: ConfModule = {
  name: 'ngx_http_acme_module',
  directives: [
    defineDirective({
      kind: 'raw-block',
      name: 'acme_issuer',
      contexts: ['http'],
      args: [1],
      repeatable: true,
      syntax: 'name { ... }',
      summary:
        'Defines an ACME certificate issuer: uri (required), account_key, challenge (http-01, tls-alpn-01; hitless adds dns-01 command=...), contact, external_account_key, ssl_trusted_certificate, ssl_verify, state_path, accept_terms_of_service, common_name_in_csr, preferred_chain, profile, as nginx-acme (docs/acme.md). The master orders and renews; every worker answers the challenges.',
      default: () => [],
      defaultText: '—',
      parse: parseIssuer,
    }),
    defineDirective({
      kind: 'value',
      name: 'acme_shared_zone',
      contexts: ['http'],
      args: [1],
      syntax: 'zone=name:size;',
      summary: 'Accepted and checked as nginx-acme does, with a [warn]: hitless keeps the ACME state in the master and sends the challenges to the workers over IPC, so there is no zone to size.',
      default: () => undefined,
      defaultText: 'acme_shared_zone zone=ngx_acme_shared:256k;',
      parse: parseSharedZone,
    }),
    defineDirective({
      kind: 'value',
      name: 'acme_certificate',
      contexts: ['server'],
      args: '1+',
      inherit: false,
      syntax: 'issuer [identifier ...] [key=alg[:size]];',
      summary:
        'Obtains and renews a certificate from the issuer for the identifiers (default: the server_name names, without regexes; .example.com stands for it and www.example.com), key ecdsa:256 (default), ecdsa:384, ecdsa:521, rsa:2048, rsa:3072 or rsa:4096; `ssl_certificate $acme_certificate; ssl_certificate_key $acme_certificate_key;` serve it from the certificate store, under its first DNS name.',
      default: () => undefined,
      defaultText: '—',
      parse: parseCertificate,
    }),
  ],
  check(main, ctx) {
    const http = main.blocks.find((block) => block.name === 'http');
    if (http === undefined) return;
    const settings = acmeSettingsOf(main, (reason) => ctx.warn(reason));
    // nginx-acme's Issuer::postconfiguration() refuses an issuer without a resolver; hitless does not need one.
    if (settings.issuers.length > 0 && http.get('resolver') === undefined) {
      ctx.warn('acme_issuer: "resolver" is not configured (nginx-acme requires one; hitless resolves the ACME server with the system resolver)');
    }
  },
};

