/**
 * fastcgi_pass to a real PHP-FPM (Debian's php8.2-fpm, started here with a pool configuration
 * this test writes: one pool on a unix socket, one on a loopback port), behind hitless and
 * Debian's nginx side by side, both with Debian's stock snippets/fastcgi-php.conf: the $_SERVER
 * values PHP sees, a POST body PHP reads, Status:, Location: and repeated Set-Cookie, the
 * `FastCGI sent in stderr` error log line, and fastcgi_keep_conn reusing one connection.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect, createServer, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fieldsOf, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

const PHP_FPM = '/usr/sbin/php-fpm8.2';

const SCRIPT = `<?php
$mode = $_GET['mode'] ?? '';
if ($mode === 'status') { header('Status: 404 Not Found'); echo "missing\\n"; exit; }
if ($mode === 'location') { header('Location: /elsewhere'); exit; }
if ($mode === 'cookies') { setcookie('a', '1'); setcookie('b', '2'); echo "cookies\\n"; exit; }
if ($mode === 'stderr') { error_log('to the error log'); echo "logged\\n"; exit; }
$body = file_get_contents('php://input');
$keys = ['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_METHOD', 'REQUEST_URI', 'DOCUMENT_URI', 'REMOTE_ADDR', 'SERVER_PROTOCOL', 'CONTENT_LENGTH', 'HTTP_X_TEST', 'GATEWAY_INTERFACE', 'REDIRECT_STATUS'];
$out = [];
foreach ($keys as $key) $out[$key] = $_SERVER[$key] ?? null;
$out['body_length'] = strlen($body);
$out['body_md5'] = md5($body);
header('Content-Type: application/json');
echo json_encode($out);
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

/** One request with an optional body on a new connection. */
function request(port: number, path: string, method = 'GET', body?: Buffer, headers: Record<string, string> = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method, agent: false, headers: { host: 'localhost', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const fields: [string, string][] = [];
        for (let i = 0; i < res.rawHeaders.length; i += 2) fields.push([(res.rawHeaders[i] as string).toLowerCase(), res.rawHeaders[i + 1] as string]);
        resolve({ status: res.statusCode ?? 0, fields, body: Buffer.concat(chunks).toString('latin1') });
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${method} ${path} within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Waits (bounded) until `check` is true, polling a file or a socket. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('fastcgi_pass to php8.2-fpm, side by side with nginx', () => {
  let pair: NginxPair | undefined;
  let fpm: ChildProcess | undefined;
  let fpmExited: Promise<void> = Promise.resolve();
  let dir = '';
  let tcpPort = 0;
  let keepPort = 0;
  let fpmKeepPort = 0;
  /** Nothing listens there: the first server of the failover group. */
  let deadPort = 0;
  /** Between hitless and the `keep` pool: counts the connections hitless opens. */
  let relay: Server | undefined;
  let relayed = 0;

  before(async () => {
    tcpPort = await freePort();
    keepPort = await freePort();
    fpmKeepPort = await freePort();
    deadPort = await freePort();
    relay = createServer((client) => {
      relayed++;
      const upstream = connect(fpmKeepPort, '127.0.0.1');
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => relay?.listen(keepPort, '127.0.0.1', resolve));
    pair = await startPair(
      (port, base, _extra, name) => `events {}
http {
    access_log off;
    error_log ${base}/${name}/logs/error.log error;
    upstream keep { server 127.0.0.1:${keepPort}; keepalive 2; }
    upstream failover { server 127.0.0.1:${deadPort}; server 127.0.0.1:${tcpPort}; }
    server {
        listen 127.0.0.1:${port};
        root ${base}/www;
        client_max_body_size 32m;
        # WordPress's and Nextcloud's pretty URLs: anything that is no file goes to index.php.
        location /blog/ {
            try_files $uri $uri/ /index.php?$args;
        }
        location /failover/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            fastcgi_pass failover;
        }
        location ~ [^/]\\.php(/|$) {
            include /etc/nginx/snippets/fastcgi-php.conf;
            fastcgi_param HTTP_X_TEST fixed;
            fastcgi_pass unix:${base}/php.sock;
        }
        location /tcp/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            fastcgi_pass 127.0.0.1:${tcpPort};
        }
        location /keep/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            fastcgi_keep_conn on;
            fastcgi_pass keep;
        }
    }
}
`,
      (base) => {
        dir = base;
        mkdirSync(join(base, 'www'), { recursive: true });
        writeFileSync(join(base, 'www', 'info.php'), SCRIPT);
        writeFileSync(join(base, 'www', 'index.php'), SCRIPT);
        for (const name of ['hitless', 'nginx']) {
          mkdirSync(join(base, name), { recursive: true });
          // Debian's snippet includes fastcgi.conf relative to the configuration's directory.
          copyFileSync('/etc/nginx/fastcgi.conf', join(base, name, 'fastcgi.conf'));
        }
        const pool = (name: string, listen: string): string =>
          `[${name}]\nuser = nobody\ngroup = nogroup\nlisten = ${listen}\nlisten.mode = 0666\npm = static\npm.max_children = 2\ncatch_workers_output = no\nphp_admin_value[post_max_size] = 64M\n`;
        writeFileSync(
          join(base, 'php-fpm.conf'),
          `[global]\npid = ${base}/php-fpm.pid\nerror_log = ${base}/php-fpm.log\ndaemonize = no\n${pool('sock', `${base}/php.sock`)}${pool('tcp', `127.0.0.1:${tcpPort}`)}${pool('keep', `127.0.0.1:${fpmKeepPort}`)}`,
        );
        fpm = spawn(PHP_FPM, ['-F', '-R', '-n', '-y', join(base, 'php-fpm.conf')], { stdio: 'ignore' });
        fpmExited = new Promise((resolve) => fpm?.once('exit', () => resolve()));
      },
    );
    await until(() => {
      try {
        return readFileSync(join(dir, 'php-fpm.log'), 'utf8').includes('ready to handle connections');
      } catch {
        return false;
      }
    }, 'php-fpm to start');
  });

  after(async () => {
    await pair?.stop();
    relay?.close();
    if (fpm !== undefined && fpm.exitCode === null) {
      fpm.kill('SIGTERM');
      await fpmExited;
    }
  });

  const both = async (path: string, method = 'GET', body?: Buffer, headers: Record<string, string> = {}): Promise<{ nginx: RawAnswer; hitless: RawAnswer }> => {
    const ports = (pair as NginxPair).ports;
    return { nginx: await request(ports.nginx, path, method, body, headers), hitless: await request(ports.hitless, path, method, body, headers) };
  };

  it('passes the $_SERVER values nginx passes, with fastcgi_split_path_info (unix socket)', async () => {
    const { nginx, hitless } = await both('/info.php/extra/path?a=1&b=2', 'GET', undefined, { 'x-test': 'from-client' });
    assert.equal(nginx.status, 200, nginx.body);
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['PATH_INFO'], '/extra/path', 'nginx itself');
    assert.equal(expected['SCRIPT_FILENAME'], `${dir}/www/info.php`);
    assert.equal(hitless.status, 200, hitless.body);
    const actual = JSON.parse(hitless.body) as Record<string, unknown>;
    // Both servers reach PHP over the same loopback, so REMOTE_ADDR is the same too.
    assert.deepEqual(actual, expected);
  });

  it('reads a POST body in PHP, over a loopback port', async () => {
    const body = Buffer.alloc(300_000, 'x');
    const { nginx, hitless } = await both('/tcp/post', 'POST', body, { 'content-type': 'application/octet-stream' });
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['body_length'], body.length, 'nginx itself');
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('reads a 20 MiB upload completely in PHP', async () => {
    const body = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const { nginx, hitless } = await both('/info.php', 'POST', body, { 'content-type': 'application/octet-stream' });
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['body_length'], body.length, 'nginx itself');
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('sends a pretty URL to index.php through try_files, as WordPress configurations do', async () => {
    const { nginx, hitless } = await both('/blog/2024/hello-world/?p=1');
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['SCRIPT_NAME'], '/index.php', 'nginx itself');
    assert.equal(expected['REQUEST_URI'], '/blog/2024/hello-world/?p=1');
    assert.deepEqual(JSON.parse(hitless.body), expected);
  });

  it('passes a request to the next server of the group when the first refuses connections', async () => {
    const { nginx, hitless } = await both('/failover/x?n=1');
    assert.equal(nginx.status, 200, 'nginx itself');
    assert.equal(hitless.status, 200, hitless.body);
    assert.deepEqual(JSON.parse(hitless.body), JSON.parse(nginx.body));
  });

  it('turns Status:, Location: and two Set-Cookie into the response as nginx does', async () => {
    const status = await both('/info.php?mode=status');
    assert.equal(status.nginx.status, 404);
    assert.equal(status.hitless.status, 404);
    assert.equal(status.hitless.body, status.nginx.body);
    assert.deepEqual(fieldsOf(status.hitless, 'status'), []);
    const location = await both('/info.php?mode=location');
    assert.equal(location.nginx.status, 302);
    assert.equal(location.hitless.status, 302);
    assert.deepEqual(fieldsOf(location.hitless, 'location'), fieldsOf(location.nginx, 'location'));
    const cookies = await both('/info.php?mode=cookies');
    assert.deepEqual(fieldsOf(cookies.nginx, 'set-cookie'), ['a=1', 'b=2']);
    assert.deepEqual(fieldsOf(cookies.hitless, 'set-cookie'), fieldsOf(cookies.nginx, 'set-cookie'));
  });

  it('logs what PHP writes to stderr as "FastCGI sent in stderr"', async () => {
    const { nginx, hitless } = await both('/info.php?mode=stderr');
    assert.equal(nginx.body, 'logged\n');
    assert.equal(hitless.body, nginx.body);
    const line = (name: string): string => {
      const log = readFileSync(join(dir, name, 'logs', 'error.log'), 'utf8');
      const found = log.split('\n').find((entry) => entry.includes('FastCGI sent in stderr'));
      assert.ok(found !== undefined, `${name}: ${log}`);
      return found.replace(/^.*\[error\] [0-9]+#[0-9]+: \*[0-9]+ /, '');
    };
    assert.equal(line('hitless'), line('nginx'));
  });

  it('fastcgi_keep_conn on with keepalive carries 50 requests on one connection', async () => {
    relayed = 0;
    for (let i = 0; i < 50; i++) {
      const answer = await request((pair as NginxPair).ports.hitless, `/keep/${i}?n=${i}`);
      assert.equal(answer.status, 200, answer.body);
      assert.equal((JSON.parse(answer.body) as Record<string, unknown>)['QUERY_STRING'], `n=${i}`);
    }
    assert.equal(relayed, 1);
  });
});
