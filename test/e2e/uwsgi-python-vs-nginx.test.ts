/**
 * uwsgi_pass to a real uWSGI (Debian's uwsgi-core with its python3 plugin, started here on a
 * loopback port), behind hitless and Debian's nginx side by side with Debian's uwsgi_params: the
 * WSGI environ the application sees, a POST body it reads, and a status with two Set-Cookie.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fieldsOf, requestRaw, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';
import { accepts } from './helpers/side-by-side.js';

const UWSGI = '/usr/bin/uwsgi-core';

const APP = `import json
def application(env, start_response):
    body = env['wsgi.input'].read()
    if env.get('QUERY_STRING') == 'mode=status':
        start_response('404 Not Found', [('Content-Type', 'text/plain'), ('Set-Cookie', 'a=1'), ('Set-Cookie', 'b=2')])
        return [b'missing\\n']
    keys = ['QUERY_STRING', 'REQUEST_METHOD', 'REQUEST_URI', 'PATH_INFO', 'REMOTE_ADDR', 'SERVER_PROTOCOL', 'CONTENT_LENGTH', 'HTTP_X_TEST', 'HTTP_HOST']
    out = {key: env.get(key) for key in keys}
    out['body_length'] = len(body)
    start_response('200 OK', [('Content-Type', 'application/json')])
    return [json.dumps(out, sort_keys=True).encode()]
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0));
    });
  });
}

describe('uwsgi_pass to uWSGI with python3, side by side with nginx', () => {
  let pair: NginxPair | undefined;
  let uwsgi: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let port = 0;

  before(async () => {
    port = await freePort();
    pair = await startPair(
      (listen) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${listen};
        location / {
            include uwsgi_params;
            uwsgi_param HTTP_X_TEST fixed;
            uwsgi_pass 127.0.0.1:${port};
        }
        location /unbuffered/ {
            include uwsgi_params;
            uwsgi_request_buffering off;
            uwsgi_pass 127.0.0.1:${port};
        }
    }
}
`,
      (base) => {
        writeFileSync(join(base, 'app.py'), APP);
        for (const name of ['hitless', 'nginx']) {
          mkdirSync(join(base, name), { recursive: true });
          copyFileSync('/etc/nginx/uwsgi_params', join(base, name, 'uwsgi_params'));
        }
        uwsgi = spawn(UWSGI, ['--plugins-dir', '/usr/lib/uwsgi/plugins', '--plugin', 'python3', '--socket', `127.0.0.1:${port}`, '--wsgi-file', join(base, 'app.py'), '--processes', '1', '--need-app', '--die-on-term'], { stdio: 'ignore' });
        exited = new Promise((resolve) => uwsgi?.once('exit', () => resolve()));
      },
    );
    for (let i = 0; i < 200 && !(await accepts(port)); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  });

  after(async () => {
    await pair?.stop();
    if (uwsgi !== undefined && uwsgi.exitCode === null) {
      uwsgi.kill('SIGTERM');
      await exited;
    }
  });

  const both = async (path: string, method = 'GET', body?: Buffer, headers: Record<string, string> = {}): Promise<{ nginx: RawAnswer; hitless: RawAnswer }> => {
    const ports = (pair as NginxPair).ports;
    return { nginx: await requestRaw(ports.nginx, path, { method, body, headers, chunkedInTwo: true }), hitless: await requestRaw(ports.hitless, path, { method, body, headers, chunkedInTwo: true }) };
  };

  it('passes the environ nginx passes', async () => {
    const { nginx, hitless } = await both('/app/path?a=1&b=2', 'GET', undefined, { 'x-test': 'from-client' });
    assert.equal(nginx.status, 200, nginx.body);
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['PATH_INFO'], '/app/path', 'nginx itself');
    assert.equal(hitless.status, 200, hitless.body);
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('passes a POST body the application reads', async () => {
    const body = Buffer.alloc(200_000, 'x');
    const { nginx, hitless } = await both('/post', 'POST', body, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['body_length'], body.length, 'nginx itself');
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('reads a chunked body whole for its CONTENT_LENGTH, with uwsgi_request_buffering off too', async () => {
    const body = Buffer.alloc(50_000, 'y');
    for (const path of ['/chunked', '/unbuffered/chunked']) {
      const { nginx, hitless } = await both(path, 'POST', body, { 'content-type': 'application/octet-stream' });
      const expected = JSON.parse(nginx.body) as Record<string, unknown>;
      assert.equal(expected['CONTENT_LENGTH'], String(body.length), `nginx itself, ${path}`);
      assert.equal(expected['body_length'], body.length, `nginx itself, ${path}`);
      assert.deepEqual(JSON.parse(hitless.body), expected, path);
    }
  });

  it('passes the status line and both Set-Cookie', async () => {
    const { nginx, hitless } = await both('/?mode=status');
    assert.equal(nginx.status, 404);
    assert.equal(hitless.status, 404);
    assert.equal(hitless.body, nginx.body);
    assert.deepEqual(fieldsOf(hitless, 'set-cookie'), fieldsOf(nginx, 'set-cookie'));
    assert.deepEqual(fieldsOf(nginx, 'set-cookie'), ['a=1', 'b=2']);
  });
});
