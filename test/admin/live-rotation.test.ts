/**
 * Live certificate rotation with a real master and two workers: the admin API on its unix socket
 * and on a token-protected loopback port, `hitless certs`, every refusal, and puts under a load of
 * new TLS connections that must fail no handshake.
 */
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { AdminClient, AdminClientError } from '../../src/admin/admin-client.js';
import { runProbe } from '../../src/probe/probe.js';
import { FIXTURE_CA, fixture } from '../tls/session-client.js';
import { MasterUnderTest, TestPrefix, freePort, readyWorkers, runHitlessCommand, startMaster, waitFor } from '../e2e/helpers/masters.js';

const pem = (name: string): string => readFileSync(fixture(name), 'latin1');
const fingerprintOf = (name: string): string => new X509Certificate(pem(name)).fingerprint256;

const TOKEN = 'test-token-0123456789abcdef';

const conf = (options: { plain: number; tls: number; admin: number; comment?: string }): string => `worker_processes 2;
error_log logs/error.log notice;
admin_listen unix:logs/admin.sock;
admin_listen 127.0.0.1:${options.admin} token_file=conf/token;
events {}
http {
    access_log off;
    # ${options.comment ?? 'start'}
    server {
        listen 127.0.0.1:${options.plain};
        listen 127.0.0.1:${options.tls} ssl;
        server_name a.test;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('a-rsa.key')};
        ssl_session_tickets off;
        location / { return 200 $pid; }
    }
}
`;

/** A full handshake (no session offered) to `name`: the served leaf's fingerprint and the worker's pid. */
function served(port: number, name = 'a.test'): Promise<{ fingerprint: string; pid: string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect({ host: '127.0.0.1', port, servername: name, ca: FIXTURE_CA, ALPNProtocols: ['http/1.1'] }, () => {
      socket.write(`GET / HTTP/1.1\r\nHost: ${name}\r\nConnection: close\r\n\r\n`);
    });
    socket.setEncoding('latin1');
    socket.setTimeout(5_000, () => socket.destroy(new Error('timeout')));
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => {
      const fingerprint = socket.getPeerX509Certificate()?.fingerprint256 ?? '';
      socket.destroy();
      resolve({ fingerprint, pid: text.slice(text.indexOf('\r\n\r\n') + 4) });
    });
    socket.on('error', reject);
  });
}

/** Full handshakes until both workers answered (bounded): every fingerprint they served. */
async function servedByEveryWorker(port: number): Promise<Set<string>> {
  const fingerprints = new Set<string>();
  const pids = new Set<string>();
  for (let round = 0; round < 20 && (round < 2 || pids.size < 2); round++) {
    for (const reply of await Promise.all(Array.from({ length: 8 }, () => served(port)))) {
      fingerprints.add(reply.fingerprint);
      pids.add(reply.pid);
    }
  }
  assert.equal(pids.size, 2, 'every handshake landed on one worker');
  return fingerprints;
}

/** Key body lines of every fixture key a test sends, which no log and no output may hold. */
const KEY_LINES = ['a-rsa.key', 'a-rsa-2.key', 'a-ec.key', 'b-rsa.key', 'a-expired.key'].flatMap((name) =>
  pem(name).split('\n').filter((line) => /^[A-Za-z0-9+/=]{16,}$/.test(line)),
);

async function refusedWith(promise: Promise<unknown>, status: number, code: string): Promise<string> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AdminClientError, String(err));
    assert.equal(err.status, status, err.message);
    assert.equal(err.code, code, err.message);
    return err.message;
  }
  assert.fail('the admin API accepted it');
}


describe('live certificate rotation through the admin API', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let plain: number;
  let tls: number;
  let admin: number;
  let api: AdminClient;
  const socketPath = join(prefix.dir, 'logs/admin.sock');
  const storeFile = join(prefix.dir, 'store/certificates/a.test.pem');
  const original = fingerprintOf('a-rsa.crt');
  const second = fingerprintOf('a-rsa-2.crt');
  const ecdsa = fingerprintOf('a-ec.crt');

  before(async () => {
    plain = await freePort();
    tls = await freePort();
    admin = await freePort();
    writeFileSync(join(prefix.dir, 'conf/token'), `${TOKEN}\n`);
    master = await startMaster({ prefix, conf: conf({ plain, tls, admin }), port: plain, program: 'hitless' });
    await prefix.waitForLog(`admin API listening on unix:${socketPath}`);
    await prefix.waitForLog(`admin API listening on 127.0.0.1:${admin}`);
    api = new AdminClient({ socketPath });
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
  });

  it('listens on a 0600 unix socket and reports the master and its workers', async () => {
    assert.equal(statSync(socketPath).mode & 0o777, 0o600);
    const status = await readyWorkers(api, 2);
    assert.equal(status.generation, 1);
    assert.equal(status.certificates, 0);
    assert.deepEqual(await api.listCertificates(), []);
  });

  it('asks for the bearer token on the TCP port', async () => {
    const wrong = new AdminClient({ host: '127.0.0.1', port: admin, token: 'not-the-token' });
    await refusedWith(wrong.status(), 401, 'HITLESS_ERR_ADMIN');
    const right = new AdminClient({ host: '127.0.0.1', port: admin, token: TOKEN });
    assert.equal((await right.status()).pid, prefix.pid());
  });

  it('serves a put certificate on every worker\'s next full handshake, with no reload', async () => {
    assert.deepEqual(await servedByEveryWorker(tls), new Set([original]));
    const result = await api.putCertificate('a.test', pem('a-rsa-2.fullchain.crt'), pem('a-rsa-2.key'));
    assert.equal(result.replaced, false);
    assert.equal(result.certificate.fingerprint256, second);
    assert.deepEqual(await servedByEveryWorker(tls), new Set([second]));
    assert.equal(statSync(storeFile).mode & 0o777, 0o600);
    assert.equal(statSync(join(prefix.dir, 'store/certificates')).mode & 0o777, 0o700);
    assert.deepEqual((await api.listCertificates()).map((cert) => [cert.name, cert.fingerprint256]), [['a.test', second]]);
    assert.equal(prefix.count('reconfiguring'), 0);
  });

  it('refuses every bad certificate and changes nothing', async () => {
    const before = readFileSync(storeFile);
    const cases: [string, Promise<unknown>, number, string, RegExp][] = [
      ['mismatched key', api.putCertificate('a.test', pem('a-ec.fullchain.crt'), pem('a-rsa.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /private key does not match/],
      ['broken PEM', api.putCertificate('a.test', pem('broken.crt'), pem('a-rsa.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /certificate/i],
      ['expired', api.putCertificate('a.test', pem('a-expired.fullchain.crt'), pem('a-expired.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /has expired/],
      ['not yet valid', api.putCertificate('a.test', pem('a-not-yet.fullchain.crt'), pem('a-not-yet.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /not valid yet/],
      ['other name', api.putCertificate('a.test', pem('b-rsa.fullchain.crt'), pem('b-rsa.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /does not cover "a.test"/],
      ['bad name', api.putCertificate('../a.test', pem('a-rsa.fullchain.crt'), pem('a-rsa.key')), 400, 'HITLESS_ERR_CERT_REFUSED', /Invalid certificate name/],
      ['unknown name', api.deleteCertificate('nothing.test'), 404, 'HITLESS_ERR_CERT_NOT_FOUND', /No certificate named "nothing.test"/],
    ];
    for (const [what, call, status, code, message] of cases) assert.match(await refusedWith(call, status, code), message, what);
    assert.deepEqual(readFileSync(storeFile), before);
    assert.deepEqual(await servedByEveryWorker(tls), new Set([second]));
  });

  it('answers a name with a bad percent escape with 400 and HITLESS_ERR_ADMIN, not a 500', async () => {
    for (const path of ['/v1/certificates/%zz', '/v1/certificates/a%', '/v1/certificates/%E0%A4%A/revert', '/v1/upstreams/%']) {
      const reply = await new Promise<{ status: number; body: string }>((resolve, reject) => {
        // Raw, not through AdminClient, which would escape the name properly.
        const req = request({ socketPath, path, method: path.endsWith('/revert') ? 'POST' : 'GET' }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
      assert.equal(reply.status, 400, `${path}: ${reply.body}`);
      const segment = path.split('/')[3] as string;
      assert.deepEqual(JSON.parse(reply.body), { error: { code: 'HITLESS_ERR_ADMIN', message: `Invalid percent escape in "${segment}"` } });
    }
  });

  it('checks without storing on a dry run, and a forced dry run accepts an expired certificate', async () => {
    const checked = await api.putCertificate('a.test', pem('a-expired.fullchain.crt'), pem('a-expired.key'), { force: true, dryRun: true });
    assert.equal(checked.dryRun, true);
    assert.ok(checked.warnings.some((warning) => /has expired/.test(warning)));
    assert.deepEqual(await servedByEveryWorker(tls), new Set([second]));
  });

  it('fails no handshake while certificates rotate under a load of new TLS connections', async () => {
    const probe = runProbe({
      url: `https://127.0.0.1:${tls}/`,
      newConnections: true,
      concurrency: 8,
      durationMs: 4_000,
      headers: { Host: 'a.test' },
      ca: FIXTURE_CA,
    });
    const rotation: [string, string][] = [['a-ec', ecdsa], ['a-rsa', original], ['a-rsa-2', second]];
    for (let i = 0; i < 9; i++) {
      const [name, fingerprint] = rotation[i % rotation.length] as [string, string];
      await api.putCertificate('a.test', pem(`${name}.fullchain.crt`), pem(`${name}.key`));
      // The API answers once every worker has the new pair: the very next full handshake serves it.
      assert.equal((await served(tls)).fingerprint, fingerprint, `after put #${i + 1} (${name})`);
    }
    const report = await probe;
    assert.ok(report.total > 50, `only ${report.total} requests`);
    assert.deepEqual({ failed: report.failed, byError: report.byError }, { failed: 0, byError: {} });
  });

  it('keeps the store across a reload and a restart of the master', async () => {
    await api.putCertificate('a.test', pem('a-ec.fullchain.crt'), pem('a-ec.key'));
    prefix.writeConf(conf({ plain, tls, admin, comment: 'reloaded' }));
    master?.signal('SIGHUP');
    await waitFor('generation 2', async () => ((await api.status()).generation === 2 ? true : undefined));
    await waitFor('the old workers to exit', async () => ((await api.status()).workers.length === 2 ? true : undefined));
    assert.deepEqual(await servedByEveryWorker(tls), new Set([ecdsa]));

    master?.signal('SIGQUIT');
    await master?.exited;
    assert.equal(existsSync(socketPath), false, 'the admin socket outlived the master');
    master = await startMaster({ prefix, conf: conf({ plain, tls, admin }), port: plain, program: 'hitless' });
    assert.deepEqual(await servedByEveryWorker(tls), new Set([ecdsa]));
  });

  it('falls back to the configured certificate once the name is deleted', async () => {
    await waitFor('the admin socket', () => (existsSync(socketPath) ? true : undefined));
    await api.deleteCertificate('a.test');
    assert.deepEqual(await servedByEveryWorker(tls), new Set([original]));
    assert.equal(existsSync(storeFile), false);
  });

  it('is driven by hitless certs, which finds the socket in the configuration', async () => {
    const where = ['-p', `${prefix.dir}/`, '-c', 'conf/hitless.conf'];
    const put = await runHitlessCommand(['certs', ...where, 'put', 'a.test', '--cert', fixture('a-rsa-2.crt'), '--chain', fixture('intermediate.crt'), '--key', fixture('a-rsa-2.key')]);
    assert.equal(put.code, 0, put.stderr);
    assert.match(put.stdout, /a\.test: added, served now/);
    assert.deepEqual(await servedByEveryWorker(tls), new Set([second]));

    const list = await runHitlessCommand(['certs', ...where, 'list', '--json']);
    assert.equal(list.code, 0, list.stderr);
    assert.deepEqual((JSON.parse(list.stdout) as { fingerprint256: string }[]).map((cert) => cert.fingerprint256), [second]);

    const refused = await runHitlessCommand(['certs', ...where, 'put', 'a.test', '--cert', fixture('a-rsa.fullchain.crt'), '--key', fixture('b-rsa.key')]);
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /private key does not match .*HITLESS_ERR_CERT_REFUSED/);

    const tcp = await runHitlessCommand(['certs', '--url', `http://127.0.0.1:${admin}`, '--token-file', join(prefix.dir, 'conf/token'), 'delete', 'a.test']);
    assert.equal(tcp.code, 0, tcp.stderr);
    assert.deepEqual(await servedByEveryWorker(tls), new Set([original]));

    const usage = await runHitlessCommand(['certs', ...where, 'put', 'a.test']);
    assert.equal(usage.code, 2);
    for (const output of [put, list, refused, tcp, usage]) {
      for (const line of KEY_LINES) assert.equal(`${output.stdout}${output.stderr}`.includes(line), false, 'key bytes in the output');
    }
  });

  it('never writes key bytes to the error log', () => {
    const log = prefix.errorLog();
    assert.match(log, /certificate "a\.test" replaced/);
    for (const line of KEY_LINES) assert.equal(log.includes(line), false, 'key bytes in the error log');
  });
});
