/**
 * OCSP requests and responses (RFC 6960) as nginx's stapling builds and checks them:
 * `ngx_ssl_ocsp_create_request()` (one CertID, SHA-1, as OCSP_cert_to_id() makes it) and
 * `ngx_ssl_ocsp_verify()` (status successful, the basic response's signature, the signer's chain
 * when `ssl_stapling_verify` is on, the certificate's status and OCSP_check_validity()), with
 * nginx's messages. The ASN.1 is @peculiar/asn1-ocsp's; the signatures are node:crypto's.
 */
import { createHash, verify as verifySignature, X509Certificate } from 'node:crypto';
import { AsnConvert, OctetString } from '@peculiar/asn1-schema';
import { AlgorithmIdentifier, Certificate } from '@peculiar/asn1-x509';
import { BasicOCSPResponse, CertID, OCSPRequest, OCSPResponse, OCSPResponseStatus, Request, TBSRequest, id_kp_OCSPSigning, id_pkix_ocsp_basic } from '@peculiar/asn1-ocsp';

/** A response that nginx would not staple; the message is nginx's error log text. */
export class OcspResponseError extends Error {}

/** What {@link checkOcspResponse} found: the certificate's status and until when the response holds (ms; Infinity without nextUpdate). */
export interface OcspStatus {
  readonly status: 'good' | 'revoked' | 'unknown';
  readonly validUntil: number;
}

/** The certificates one check needs: the server's, its issuer, the chain sent with it, and ssl_trusted_certificate's. */
export interface OcspSubject {
  readonly cert: X509Certificate;
  readonly issuer: X509Certificate;
  readonly chain: readonly X509Certificate[];
  readonly trusted: readonly X509Certificate[];
}

const SHA1 = '1.3.14.3.2.26';

/** The hash of each signature algorithm OpenSSL's OCSP responders use (RFC 4055, RFC 5758); null: the key decides (Ed25519). */
const SIGNATURE_HASHES: Readonly<Record<string, string | null>> = {
  '1.2.840.113549.1.1.5': 'sha1',
  '1.2.840.113549.1.1.14': 'sha224',
  '1.2.840.113549.1.1.11': 'sha256',
  '1.2.840.113549.1.1.12': 'sha384',
  '1.2.840.113549.1.1.13': 'sha512',
  '1.2.840.10045.4.1': 'sha1',
  '1.2.840.10045.4.3.1': 'sha224',
  '1.2.840.10045.4.3.2': 'sha256',
  '1.2.840.10045.4.3.3': 'sha384',
  '1.2.840.10045.4.3.4': 'sha512',
  '1.3.101.112': null,
  '1.3.101.113': null,
};

function parsed(cert: X509Certificate): Certificate {
  return AsnConvert.parse(cert.raw, Certificate);
}

/** `OCSP_cert_to_id(NULL, cert, issuer)`: SHA-1 of the issuer's name and key, and the serial. */
export function certIdOf(cert: X509Certificate, issuer: X509Certificate): CertID {
  const tbs = parsed(cert).tbsCertificate;
  const issuerKey = parsed(issuer).tbsCertificate.subjectPublicKeyInfo.subjectPublicKey;
  const sha1 = (data: ArrayBuffer): Buffer => createHash('sha1').update(Buffer.from(data)).digest();
  return new CertID({
    hashAlgorithm: new AlgorithmIdentifier({ algorithm: SHA1, parameters: null }),
    issuerNameHash: new OctetString(sha1(AsnConvert.serialize(tbs.issuer))),
    issuerKeyHash: new OctetString(sha1(issuerKey)),
    serialNumber: tbs.serialNumber,
  });
}

/** The DER of the OCSP request nginx sends for `cert` (no nonce, unsigned). */
export function ocspRequestOf(cert: X509Certificate, issuer: X509Certificate): Buffer {
  const request = new OCSPRequest({ tbsRequest: new TBSRequest({ requestList: [new Request({ reqCert: certIdOf(cert, issuer) })] }) });
  return Buffer.from(AsnConvert.serialize(request));
}

function sameBytes(a: ArrayBuffer | ArrayBufferView, b: ArrayBuffer | ArrayBufferView): boolean {
  const bytes = (x: ArrayBuffer | ArrayBufferView): Buffer => (x instanceof ArrayBuffer ? Buffer.from(x) : Buffer.from(x.buffer, x.byteOffset, x.byteLength));
  return bytes(a).equals(bytes(b));
}

/** `ocsp_find_signer()`: the certificate the responder id names, among the response's then the chain's; `inChain` as its return value 2. */
function findSigner(basic: BasicOCSPResponse, chain: readonly X509Certificate[]): { signer: X509Certificate; inChain: boolean } | undefined {
  const id = basic.tbsResponseData.responderID;
  const matches = (cert: X509Certificate): boolean => {
    const tbs = parsed(cert).tbsCertificate;
    if (id.byName !== undefined) return sameBytes(AsnConvert.serialize(tbs.subject), AsnConvert.serialize(id.byName));
    if (id.byKey === undefined) return false;
    return sameBytes(createHash('sha1').update(Buffer.from(tbs.subjectPublicKeyInfo.subjectPublicKey)).digest(), id.byKey.buffer);
  };
  const own = (basic.certs ?? []).map((cert) => new X509Certificate(Buffer.from(AsnConvert.serialize(cert))));
  const inResponse = own.find(matches);
  if (inResponse !== undefined) return { signer: inResponse, inChain: false };
  const inChain = chain.find(matches);
  return inChain === undefined ? undefined : { signer: inChain, inChain: true };
}

/** X509_verify_cert() for the signer, simplified to a walk to a trusted certificate by issuer and signature. */
function chainsToTrusted(signer: X509Certificate, untrusted: readonly X509Certificate[], trusted: readonly X509Certificate[]): boolean {
  let current = signer;
  for (let depth = 0; depth < 10; depth++) {
    const now = Date.now();
    if (Date.parse(current.validFrom) > now || Date.parse(current.validTo) < now) return false;
    if (trusted.some((cert) => cert.raw.equals(current.raw))) return true;
    const issuedBy = (cert: X509Certificate): boolean => current.checkIssued(cert) && current.verify(cert.publicKey);
    const anchor = trusted.find(issuedBy);
    if (anchor !== undefined) return true;
    const next = untrusted.find((cert) => !cert.raw.equals(current.raw) && issuedBy(cert));
    if (next === undefined) return false;
    current = next;
  }
  return false;
}

/**
 * `OCSP_basic_verify(basic, chain, store, flags)`: the signature always; with `verify`
 * (OCSP_TRUSTOTHER), a signer that is not in the chain must chain to ssl_trusted_certificate and
 * be the issuer or a responder it delegated (id-kp-OCSPSigning, `ocsp_check_issuer()`).
 */
function basicVerify(basic: BasicOCSPResponse, subject: OcspSubject, verify: boolean): string | undefined {
  const found = findSigner(basic, [subject.issuer, ...subject.chain]);
  if (found === undefined) return 'error:13800076:OCSP routines::signer certificate not found';
  const { signer, inChain } = found;
  const algorithm = basic.signatureAlgorithm.algorithm;
  const hash = SIGNATURE_HASHES[algorithm];
  if (hash === undefined) return `error:13800075:OCSP routines::unsupported signature algorithm ${algorithm}`;
  const tbs = basic.tbsResponseDataRaw ?? AsnConvert.serialize(basic.tbsResponseData);
  if (!verifySignature(hash, Buffer.from(tbs), signer.publicKey, Buffer.from(basic.signature))) {
    return 'error:13800075:OCSP routines::signature failure';
  }
  // OpenSSL: a signer found among the trusted-other certificates is not verified further.
  if (!verify || inChain) return undefined;
  const untrusted = [...(basic.certs ?? []).map((cert) => new X509Certificate(Buffer.from(AsnConvert.serialize(cert)))), ...subject.chain, subject.issuer];
  if (!chainsToTrusted(signer, untrusted, subject.trusted)) {
    return 'error:13800065:OCSP routines::certificate verify error:Verify error:unable to get local issuer certificate';
  }
  if (signer.raw.equals(subject.issuer.raw)) return undefined;
  const delegated = signer.checkIssued(subject.issuer) && signer.verify(subject.issuer.publicKey) && (signer.keyUsage ?? []).includes(id_kp_OCSPSigning);
  return delegated ? undefined : 'error:13800067:OCSP routines::missing ocspsigning usage';
}

const STATUS_NAMES = ['successful', 'malformedrequest', 'internalerror', 'trylater', '', 'sigrequired', 'unauthorized'];

/** `d2i_OCSP_RESPONSE()`: whether `der` is an OCSPResponse at all (ssl_stapling_file is stapled unchecked otherwise, as in nginx). */
export function isOcspResponse(der: Buffer): boolean {
  try {
    AsnConvert.parse(der, OCSPResponse);
    return true;
  } catch {
    return false;
  }
}

/** `ngx_ssl_ocsp_verify()`: the response's status for `subject.cert`, or an {@link OcspResponseError} in nginx's words. */
export function checkOcspResponse(der: Buffer, subject: OcspSubject, verify: boolean, now = Date.now()): OcspStatus {
  let response: OCSPResponse;
  let basic: BasicOCSPResponse;
  try {
    response = AsnConvert.parse(der, OCSPResponse);
  } catch {
    throw new OcspResponseError('d2i_OCSP_RESPONSE() failed');
  }
  if (response.responseStatus !== OCSPResponseStatus.successful) {
    const n = response.responseStatus as number;
    throw new OcspResponseError(`OCSP response not successful (${n}: ${STATUS_NAMES[n] || '(UNKNOWN)'})`);
  }
  try {
    if (response.responseBytes?.responseType !== id_pkix_ocsp_basic) throw new Error('not basic');
    basic = AsnConvert.parse(response.responseBytes.response.buffer, BasicOCSPResponse);
  } catch {
    throw new OcspResponseError('OCSP_response_get1_basic() failed');
  }
  const failure = basicVerify(basic, subject, verify);
  if (failure !== undefined) throw new OcspResponseError(`OCSP_basic_verify() failed (SSL: ${failure})`);
  const id = certIdOf(subject.cert, subject.issuer);
  const single = basic.tbsResponseData.responses.find(
    (entry) =>
      entry.certID.hashAlgorithm.algorithm === SHA1 &&
      sameBytes(entry.certID.issuerNameHash.buffer, id.issuerNameHash.buffer) &&
      sameBytes(entry.certID.issuerKeyHash.buffer, id.issuerKeyHash.buffer) &&
      sameBytes(entry.certID.serialNumber, id.serialNumber),
  );
  if (single === undefined) throw new OcspResponseError('certificate status not found in the OCSP response');
  // OCSP_check_validity(thisupdate, nextupdate, 300, -1): 5 minutes of clock skew either way.
  const thisUpdate = single.thisUpdate.getTime();
  const nextUpdate = single.nextUpdate?.getTime();
  if (thisUpdate > now + 300_000 || (nextUpdate !== undefined && (nextUpdate < now - 300_000 || nextUpdate < thisUpdate))) {
    const reason = thisUpdate > now + 300_000 ? 'status not yet valid' : 'status expired';
    throw new OcspResponseError(`OCSP_check_validity() failed (SSL: error:13800000:OCSP routines::${reason})`);
  }
  const status = single.certStatus.revoked !== undefined ? 'revoked' : single.certStatus.good !== undefined ? 'good' : 'unknown';
  return { status, validUntil: nextUpdate ?? Infinity };
}
