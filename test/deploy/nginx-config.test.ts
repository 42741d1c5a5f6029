/**
 * Configuration deploys to a real nginx: an included file or the main file is staged, checked
 * with `nginx -t` through a staged copy of the configuration, swapped, reloaded and health-checked,
 * and rolled back when the health check fails.
 */
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import http from 'node:http';
import { createServer, type AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { runDeploy } from './helpers/cli.js';
import { freePort, startNginx, type NginxInstance } from './helpers/nginx.js';

function get(port: number, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      })
      .on('error', reject);
  });
}

const app = (port: number, body: string, health = 200): string => `server {
    listen 127.0.0.1:${port};
    location / { return 200 "${body}\\n"; }
    location /health { return ${health} "health\\n"; }
}
`;

describe('deploy config to nginx', () => {
  let nginx: NginxInstance;
  let port: number;
  const deployConfig = (source: string, ...args: string[]): ReturnType<typeof runDeploy> =>
    runDeploy(['config', ...nginx.deployArgs, '--config-file', source, '--health', `http://127.0.0.1:${port}/health`, '--verify-attempts', '3', '--json', ...args]);

  before(async () => {
    port = await freePort();
    nginx = await startNginx(
      {
        // Debian's style: every file of the directory, whatever its name.
        'nginx.conf': 'worker_processes 1;\nevents { worker_connections 64; }\nhttp {\n    include conf.d/*;\n}\n',
        'conf.d/app.conf': app(port, 'v1'),
      },
      port,
    );
  });
  after(async () => {
    await nginx?.stop();
  });

  it('deploys an included file: validated through a staged copy, swapped, reloaded, healthy', async () => {
    const source = nginx.write('incoming/app.conf', app(port, 'v2'));
    const run = await deployConfig(source, '--dest', nginx.path('conf.d/app.conf'));
    assert.equal(run.status, 0, run.stdout);
    assert.equal(run.report?.outcome, 'deployed');
    assert.match(run.report?.steps.find((s) => s.name === 'validate')?.detail ?? '', /-c \S+\/\.nginx\.conf\.hitless-stage\./);
    assert.deepEqual(await get(port, '/'), { status: 200, body: 'v2\n' });
    const listing = readdirSync(nginx.path('conf.d'));
    assert.deepEqual(listing.filter((name) => !name.startsWith('.')), ['app.conf'], 'the backup is hidden from include conf.d/*');
    assert.equal(listing.filter((name) => name.startsWith('.app.conf.hitless-bak.')).length, 1);
  });

  it('refuses a configuration nginx -t rejects (exit 3); the live file is unchanged', async () => {
    const before = nginx.read('conf.d/app.conf');
    const source = nginx.write('incoming/bad.conf', 'server {\n    listen 127.0.0.1:1;\n    proxiy_pass http://x;\n}\n');
    const run = await deployConfig(source, '--dest', nginx.path('conf.d/app.conf'));
    assert.equal(run.status, 3, run.stdout);
    assert.match(run.report?.error?.message ?? '', /unknown directive "proxiy_pass"/);
    assert.deepEqual(nginx.read('conf.d/app.conf'), before);
    assert.deepEqual(await get(port, '/'), { status: 200, body: 'v2\n' });
    assert.equal(readdirSync(nginx.dir).filter((name) => name.includes('hitless-stage')).length, 0);
  });

  it('rolls back a configuration whose health check fails (exit 4)', async () => {
    const before = nginx.read('conf.d/app.conf');
    const source = nginx.write('incoming/sick.conf', app(port, 'v3', 503));
    const run = await deployConfig(source, '--dest', nginx.path('conf.d/app.conf'));
    assert.equal(run.status, 4, run.stdout);
    assert.equal(run.report?.outcome, 'rolled-back');
    assert.match(run.report?.error?.message ?? '', /status 503/);
    assert.deepEqual(nginx.read('conf.d/app.conf'), before);
    assert.deepEqual(await get(port, '/'), { status: 200, body: 'v2\n' });
  });

  it('rolls back a configuration nginx -t accepts but the master cannot load (exit 4)', async () => {
    // nginx -t and nginx -s reload do not bind; the master does, and keeps its old workers.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const busy = (taken.address() as AddressInfo).port;
    try {
      const before = nginx.read('conf.d/app.conf');
      const source = nginx.write('incoming/busy.conf', app(port, 'v5') + `server { listen 127.0.0.1:${busy}; }\n`);
      const run = await deployConfig(source, '--dest', nginx.path('conf.d/app.conf'), '--reload-timeout', '1500ms');
      assert.equal(run.status, 4, run.stdout);
      assert.equal(run.report?.error?.code, 'HITLESS_ERR_DEPLOY_RELOAD');
      assert.match(run.report?.error?.message ?? '', /still runs its old workers 1500 ms after the reload/);
      assert.deepEqual(nginx.read('conf.d/app.conf'), before);
      assert.deepEqual(await get(port, '/'), { status: 200, body: 'v2\n' });
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it('deploys the main file, its relative includes resolved as nginx does', async () => {
    const source = nginx.write('incoming/nginx.conf', 'worker_processes 1;\nevents { worker_connections 128; }\nhttp {\n    include conf.d/*.conf;\n}\n');
    const run = await deployConfig(source);
    assert.equal(run.status, 0, run.stdout);
    assert.match(nginx.read('nginx.conf').toString(), /worker_connections 128/);
    assert.deepEqual(await get(port, '/'), { status: 200, body: 'v2\n' });
  });

  it('refuses a destination the configuration does not read (exit 2)', async () => {
    const source = nginx.write('incoming/other.conf', app(port, 'v4'));
    const run = await deployConfig(source, '--dest', nginx.path('elsewhere/other.conf'));
    assert.equal(run.status, 2, run.stdout);
    assert.match(run.report?.error?.message ?? '', /is not read by/);
  });
});
