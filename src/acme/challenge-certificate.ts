/**
 * The tls-alpn-01 challenge certificate (RFC 8737 section 3): self-signed, the one name as its
 * only subjectAltName, and the critical id-pe-acmeIdentifier extension holding the DER OCTET
 * STRING of sha256(keyAuthorization). Made with @peculiar/x509 over Node's WebCrypto.
 */
import { createHash, createPrivateKey, randomBytes, webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import * as x509 from '@peculiar/x509';

/** id-pe-acmeIdentifier (RFC 8737 section 6.1). */
export const ACME_IDENTIFIER_OID = '1.3.6.1.5.5.7.1.31';

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

type Generator = typeof x509.X509CertificateGenerator.createSelfSigned;
/** Node's WebCrypto under the DOM type names @peculiar/x509 declares (the project has no DOM lib). */
const crypto = webcrypto as unknown as NonNullable<Parameters<Generator>[1]>;

/** A challenge certificate and its key (PKCS#8), PEM, for the ALPN `acme-tls/1` handshake of `name`. */
export async function tlsAlpnCertificate(name: string, keyAuthorization: string): Promise<{ cert: string; key: string }> {
  const digest = createHash('sha256').update(keyAuthorization, 'utf8').digest();
  // The extension's value is an ASN.1 OCTET STRING (tag 4, length 32) wrapping the digest.
  const acmeIdentifier = Buffer.concat([Buffer.from([0x04, digest.length]), digest]);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const serial = randomBytes(8);
  serial[0] = (serial[0] ?? 0) & 0x7f;
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serial.toString('hex'),
    name: isIP(name) === 0 && name.length <= 64 ? [{ CN: [name] }] : [],
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + 7 * 86_400_000),
    signingAlgorithm: ALGORITHM,
    keys: keys as unknown as Parameters<Generator>[0]['keys'],
    extensions: [
      new x509.SubjectAlternativeNameExtension([isIP(name) === 0 ? { type: 'dns', value: name } : { type: 'ip', value: name }]),
      new x509.Extension(ACME_IDENTIFIER_OID, true, acmeIdentifier),
    ],
  }, crypto);
  const pkcs8 = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const key = createPrivateKey({ key: pkcs8, format: 'der', type: 'pkcs8' }).export({ format: 'pem', type: 'pkcs8' }) as string;
  return { cert: cert.toString('pem') + '\n', key };
}
