/**
 * Preflight: everything that can be known about certificate material before a byte is written.
 * The key matches the leaf, each certificate of the chain issued the one before it, all of them
 * are valid today, and the leaf covers every name it is deployed for. A failure throws
 * a CertificateInputError (HITLESS_ERR_CERT_INPUT) and a deploy stops with nothing touched.
 */
import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';
import { CertificateInputError, type CertificateMaterial } from './material.js';

/** What {@link preflight} checks the material against. */
export interface PreflightRequest {
  /** Names the leaf must cover: the deployed names and the vhost's other exact names. */
  readonly names: readonly string[];
  /** Wildcard names of the vhost (`*.example.com`): not covering them is a warning. */
  readonly wildcardNames?: readonly string[] | undefined;
  /** The time the certificates must be valid at; default now. */
  readonly now?: Date | undefined;
  /** Make expired and not-yet-valid certificates a warning, not a refusal (a forced store put); default false. */
  readonly ignoreDates?: boolean | undefined;
  /** Warn when the leaf expires sooner than this many days; default 14. */
  readonly expiryWarningDays?: number | undefined;
}

/** What preflight found: the checks that passed, in words, and the warnings. */
export interface PreflightResult {
  readonly checks: readonly string[];
  readonly warnings: readonly string[];
}

const DAY_MS = 86_400_000;

/** Runs every check; throws the first failure as a CertificateInputError. */
export function preflight(material: CertificateMaterial, request: PreflightRequest): PreflightResult {
  const checks: string[] = [];
  const warnings: string[] = [];
  const { leaf, chain, key } = material;
  const now = request.now ?? new Date();

  if (!leaf.checkPrivateKey(key)) {
    throw refuse(`The private key does not match the certificate "${describe(leaf)}"`);
  }
  checks.push('private key matches the certificate');

  let child = leaf;
  for (const [index, issuer] of chain.entries()) {
    if (!child.checkIssued(issuer) || !child.verify(issuer.publicKey)) {
      throw refuse(
        `The chain does not link: certificate #${index + 1} of the chain "${describe(issuer)}" did not issue "${describe(child)}"`,
      );
    }
    child = issuer;
  }
  if (chain.length > 0) checks.push(`chain of ${chain.length} links the leaf to "${describe(child)}"`);
  else if (!isSelfIssued(leaf)) {
    warnings.push(`No chain given: clients need the issuer "${leaf.issuer.replace(/\n/g, ', ')}" as a trust anchor`);
  }

  for (const [index, cert] of [leaf, ...chain].entries()) {
    const what = index === 0 ? 'The certificate' : `Certificate #${index} of the chain`;
    const from = Date.parse(cert.validFrom);
    const to = Date.parse(cert.validTo);
    let problem: string | undefined;
    if (now.getTime() < from) problem = `${what} "${describe(cert)}" is not valid yet: valid from ${cert.validFrom}`;
    if (now.getTime() > to) problem = `${what} "${describe(cert)}" has expired: valid until ${cert.validTo}`;
    if (problem !== undefined && request.ignoreDates !== true) throw refuse(problem);
    if (problem !== undefined) warnings.push(problem);
  }
  checks.push(`valid until ${leaf.validTo}`);
  const daysLeft = (Date.parse(leaf.validTo) - now.getTime()) / DAY_MS;
  if (daysLeft < (request.expiryWarningDays ?? 14)) {
    warnings.push(`The certificate expires in ${Math.floor(daysLeft)} days (${leaf.validTo})`);
  }

  const uncovered = request.names.filter((name) => !covers(leaf, name));
  if (uncovered.length > 0) {
    throw refuse(
      `The certificate "${describe(leaf)}" does not cover ${uncovered.map((n) => `"${n}"`).join(', ')}: it covers ${coveredNames(leaf)}`,
    );
  }
  if (request.names.length > 0) checks.push(`covers ${request.names.map((n) => `"${n}"`).join(', ')}`);
  for (const name of request.wildcardNames ?? []) {
    if (!coversWildcard(leaf, name)) warnings.push(`The certificate does not cover the server name "${name}"`);
  }
  return { checks, warnings };
}

/** True when the certificate is valid for `name`, a DNS name or an IP address (RFC 6125 rules). */
export function covers(cert: X509Certificate, name: string): boolean {
  if (isIP(name) !== 0) return cert.checkIP(name) !== undefined;
  return cert.checkHost(name) !== undefined;
}

/**
 * For nginx's wildcard server names: `*.example.com` is covered by a certificate for
 * `*.example.com` (checkHost compares a wildcard name literally), `.example.com` needs
 * `example.com` and `*.example.com`, `www.example.*` cannot be covered by any certificate.
 */
export function coversWildcard(cert: X509Certificate, name: string): boolean {
  if (name.startsWith('.')) return covers(cert, name.slice(1)) && covers(cert, `*${name}`);
  if (name.startsWith('*.')) return cert.checkHost(name) !== undefined;
  return false;
}

function isSelfIssued(cert: X509Certificate): boolean {
  return cert.checkIssued(cert);
}

function coveredNames(cert: X509Certificate): string {
  const san = cert.subjectAltName;
  return san === undefined || san === '' ? `only its subject "${describe(cert)}"` : san;
}

/** A short name for a certificate in messages: its subject's CN, or the whole subject. */
export function describe(cert: X509Certificate): string {
  const cn = /^CN=(.*)$/m.exec(cert.subject)?.[1];
  return cn ?? cert.subject.replace(/\n/g, ', ');
}

function refuse(message: string): CertificateInputError {
  return new CertificateInputError(message);
}
