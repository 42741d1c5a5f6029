/**
 * Certificate deploys to a real nginx: the new certificate is served to fresh handshakes on every
 * listen address, an identical deploy is skipped, only the named vhost changes, connections made
 * during deploys never fail, and no key byte reaches any log or output.
 */
import assert from 'node:assert/strict';
import { readdirSync, statSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { runProbe } from '../../src/probe/probe.js';
import { printed, runDeploy } from './helpers/cli.js';
import { fingerprint, fixture, freePort, handshake, keyFragments, startNginx, type NginxInstance } from './helpers/nginx.js';
import { readFileSync } from 'node:fs';

function nginxConf(port: number): string {
  return `worker_processes 1;
events { worker_connections 512; }
http {
    access_log logs/access.log;
    ssl_session_cache shared:SSL:1m;
    server {
        listen 127.0.0.1:${port} ssl;
        listen [::1]:${port} ssl;
        server_name a.test www.a.test;
        ssl_certificate certs/a.crt;      # relative: nginx resolves it against the conf directory
        ssl_certificate_key "certs/a.key";
        location / { return 200 "a\\n"; }
    }
    include sites/*.conf;
}
`;
}

const B_CONF = (port: number): string => `server {
    listen 127.0.0.1:${port} ssl;
    server_name b.test;
    ssl_certificate ${'certs/b.crt'};
    ssl_certificate_key certs/b.key;
    location / { return 200 "b\\n"; }
}
`;

describe('deploy to nginx: certificates', () => {
  let nginx: NginxInstance;
  let port: number;
  const deployA = (cert: string, key: string, ...extra: string[]): Promise<import('./helpers/cli.js').DeployRun> =>
    runDeploy([...nginx.deployArgs, '--server-name', 'a.test', '--cert', fixture(cert), '--key', fixture(key), '--trusted-ca', fixture('ca.crt'), '--json', ...extra]);

  before(async () => {
    port = await freePort(true);
    nginx = await startNginx(
      {
        'nginx.conf': nginxConf(port),
        'sites/b.conf': B_CONF(port),
        'certs/a.crt': readFileSync(fixture('a-rsa.fullchain.crt')),
        'certs/a.key': readFileSync(fixture('a-rsa.key')),
        'certs/b.crt': readFileSync(fixture('b-rsa.fullchain.crt')),
        'certs/b.key': readFileSync(fixture('b-rsa.key')),
      },
      port,
    );
  });
  after(async () => {
    await nginx?.stop();
  });

  it('serves the new certificate to a fresh handshake on 127.0.0.1 and [::1]', async () => {
    assert.equal((await handshake('127.0.0.1', port, 'a.test')).sha256, fingerprint('a-rsa.crt'));
    const run = await deployA('a-rsa-2.crt', 'a-rsa-2.key', '--chain', fixture('chain.crt'));
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.equal(run.report?.outcome, 'deployed');
    for (const host of ['127.0.0.1', '::1']) {
      const served = await handshake(host, port, 'a.test');
      assert.equal(served.sha256, fingerprint('a-rsa-2.crt'), host);
      assert.equal(served.authorized, true, `${host}: the chain reaches the test root`);
      assert.equal(served.reused, false);
    }
    const verified = run.report?.verified ?? [];
    assert.deepEqual([...new Set(verified.filter((c) => c.ok).map((c) => ('host' in c ? c.host : '')))].sort(), ['127.0.0.1', '::1']);
    assert.ok(verified.every((c) => !('sessionReused' in c) || c.sessionReused === false), 'every verification was a full handshake');
    assert.deepEqual(nginx.read('certs/a.crt'), Buffer.concat([readFileSync(fixture('a-rsa-2.crt')), readFileSync(fixture('chain.crt'))]));
  });

  it('keeps the key file mode and backs the key up 0600', () => {
    const certs = readdirSync(nginx.path('certs'));
    const keyBackups = certs.filter((name) => name.startsWith('a.key.hitless-bak.'));
    assert.equal(keyBackups.length, 1, certs.join(' '));
    assert.equal(statSync(nginx.path(`certs/${keyBackups[0] as string}`)).mode & 0o777, 0o600);
    assert.deepEqual(nginx.read(`certs/${keyBackups[0] as string}`), readFileSync(fixture('a-rsa.key')));
    assert.equal(certs.filter((name) => name.includes('hitless-tmp') || name.includes('hitless-stage')).length, 0, 'no staged leftovers');
    assert.equal(readdirSync(nginx.dir).filter((name) => name.includes('hitless-stage')).length, 0, 'no staged nginx.conf left');
  });

  it('skips a second identical deploy', async () => {
    const before = statSync(nginx.path('certs/a.crt')).mtimeMs;
    const run = await deployA('a-rsa-2.crt', 'a-rsa-2.key', '--chain', fixture('chain.crt'));
    assert.equal(run.status, 0);
    assert.equal(run.report?.outcome, 'skipped');
    assert.equal(run.report?.steps.some((s) => s.name === 'commit'), false);
    assert.equal(statSync(nginx.path('certs/a.crt')).mtimeMs, before);
  });

  it('changes only the named vhost (b.test in an included file)', async () => {
    const aCert = nginx.read('certs/a.crt');
    const aKey = nginx.read('certs/a.key');
    const run = await runDeploy([...nginx.deployArgs, '--server-name', 'b.test', '--cert', fixture('b-ec.fullchain.crt'), '--key', fixture('b-ec.key'), '--trusted-ca', fixture('ca.crt'), '--json']);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    assert.match(run.report?.where ?? '', /sites\/b\.conf:/);
    assert.equal((await handshake('127.0.0.1', port, 'b.test')).sha256, fingerprint('b-ec.crt'));
    assert.equal((await handshake('127.0.0.1', port, 'a.test')).sha256, fingerprint('a-rsa-2.crt'));
    assert.deepEqual(nginx.read('certs/a.crt'), aCert);
    assert.deepEqual(nginx.read('certs/a.key'), aKey);
  });

  it('prints the steps as they run', async () => {
    const run = await runDeploy([...nginx.deployArgs, '--server-name', 'www.a.test', '--cert', fixture('a-ec.fullchain.crt'), '--key', fixture('a-ec.key'), '--trusted-ca', fixture('ca.crt')]);
    assert.equal(run.status, 0, run.stdout + run.stderr);
    const steps = run.stdout.split('\n').flatMap((line) => /^hitless deploy: (\S+)\s+ok\s/.exec(line)?.[1] ?? []);
    assert.deepEqual(steps, ['read', 'lock', 'locate', 'preflight', 'compare', 'stage', 'validate', 'backup', 'commit', 'reload', 'verify', 'cleanup']);
    assert.match(run.stdout, /hitless deploy: deployed \(exit 0\)/);
  });

  it('fails no new TLS connection while deploys run', async () => {
    const stop = new AbortController();
    const probe = runProbe(
      { url: `https://127.0.0.1:${port}/`, newConnections: true, concurrency: 4, headers: { Host: 'a.test' }, ca: readFileSync(fixture('ca.crt')), durationMs: 30_000, timeoutMs: 5000 },
      stop.signal,
    );
    const rotation = [
      ['a-rsa.fullchain.crt', 'a-rsa.key'],
      ['a-rsa-2.fullchain.crt', 'a-rsa-2.key'],
      ['a-ec.fullchain.crt', 'a-ec.key'],
      ['a-rsa.fullchain.crt', 'a-rsa.key'],
    ] as const;
    try {
      for (const [cert, key] of rotation) {
        const run = await deployA(cert, key);
        assert.equal(run.status, 0, run.stdout + run.stderr);
      }
    } finally {
      stop.abort();
    }
    const report = await probe;
    assert.ok(report.total >= 20, `only ${report.total} requests were made`);
    assert.equal(report.failed, 0, JSON.stringify(report.firstFailures));
  });

  it('a session from before a deploy is not resumed: the handshake is full and shows the new certificate', async () => {
    for (const maxVersion of ['TLSv1.2', 'TLSv1.3'] as const) {
      const first = await handshake('127.0.0.1', port, 'a.test', { maxVersion });
      assert.ok(first.session, 'the server issued a session');
      const resumed = await handshake('127.0.0.1', port, 'a.test', { maxVersion, session: first.session });
      // A resumed handshake carries no certificate: a verifier that resumed would see nothing.
      assert.equal(resumed.reused, true, `${maxVersion}: the session resumes before the deploy`);
      assert.equal(resumed.sha256, undefined);
      const [cert, key] = first.sha256 === fingerprint('a-rsa.crt') ? ['a-rsa-2', 'a-rsa-2'] : ['a-rsa', 'a-rsa'];
      const run = await deployA(`${cert}.fullchain.crt`, `${key}.key`);
      assert.equal(run.status, 0, run.stdout + run.stderr);
      // nginx binds sessions to its certificates (the session id context is a digest of them),
      // so the old session is refused and the client gets a full handshake with the new one.
      const after = await handshake('127.0.0.1', port, 'a.test', { maxVersion, session: first.session });
      assert.equal(after.reused, false, maxVersion);
      assert.equal(after.sha256, fingerprint(`${cert}.crt`));
    }
  });

  it('never prints a private key byte, nor lets one reach nginx\'s logs', () => {
    const fragments = keyFragments();
    assert.ok(fragments.length > 20);
    const everything = printed.join('\n') + nginx.logs();
    for (const fragment of fragments) assert.equal(everything.includes(fragment), false, 'a key line was printed');
  });
});
