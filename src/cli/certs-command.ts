/**
 * `hitless certs list|get|put|delete|status`: the command-line client of the admin API, and
 * `hitless certs selfsigned`, which makes a local certificate with no server involved.
 */
import { existsSync, readFileSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AdminClient } from '../admin/admin-client.js';
import { ADMIN_FLAGS, ADMIN_FLAGS_HELP, adminClientOf } from './admin-flags.js';
import { formatSyscallError, HitlessError, UsageError } from '../core/errors.js';
import { parseNumber } from '../core/parse.js';
import { writeFileAtomic } from '../core/atomic-write.js';
import type { CertificateSummary } from '../tls/certificate-store.js';
import type { AcmeNameState } from '../acme/manager.js';

/** Where the command writes. */
export interface CertsCommandIo {
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
}

const USAGE =
  'usage: hitless certs list [--json]\n' +
  '       hitless certs get NAME\n' +
  '       hitless certs put NAME --cert FILE --key FILE [--chain FILE] [--force] [--dry-run]\n' +
  '       hitless certs delete NAME\n' +
  '       hitless certs status\n' +
  '       hitless certs selfsigned NAME... --cert FILE --key FILE [--days N] [--if-missing]\n';

const HELP =
  USAGE +
  '\n' +
  "Changes the certificates a running hitless serves, through its admin API, with no reload:\n" +
  'the next full handshake for NAME (its SNI) serves the new certificate.\n' +
  '\n' +
  ADMIN_FLAGS_HELP +
  'put:\n' +
  '  --cert FILE            the certificate (PEM), optionally followed by its chain\n' +
  '  --key FILE             its private key (PEM, unencrypted)\n' +
  '  --chain FILE           the intermediates, if not in --cert\n' +
  '  --force                accept an expired, not yet valid or non-matching certificate\n' +
  '  --dry-run              run every check, change nothing\n' +
  'selfsigned:\n' +
  '  --cert FILE --key FILE where to write them (the key with mode 0600)\n' +
  '  --days N               validity (default 365)\n' +
  '  --if-missing           do nothing when both files exist\n' +
  '\n' +
  'exit: 0 done, 1 failed (refused, not found, unreachable), 2 bad usage\n';

const OPTIONS = {
  ...ADMIN_FLAGS,
  cert: { type: 'string' },
  key: { type: 'string' },
  chain: { type: 'string' },
  force: { type: 'boolean' },
  'dry-run': { type: 'boolean' },
  days: { type: 'string' },
  'if-missing': { type: 'boolean' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>['values'];

/** Runs `hitless certs ...` and returns the exit status. */
export async function certsCommand(argv: readonly string[], io: CertsCommandIo): Promise<number> {
  let values: Values;
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({ args: [...argv], options: OPTIONS, allowPositionals: true, strict: true }));
  } catch (err) {
    io.stderr.write(`hitless certs: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help === true) {
    io.stdout.write(HELP);
    return 0;
  }
  const [action, ...names] = positionals;
  try {
    switch (action) {
      case 'selfsigned':
        return await selfSigned(names, values, io);
      case 'list':
        return await list(values, io);
      case 'status':
        io.stdout.write(`${JSON.stringify(await client(values).status(), null, 2)}\n`);
        return 0;
      case 'get':
        return await get(one(names, action), values, io);
      case 'put':
        return await put(one(names, action), values, io);
      case 'delete':
        await client(values).deleteCertificate(one(names, action));
        io.stdout.write(`deleted "${names[0] ?? ''}": its handshakes fall back to the configured certificate\n`);
        return 0;
      default:
        throw new UsageError(action === undefined ? 'no action given' : `unknown action "${action}"`);
    }
  } catch (err) {
    if (err instanceof UsageError) {
      io.stderr.write(`hitless certs: ${err.message}\n${USAGE}`);
      return 2;
    }
    if (err instanceof HitlessError) {
      io.stderr.write(`hitless certs: ${err.message}${err.code === 'HITLESS_ERR_ADMIN' || err.code === 'HITLESS_ERR_CONFIG' ? '' : ` (${err.code})`}\n`);
      return 1;
    }
    throw err;
  }
}

function one(names: readonly string[], action: string): string {
  if (names.length !== 1) throw new UsageError(`"${action}" takes one certificate name`);
  return names[0] as string;
}

async function list(values: Values, io: CertsCommandIo): Promise<number> {
  const admin = client(values);
  const [certificates, acme] = await Promise.all([admin.listCertificates(), admin.listAcme()]);
  const acmeOf = new Map(acme.map((state) => [state.name, state]));
  if (values.json === true) {
    // Each stored certificate with its ACME state, then the ACME names not issued yet (name and state only).
    const stored = new Set(certificates.map((cert) => cert.name));
    const entries = [
      ...certificates.map((cert) => (acmeOf.has(cert.name) ? { ...cert, acme: acmeOf.get(cert.name) } : cert)),
      ...acme.filter((state) => !stored.has(state.name)).map((state) => ({ name: state.name, acme: state })),
    ];
    io.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return 0;
  }
  if (certificates.length === 0 && acme.length === 0) {
    io.stdout.write('no certificates in the store\n');
    return 0;
  }
  for (const cert of certificates) {
    const state = acmeOf.get(cert.name);
    acmeOf.delete(cert.name);
    io.stdout.write(describe(cert) + (state === undefined ? '' : describeAcme(state)));
  }
  for (const state of acmeOf.values()) io.stdout.write(`${state.name}\n  (not issued yet)\n${describeAcme(state)}`);
  return 0;
}

/** The ACME lines of `certs list`: issuer, not-after, next renewal, last error. */
function describeAcme(state: AcmeNameState): string {
  const error = state.lastError;
  const next = state.ordering ? 'ordering now' : state.nextRenewal === null ? '-' : `${state.nextRenewal}${state.renewalInfo ? ' (CA renewal info)' : ''}`;
  return (
    `  acme issuer  ${state.issuer} (${state.names.join(', ')})\n` +
    `  acme expiry  ${state.notAfter ?? '-'}\n` +
    `  next renewal ${next}\n` +
    `  last error   ${error === null ? '-' : `${error.at} ${error.type === null ? '' : `${error.type}: `}${error.detail}${state.failures > 1 ? ` (${state.failures} failures in a row)` : ''}`}\n`
  );
}

async function get(name: string, values: Values, io: CertsCommandIo): Promise<number> {
  const cert = await client(values).getCertificate(name);
  if (cert === undefined) {
    io.stderr.write(`hitless certs: no certificate named "${name}" in the store\n`);
    return 1;
  }
  io.stdout.write(values.json === true ? `${JSON.stringify(cert, null, 2)}\n` : describe(cert));
  return 0;
}

async function put(name: string, values: Values, io: CertsCommandIo): Promise<number> {
  if (values.cert === undefined || values.key === undefined) throw new UsageError('"put" needs --cert and --key');
  let certificate = readInput(values.cert);
  if (values.chain !== undefined) certificate = `${certificate.replace(/\n?$/, '\n')}${readInput(values.chain)}`;
  const key = readInput(values.key);
  const result = await client(values).putCertificate(name, certificate, key, { force: values.force === true, dryRun: values['dry-run'] === true });
  for (const warning of result.warnings) io.stderr.write(`hitless certs: warning: ${warning}\n`);
  if (values.json === true) {
    io.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    return 0;
  }
  const verb = result.dryRun ? 'checked, not stored' : result.replaced ? 'replaced, served now' : 'added, served now';
  io.stdout.write(`${name}: ${verb}\n${describe(result.certificate)}`);
  return 0;
}

function describe(cert: CertificateSummary): string {
  return (
    `${cert.name}\n` +
    `  subject      ${cert.subject}\n` +
    `  names        ${cert.names.join(', ') || '(none)'}\n` +
    `  issuer       ${cert.issuer}\n` +
    `  not after    ${cert.notAfter}\n` +
    `  fingerprint  ${cert.fingerprint256}\n`
  );
}

function readInput(path: string): string {
  try {
    return readFileSync(path, 'latin1');
  } catch (err) {
    throw new UsageError(formatSyscallError('open', path, err));
  }
}

/** The admin API given on the command line, or the configuration's first `admin_listen`. */
function client(values: Values): AdminClient {
  return adminClientOf(values);
}

async function selfSigned(names: readonly string[], values: Values, io: CertsCommandIo): Promise<number> {
  if (names.length === 0) throw new UsageError('"selfsigned" needs at least one name');
  if (values.cert === undefined || values.key === undefined) throw new UsageError('"selfsigned" needs --cert and --key');
  const days = values.days === undefined ? 365 : parseNumber(values.days);
  if (days === undefined || days < 1) throw new UsageError(`invalid --days "${values.days ?? ''}"`);
  if (values['if-missing'] === true && existsSync(values.cert) && existsSync(values.key)) return 0;
  // Loaded here only: the x509 library is for this action, not for every start of a master.
  const { createSelfSigned } = await import('../tls/self-signed.js');
  const pair = await createSelfSigned(names, { days });
  // The key first: a certificate without its key is never there to be loaded.
  for (const [path, data, mode] of [[values.key, pair.key, 0o600], [values.cert, pair.cert, 0o644]] as const) {
    await mkdir(dirname(resolve(path)), { recursive: true });
    await writeFileAtomic(resolve(path), Buffer.from(data), { mode });
  }
  io.stdout.write(`wrote a self-signed certificate for ${names.join(', ')} to ${values.cert} (key ${values.key}), valid ${days} days\n`);
  return 0;
}
