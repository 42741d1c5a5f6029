/**
 * Certificate material as a deploy or the certificate store receives it: PEM bytes for the certificate, its chain and its
 * private key, parsed once with node:crypto. Messages name the input, never quote it, and the
 * {@link Redactor} strips the key's base64 body from anything printed, so that no key byte can
 * reach a log even through a command's output.
 */
import { createHash, createPrivateKey, X509Certificate, type KeyObject } from 'node:crypto';
import { HitlessError } from '../core/errors.js';

/** Certificate material that cannot be used: unreadable PEM, a key that does not match, a name it does not cover. */
export class CertificateInputError extends HitlessError {
  constructor(message: string, options?: ErrorOptions) {
    super('HITLESS_ERR_CERT_INPUT', message, options);
  }
}

/** The PEM inputs of a certificate deploy. */
export interface CertificateInput {
  /** The leaf, optionally followed by its chain (a "fullchain" file). */
  readonly certificate: Buffer;
  /** The private key of the leaf, unencrypted PEM. */
  readonly key: Buffer;
  /** Intermediates, leaf's issuer first; default: whatever followed the leaf in `certificate`. */
  readonly chain?: Buffer | undefined;
  /** Names of the inputs for messages (file paths); default `certificate`, `key`, `chain`. */
  readonly labels?: { readonly certificate?: string; readonly key?: string; readonly chain?: string } | undefined;
}

/** Parsed certificate material and the bytes each kind of destination receives. */
export interface CertificateMaterial {
  readonly leaf: X509Certificate;
  /** The intermediates, in order, from `chain` or from what followed the leaf. */
  readonly chain: readonly X509Certificate[];
  readonly key: KeyObject;
  /** The leaf's PEM bytes as given. */
  readonly leafPem: Buffer;
  /** The chain's PEM bytes as given (empty when there is none). */
  readonly chainPem: Buffer;
  /** The key's bytes as given. */
  readonly keyPem: Buffer;
  /** Leaf followed by chain: what nginx's ssl_certificate expects. */
  readonly fullchainPem: Buffer;
  /** SHA-256 over certificate, chain and key bytes, hex: the identity of a deploy. */
  readonly sha256: string;
  readonly redactor: Redactor;
}

const PEM_BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n[\s\S]*?-----END \1-----\r?\n?/g;

/** Splits PEM text into its blocks, each with its label and exact bytes. */
export function splitPem(text: string): { label: string; pem: string }[] {
  return [...text.matchAll(PEM_BLOCK)].map((match) => ({ label: match[1] as string, pem: match[0] }));
}

/** Parses and checks the shape of the inputs; throws a CertificateInputError naming the bad one. */
export function readCertificateMaterial(input: CertificateInput): CertificateMaterial {
  const labels = { certificate: 'certificate', key: 'key', chain: 'chain', ...input.labels };
  const redactor = new Redactor([input.key]);
  const certBlocks = certificateBlocks(input.certificate, labels.certificate);
  const [leafBlock, ...rest] = certBlocks;
  if (leafBlock === undefined) {
    throw new CertificateInputError(`No PEM certificate in "${labels.certificate}"`);
  }
  let chainBlocks = rest;
  if (input.chain !== undefined) {
    if (rest.length > 0) {
      throw new CertificateInputError(`"${labels.certificate}" already holds a chain after the leaf, and a chain was given too: give one of them`,
      );
    }
    chainBlocks = certificateBlocks(input.chain, labels.chain);
    if (chainBlocks.length === 0) {
      throw new CertificateInputError(`No PEM certificate in "${labels.chain}"`);
    }
  }
  const leaf = parseCertificate(leafBlock, labels.certificate);
  const chain = chainBlocks.map((block, index) => parseCertificate(block, `${labels.chain} #${index + 1}`));
  const key = parseKey(input.key, labels.key);
  const leafPem = Buffer.from(leafBlock);
  const chainPem = Buffer.from(chainBlocks.join(''));
  return {
    leaf,
    chain,
    key,
    leafPem,
    chainPem,
    keyPem: input.key,
    fullchainPem: Buffer.concat([leafPem, chainPem]),
    sha256: createHash('sha256').update(leafPem).update(chainPem).update(input.key).digest('hex'),
    redactor,
  };
}

function certificateBlocks(bytes: Buffer, label: string): string[] {
  const blocks = splitPem(bytes.toString('latin1'));
  const other = blocks.find((block) => block.label !== 'CERTIFICATE');
  if (other !== undefined) {
    throw new CertificateInputError(`"${label}" holds a PEM "${other.label}" block; expected only certificates`);
  }
  return blocks.map((block) => block.pem);
}

function parseCertificate(pem: string, label: string): X509Certificate {
  try {
    return new X509Certificate(pem);
  } catch (err) {
    throw new CertificateInputError(`Invalid certificate in "${label}": ${reasonOf(err)}`, { cause: err });
  }
}

function parseKey(bytes: Buffer, label: string): KeyObject {
  const blocks = splitPem(bytes.toString('latin1'));
  const [block] = blocks;
  if (block === undefined || !block.label.endsWith('PRIVATE KEY')) {
    throw new CertificateInputError(`No PEM private key in "${label}"`);
  }
  if (block.label === 'ENCRYPTED PRIVATE KEY' || /^Proc-Type: 4,ENCRYPTED/m.test(block.pem)) {
    throw new CertificateInputError(`The private key in "${label}" is encrypted: deploy an unencrypted key`);
  }
  try {
    return createPrivateKey(bytes);
  } catch (err) {
    // OpenSSL's reason ("DECODER routines::unsupported") never quotes the input.
    throw new CertificateInputError(`Invalid private key in "${label}": ${reasonOf(err)}`);
  }
}

function reasonOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Removes secret material from text before it is shown: every base64 line of the key's PEM body
 * (and the whole body, should a program print it unwrapped) becomes `[redacted]`.
 */
export class Redactor {
  readonly #fragments: string[];

  constructor(secrets: readonly Buffer[]) {
    const fragments = new Set<string>();
    for (const secret of secrets) {
      const text = secret.toString('latin1');
      const lines = text.split(/\r?\n/).filter((line) => /^[A-Za-z0-9+/=]{16,}$/.test(line));
      if (lines.length > 0) fragments.add(lines.join(''));
      for (const line of lines) fragments.add(line);
    }
    // Longest first, so that the unwrapped body is replaced before its lines are.
    this.#fragments = [...fragments].sort((a, b) => b.length - a.length);
  }

  /** `text` with every secret fragment replaced. */
  redact(text: string): string {
    let out = text;
    for (const fragment of this.#fragments) {
      if (out.includes(fragment)) out = out.split(fragment).join('[redacted]');
    }
    return out;
  }
}

/** A redactor that removes nothing, for deploys that carry no key. */
export const NO_SECRETS = new Redactor([]);
