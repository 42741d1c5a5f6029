/**
 * The command target, driving a real nginx only through files and commands: the validate command
 * sees the staged files through placeholders, the reload is an argument list, and a file that
 * did not exist before the deploy is removed again by the rollback.
 */
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { fillPlaceholders, formatCommand, runCommand, splitCommand } from '../../src/deploy/run-command.js';
import { runDeploy } from './helpers/cli.js';
import { fingerprint, fixture, freePort, handshake, NGINX, startNginx, type NginxInstance } from './helpers/nginx.js';

describe('commands without a shell', () => {
  it('splits a command line into arguments, with quotes and escapes, or reads a JSON array', () => {
    assert.deepEqual(splitCommand('nginx -s reload'), ['nginx', '-s', 'reload']);
    assert.deepEqual(splitCommand(`sh -c 'echo "a b"; exit 1' x\\ y ""`), ['sh', '-c', 'echo "a b"; exit 1', 'x y', '']);
    assert.deepEqual(splitCommand('["/usr/sbin/nginx", "-g", "pid /run/a b.pid;"]'), ['/usr/sbin/nginx', '-g', 'pid /run/a b.pid;']);
    assert.throws(() => splitCommand('a "b'), /unterminated/);
    assert.throws(() => splitCommand('  '), /empty command/);
  });

  it('fills placeholders and leaves unknown ones as written', () => {
    assert.deepEqual(fillPlaceholders(['check', '--cert={cert}', '{key}', '{nope}'], { cert: '/a b.crt', key: '/k' }), ['check', '--cert=/a b.crt', '/k', '{nope}']);
    assert.equal(formatCommand(['nginx', '-g', 'daemon off;']), "nginx -g 'daemon off;'");
  });

  it('passes arguments as they are: no shell ever sees them', async () => {
    const result = await runCommand([process.execPath, '-e', 'console.log(JSON.stringify(process.argv.slice(1)))', '$(touch /tmp/hitless-pwned)', 'a;b']);
    assert.equal(result.status, 0);
    assert.deepEqual(JSON.parse(result.output), ['$(touch /tmp/hitless-pwned)', 'a;b']);
    assert.equal(existsSync('/tmp/hitless-pwned'), false);
  });
});

describe('deploy with the command target', () => {
  let nginx: NginxInstance;
  let port: number;
  let reload: string;
  let validate: string[];

  before(async () => {
    port = await freePort();
    nginx = await startNginx(
      {
        'nginx.conf': `worker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    server {\n        listen 127.0.0.1:${port} ssl;\n        ssl_certificate certs/a.crt;\n        ssl_certificate_key certs/a.key;\n        return 200 "a\\n";\n    }\n}\n`,
        'certs/a.crt': readFileSync(fixture('a-rsa.fullchain.crt')),
        'certs/a.key': readFileSync(fixture('a-rsa.key')),
        // The validate command records what it was given and checks the staged files exist.
        'validate.mjs': `import { appendFileSync, statSync } from 'node:fs';\nconst files = process.argv.slice(2);\nappendFileSync(new URL('./validated.txt', import.meta.url), JSON.stringify(files) + '\\n');\nfor (const f of files) statSync(f);\nif (process.env.FAIL_VALIDATE) process.exit(7);\n`,
      },
      port,
    );
    reload = JSON.stringify([NGINX, '-p', `${nginx.dir}/`, '-c', nginx.conf, '-g', nginx.globals, '-s', 'reload']);
    validate = ['--validate-cmd', `${process.execPath} ${nginx.path('validate.mjs')} {cert} {key}`];
  });
  after(async () => {
    await nginx?.stop();
  });

  const deployTo = (extra: readonly string[]): ReturnType<typeof runDeploy> =>
    runDeploy(['--target', 'command', '--server-name', 'a.test', '--cert-path', nginx.path('certs/a.crt'), '--key-path', nginx.path('certs/a.key'), '--reload-cmd', reload, '--verify', `127.0.0.1:${port}`, '--trusted-ca', fixture('ca.crt'), '--verify-attempts', '3', '--json', ...extra]);

  it('validates the staged files through placeholders, swaps, reloads and verifies', async () => {
    const run = await deployTo(['--cert', fixture('a-ec.fullchain.crt'), '--key', fixture('a-ec.key'), ...validate]);
    assert.equal(run.status, 0, run.stdout);
    const [seen] = readFileSync(nginx.path('validated.txt'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as string[]);
    assert.match(seen?.[0] ?? '', /\/certs\/\.a\.crt\.hitless-tmp\./);
    assert.match(seen?.[1] ?? '', /\/certs\/\.a\.key\.hitless-tmp\./);
    assert.equal((await handshake('127.0.0.1', port, 'a.test')).sha256, fingerprint('a-ec.crt'));
  });

  it('stops at a failing validate command (exit 3)', async () => {
    const before = nginx.read('certs/a.crt');
    process.env['FAIL_VALIDATE'] = '1';
    try {
      const run = await deployTo(['--cert', fixture('a-rsa-2.fullchain.crt'), '--key', fixture('a-rsa-2.key'), ...validate]);
      assert.equal(run.status, 3, run.stdout);
      assert.match(run.report?.error?.message ?? '', /exited with status 7/);
    } finally {
      delete process.env['FAIL_VALIDATE'];
    }
    assert.deepEqual(nginx.read('certs/a.crt'), before);
  });

  it('removes a file it created when it rolls back (exit 4)', async () => {
    // With the chain in a file of its own nginx serves the leaf alone: verification fails.
    const run = await deployTo(['--cert', fixture('a-rsa-2.crt'), '--chain', fixture('chain.crt'), '--key', fixture('a-rsa-2.key'), '--chain-path', nginx.path('certs/chain.crt')]);
    assert.equal(run.status, 4, run.stdout);
    assert.deepEqual(run.report?.files.map((f) => [f.role, f.action]), [['certificate', 'replace'], ['chain', 'create'], ['key', 'replace']]);
    assert.equal(existsSync(nginx.path('certs/chain.crt')), false);
    assert.deepEqual(readdirSync(nginx.path('certs')).filter((name) => !name.includes('.hitless-bak.')).sort(), ['a.crt', 'a.key']);
    assert.equal((await handshake('127.0.0.1', port, 'a.test')).sha256, fingerprint('a-ec.crt'));
  });
});
