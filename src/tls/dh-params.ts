/**
 * `ssl_dhparam`: `ngx_ssl_dhparam()` reads the file with PEM_read_bio_DHparams(). Node's
 * createSecureContext() drops parameters it cannot read without a word (crypto_context.cc:
 * "Invalid dhparam is silently discarded"), so the file is checked here, with nginx's messages.
 */
import { readFileSync } from 'node:fs';
import { fromBER, Integer, Sequence } from 'asn1js';
import { errnoMessage } from '../core/errno.js';
import { CertificateLoadError } from './certificate-files.js';

/** The PEM labels PEM_read_bio_DHparams() accepts: PKCS #3 and X9.42 parameters. */
const DH_PEM = /-----BEGIN ((?:X9\.42 )?DH PARAMETERS)-----([\s\S]*?)-----END \1-----/;

/** Reads and checks a DH parameters file; throws {@link CertificateLoadError} with nginx's message. */
export function readDhParams(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'latin1');
  } catch (err) {
    const reason = errnoMessage((err as NodeJS.ErrnoException).code ?? '') ?? (err instanceof Error ? err.message : String(err));
    throw new CertificateLoadError(
      `BIO_new_file("${path}") failed (SSL: error:80000002:system library::${reason}:calling fopen(${path}, r) error:10000080:BIO routines::no such file)`,
    );
  }
  const failed = (reason: string): never => {
    throw new CertificateLoadError(`PEM_read_bio_DHparams("${path}") failed (SSL: ${reason})`);
  };
  const block = DH_PEM.exec(text);
  if (block === null) return failed('error:0480006C:PEM routines::no start line:Expecting: DH PARAMETERS');
  const der = Buffer.from((block[2] ?? '').replace(/\s+/g, ''), 'base64');
  // DHParameter ::= SEQUENCE { prime INTEGER, base INTEGER, privateValueLength INTEGER OPTIONAL } (PKCS #3).
  const parsed = fromBER(new Uint8Array(der));
  const fields = parsed.result instanceof Sequence ? parsed.result.valueBlock.value : [];
  if (parsed.offset !== der.length || fields.length < 2 || !fields.slice(0, 2).every((field) => field instanceof Integer)) {
    failed('error:0488000D:PEM routines::ASN1 lib');
  }
  return text.slice(block.index, block.index + block[0].length);
}
