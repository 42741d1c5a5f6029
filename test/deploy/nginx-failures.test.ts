/**
 * Certificate deploys to a real nginx that must not go through: refused before anything is
 * touched (exit 2), refused by `nginx -t` (exit 3), or failed after the swap and rolled back
 * (exit 4), and a rollback that itself fails (exit 5). In each, the live files and what is
 * served are checked against what was there before.
 */
import assert from 'node:assert/strict';
import { chmodSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { after, before, beforeEach, describe, it } from 'node:test';
import { printed, runDeploy, type DeployRun } from './helpers/cli.js';
import { fingerprint, fixture, freePort, handshake, keyFragments, NGINX, startNginx, type NginxInstance } from './helpers/nginx.js';

describe('deploy to nginx: failures leave the live state as it was', () => {
  let nginx: NginxInstance;
  let port: number;
  let live: { crt: Buffer; key: Buffer; listing: string[] };

  const snapshot = (): typeof live => ({ crt: nginx.read('certs/a.crt'), key: nginx.read('certs/a.key'), listing: readdirSync(nginx.path('certs')).sort() });
  const deployA = (args: readonly string[]): Promise<DeployRun> =>
    runDeploy([...nginx.deployArgs, '--server-name', 'a.test', '--trusted-ca', fixture('ca.crt'), '--verify-attempts', '3', '--json', ...args]);
  const assertUntouched = async (run: DeployRun): Promise<void> => {
    const now = snapshot();
    assert.deepEqual(now.crt, live.crt, 'certificate file changed');
    assert.deepEqual(now.key, live.key, 'key file changed');
    const backups = now.listing.filter((name) => name.includes('.hitless-bak.'));
    assert.deepEqual(now.listing.filter((name) => !name.includes('.hitless-bak.')), live.listing.filter((name) => !name.includes('.hitless-bak.')), 'no staged leftovers');
    assert.ok(backups.length <= live.listing.filter((name) => name.includes('.hitless-bak.')).length + 2);
    assert.equal((await handshake('127.0.0.1', port, 'a.test')).sha256, fingerprint('a-rsa.crt'), 'the old certificate is served');
    assert.equal(readdirSync(nginx.dir).filter((name) => name.includes('hitless')).length, 0, `leftovers: ${readdirSync(nginx.dir).join(' ')}\n${run.stdout}`);
  };

  before(async () => {
    port = await freePort();
    nginx = await startNginx(
      {
        'nginx.conf': `worker_processes 1;
events { worker_connections 64; }
http {
    server {
        listen 127.0.0.1:${port} ssl;
        server_name a.test;
        ssl_certificate ${'certs/a.crt'};
        ssl_certificate_key certs/a.key;
        return 200 "a\\n";
    }
}
`,
        'certs/a.crt': readFileSync(fixture('a-rsa.fullchain.crt')),
        'certs/a.key': readFileSync(fixture('a-rsa.key')),
      },
      port,
    );
    chmodSync(nginx.path('certs/a.key'), 0o600);
  });
  beforeEach(() => {
    live = snapshot();
  });
  after(async () => {
    await nginx?.stop();
  });

  const refused: [string, string[], RegExp][] = [
    ['a key that does not match', ['--cert', fixture('a-rsa-2.fullchain.crt'), '--key', fixture('mismatched.key')], /does not match the certificate/],
    ['a broken certificate PEM', ['--cert', fixture('broken.crt'), '--key', fixture('a-rsa.key')], /Invalid certificate in ".*broken\.crt"/],
    ['a broken key PEM', ['--cert', fixture('a-ec.fullchain.crt'), '--key', fixture('broken.key')], /Invalid private key in ".*broken\.key"/],
    ['an expired certificate', ['--cert', fixture('a-expired.fullchain.crt'), '--key', fixture('a-expired.key')], /has expired/],
    ['a certificate not valid yet', ['--cert', fixture('a-not-yet.fullchain.crt'), '--key', fixture('a-not-yet.key')], /is not valid yet/],
    ['a chain that does not link', ['--cert', fixture('a-ec.crt'), '--chain', fixture('other-intermediate.crt'), '--key', fixture('a-ec.key')], /chain does not link/],
    ['a certificate for another name', ['--cert', fixture('b-rsa.fullchain.crt'), '--key', fixture('b-rsa.key')], /does not cover "a\.test"/],
    ['a missing input file', ['--cert', fixture('nope.crt'), '--key', fixture('a-rsa.key')], /open\(\) ".*nope\.crt" failed \(2: No such file or directory\)/],
  ];
  for (const [what, args, message] of refused) {
    it(`refuses ${what} with exit 2, touching nothing`, async () => {
      const run = await deployA(args);
      assert.equal(run.status, 2, run.stdout);
      assert.equal(run.report?.outcome, 'refused');
      assert.match(run.report?.error?.message ?? '', message);
      assert.equal(run.report?.steps?.some((s) => s.name === 'stage'), false);
      await assertUntouched(run);
    });
  }

  it('refuses a staged certificate that nginx -t rejects with exit 3, touching nothing live', async () => {
    const run = await deployA(['--cert', fixture('a-weak.fullchain.crt'), '--key', fixture('a-weak.key')]);
    assert.equal(run.status, 3, run.stdout);
    assert.equal(run.report?.outcome, 'validation-failed');
    assert.equal(run.report?.error?.code, 'HITLESS_ERR_DEPLOY_VALIDATE');
    assert.match(run.report?.error?.message ?? '', /ee key too small/);
    assert.equal(run.report?.steps.some((s) => s.name === 'backup' || s.name === 'commit'), false);
    await assertUntouched(run);
  });

  it('rolls back a leaf deployed without its intermediate (exit 4): the old chain is back', async () => {
    const run = await deployA(['--cert', fixture('a-rsa-2.crt'), '--key', fixture('a-rsa-2.key')]);
    assert.equal(run.status, 4, run.stdout);
    assert.equal(run.report?.outcome, 'rolled-back');
    assert.equal(run.report?.error?.code, 'HITLESS_ERR_DEPLOY_VERIFY');
    assert.match(run.report?.error?.message ?? '', /does not lead to a trust anchor/);
    const served = await handshake('127.0.0.1', port, 'a.test');
    assert.equal(served.authorized, true, 'the old chain is served again');
    await assertUntouched(run);
  });

  it('rolls back when the reload command fails (exit 4): the old certificate is served', async () => {
    const run = await deployA(['--cert', fixture('a-rsa-2.fullchain.crt'), '--key', fixture('a-rsa-2.key'), '--reload-cmd', 'false']);
    assert.equal(run.status, 4, run.stdout);
    assert.equal(run.report?.error?.code, 'HITLESS_ERR_DEPLOY_RELOAD');
    assert.match(run.report?.notes.join('\n') ?? '', /reload failed during the rollback too, but the previous state is served/);
    await assertUntouched(run);
  });

  it('says loudly when the rollback fails (exit 5) and what the operator must do', async () => {
    // A reload that works once: the bad deploy goes live, and the rollback cannot reload it away.
    const marker = nginx.path('reloaded-once');
    const script = nginx.write(
      'reload-once.sh',
      `#!/bin/sh\n[ -e '${marker}' ] && exit 1\ntouch '${marker}'\nexec '${NGINX}' -p '${nginx.dir}/' -c '${nginx.conf}' -g '${nginx.globals}' -s reload\n`,
    );
    chmodSync(script, 0o755);
    const human = await runDeploy([...nginx.deployArgs, '--server-name', 'a.test', '--trusted-ca', fixture('ca.crt'), '--verify-attempts', '2', '--cert', fixture('a-rsa-2.crt'), '--key', fixture('a-rsa-2.key'), '--reload-cmd', script]);
    assert.equal(human.status, 5, human.stdout + human.stderr);
    assert.match(human.stderr, /\[alert\] HITLESS_ERR_DEPLOY_ROLLBACK/);
    assert.match(human.stderr, /THE ROLLBACK FAILED/);
    assert.match(human.stderr, /cp -p \S+a\.crt\.hitless-bak\.\S+ \S+a\.crt/);
    // The files are restored; only the reload is missing, as the operator is told.
    assert.deepEqual(nginx.read('certs/a.crt'), live.crt);
    rmSync(marker);
    const repair = await runDeploy([...nginx.deployArgs, '--server-name', 'a.test', '--trusted-ca', fixture('ca.crt'), '--cert', fixture('a-rsa-2.fullchain.crt'), '--key', fixture('a-rsa-2.key'), '--json']);
    assert.equal(repair.status, 0, repair.stdout);
  });

  it('never prints a private key byte, nor lets one reach nginx\'s logs', () => {
    const everything = printed.join('\n') + nginx.logs();
    for (const fragment of keyFragments()) assert.equal(everything.includes(fragment), false, 'a key line was printed');
    assert.ok(printed.join('').includes('mismatched.key') || printed.join('').includes('does not match'));
  });
});
