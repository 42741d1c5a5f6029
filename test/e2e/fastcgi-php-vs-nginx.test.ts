/**
 * fastcgi_pass to a real PHP-FPM (Debian's php8.2-fpm, started here with a pool configuration
 * this test writes: one pool on a unix socket, one on a loopback port), behind hitless and
 * Debian's nginx side by side, both with Debian's stock snippets/fastcgi-php.conf: the $_SERVER
 * values PHP sees (over TLS too: $_SERVER['HTTPS']), a POST body PHP reads, Status:, Location: and
 * repeated Set-Cookie, the `FastCGI sent in stderr` error log line, a response PHP flushes in
 * pieces with fastcgi_buffering off, fastcgi_keep_conn carrying 1,000 requests on one connection,
 * a PHP-FPM master killed and restarted under load with a backup pool taking over, and a large
 * upload spooled to a file under client_body_temp_path while it is read, removed after.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fieldsOf, requestRaw, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

const PHP_FPM = '/usr/sbin/php-fpm8.2';
const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

const SCRIPT = `<?php
$mode = $_GET['mode'] ?? '';
if ($mode === 'status') { header('Status: 404 Not Found'); echo "missing\\n"; exit; }
if ($mode === 'location') { header('Location: /elsewhere'); exit; }
if ($mode === 'cookies') { setcookie('a', '1'); setcookie('b', '2'); echo "cookies\\n"; exit; }
if ($mode === 'stderr') { error_log('to the error log'); echo "logged\\n"; exit; }
if ($mode === 'pid') { echo getmypid(), ' ', $_SERVER['QUERY_STRING']; exit; }
if ($mode === 'pool') { echo getenv('POOL_NAME'); exit; }
$body = file_get_contents('php://input');
$keys = ['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'QUERY_STRING', 'REQUEST_METHOD', 'REQUEST_URI', 'DOCUMENT_URI', 'REMOTE_ADDR', 'SERVER_PROTOCOL', 'CONTENT_LENGTH', 'HTTP_X_TEST', 'GATEWAY_INTERFACE', 'REDIRECT_STATUS', 'HTTPS', 'REQUEST_SCHEME'];
$out = [];
foreach ($keys as $key) $out[$key] = $_SERVER[$key] ?? null;
$out['body_length'] = strlen($body);
$out['body_md5'] = md5($body);
header('Content-Type: application/json');
echo json_encode($out);
`;

/**
 * Flushes "first" at once, then waits (at most 10 s) for the file the test creates after it has
 * read "first": a server that holds the piece back makes the answer "first\ntimeout\n".
 */
const STREAM_SCRIPT = `<?php
header('Content-Type: text/plain');
while (ob_get_level() > 0) ob_end_flush();
ob_implicit_flush(true);
echo "first\\n";
flush();
$go = __DIR__ . '/go-' . basename($_GET['go'] ?? '');
for ($i = 0; $i < 400 && !file_exists($go); $i++) { usleep(25000); clearstatcache(); }
echo file_exists($go) ? "second\\n" : "timeout\\n";
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

/** How a request goes: over TLS, on a keep-alive agent instead of a new connection. */
interface RequestOptions {
  readonly tls?: boolean;
  readonly agent?: http.Agent;
}

/** One request with an optional body, on a new connection unless `options.agent` says otherwise. */
function request(port: number, path: string, method = 'GET', body?: Buffer, headers: Record<string, string> = {}, options: RequestOptions = {}): Promise<RawAnswer> {
  return requestRaw(port, path, { method, headers, ...(body === undefined ? {} : { body }), ...(options.agent === undefined ? {} : { agent: options.agent }), ...(options.tls === true ? { tlsName: 'a.test' } : {}) });
}

/** Waits (bounded: 10 s) until `check` is true, polling a file or a count. */
async function until(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The files under a client_body_temp_path (its levels of subdirectories included). */
function tempFiles(root: string): string[] {
  let entries;
  try {
    entries = readdirSync(root, { recursive: true, withFileTypes: true });
  } catch {
    return [];
  }
  return entries.filter((entry) => entry.isFile()).map((entry) => join(entry.parentPath ?? entry.path, entry.name));
}

/** The sizes of the files under `root` that some process holds open ("(deleted)" ones too), from /proc. */
function openFilesUnder(root: string): number[] {
  const sizes: number[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith(`${root}/`)) sizes.push(statSync(`/proc/${pid}/fd/${fd}`).size);
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return sizes;
}

/** A PHP-FPM master this test starts (and starts again) on a configuration file it wrote. */
class FpmMaster {
  readonly #conf: string;
  readonly #log: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #starts = 0;

  constructor(conf: string, log: string) {
    this.#conf = conf;
    this.#log = log;
  }

  /** Starts the master; `ready()` waits for it. */
  start(): void {
    this.#starts++;
    const child = spawn(PHP_FPM, ['-F', '-R', '-n', '-y', this.#conf], { stdio: 'ignore' });
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.once('error', () => resolve());
    });
  }

  /** Resolves once the log says "ready to handle connections" as often as the master was started. */
  async ready(): Promise<void> {
    await until(() => {
      try {
        return (readFileSync(this.#log, 'utf8').match(/ready to handle connections/g) ?? []).length >= this.#starts;
      } catch {
        return false;
      }
    }, `php-fpm (${this.#conf}) to start`);
  }

  /** Signals the master (SIGTERM: its children end at once, mid-request too) and waits for it to exit. */
  async stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.#child;
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await this.#exited;
  }
}

/** A PHP-FPM pool section: `pm = static` with `children` workers, `env` passed to PHP. */
function poolSection(name: string, listen: string, children = 2, env: Record<string, string> = {}): string {
  const vars = Object.entries(env).map(([key, value]) => `env[${key}] = ${value}\n`).join('');
  return `[${name}]\nuser = nobody\ngroup = nogroup\nlisten = ${listen}\nlisten.mode = 0666\npm = static\npm.max_children = ${children}\ncatch_workers_output = no\nphp_admin_value[post_max_size] = 64M\n${vars}`;
}

/** A PHP-FPM configuration: `daemonize = no`, its pid and log under `base`, named `name`. */
function fpmConf(base: string, name: string, pools: string): string {
  return `[global]\npid = ${base}/${name}.pid\nerror_log = ${base}/${name}.log\ndaemonize = no\nprocess_control_timeout = 5s\n${pools}`;
}

/** A loopback TCP relay to `target` that counts the connections it accepts. */
class CountingRelay {
  readonly server: Server;
  readonly #open = new Set<Socket>();
  accepted = 0;

  constructor(target: number) {
    this.server = createServer((client) => {
      this.accepted++;
      const upstream = connect(target, '127.0.0.1');
      for (const socket of [client, upstream]) {
        this.#open.add(socket);
        socket.once('close', () => this.#open.delete(socket));
      }
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
  }

  listen(port: number): Promise<void> {
    return new Promise((resolve) => this.server.listen(port, '127.0.0.1', resolve));
  }

  close(): void {
    this.server.close();
    for (const socket of this.#open) socket.destroy();
  }
}

describe('fastcgi_pass to php8.2-fpm, side by side with nginx', () => {
  let pair: NginxPair | undefined;
  const masters: FpmMaster[] = [];
  /** The master of the primary server of the `pools` group, the one killed under load. */
  let first: FpmMaster | undefined;
  let dir = '';
  let tcpPort = 0;
  let fpmKeepPort = 0;
  /** Nothing listens there: the first server of the failover group. */
  let deadPort = 0;
  /** Between each server and the `keep` pool: counts the connections each opens. */
  const relays = new Map<'hitless' | 'nginx', { relay: CountingRelay; port: number }>();

  before(async () => {
    tcpPort = await freePort();
    fpmKeepPort = await freePort();
    deadPort = await freePort();
    for (const name of ['hitless', 'nginx'] as const) {
      const relay = new CountingRelay(fpmKeepPort);
      const port = await freePort();
      await relay.listen(port);
      relays.set(name, { relay, port });
    }
    pair = await startPair(
      (port, base, extra, name) => `events {}
http {
    access_log off;
    error_log ${base}/${name}/logs/error.log error;
    upstream keep { server 127.0.0.1:${relays.get(name)?.port ?? 0}; keepalive 2; }
    upstream failover { server 127.0.0.1:${deadPort}; server 127.0.0.1:${tcpPort}; }
    # The primary pool's master is killed and started again under load: the backup pool answers meanwhile.
    upstream pools { server unix:${base}/first.sock max_fails=1 fail_timeout=1s; server unix:${base}/second.sock backup; }
    server {
        listen 127.0.0.1:${port};
        listen 127.0.0.1:${extra[0] ?? 0} ssl;
        ssl_certificate ${base}/a.crt;
        ssl_certificate_key ${base}/a.key;
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
        location = /stream.php {
            include /etc/nginx/snippets/fastcgi-php.conf;
            fastcgi_buffering off;
            fastcgi_pass unix:${base}/php.sock;
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
        location /spool/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            client_body_buffer_size 16k;
            client_body_temp_path ${base}/${name}/spool 1 2;
            error_log ${base}/${name}/logs/spool.log notice;
            fastcgi_pass unix:${base}/php.sock;
        }
        location /spool-clean/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            client_body_buffer_size 16k;
            client_body_in_file_only clean;
            client_body_temp_path ${base}/${name}/spool-clean 1 2;
            error_log ${base}/${name}/logs/spool.log notice;
            fastcgi_pass unix:${base}/php.sock;
        }
        location /pools/ {
            include fastcgi.conf;
            fastcgi_param SCRIPT_FILENAME ${base}/www/info.php;
            fastcgi_next_upstream error timeout;
            fastcgi_pass pools;
        }
    }
}
`,
      (base) => {
        dir = base;
        mkdirSync(join(base, 'www'), { recursive: true });
        writeFileSync(join(base, 'www', 'info.php'), SCRIPT);
        writeFileSync(join(base, 'www', 'index.php'), SCRIPT);
        writeFileSync(join(base, 'www', 'stream.php'), STREAM_SCRIPT);
        copyFileSync(join(fixtures, 'a-rsa.fullchain.crt'), join(base, 'a.crt'));
        copyFileSync(join(fixtures, 'a-rsa.key'), join(base, 'a.key'));
        for (const name of ['hitless', 'nginx']) {
          mkdirSync(join(base, name), { recursive: true });
          // Debian's snippet includes fastcgi.conf relative to the configuration's directory.
          copyFileSync('/etc/nginx/fastcgi.conf', join(base, name, 'fastcgi.conf'));
        }
        writeFileSync(
          join(base, 'php-fpm.conf'),
          fpmConf(base, 'php-fpm', `${poolSection('sock', `${base}/php.sock`)}${poolSection('tcp', `127.0.0.1:${tcpPort}`)}${poolSection('keep', `127.0.0.1:${fpmKeepPort}`)}`),
        );
        writeFileSync(join(base, 'first.conf'), fpmConf(base, 'first', poolSection('first', `${base}/first.sock`, 4, { POOL_NAME: 'first' })));
        writeFileSync(join(base, 'second.conf'), fpmConf(base, 'second', poolSection('second', `${base}/second.sock`, 4, { POOL_NAME: 'second' })));
        for (const name of ['php-fpm', 'first', 'second']) {
          const master = new FpmMaster(join(base, `${name}.conf`), join(base, `${name}.log`));
          if (name === 'first') first = master;
          masters.push(master);
          master.start();
        }
      },
      1,
    );
    for (const master of masters) await master.ready();
  });

  after(async () => {
    await pair?.stop();
    for (const { relay } of relays.values()) relay.close();
    await Promise.all(masters.map((master) => master.stop()));
  });

  const both = async (path: string, method = 'GET', body?: Buffer, headers: Record<string, string> = {}, options: RequestOptions = {}): Promise<{ nginx: RawAnswer; hitless: RawAnswer }> => {
    const { ports, extra } = pair as NginxPair;
    const port = (name: 'hitless' | 'nginx'): number => (options.tls === true ? (extra[name][0] as number) : ports[name]);
    return { nginx: await request(port('nginx'), path, method, body, headers, options), hitless: await request(port('hitless'), path, method, body, headers, options) };
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

  /**
   * Sends half of a 20 MiB upload to `location`, waits until `spooled` (polled) shows a file of
   * nearly that size, sends the rest, and returns the answer; both servers, nginx first.
   */
  const upload = async (location: string, spooled: (name: 'hitless' | 'nginx') => number[], gone: (name: 'hitless' | 'nginx') => boolean): Promise<Map<string, { status: number; body: string }>> => {
    const { ports } = pair as NginxPair;
    const body = Buffer.alloc(20 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
    const half = 8 * 1024 * 1024;
    const seen = new Map<string, { status: number; body: string }>();
    for (const name of ['nginx', 'hitless'] as const) {
      const socket = connect(ports[name], '127.0.0.1');
      const chunks: Buffer[] = [];
      const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
      socket.on('data', (chunk: Buffer) => chunks.push(chunk));
      socket.on('error', () => undefined);
      try {
        socket.write(`POST ${location} HTTP/1.1\r\nHost: spool.test\r\nContent-Type: application/octet-stream\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        socket.write(body.subarray(0, half));
        // While the client holds the rest back, what it sent is in the file, not in memory: all
        // of it but at most a buffer (client_body_buffer_size) and what one read of the socket takes.
        await until(() => spooled(name).some((size) => size >= half - 256 * 1024), `${name}'s temporary file for ${location}`);
        assert.equal(spooled(name).length, 1, `${name}: one temporary file`);
        // No FIN after the body: nginx takes a half-closed client for one that went away.
        socket.write(body.subarray(half));
        await closed;
      } finally {
        socket.destroy();
      }
      const text = Buffer.concat(chunks).toString('latin1');
      const json = text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1);
      seen.set(name, { status: Number(text.slice(9, 12)), body: json === '' ? text : json });
      await until(() => gone(name), `${name}'s temporary file to be removed`);
    }
    const nginx = seen.get('nginx') ?? { status: 0, body: '' };
    const hitless = seen.get('hitless') ?? { status: 0, body: '' };
    assert.equal(nginx.status, 200, nginx.body);
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['body_length'], body.length, 'nginx itself');
    assert.equal(hitless.status, 200, hitless.body);
    assert.deepEqual(JSON.parse(hitless.body), expected);
    return seen;
  };

  it('spools a 20 MiB upload to a temporary file under client_body_temp_path while it is read, unlinked at once as nginx does', async () => {
    // client_body_in_file_only off: ngx_open_tempfile() removes the name at once; the file lives as an open descriptor.
    const spool = (name: string): string => join(dir, name, 'spool');
    await upload('/spool/upload', (name) => openFilesUnder(spool(name)), (name) => openFilesUnder(spool(name)).length === 0);
    for (const name of ['nginx', 'hitless']) {
      assert.deepEqual(tempFiles(spool(name)), [], `${name}: no name left in the directory`);
      const log = readFileSync(join(dir, name, 'logs', 'spool.log'), 'utf8');
      assert.match(log, /\[warn\] .*a client request body is buffered to a temporary file .*\/spool\/[0-9]\/[0-9]{2}\/[0-9]{10}, client: 127\.0\.0\.1, server: , request: "POST \/spool\/upload HTTP\/1\.1", host: "spool\.test"/, `${name}'s error log`);
    }
  });

  it('keeps the spooled upload in a named file with client_body_in_file_only clean, and removes it after', async () => {
    const spool = (name: string): string => join(dir, name, 'spool-clean');
    await upload('/spool-clean/upload', (name) => tempFiles(spool(name)).map((file) => statSync(file).size), (name) => tempFiles(spool(name)).length === 0);
    for (const name of ['nginx', 'hitless']) {
      const log = readFileSync(join(dir, name, 'logs', 'spool.log'), 'utf8');
      assert.match(log, /\[notice\] .*a client request body is buffered to a temporary file .*\/spool-clean\/[0-9]\/[0-9]{2}\/[0-9]{10}, client: /, `${name}'s error log`);
    }
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

  it('passes HTTPS=on as nginx does for a request over TLS (fastcgi.conf: HTTPS $https if_not_empty)', async () => {
    const { nginx, hitless } = await both('/info.php/tls?x=1', 'GET', undefined, { 'x-test': 'tls' }, { tls: true });
    assert.equal(nginx.status, 200, nginx.body);
    const expected = JSON.parse(nginx.body) as Record<string, unknown>;
    assert.equal(expected['HTTPS'], 'on', 'nginx itself');
    assert.equal(expected['REQUEST_SCHEME'], 'https', 'nginx itself');
    assert.equal(hitless.status, 200, hitless.body);
    assert.deepEqual(JSON.parse(hitless.body), expected);
    // Over plain HTTP $https is empty, and if_not_empty leaves HTTPS out altogether.
    const plain = await both('/info.php');
    assert.equal((JSON.parse(plain.nginx.body) as Record<string, unknown>)['HTTPS'], null, 'nginx itself');
    assert.deepEqual(JSON.parse(plain.hitless.body), JSON.parse(plain.nginx.body));
  });

  it('sends what PHP flushes before PHP has finished, with fastcgi_buffering off', async () => {
    const streamed = (name: 'hitless' | 'nginx'): Promise<{ status: number; first: string; body: string }> =>
      new Promise((resolve, reject) => {
        const port = (pair as NginxPair).ports[name];
        const req = http.request({ host: '127.0.0.1', port, path: `/stream.php?go=${name}`, agent: false, headers: { host: 'localhost' } }, (res) => {
          let body = '';
          let first: string | undefined;
          res.setEncoding('latin1');
          res.on('data', (chunk: string) => {
            body += chunk;
            if (first !== undefined || !body.includes('first\n')) return;
            // PHP waits for this file: the rest of the response can only come after it.
            first = body;
            writeFileSync(join(dir, 'www', `go-${name}`), '');
          });
          res.on('end', () => resolve({ status: res.statusCode ?? 0, first: first ?? '', body }));
          res.on('error', reject);
        });
        req.setTimeout(20_000, () => req.destroy(new Error(`${name}: no complete answer within 20 s`)));
        req.on('error', reject);
        req.end();
      });
    const nginx = await streamed('nginx');
    assert.deepEqual(nginx, { status: 200, first: 'first\n', body: 'first\nsecond\n' }, 'nginx itself');
    assert.deepEqual(await streamed('hitless'), nginx);
  });

  it('fastcgi_keep_conn on with keepalive carries 1,000 requests on one connection to PHP-FPM', async () => {
    for (const name of ['nginx', 'hitless'] as const) {
      const counted = relays.get(name)?.relay as CountingRelay;
      counted.accepted = 0;
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      const pids = new Set<string>();
      try {
        for (let i = 0; i < 1000; i++) {
          const answer = await request((pair as NginxPair).ports[name], `/keep/${i}?mode=pid&n=${i}`, 'GET', undefined, {}, { agent });
          assert.equal(answer.status, 200, `${name}: ${answer.body}`);
          const [pid, query] = answer.body.split(' ');
          assert.equal(query, `mode=pid&n=${i}`, name);
          pids.add(pid as string);
        }
      } finally {
        agent.destroy();
      }
      // One TCP connection accepted at the relay in front of the pool, and so one PHP worker for all.
      assert.equal(counted.accepted, 1, `${name}: connections to PHP-FPM`);
      assert.equal(pids.size, 1, `${name}: PHP workers`);
    }
  });

  it('answers every request while the primary PHP-FPM master is stopped and started again, from the backup pool meanwhile', async () => {
    const { ports } = pair as NginxPair;
    const names = ['hitless', 'nginx'] as const;
    const served: Record<'hitless' | 'nginx', { status: number; body: string }[]> = { hitless: [], nginx: [] };
    // The load ends once the phases are over or one timed out (`until`: 10 s each); this cap, far
    // above the few hundred requests a run takes, bounds it should the loop outlive the test.
    const most = 20_000;
    let stopping = false;
    const agents = names.map(() => new http.Agent({ keepAlive: true, maxSockets: 2 }));
    const loop = async (name: 'hitless' | 'nginx', agent: http.Agent): Promise<void> => {
      while (!stopping && served[name].length < most) {
        try {
          const answer = await request(ports[name], '/pools/load?mode=pool', 'GET', undefined, {}, { agent });
          served[name].push({ status: answer.status, body: answer.body });
        } catch (err) {
          served[name].push({ status: 0, body: err instanceof Error ? err.message : String(err) });
        }
      }
    };
    // Two clients per server at a time, on keep-alive connections.
    const loops = names.flatMap((name, i) => [loop(name, agents[i] as http.Agent), loop(name, agents[i] as http.Agent)]);
    /** Waits until each server had 20 answers from `pool` since the call. */
    const answered = async (pool: string, what: string): Promise<void> => {
      const from = { hitless: served.hitless.length, nginx: served.nginx.length };
      await until(() => names.every((name) => served[name].slice(from[name]).filter((answer) => answer.body === pool).length >= 20), what);
    };
    const primary = first as FpmMaster;
    try {
      await answered('first', 'the primary pool to answer');
      // SIGQUIT, PHP-FPM's graceful stop (a restart's first half): its workers finish the requests
      // they hold, and new ones are refused, so every request can be answered somewhere. SIGTERM
      // ends workers mid-response, which no proxy can retry (nginx too then fails one now and then).
      await primary.stop('SIGQUIT');
      await answered('second', 'the backup pool to answer while the primary is down');
      primary.start();
      await primary.ready();
      // fail_timeout=1s: the primary is tried again within a second, and answers again.
      await answered('first', 'the primary pool to answer again');
    } finally {
      stopping = true;
      await Promise.all(loops);
      for (const agent of agents) agent.destroy();
    }
    for (const name of names) {
      const failed = served[name].filter((answer) => answer.status !== 200 || (answer.body !== 'first' && answer.body !== 'second'));
      assert.deepEqual(failed.slice(0, 5), [], `${name}: ${failed.length} of ${served[name].length} requests failed`);
    }
  });
});
