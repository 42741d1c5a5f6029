/**
 * `ssl_crl` with a file of several CRLs, hitless and Debian's nginx side by side: every CRL of the
 * file counts (X509_LOOKUP_load_file()), so a client revoked by the second one is refused and
 * another one is not. Node's addCRL() reads the first CRL of a PEM only, so hitless used to fail
 * every client with "unable to get certificate CRL" when its issuer's CRL came second.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

function conf(dir: string, port: number): string {
  return `pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port} ssl;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')};
        ssl_verify_client optional; ssl_client_certificate ${fixture('client-ca.crt')}; ssl_crl ${join(dir, 'two.crl')};
        add_header X-Verify $ssl_client_verify always;
        return 200 "ok";
    }
}
`;
}

/** The X-Verify header of GET / with the client certificate `name` (at most 10 s): a refused one is answered 400. */
function verifyOf(port: number, name: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, cert: readFileSync(fixture(`${name}.crt`)), key: readFileSync(fixture(`${name}.key`)) });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.0\r\nHost: a.test\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(/\r\nX-Verify: ([^\r]*)\r\n/.exec(text)?.[1] ?? text));
    socket.once('error', reject);
  });
}

/** Runs openssl with `args` in `dir`; throws with its output when it fails. */
function openssl(dir: string, args: readonly string[]): void {
  const result = spawnSync('openssl', args, { cwd: dir, encoding: 'utf8', timeout: 20_000 });
  if (result.status !== 0) throw new Error(`openssl ${args.join(' ')}: ${result.stderr}`);
}

describe('ssl_crl with several CRLs in one file: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-crl-'));
  chmodSync(dir, 0o755);
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, number>;

  before(async () => {
    // A CA of no consequence, whose empty CRL comes first in the file.
    writeFileSync(join(dir, 'index.txt'), '');
    writeFileSync(join(dir, 'ca.cnf'), `[ca]\ndefault_ca = x\n[x]\ndatabase = ${join(dir, 'index.txt')}\ndefault_md = sha256\ndefault_crl_days = 30\n[req]\ndistinguished_name = dn\n[dn]\n`);
    openssl(dir, ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=unrelated', '-keyout', 'other.key', '-out', 'other.crt', '-days', '30', '-config', 'ca.cnf']);
    openssl(dir, ['ca', '-gencrl', '-keyfile', 'other.key', '-cert', 'other.crt', '-out', 'other.crl', '-config', 'ca.cnf']);
    writeFileSync(join(dir, 'two.crl'), readFileSync(join(dir, 'other.crl'), 'utf8') + readFileSync(fixture('client-ca.crl'), 'utf8'));
    for (const binary of BINARIES) {
      const port = await freePort();
      ports[binary] = port;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, port));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [port]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: the second CRL of the file revokes its client; another client verifies`, async () => {
      assert.equal(await verifyOf(ports[binary], 'client-revoked'), 'FAILED:certificate revoked');
      assert.equal(await verifyOf(ports[binary], 'client-a'), 'SUCCESS');
    });
  }
});
