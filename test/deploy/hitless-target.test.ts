/**
 * Certificate deploys to a running hitless (a real master with two workers) through its admin
 * API: the scenarios of the nginx target, with no file and no reload. The new certificate is
 * served to fresh handshakes on every listen address, an identical deploy is skipped, only the
 * named server changes, bad input and hitless's own refusals change nothing, a failed verification
 * reverts, connections made during deploys never fail, and no key byte reaches any output or log.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/admin-client.js';
import { runProbe } from '../../src/probe/probe.js';
import { createSelfSigned } from '../../src/tls/self-signed.js';
import { MasterUnderTest, TestPrefix, freePort, startMaster, waitFor } from '../e2e/helpers/masters.js';
import { tempDir } from '../helpers/tmp.js';
import { printed, runDeploy, type DeployRun } from './helpers/cli.js';
import { fingerprint, fixture, handshake, keyFragments } from './helpers/nginx.js';

const conf = (plain: number, tls: number): string => `worker_processes 2;
error_log logs/error.log info;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${plain};
        listen 127.0.0.1:${tls} ssl;
        listen [::1]:${tls} ssl;
        server_name a.test www.a.test;
        ssl_certificate ${fixture('a-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('a-rsa.key')};
        location / { return 200 "a\\n"; }
    }
    server {
        listen 127.0.0.1:${tls} ssl;
        listen [::1]:${tls} ssl;
        server_name b.test;
        ssl_certificate ${fixture('b-rsa.fullchain.crt')};
        ssl_certificate_key ${fixture('b-rsa.key')};
        location / { return 200 "b\\n"; }
    }
}
`;

describe('deploy to hitless: certificates through the admin API', () => {
  const prefix = new TestPrefix();
  const scratch = tempDir();
  let master: MasterUnderTest | undefined;
  let tls: number;
  const socket = join(prefix.dir, 'logs/admin.sock');
  const target = ['--target', 'hitless', '--socket', socket, '--trusted-ca', fixture('ca.crt'), '--json'];
  const deployA = (cert: string, key: string, ...extra: string[]): Promise<DeployRun> =>
    runDeploy([...target, '--server-name', 'a.test', '--cert', fixture(cert), '--key', fixture(key), ...extra]);
  /** The leaf a fresh handshake gets for `name` on both addresses; they must agree. */
  const servedOnBoth = async (name: string): Promise<string | undefined> => {
    const [v4, v6] = await Promise.all([handshake('127.0.0.1', tls, name), handshake('::1', tls, name)]);
    assert.equal(v4.sha256, v6.sha256, `${name}: 127.0.0.1 and [::1] disagree`);
    return v4.sha256;
  };

  before(async () => {
    const plain = await freePort();
    tls = await freePort();
    master = await startMaster({ prefix, conf: conf(plain, tls), port: plain, program: 'hitless' });
    await prefix.waitForLog('admin API listening');
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
    scratch.remove();
  });

  it('serves the new certificate to a fresh handshake on 127.0.0.1 and [::1], and only for the named server', async () => {
    assert.equal(await servedOnBoth('a.test'), fingerprint('a-rsa.crt'));
    const run = await deployA('a-rsa-2.fullchain.crt', 'a-rsa-2.key');
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.report?.outcome, 'deployed');
    assert.deepEqual(run.report?.steps.map((step) => step.name), ['read', 'lock', 'locate', 'preflight', 'compare', 'stage', 'validate', 'backup', 'commit', 'reload', 'verify', 'cleanup']);
    const verified = new Set(run.report?.verified.filter((check) => 'host' in check && check.ok).map((check) => ('host' in check ? check.host : '')));
    assert.deepEqual([...verified].sort(), ['127.0.0.1', '::1'], 'verified on both addresses');
    assert.equal(await servedOnBoth('a.test'), fingerprint('a-rsa-2.crt'));
    assert.equal(await servedOnBoth('b.test'), fingerprint('b-rsa.crt'));
    assert.equal(prefix.count('reconfiguring'), 0, 'hitless was reloaded');
  });

  it('skips a second identical deploy', async () => {
    const run = await deployA('a-rsa-2.fullchain.crt', 'a-rsa-2.key');
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.report?.outcome, 'skipped');
  });

  it('refuses a key that does not match, or a broken PEM, before anything changes (exit 2)', async () => {
    const api = new AdminClient({ socketPath: socket });
    const before = await api.getCertificate('a.test');
    for (const [cert, key] of [['a-rsa.fullchain.crt', 'b-rsa.key'], ['broken.crt', 'a-rsa.key']] as const) {
      const run = await deployA(cert, key);
      assert.equal(run.status, 2, run.stdout + run.stderr);
      assert.equal(run.report?.outcome, 'refused');
    }
    assert.deepEqual(await api.getCertificate('a.test'), before);
    assert.equal(await servedOnBoth('a.test'), fingerprint('a-rsa-2.crt'));
  });

  it('stops when hitless\'s own checks refuse what preflight accepted (exit 3), changing nothing', async () => {
    // A certificate for an IP address passes preflight; the store refuses the name, which SNI never carries.
    const pair = await createSelfSigned(['127.0.0.1']);
    const cert = scratch.write('ip.crt', pair.cert);
    const key = scratch.write('ip.key', pair.key);
    const run = await runDeploy([...target, '--server-name', '127.0.0.1', '--cert', cert, '--key', key]);
    assert.equal(run.status, 3, run.stdout + run.stderr);
    assert.equal(run.report?.outcome, 'validation-failed');
    assert.match(run.report?.error?.message ?? '', /hitless refused the certificate for "127.0.0.1": Invalid certificate name/);
    assert.deepEqual((await new AdminClient({ socketPath: socket }).listCertificates()).map((entry) => entry.name), ['a.test']);
  });

  it('rolls back a leaf deployed without its intermediate (exit 4): the previous chain is served again', async () => {
    const run = await deployA('a-ec.crt', 'a-ec.key');
    assert.equal(run.status, 4, run.stdout + run.stderr);
    assert.equal(run.report?.outcome, 'rolled-back');
    assert.ok(run.report?.steps.some((step) => step.name === 'rollback-verify' && step.status === 'ok'));
    assert.equal(await servedOnBoth('a.test'), fingerprint('a-rsa-2.crt'));
    const trusted = await handshake('127.0.0.1', tls, 'a.test');
    assert.equal(trusted.authorized, true, 'the restored chain is trusted again');
  });

  it('reverts a first deploy of a name to the configured certificate', async () => {
    const run = await runDeploy([...target, '--server-name', 'b.test', '--cert', fixture('b-ec.crt'), '--key', fixture('b-ec.key')]);
    assert.equal(run.status, 4, run.stdout + run.stderr);
    assert.equal(await servedOnBoth('b.test'), fingerprint('b-rsa.crt'));
    assert.equal(await new AdminClient({ socketPath: socket }).getCertificate('b.test'), undefined);
  });

  it('fails no new TLS connection while deploys run', async () => {
    const stop = new AbortController();
    const probe = runProbe(
      { url: `https://127.0.0.1:${tls}/`, newConnections: true, concurrency: 4, headers: { Host: 'a.test' }, ca: readFileSync(fixture('ca.crt')), durationMs: 30_000, timeoutMs: 5000 },
      stop.signal,
    );
    try {
      for (const name of ['a-rsa', 'a-ec', 'a-rsa-2', 'a-rsa']) {
        const run = await deployA(`${name}.fullchain.crt`, `${name}.key`);
        assert.equal(run.status, 0, run.stdout + run.stderr);
      }
    } finally {
      stop.abort();
    }
    const report = await probe;
    assert.ok(report.total >= 20, `only ${report.total} requests were made`);
    assert.equal(report.failed, 0, JSON.stringify(report.firstFailures));
  });

  it('a resumed session keeps the certificate it began with while a fresh handshake gets the new one', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await handshake('127.0.0.1', tls, 'a.test', { maxVersion });
      assert.ok(first.session, 'the server issued a session ticket');
      const next = first.sha256 === fingerprint('a-rsa.crt') ? 'a-rsa-2' : 'a-rsa';
      const run = await deployA(`${next}.fullchain.crt`, `${next}.key`);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      // The master's ticket key outlives the change: the session resumes, and a resumption carries
      // no certificate, so this client goes on with the one it saw first (docs/certificates.md).
      const resumed = await handshake('127.0.0.1', tls, 'a.test', { maxVersion, session: first.session });
      assert.equal(resumed.reused, true, `${maxVersion}: the session was not resumed`);
      assert.equal(resumed.sha256, undefined);
      assert.equal((await handshake('127.0.0.1', tls, 'a.test', { maxVersion })).sha256, fingerprint(`${next}.crt`));
    }
  });

  it('refuses flags that belong to file targets (exit 2)', async () => {
    const run = await runDeploy([...target, '--server-name', 'a.test', '--cert', fixture('a-rsa.crt'), '--key', fixture('a-rsa.key'), '--reload-cmd', 'true']);
    assert.equal(run.status, 2);
    assert.match(run.stdout + run.stderr, /--reload-cmd is not for --target hitless/);
  });

  it('never prints a private key byte, nor lets one reach hitless\'s log', async () => {
    await waitFor('the log to be flushed', () => (prefix.errorLog().includes('certificate "a.test"') ? true : undefined));
    const fragments = keyFragments();
    assert.ok(fragments.length > 20);
    const everything = printed.join('\n') + prefix.errorLog();
    for (const fragment of fragments) assert.equal(everything.includes(fragment), false, 'a key line was printed');
  });
});
