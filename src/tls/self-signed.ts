/**
 * Self-signed certificates for a first start (`npm start`, `hitless certs selfsigned`): an ECDSA
 * P-256 key and a certificate for the given DNS names and IP addresses, made with @peculiar/x509
 * over Node's WebCrypto. Meant for local use only: nothing trusts it.
 */
import { createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

/** A certificate and its key, PEM. */
export interface SelfSignedPair {
  readonly cert: string;
  readonly key: string;
}

/** Options of {@link createSelfSigned}. */
export interface SelfSignedOptions {
  /** How long it is valid from now. Default 365 days. */
  readonly days?: number;
}

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';

type Generator = typeof x509.X509CertificateGenerator.createSelfSigned;
/** Node's WebCrypto under the DOM type names @peculiar/x509 declares (the project has no DOM lib). */
const crypto = webcrypto as unknown as NonNullable<Parameters<Generator>[1]>;

/** Makes a self-signed certificate whose subject is the first name and whose SAN lists all of them. */
export async function createSelfSigned(names: readonly string[], options: SelfSignedOptions = {}): Promise<SelfSignedPair> {
  const [first] = names;
  if (first === undefined) throw new TypeError('createSelfSigned() needs at least one name');
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const now = Date.now();
  // A positive 64-bit serial, random as RFC 5280 section 4.1.2.2 asks.
  const serial = randomBytes(8);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: `CN=${first}`,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.days ?? 365) * 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys: keys as unknown as Parameters<Generator>[0]['keys'],
    extensions: [
      new x509.SubjectAlternativeNameExtension(names.map((name) => (isIP(name) === 0 ? { type: 'dns', value: name } : { type: 'ip', value: name }))),
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([SERVER_AUTH]),
    ],
  }, crypto);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { cert: cert.toString('pem') + '\n', key };
}
