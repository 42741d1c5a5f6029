/**
 * JSON Web Signatures for ACME (RFC 8555 section 6.2, RFC 7515 flattened serialization): the
 * account key's JWK and its RFC 7638 thumbprint, requests signed with ES256 / ES384 / RS256 by
 * the key's type, and the HS256 external account binding of RFC 8555 section 7.3.4.
 */
import { createHash, createHmac, createPublicKey, sign, type KeyObject } from 'node:crypto';
import { AcmeError } from './problem.js';

/** A JWS in flattened JSON serialization. */
export interface FlattenedJws {
  readonly protected: string;
  readonly payload: string;
  readonly signature: string;
}

/** A public JWK with only the members RFC 7638 hashes (EC: crv, kty, x, y; RSA: e, kty, n). */
export type PublicJwk = { kty: 'EC'; crv: string; x: string; y: string } | { kty: 'RSA'; n: string; e: string };

/** The JWS algorithm of an account key, and how node:crypto signs with it. */
interface Signer {
  readonly alg: 'ES256' | 'ES384' | 'RS256';
  readonly hash: 'sha256' | 'sha384';
  readonly ecdsa: boolean;
}

/** base64url without padding (RFC 7515 section 2). */
export function base64url(data: Buffer | string): string {
  return (typeof data === 'string' ? Buffer.from(data, 'utf8') : data).toString('base64url');
}

/** The algorithm RFC 7518 names for this key: ES256 for P-256, ES384 for P-384, RS256 for RSA. */
function signerOf(key: KeyObject): Signer {
  const type = key.asymmetricKeyType;
  if (type === 'rsa') {
    const bits = key.asymmetricKeyDetails?.modulusLength ?? 0;
    if (bits < 2048) throw new AcmeError(`ACME account key: an RSA key of ${bits} bits is too short (2048 or more)`);
    return { alg: 'RS256', hash: 'sha256', ecdsa: false };
  }
  if (type === 'ec') {
    const curve = key.asymmetricKeyDetails?.namedCurve;
    if (curve === 'prime256v1') return { alg: 'ES256', hash: 'sha256', ecdsa: true };
    if (curve === 'secp384r1') return { alg: 'ES384', hash: 'sha384', ecdsa: true };
    throw new AcmeError(`ACME account key: the curve "${curve ?? '?'}" is not supported (P-256 or P-384)`);
  }
  throw new AcmeError(`ACME account key: a key of type "${type ?? '?'}" is not supported (ECDSA P-256, P-384 or RSA)`);
}

/** The account key's public JWK, members in RFC 7638's order. */
export function publicJwk(key: KeyObject): PublicJwk {
  signerOf(key);
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  if (jwk.kty === 'EC' && jwk.crv !== undefined && jwk.x !== undefined && jwk.y !== undefined) return { kty: 'EC', crv: jwk.crv, x: jwk.x, y: jwk.y };
  if (jwk.kty === 'RSA' && jwk.n !== undefined && jwk.e !== undefined) return { kty: 'RSA', n: jwk.n, e: jwk.e };
  throw new AcmeError('ACME account key: its public JWK could not be exported');
}

/** RFC 7638 thumbprint: base64url(sha256(the required members, sorted, no whitespace)). */
export function jwkThumbprint(jwk: PublicJwk): string {
  const canonical = jwk.kty === 'EC'
    ? JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
    : JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return base64url(createHash('sha256').update(canonical).digest());
}

/**
 * Signs one ACME request. `header` carries nonce, url and either jwk or kid; `payload` undefined
 * is POST-as-GET (RFC 8555 section 6.3: an empty payload).
 */
export function signJws(key: KeyObject, header: Record<string, unknown>, payload: unknown): FlattenedJws {
  const signer = signerOf(key);
  const protectedHeader = base64url(JSON.stringify({ alg: signer.alg, ...header }));
  const body = payload === undefined ? '' : base64url(JSON.stringify(payload));
  const input = Buffer.from(`${protectedHeader}.${body}`, 'ascii');
  // JWS wants ECDSA signatures as r || s of fixed width (RFC 7518 section 3.4), not DER.
  const signature = sign(signer.hash, input, signer.ecdsa ? { key, dsaEncoding: 'ieee-p1363' } : key);
  return { protected: protectedHeader, payload: body, signature: base64url(signature) };
}

/**
 * The externalAccountBinding member of a newAccount request (RFC 8555 section 7.3.4): the account
 * key's JWK, signed with HS256 under the CA's MAC key, `kid` the key identifier, `url` newAccount.
 */
export function externalAccountBinding(jwk: PublicJwk, kid: string, hmacKey: Buffer, url: string): FlattenedJws {
  if (hmacKey.length === 0) throw new AcmeError('ACME external account binding: the MAC key is empty');
  const protectedHeader = base64url(JSON.stringify({ alg: 'HS256', kid, url }));
  const body = base64url(JSON.stringify(jwk));
  const signature = createHmac('sha256', hmacKey).update(`${protectedHeader}.${body}`, 'ascii').digest();
  return { protected: protectedHeader, payload: body, signature: base64url(signature) };
}
