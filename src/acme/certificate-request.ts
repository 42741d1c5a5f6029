/**
 * The CSR an ACME finalize request carries (RFC 8555 section 7.4: PKCS#10, DER, base64url),
 * made with @peculiar/x509 over Node's WebCrypto from the certificate's KeyObject; and the ARI
 * certificate identifier of RFC 9773 section 4.1.
 */
import { createPublicKey, webcrypto, type KeyObject } from 'node:crypto';
import { isIP } from 'node:net';
import { AsnConvert } from '@peculiar/asn1-schema';
import { AuthorityKeyIdentifier, Certificate, id_ce_authorityKeyIdentifier } from '@peculiar/asn1-x509';
import * as x509 from '@peculiar/x509';
import { AcmeError } from './problem.js';

type Generator = typeof x509.Pkcs10CertificateRequestGenerator.create;
/** Node's WebCrypto under the DOM type names @peculiar/x509 declares (the project has no DOM lib). */
const crypto = webcrypto as unknown as NonNullable<Parameters<Generator>[1]>;
type Keys = Parameters<Generator>[0]['keys'];

/** The WebCrypto algorithm a certificate key signs its CSR with. */
function algorithmOf(key: KeyObject): { import: webcrypto.EcKeyImportParams | webcrypto.RsaHashedImportParams; sign: { name: string; hash?: string } } {
  if (key.asymmetricKeyType === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    const named = curve === 'prime256v1' ? 'P-256' : curve === 'secp384r1' ? 'P-384' : undefined;
    if (named === undefined) throw new AcmeError(`ACME certificate key: the curve "${curve ?? '?'}" is not supported (P-256 or P-384)`);
    return { import: { name: 'ECDSA', namedCurve: named }, sign: { name: 'ECDSA', hash: named === 'P-256' ? 'SHA-256' : 'SHA-384' } };
  }
  if (key.asymmetricKeyType === 'rsa') {
    return { import: { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' }, sign: { name: 'RSASSA-PKCS1-v1_5' } };
  }
  throw new AcmeError(`ACME certificate key: a key of type "${key.asymmetricKeyType ?? '?'}" is not supported (ECDSA or RSA)`);
}

/** A CSR for `names` (DNS names or IP addresses) signed by `key`, as DER. */
export async function createCertificateRequest(names: readonly string[], key: KeyObject): Promise<Buffer> {
  const [first] = names;
  if (first === undefined) throw new AcmeError('ACME certificate request: no names');
  const algorithm = algorithmOf(key);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', key.export({ format: 'der', type: 'pkcs8' }), algorithm.import, false, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', createPublicKey(key).export({ format: 'der', type: 'spki' }), algorithm.import, true, ['verify']);
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    // The subject's CN is optional for ACME; an X.520 CN holds at most 64 characters.
    ...(first.length <= 64 && isIP(first) === 0 ? { name: [{ CN: [first] }] } : {}),
    keys: { privateKey, publicKey } as unknown as Keys,
    signingAlgorithm: algorithm.sign,
    extensions: [new x509.SubjectAlternativeNameExtension(names.map((name) => (isIP(name) === 0 ? { type: 'dns', value: name } : { type: 'ip', value: name })))],
  }, crypto);
  return Buffer.from(csr.rawData);
}

/** The first certificate of a PEM text, as DER. */
function firstCertificateDer(pem: string): Buffer {
  const match = /-----BEGIN CERTIFICATE-----([\s\S]*?)-----END CERTIFICATE-----/.exec(pem);
  if (match?.[1] === undefined) throw new AcmeError('ACME certificate identifier: no PEM certificate given');
  return Buffer.from(match[1].replace(/\s+/g, ''), 'base64');
}

/**
 * The ARI certificate identifier (RFC 9773 section 4.1): base64url of the Authority Key
 * Identifier's keyIdentifier, ".", base64url of the serial number's DER content octets (with the
 * leading zero a positive serial whose top bit is set carries).
 */
export function certificateIdentifier(certificatePem: string): string {
  let certificate: Certificate;
  try {
    certificate = AsnConvert.parse(firstCertificateDer(certificatePem), Certificate);
  } catch (err) {
    if (err instanceof AcmeError) throw err;
    throw new AcmeError('ACME certificate identifier: the certificate cannot be parsed', { cause: err });
  }
  const extension = certificate.tbsCertificate.extensions?.find((e) => e.extnID === id_ce_authorityKeyIdentifier);
  if (extension === undefined) throw new AcmeError('ACME certificate identifier: the certificate has no Authority Key Identifier');
  const aki = AsnConvert.parse(extension.extnValue.buffer, AuthorityKeyIdentifier);
  if (aki.keyIdentifier === undefined) throw new AcmeError('ACME certificate identifier: the Authority Key Identifier has no keyIdentifier');
  const keyId = Buffer.from(aki.keyIdentifier.buffer);
  const serial = Buffer.from(certificate.tbsCertificate.serialNumber);
  return `${keyId.toString('base64url')}.${serial.toString('base64url')}`;
}
