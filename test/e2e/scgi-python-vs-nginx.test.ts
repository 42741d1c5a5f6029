/**
 * scgi_pass to a real SCGI server: Debian's uWSGI (uwsgi-core, whose core speaks SCGI with
 * --scgi-socket, answering with a CGI head, and --scgi-nph-socket, answering with an HTTP status
 * line) running a python3 WSGI application on loopback ports, behind hitless and Debian's nginx
 * side by side with Debian's scgi_params: the environ the application sees, a POST body it reads
 * (with a Content-Length, and chunked with scgi_request_buffering off), and a status with two
 * Set-Cookie through both kinds of head.
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
    keys = ['SCGI', 'QUERY_STRING', 'REQUEST_METHOD', 'REQUEST_URI', 'DOCUMENT_URI', 'PATH_INFO', 'REMOTE_ADDR', 'SERVER_PROTOCOL', 'CONTENT_LENGTH', 'CONTENT_TYPE', 'HTTP_X_TEST', 'HTTP_HOST', 'HTTP_COOKIE', 'HTTP_X_MULTI']
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

describe('scgi_pass to uWSGI (SCGI, python3), side by side with nginx', () => {
  let pair: NginxPair | undefined;
  let uwsgi: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  let cgiPort = 0;
  let nphPort = 0;

  before(async () => {
    cgiPort = await freePort();
    nphPort = await freePort();
    pair = await startPair(
      (listen) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${listen};
        location / {
            include scgi_params;
            scgi_param HTTP_X_TEST fixed;
            scgi_pass 127.0.0.1:${cgiPort};
        }
        location /nph/ {
            include scgi_params;
            scgi_pass 127.0.0.1:${nphPort};
        }
        location /unbuffered/ {
            include scgi_params;
            scgi_request_buffering off;
            scgi_pass 127.0.0.1:${cgiPort};
        }
    }
}
`,
      (base) => {
        writeFileSync(join(base, 'app.py'), APP);
        for (const name of ['hitless', 'nginx']) {
          mkdirSync(join(base, name), { recursive: true });
          copyFileSync('/etc/nginx/scgi_params', join(base, name, 'scgi_params'));
        }
        const args = ['--plugins-dir', '/usr/lib/uwsgi/plugins', '--plugin', 'python3', '--scgi-socket', `127.0.0.1:${cgiPort}`, '--scgi-nph-socket', `127.0.0.1:${nphPort}`];
        uwsgi = spawn(UWSGI, [...args, '--wsgi-file', join(base, 'app.py'), '--processes', '1', '--need-app', '--die-on-term'], { stdio: 'ignore' });
        exited = new Promise((resolve) => uwsgi?.once('exit', () => resolve()));
      },
    );
    for (let i = 0; i < 200 && !((await accepts(cgiPort)) && (await accepts(nphPort))); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  });

  after(async () => {
    await pair?.stop();
    if (uwsgi !== undefined && uwsgi.exitCode === null) {
      uwsgi.kill('SIGTERM');
      await exited;
    }
  });

  const both = async (path: string, method = 'GET', body?: Buffer, headers: Record<string, string | string[]> = {}): Promise<{ nginx: RawAnswer; hitless: RawAnswer }> => {
    const ports = (pair as NginxPair).ports;
    return { nginx: await requestRaw(ports.nginx, path, { method, body, headers, chunkedInTwo: true }), hitless: await requestRaw(ports.hitless, path, { method, body, headers, chunkedInTwo: true }) };
  };

  it('passes the environ nginx passes, SCGI=1 and joined repeated headers included', async () => {
    const { nginx, hitless } = await both('/app/path?a=1&b=2', 'GET', undefined, { 'x-test': 'from-client', cookie: ['c=1', 'd=2'], 'x-multi': ['one', 'two'] });
    assert.equal(nginx.status, 200, nginx.body);
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['SCGI'], '1', 'nginx itself');
    assert.equal(expected['HTTP_X_TEST'], 'fixed', 'nginx itself');
    assert.equal(hitless.status, 200, hitless.body);
    // Debian's nginx 1.22 sends each X-Multi as its own HTTP_X_MULTI (the application keeps the
    // last); nginx 1.23.0 joins them (ngx_http_link_multi_headers()), as hitless does and scgi.t checks.
    const got = JSON.parse(hitless.body) as Record<string, unknown>;
    assert.equal(got['HTTP_X_MULTI'], 'one, two');
    assert.equal(expected['HTTP_X_MULTI'], 'two', 'nginx 1.22 itself');
    assert.deepEqual({ ...got, HTTP_X_MULTI: 'two' }, expected);
  });

  it('passes a POST body with its length', async () => {
    const body = Buffer.alloc(200_000, 'x');
    const { nginx, hitless } = await both('/post', 'POST', body, { 'content-type': 'application/octet-stream', 'content-length': String(body.length) });
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['body_length'], body.length, 'nginx itself');
    assert.equal(expected['CONTENT_LENGTH'], String(body.length), 'nginx itself');
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('reads a chunked body whole for its CONTENT_LENGTH, with scgi_request_buffering off too', async () => {
    const body = Buffer.alloc(50_000, 'y');
    for (const path of ['/chunked', '/unbuffered/chunked']) {
      const { nginx, hitless } = await both(path, 'POST', body, { 'content-type': 'application/octet-stream' });
      const expected = JSON.parse(nginx.body) as Record<string, unknown>;
      assert.equal(expected['CONTENT_LENGTH'], String(body.length), `nginx itself, ${path}`);
      assert.equal(expected['body_length'], body.length, `nginx itself, ${path}`);
      assert.deepEqual(JSON.parse(hitless.body), expected, path);
    }
  });

  it('streams a body with a Content-Length with scgi_request_buffering off', async () => {
    // Not side by side: Debian's nginx 1.22 loses most of such a body (fixed in nginx 1.29.6,
    // scgi_request_buffering.t's TODO); hitless's alone is checked.
    const body = Buffer.alloc(300_000, 'z');
    const ports = (pair as NginxPair).ports;
    const headers = { 'content-type': 'application/octet-stream', 'content-length': String(body.length) };
    const streamed = await requestRaw(ports.hitless, '/unbuffered/post', { method: 'POST', body, headers, chunkedInTwo: true });
    assert.equal(streamed.status, 200, streamed.body);
    const got = JSON.parse(streamed.body) as Record<string, unknown>;
    assert.equal(got['body_length'], body.length);
    assert.equal(got['CONTENT_LENGTH'], String(body.length));
    assert.equal(got['CONTENT_TYPE'], 'application/octet-stream');
  });

  for (const path of ['/?mode=status', '/nph/?mode=status']) {
    it(`passes the status and both Set-Cookie (${path.startsWith('/nph/') ? 'an HTTP status line' : 'a CGI Status: field'})`, async () => {
      const { nginx, hitless } = await both(path);
      assert.equal(nginx.status, 404);
      assert.equal(hitless.status, 404);
      assert.equal(hitless.body, nginx.body);
      assert.deepEqual(fieldsOf(hitless, 'set-cookie'), fieldsOf(nginx, 'set-cookie'));
      assert.deepEqual(fieldsOf(nginx, 'set-cookie'), ['a=1', 'b=2']);
      assert.deepEqual(fieldsOf(hitless, 'status'), fieldsOf(nginx, 'status'));
      assert.deepEqual(fieldsOf(hitless, 'content-type'), fieldsOf(nginx, 'content-type'));
    });
  }
});
