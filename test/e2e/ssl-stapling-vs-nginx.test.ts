/**
 * OCSP stapling, hitless and Debian's nginx side by side on one configuration, with a test CA made
 * in the test's directory and a real responder: openssl ocsp answering each request (-reqin) from
 * its index.txt, behind a loopback HTTP server that counts the requests by path. The first
 * handshake that asks gets no staple and starts the fetch; the next ones get the good response,
 * with no second request; a revoked certificate is never stapled and is not asked for again at
 * once; ssl_stapling_file is stapled from the first handshake; a response signed by an untrusted
 * responder is stapled without ssl_stapling_verify and refused with it; a server with an RSA and an
 * ECDSA certificate staples the one each handshake sends (TLS 1.3 by signature algorithms, TLS 1.2
 * by cipher suite); -t warns alike.
 */
import assert from 'node:assert/strict';
import { execFileSync, execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import { Duplex } from 'node:stream';
import { connect, type ConnectionOptions } from 'node:tls';
import { promisify } from 'node:util';
import { X509Certificate } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { checkOcspResponse } from '../../src/tls/ocsp-response.js';
import { freePort, waitFor } from './helpers/masters.js';
import { configTest, startServer, type RunningServer } from './helpers/side-by-side.js';

const run = promisify(execFile);
const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];
const SERVERS = ['good', 'revoked', 'aia', 'file', 'rogue', 'rogueVerified', 'dual'] as const;
type ServerName = (typeof SERVERS)[number];

/** A CA with leaves whose AIA names `aiaUrl`, an index.txt with one of them revoked, and a rogue responder key. */
function makeCa(dir: string, aiaUrl: string): void {
  const ssl = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ca = (name: string, cn: string): void =>
    ssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${cn}`, '-days', '30',
      '-addext', 'basicConstraints=critical,CA:true', '-addext', 'keyUsage=critical,keyCertSign,cRLSign');
  ca('ca', 'Stapling Test CA');
  ca('rogue', 'Rogue Responder');
  let index = '';
  for (const [name, aia] of [['good', true], ['revoked', true], ['noaia', false], ['ec', true]] as const) {
    ssl('req', ...(name === 'ec' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048']), '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', '/CN=localhost');
    writeFileSync(join(dir, `${name}.ext`), `subjectAltName=DNS:localhost\n${aia ? `authorityInfoAccess=OCSP;URI:${aiaUrl}\n` : ''}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '20', '-extfile', `${name}.ext`);
    writeFileSync(join(dir, `${name}-chain.crt`), readFileSync(join(dir, `${name}.crt`), 'latin1') + readFileSync(join(dir, 'ca.crt'), 'latin1'));
    const cert = new X509Certificate(readFileSync(join(dir, `${name}.crt`)));
    const stamp = (date: Date): string => date.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
    const expiry = stamp(new Date(cert.validTo));
    index += name === 'revoked' ? `R\t${expiry}\t${stamp(new Date())}\t${cert.serialNumber}\tunknown\t/CN=localhost\n` : `V\t${expiry}\t\t${cert.serialNumber}\tunknown\t/CN=localhost\n`;
  }
  writeFileSync(join(dir, 'index.txt'), index);
  // The leaves share a subject: openssl's index refuses that unless told.
  writeFileSync(join(dir, 'index.txt.attr'), 'unique_subject = no\n');
  // ssl_stapling_file: the good certificate's response, made offline by the same responder.
  ssl('ocsp', '-issuer', 'ca.crt', '-cert', 'good.crt', '-no_nonce', '-reqout', 'file-req.der');
  ssl('ocsp', '-index', 'index.txt', '-CA', 'ca.crt', '-rsigner', 'ca.crt', '-rkey', 'ca.key', '-reqin', 'file-req.der', '-respout', 'good.der', '-ndays', '1');
}

/**
 * The responder: GET /<tag>/<base64 request> (nginx's form, ngx_ssl_ocsp_create_request()) answered
 * by openssl ocsp, signed by the CA, or by the rogue key when the path has "rogue".
 */
function responder(dir: string, counts: Map<string, number>): Server {
  let n = 0;
  return createServer((req, res) => {
    const url = req.url ?? '/';
    const slash = url.lastIndexOf('/');
    const tag = url.slice(0, slash);
    counts.set(tag, (counts.get(tag) ?? 0) + 1);
    const file = join(dir, `req-${++n}.der`);
    writeFileSync(file, Buffer.from(decodeURIComponent(url.slice(slash + 1)), 'base64'));
    const signer = tag.includes('rogue') ? 'rogue' : 'ca';
    run('openssl', ['ocsp', '-index', 'index.txt', '-CA', 'ca.crt', '-rsigner', `${signer}.crt`, '-rkey', `${signer}.key`, '-reqin', file, '-respout', `${file}.resp`, '-ndays', '1'], { cwd: dir }).then(
      () => {
        res.writeHead(200, { 'content-type': 'application/ocsp-response' });
        res.end(readFileSync(`${file}.resp`));
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });
}

/** One handshake asking for the certificate status: the stapled response, or null. */
async function stapleOf(port: number): Promise<Buffer | null> {
  return (await handshakeOf(port)).staple;
}

/**
 * A TCP connection to `port` that writes the client's first flight (the ClientHello) in two
 * segments, the second 50 ms after the first, as a ClientHello with a large key share arrives.
 */
function splitHelloSocket(port: number): Duplex {
  const raw = netConnect({ port, host: '127.0.0.1' });
  raw.setNoDelay(true);
  let first = true;
  const wire: Duplex = new Duplex({
    read() {
      raw.resume();
    },
    write(chunk: Buffer, _encoding, callback) {
      if (!first) return void raw.write(chunk, callback);
      first = false;
      raw.write(chunk.subarray(0, 100), () => setTimeout(() => raw.write(chunk.subarray(100), callback), 50));
    },
    destroy(err, callback) {
      raw.destroy();
      callback(err);
    },
  });
  raw.on('data', (data: Buffer) => {
    if (!wire.push(data)) raw.pause();
  });
  raw.on('end', () => wire.push(null));
  raw.on('error', (err) => wire.destroy(err));
  return wire;
}

/** One handshake asking for the certificate status: the stapled response (or null) and the certificate sent. */
function handshakeOf(port: number, more: ConnectionOptions = {}, split = false): Promise<{ staple: Buffer | null; served: X509Certificate | undefined }> {
  return new Promise((resolve, reject) => {
    let staple: Buffer | null = null;
    // tls.connect() takes requestOCSP as TLSSocket does; @types/node 20 leaves it out of ConnectionOptions.
    const options: ConnectionOptions & { requestOCSP: boolean } = { port, host: '127.0.0.1', servername: 'localhost', rejectUnauthorized: false, requestOCSP: true, ...more, ...(split ? { socket: splitHelloSocket(port) } : {}) };
    const socket = connect(options);
    // Node emits null when the server staples nothing.
    socket.on('OCSPResponse', (response: Buffer | null) => (staple = response !== null && response.length > 0 ? response : null));
    socket.once('secureConnect', () => {
      resolve({ staple, served: socket.getPeerX509Certificate() });
      socket.destroy();
    });
    socket.once('error', reject);
  });
}

/** The certificates checkOcspResponse() reads a staple of `name` with. */
function subjectOf(dir: string, name: string): Parameters<typeof checkOcspResponse>[1] {
  const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
  return { cert: new X509Certificate(readFileSync(join(dir, `${name}.crt`))), issuer: ca, chain: [ca], trusted: [] };
}

describe('OCSP stapling: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-stapling-'));
  chmodSync(dir, 0o755);
  const counts = new Map<string, number>();
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, Record<ServerName, number>>;
  let ocsp: Server | undefined;

  const confOf = (binary: Binary, p: Record<ServerName, number>, responderPort: number): string => {
    const at = (tag: string): string => `ssl_stapling_responder http://127.0.0.1:${responderPort}/${binary}/${tag}/;`;
    const pair = (name: string): string => `ssl_certificate ${dir}/${name}-chain.crt; ssl_certificate_key ${dir}/${name}.key;`;
    const tls = (name: string): string => `${pair(name)} ssl_stapling on;`;
    return `pid ${dir}/${binary}.pid;
error_log ${dir}/${binary}-error.log info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${p.good} ssl; ${tls('good')} ${at('good')} }
    server { listen 127.0.0.1:${p.revoked} ssl; ${tls('revoked')} ${at('revoked')} }
    server { listen 127.0.0.1:${p.aia} ssl; ${tls('good')} }
    server { listen 127.0.0.1:${p.file} ssl; ${tls('good')} ssl_stapling_file ${dir}/good.der; }
    server { listen 127.0.0.1:${p.rogue} ssl; ${tls('good')} ${at('rogue')} }
    server { listen 127.0.0.1:${p.rogueVerified} ssl; ${tls('good')} ${at('rogue-verified')} ssl_stapling_verify on; ssl_trusted_certificate ${dir}/ca.crt; }
    server { listen 127.0.0.1:${p.dual} ssl; ${pair('ec')} ${tls('good')} ${at('dual')} }
}
`;
  };

  before(async () => {
    ocsp = responder(dir, counts);
    await new Promise<void>((resolve) => ocsp?.listen(0, '127.0.0.1', resolve));
    const address = ocsp.address();
    if (address === null || typeof address === 'string') throw new Error('no responder port');
    makeCa(dir, `http://127.0.0.1:${address.port}/aia/`);
    for (const binary of BINARIES) {
      const p = {} as Record<ServerName, number>;
      for (const name of SERVERS) p[name] = await freePort();
      ports[binary] = p;
      writeFileSync(join(dir, `${binary}.conf`), confOf(binary, p, address.port));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', join(dir, `${binary}.conf`), '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], Object.values(p)));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    await new Promise((resolve) => (ocsp === undefined ? resolve(undefined) : ocsp.close(resolve)));
    rmSync(dir, { recursive: true, force: true });
  });

  const errorLog = (binary: Binary): string => readFileSync(join(dir, `${binary}-error.log`), 'utf8');

  for (const binary of BINARIES) {
    it(`${binary}: the first handshake starts the fetch, the next ones get the good response, fetched once`, async () => {
      assert.equal(await stapleOf(ports[binary].good), null);
      await waitFor('the responder to be asked', () => (counts.get(`/${binary}/good`) === 1 ? true : undefined));
      const staple = await waitFor('a stapled response', async () => (await stapleOf(ports[binary].good)) ?? undefined);
      assert.equal(checkOcspResponse(staple, subjectOf(dir, 'good'), false).status, 'good');
      for (let i = 0; i < 3; i++) assert.ok((await stapleOf(ports[binary].good))?.equals(staple));
      assert.equal(counts.get(`/${binary}/good`), 1);
    });

    it(`${binary}: a revoked certificate is never stapled, and not asked for again at once`, async () => {
      assert.equal(await stapleOf(ports[binary].revoked), null);
      await waitFor('the revoked status in the error log', () => (/certificate status "revoked" in the OCSP response while requesting certificate status, responder: 127\.0\.0\.1/.test(errorLog(binary)) ? true : undefined));
      for (let i = 0; i < 3; i++) assert.equal(await stapleOf(ports[binary].revoked), null);
      assert.equal(counts.get(`/${binary}/revoked`), 1);
    });

    it(`${binary}: the certificate's AIA responder is asked without ssl_stapling_responder`, async () => {
      await stapleOf(ports[binary].aia);
      const staple = await waitFor('a stapled response', async () => (await stapleOf(ports[binary].aia)) ?? undefined);
      assert.equal(checkOcspResponse(staple, subjectOf(dir, 'good'), false).status, 'good');
    });

    it(`${binary}: ssl_stapling_file is stapled as is from the first handshake`, async () => {
      assert.deepEqual(await stapleOf(ports[binary].file), readFileSync(join(dir, 'good.der')));
    });

    it(`${binary}: an untrusted responder's response is stapled without ssl_stapling_verify, refused with it`, async () => {
      await stapleOf(ports[binary].rogue);
      const staple = await waitFor('a stapled response', async () => (await stapleOf(ports[binary].rogue)) ?? undefined);
      assert.equal(checkOcspResponse(staple, subjectOf(dir, 'good'), false).status, 'good');
      assert.equal(await stapleOf(ports[binary].rogueVerified), null);
      await waitFor('the verify failure in the error log', () => (/OCSP_basic_verify\(\) failed .*responder: 127\.0\.0\.1, peer: 127\.0\.0\.1:\d+, certificate: ".*good-chain\.crt"/.test(errorLog(binary)) ? true : undefined));
      assert.equal(await stapleOf(ports[binary].rogueVerified), null);
      assert.equal(counts.get(`/${binary}/rogue-verified`), 1);
    });
  }

  for (const binary of BINARIES) {
    it(`${binary}: a server with an RSA and an ECDSA certificate staples the one each handshake sends`, async () => {
      // Node's OCSPRequest came before OpenSSL's choice and named the last certificate (the RSA one).
      const clients: { cert: string; options: ConnectionOptions }[] = [
        { cert: 'ec', options: { sigalgs: 'ecdsa_secp256r1_sha256' } },
        { cert: 'good', options: { sigalgs: 'rsa_pss_rsae_sha256:rsa_pkcs1_sha256' } },
        { cert: 'ec', options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' } },
        { cert: 'good', options: { maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' } },
      ];
      for (const { cert, options } of clients) {
        const expected = new X509Certificate(readFileSync(join(dir, `${cert}.crt`)));
        const staple = await waitFor(`a staple with the ${cert} certificate`, async () => {
          const { staple: response, served } = await handshakeOf(ports[binary].dual, options);
          assert.ok(served?.raw.equals(expected.raw), `the ${cert} certificate is sent`);
          return response ?? undefined;
        });
        assert.equal(checkOcspResponse(staple, subjectOf(dir, cert), false).status, 'good');
        for (let i = 0; i < 2; i++) {
          const again = await handshakeOf(ports[binary].dual, options);
          assert.ok(again.staple?.equals(staple), `the ${cert} certificate's staple again`);
        }
      }
      // One request for each certificate.
      assert.equal(counts.get(`/${binary}/dual`), 2);
    });

    it(`${binary}: a ClientHello in two TCP segments gets its certificate's staple too`, async () => {
      // Runs after the test above: both staples are held. hitless asks OpenSSL with the whole ClientHello.
      for (const cert of ['ec', 'good']) {
        const options: ConnectionOptions = { sigalgs: cert === 'ec' ? 'ecdsa_secp256r1_sha256' : 'rsa_pss_rsae_sha256' };
        const { staple, served } = await handshakeOf(ports[binary].dual, options, true);
        assert.ok(served?.raw.equals(new X509Certificate(readFileSync(join(dir, `${cert}.crt`))).raw));
        assert.ok(staple !== null, `a staple with the ${cert} certificate`);
        assert.equal(checkOcspResponse(staple, subjectOf(dir, cert), false).status, 'good');
      }
    });
  }

  it('-t: the same [warn]s for a certificate without its issuer and one without a responder URL', () => {
    const file = join(dir, 'warn.conf');
    writeFileSync(file, `events {}
http {
    server { listen 127.0.0.1:1 ssl; ssl_certificate ${dir}/good.crt; ssl_certificate_key ${dir}/good.key; ssl_stapling on; }
    server { listen 127.0.0.1:2 ssl; ssl_certificate ${dir}/noaia-chain.crt; ssl_certificate_key ${dir}/noaia.key; ssl_stapling on; }
}
`);
    const warns = (binary: Binary): string[] => {
      const result = configTest(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, 'warn-error.log')]);
      assert.equal(result.status, 0, result.output);
      return [...result.output.matchAll(/\[warn\] (?:\d+#\d+: )?(.*)/g)].map((match) => match[1] ?? '');
    };
    const expected = [
      `"ssl_stapling" ignored, issuer certificate not found for certificate "${dir}/good.crt"`,
      `"ssl_stapling" ignored, no OCSP responder URL in the certificate "${dir}/noaia-chain.crt"`,
    ];
    assert.deepEqual(warns('nginx'), expected);
    assert.deepEqual(warns('hitless'), expected);
  });
});
