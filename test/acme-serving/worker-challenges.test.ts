// A real worker process (the master's worker-main.js, forked by the master's own WorkerProcess with
// the master's listening sockets and serve message) answers the ACME challenges the master sends
// it over IPC: http-01 before the server's rewrite and location rules, tls-alpn-01 in the
// handshake with the challenge certificate and ALPN acme-tls/1; a worker started later gets the
// table in its serve message; `ssl_certificate $acme_certificate` fails handshakes until the store
// has the certificate, then serves it without a reload.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import https from 'node:https';
import tls from 'node:tls';
import { DEFAULT_WORKER_MODULE, WorkerProcess } from '../../src/process/worker-process.js';
import { ListeningSockets } from '../../src/process/listening-sockets.js';
import { loadGeneration, type Generation } from '../../src/process/generation.js';
import type { ServeMessage } from '../../src/process/ipc.js';
import { ErrorLog } from '../../src/core/log.js';
import { createTicketKey } from '../../src/tls/ticket-keys.js';
import { createSelfSigned } from '../../src/tls/self-signed.js';
import { tlsAlpnCertificate, ACME_IDENTIFIER_OID } from '../../src/acme/challenge-certificate.js';
import type { AcmeChallengeTable } from '../../src/tls/acme-challenges.js';
import { freePort, get, waitFor } from '../e2e/helpers/masters.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
const workers: WorkerProcess[] = [];

after(async () => {
  for (const worker of workers) worker.terminate();
  await Promise.all(workers.map((worker) => Promise.race([worker.exited, new Promise((resolve) => setTimeout(resolve, 5_000))])));
  for (const worker of workers) if (worker.state !== 'exited') process.kill(worker.pid, 'SIGKILL');
  for (const key of sockets.keys()) sockets.close(key);
  dir.remove();
});

const [httpPort, tlsPort] = [await freePort(), await freePort()];
dir.write('conf/hitless.conf', `
error_log logs/error.log info;
pid logs/hitless.pid;
events {}
http {
  access_log off;
  acme_issuer test {
    uri https://127.0.0.1:9/dir;
    ssl_verify off;
    state_path off;
  }
  resolver 127.0.0.1;
  server {
    listen 127.0.0.1:${httpPort};
    server_name example.test;
    # Neither the server's rewrite nor a location's deny may stand before the challenge.
    rewrite ^ /rewritten last;
    location /rewritten { return 418 "rewritten\\n"; }
    location /.well-known/ { deny all; }
  }
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    server_name example.test;
    acme_certificate test;
    ssl_certificate $acme_certificate;
    ssl_certificate_key $acme_certificate_key;
    location / { return 200 "tls\\n"; }
  }
}
`);
const generation: Generation = loadGeneration({ configFile: join(dir.path, 'conf/hitless.conf'), prefix: `${dir.path}/` }, 1);
const sockets = new ListeningSockets(ErrorLog.stderr());
sockets.open(generation.listens);

/** Starts a worker the way the master's #spawnWorker() does. */
async function startWorker(table?: AcmeChallengeTable): Promise<WorkerProcess> {
  const serve: ServeMessage = {
    type: 'serve',
    generation: generation.number,
    config: generation.snapshot,
    errorLog: generation.errorLog,
    listens: generation.listens.map((spec) => spec.key),
    drainGraceMs: 1_000,
    ticketKeys: { master: [createTicketKey().toString('base64')], zones: [] },
    certificates: [],
    master: { execArgv: process.execArgv, argv: process.argv.slice(1), cwd: process.cwd() },
    ...(table === undefined ? {} : { acmeChallenges: table }),
  };
  const worker = new WorkerProcess(DEFAULT_WORKER_MODULE, serve, sockets);
  workers.push(worker);
  await worker.ready;
  return worker;
}

/** One TLS handshake: the certificate, the ALPN protocol, or the error. */
function handshake(servername: string | undefined, alpn: string[]): Promise<{ cert: X509Certificate; alpn: string | false | null; closed: Promise<void> } | { error: string }> {
  return new Promise((resolve) => {
    // Node sends no SNI to an IP address unless told a name.
    const socket = tls.connect({ host: '127.0.0.1', port: tlsPort, ...(servername === undefined ? {} : { servername }), ALPNProtocols: alpn, rejectUnauthorized: false, timeout: 5_000 });
    const closed = new Promise<void>((done) => socket.once('close', () => done()));
    socket.once('secureConnect', () => {
      const peer = socket.getPeerX509Certificate();
      if (peer === undefined) resolve({ error: 'no certificate' });
      else resolve({ cert: peer, alpn: socket.alpnProtocol, closed });
      socket.end();
    });
    socket.once('timeout', () => socket.destroy(new Error('timeout')));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve({ error: err.code ?? err.message }));
  });
}

/** The raw bytes of one HTTP/1.1 exchange on a new connection, read until the server closes (bounded). */
function rawExchange(request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(httpPort, '127.0.0.1');
    let text = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no close after ${JSON.stringify(text)}`));
    }, 5_000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(text);
    });
    socket.on('error', reject);
    socket.write(request);
  });
}

const TOKEN = 'evaGxfADs6pSRb2LAv9IZf17Dt3juxGJ-PCt92wr-oA';
const KEY_AUTHORIZATION = `${TOKEN}.9jg46WB3rR_AHD-EBXdN7cBkH1WOu0tA3M9fm21mqTI`;

test('http-01: a token of the table is answered before the server rewrite and location rules, on every http server; others go on as usual', async () => {
  const worker = await startWorker();
  // No table yet: the request goes through the rewrite as any other.
  assert.deepEqual(await get(httpPort, `/.well-known/acme-challenge/${TOKEN}`), { status: 418, body: 'rewritten\n' });
  worker.acmeChallenges({ http: { [TOKEN]: KEY_AUTHORIZATION }, tlsAlpn: {} });
  const answered = await waitFor('the token', async () => {
    const result = await get(httpPort, `/.well-known/acme-challenge/${TOKEN}`);
    return 'status' in result && result.status === 200 ? result : undefined;
  });
  assert.equal(answered.body, KEY_AUTHORIZATION);
  const raw = await rawExchange(`GET /.well-known/acme-challenge/${TOKEN} HTTP/1.1\r\nHost: example.test\r\n\r\n`);
  assert.match(raw, /^HTTP\/1\.1 200 OK\r\n/);
  assert.match(raw, /\r\nContent-Type: text\/plain\r\n/);
  assert.match(raw, /\r\nConnection: close\r\n/);
  assert.ok(raw.endsWith(`\r\n\r\n${KEY_AUTHORIZATION}`), raw);
  // An unknown token and another method fall through (nginx-acme declines them).
  assert.deepEqual(await get(httpPort, '/.well-known/acme-challenge/unknown'), { status: 418, body: 'rewritten\n' });
  assert.match(await rawExchange(`HEAD /.well-known/acme-challenge/${TOKEN} HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n`), /^HTTP\/1\.1 418 /);
  // A new table replaces the whole old one.
  worker.acmeChallenges({ http: {}, tlsAlpn: {} });
  await waitFor('the token to be withdrawn', async () => {
    const result = await get(httpPort, `/.well-known/acme-challenge/${TOKEN}`);
    return 'status' in result && result.status === 418 ? true : undefined;
  });
});

test('tls-alpn-01: acme-tls/1 for a name of the table gets the challenge certificate with its acmeIdentifier and ALPN acme-tls/1; a new worker gets the table in its serve message', async () => {
  const challenge = await tlsAlpnCertificate('example.test', KEY_AUTHORIZATION);
  const table: AcmeChallengeTable = { http: {}, tlsAlpn: { 'example.test': challenge } };
  for (const worker of workers) worker.acmeChallenges(table);
  // A second worker, started after the table was sent, must answer from its first handshake.
  const later = await startWorker(table);
  for (let i = 0; i < 4; i++) {
    const result = await handshake('example.test', ['acme-tls/1']);
    assert.ok('cert' in result, JSON.stringify(result));
    assert.equal(result.alpn, 'acme-tls/1');
    assert.equal(result.cert.subjectAltName, 'DNS:example.test');
    // RFC 8737 section 3: the critical id-pe-acmeIdentifier holds the SHA-256 of the key authorization.
    const digest = createHash('sha256').update(KEY_AUTHORIZATION).digest();
    assert.ok(result.cert.raw.includes(Buffer.concat([Buffer.from([0x04, 0x20]), digest])), 'the acmeIdentifier extension');
    assert.ok(result.cert.raw.toString('hex').includes(oidHex(ACME_IDENTIFIER_OID)), 'the acmeIdentifier OID');
    // The responder closes the connection once the handshake is done.
    await Promise.race([result.closed, new Promise((_, reject) => setTimeout(() => reject(new Error('not closed')), 5_000))]);
  }
  // Without acme-tls/1, or for a name without a challenge, the server's own TLS answers: no certificate is issued yet.
  const plain = await handshake('example.test', ['http/1.1']);
  assert.ok('error' in plain, JSON.stringify(plain));
  const otherName = await handshake('other.test', ['acme-tls/1']);
  assert.ok('error' in otherName || otherName.alpn !== 'acme-tls/1', JSON.stringify(otherName));
  later.terminate();
  await later.exited;
});

test('ssl_certificate $acme_certificate: handshakes fail with an [error] until the store has the certificate, then it is served without a reload', async () => {
  const [worker] = workers;
  assert.ok(worker !== undefined);
  const before = await handshake('example.test', ['http/1.1']);
  assert.ok('error' in before, JSON.stringify(before));
  const beforeNoSni = await handshake(undefined, ['http/1.1']);
  assert.ok('error' in beforeNoSni, JSON.stringify(beforeNoSni));
  const log = readFileSync(join(dir.path, 'logs/error.log'), 'utf8');
  assert.match(log, /\[error\] .*cannot load certificate "\$acme_certificate": no certificate for "example\.test" has been issued yet while SSL handshaking/);
  const pair = await createSelfSigned(['example.test']);
  await worker.certificate({ type: 'cert-put', seq: 1, certificate: { name: 'example.test', cert: pair.cert, key: pair.key } });
  const served = await handshake('example.test', ['http/1.1']);
  assert.ok('cert' in served, JSON.stringify(served));
  assert.equal(served.cert.fingerprint256, new X509Certificate(pair.cert).fingerprint256);
  // Without SNI too: nginx-acme's variables do not depend on the name.
  const noSni = await handshake(undefined, ['http/1.1']);
  assert.ok('cert' in noSni, JSON.stringify(noSni));
  assert.equal(noSni.cert.fingerprint256, new X509Certificate(pair.cert).fingerprint256);
  // http-01 is answered on the ssl server too, before its location.
  worker.acmeChallenges({ http: { [TOKEN]: KEY_AUTHORIZATION }, tlsAlpn: {} });
  const body = await waitFor('the token over TLS', () => httpsBody(`/.well-known/acme-challenge/${TOKEN}`));
  assert.equal(body, KEY_AUTHORIZATION);
  assert.equal(await httpsBody('/'), 'tls\n');
});

/** The body of a GET over TLS to the ssl server when it answers 200, else undefined. */
function httpsBody(path: string): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = https.get({ host: '127.0.0.1', port: tlsPort, servername: 'example.test', path, headers: { host: 'example.test' }, rejectUnauthorized: false, agent: false, timeout: 5_000 }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve(res.statusCode === 200 ? text : undefined));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(undefined));
  });
}

/** The DER content octets of an OID, hex (for finding it in a certificate). */
function oidHex(oid: string): string {
  const [a = 0, b = 0, ...rest] = oid.split('.').map(Number);
  const bytes = [a * 40 + b];
  for (const n of rest) {
    const chunk = [n & 0x7f];
    for (let v = n >> 7; v > 0; v >>= 7) chunk.unshift((v & 0x7f) | 0x80);
    bytes.push(...chunk);
  }
  return Buffer.from(bytes).toString('hex');
}
