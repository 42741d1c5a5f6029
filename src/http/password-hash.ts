/**
 * The password hashes of an `auth_basic_user_file`, checked as nginx's `ngx_crypt()` checks them:
 * `$apr1$`, `{PLAIN}`, `{SHA}` and `{SSHA}` by nginx itself, and everything else by the C
 * library's crypt(3), which on glibc-with-libxcrypt builds (Debian's) knows DES, `$1$`, `$5$`,
 * `$6$` and bcrypt `$2a$`/`$2b$`/`$2y$`. The hash is recomputed from the stored one's salt and
 * compared in constant time, as a whole.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createRequire } from 'node:module';
import bcrypt from 'bcryptjs';

const require = createRequire(import.meta.url);
/** apache-md5: md5-crypt, `$1$` and `$apr1$` (the magic is taken from the salt given). */
const md5Crypt = require('apache-md5') as (password: string, salt: string) => string;
/** unix-crypt-td-js: the traditional DES crypt(3), 13 characters, 2 of them salt. */
const desCrypt = require('unix-crypt-td-js') as (password: string, salt: string) => string;

/** Constant-time equality of two strings of bytes (latin1), false when their lengths differ. */
function sameBytes(computed: string, stored: string): boolean {
  const a = Buffer.from(computed, 'latin1');
  const b = Buffer.from(stored, 'latin1');
  return a.length === b.length && timingSafeEqual(a, b);
}

/**
 * Does `password` (the bytes the client sent, as a latin1 string) match `stored` (one user's field)?
 * A format nothing here knows never matches: libxcrypt's crypt() answers such a salt with a
 * failure token ("*0"), which nginx's strcmp() finds different (a "password mismatch").
 */
export async function passwordMatches(password: string, stored: string): Promise<boolean> {
  const computed = await computeHash(password, stored);
  return computed !== '' && sameBytes(computed, stored);
}

/** The hash of `password` with the salt and parameters of `stored`; '' when its format is unknown. */
async function computeHash(password: string, stored: string): Promise<string> {
  // ngx_crypt(): nginx's own four formats first.
  if (stored.startsWith('$apr1$') || stored.startsWith('$1$')) return md5Crypt(password, stored);
  if (stored.startsWith('{PLAIN}')) return `{PLAIN}${password}`;
  if (stored.startsWith('{SHA}')) return `{SHA}${createHash('sha1').update(password, 'latin1').digest('base64')}`;
  if (stored.startsWith('{SSHA}')) {
    // ngx_crypt_ssha(): base64(SHA1(password . salt) . salt); the salt is what follows the 20 digest bytes.
    const decoded = Buffer.from(stored.slice(6), 'base64');
    const salt = decoded.subarray(20);
    const digest = createHash('sha1').update(Buffer.from(password, 'latin1')).update(salt).digest();
    return `{SSHA}${Buffer.concat([digest, salt]).toString('base64')}`;
  }
  if (stored.startsWith('$5$')) return shaCrypt('sha256', password, stored);
  if (stored.startsWith('$6$')) return shaCrypt('sha512', password, stored);
  if (/^\$2[aby]\$[0-9]{2}\$[./A-Za-z0-9]{22}/.test(stored)) {
    // bcrypt hashes the UTF-8 of a string; the client's bytes are handed over as they are.
    return bcrypt.hash(Buffer.from(password, 'latin1').toString('utf8'), stored.slice(0, 29));
  }
  // crypt(3)'s traditional DES: two salt characters from [./0-9A-Za-z], 11 of hash.
  if (/^[./0-9A-Za-z]{13}$/.test(stored)) return desCrypt(password, stored.slice(0, 2));
  return '';
}

const ITOA64 = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

/** The byte triples of the final encoding (Drepper's "Unix crypt using SHA-256 and SHA-512"). */
const SHA256_ORDER: readonly (readonly number[])[] = [
  [0, 10, 20], [21, 1, 11], [12, 22, 2], [3, 13, 23], [24, 4, 14], [15, 25, 5], [6, 16, 26], [27, 7, 17], [18, 28, 8], [9, 19, 29],
];
const SHA512_ORDER: readonly (readonly number[])[] = [
  [0, 21, 42], [22, 43, 1], [44, 2, 23], [3, 24, 45], [25, 46, 4], [47, 5, 26], [6, 27, 48], [28, 49, 7], [50, 8, 29], [9, 30, 51],
  [31, 52, 10], [53, 11, 32], [12, 33, 54], [34, 55, 13], [56, 14, 35], [15, 36, 57], [37, 58, 16], [59, 17, 38], [18, 39, 60],
  [40, 61, 19], [62, 20, 41],
];

function base64Crypt(value: number, count: number): string {
  let out = '';
  let w = value;
  for (let i = 0; i < count; i++) {
    out += ITOA64[w & 0x3f] as string;
    w >>>= 6;
  }
  return out;
}

/** `length` bytes of `block` repeated. */
function repeatTo(block: Buffer, length: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i += block.length) block.copy(out, i, 0, Math.min(block.length, length - i));
  return out;
}

/**
 * SHA-crypt (`$5$`, `$6$`), as glibc's and libxcrypt's crypt() compute it: Node's crypto has the
 * digests and no library for the scheme is well kept, so the published algorithm is followed here.
 */
export function shaCrypt(algorithm: 'sha256' | 'sha512', password: string, setting: string): string {
  const magic = algorithm === 'sha256' ? '$5$' : '$6$';
  let rest = setting.slice(3);
  let rounds = 5000;
  let roundsText = '';
  const custom = /^rounds=([0-9]+)\$/.exec(rest);
  if (custom !== null) {
    rounds = Math.min(999_999_999, Math.max(1000, Number(custom[1])));
    roundsText = `rounds=${rounds}$`;
    rest = rest.slice(custom[0].length);
  }
  const end = rest.indexOf('$');
  const saltText = (end === -1 ? rest : rest.slice(0, end)).slice(0, 16);
  const p = Buffer.from(password, 'latin1');
  const s = Buffer.from(saltText, 'latin1');
  const digest = (...parts: Buffer[]): Buffer => {
    const hash = createHash(algorithm);
    for (const part of parts) hash.update(part);
    return hash.digest();
  };
  const b = digest(p, s, p);
  const a = createHash(algorithm).update(p).update(s).update(repeatTo(b, p.length));
  for (let n = p.length; n > 0; n >>= 1) a.update(n & 1 ? b : p);
  let c = a.digest();
  const pBytes = repeatTo(digest(...Array<Buffer>(p.length).fill(p)), p.length);
  const sBytes = repeatTo(digest(...Array<Buffer>(16 + (c[0] as number)).fill(s)), s.length);
  for (let i = 0; i < rounds; i++) {
    const h = createHash(algorithm);
    h.update(i & 1 ? pBytes : c);
    if (i % 3 !== 0) h.update(sBytes);
    if (i % 7 !== 0) h.update(pBytes);
    h.update(i & 1 ? c : pBytes);
    c = h.digest();
  }
  let out = '';
  for (const [x, y, z] of algorithm === 'sha256' ? SHA256_ORDER : SHA512_ORDER) {
    out += base64Crypt(((c[x as number] as number) << 16) | ((c[y as number] as number) << 8) | (c[z as number] as number), 4);
  }
  out += algorithm === 'sha256' ? base64Crypt(((c[31] as number) << 8) | (c[30] as number), 3) : base64Crypt(c[63] as number, 2);
  return `${magic}${roundsText}${saltText}$${out}`;
}
