/**
 * The access phase side by side with Debian's nginx: one configuration (but the port), one
 * htpasswd file with a user for every hash format nginx reads (made by openssl, perl's crypt(3)
 * and bcryptjs), the same requests from 127.0.0.1 and ::1 to both. Status and WWW-Authenticate
 * must be equal, and so must the access and auth lines of the two error logs; hitless's log must
 * hold no password and no hash. The file changed while both run is read again by both.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { freePort } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

interface Answer {
  readonly status: number;
  readonly challenge: string | undefined;
}

function fetch(host: string, port: number, path: string, options: { method?: string; auth?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const headers: Record<string, string> = { host: 'localhost', ...options.headers };
  if (options.auth !== undefined) headers['authorization'] = `Basic ${Buffer.from(options.auth, 'latin1').toString('base64')}`;
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path, method: options.method ?? 'GET', agent: false, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, challenge: res.headers['www-authenticate'] }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

const openssl = (...args: string[]): string => execFileSync('openssl', ['passwd', ...args]).toString().trim();
const crypt = (password: string, salt: string): string => execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, salt]).toString();
const ssha = (password: string): string => {
  const salt = randomBytes(8);
  return `{SSHA}${Buffer.concat([createHash('sha1').update(password).update(salt).digest(), salt]).toString('base64')}`;
};

/** One user per format: name, password, stored hash. */
function users(): [string, string, string][] {
  const bcryptHash = bcrypt.hashSync('pw-bcrypt', 5);
  return [
    ['des', 'pw-des', crypt('pw-des', 'xy')],
    ['md5', 'pw-md5', openssl('-1', 'pw-md5')],
    ['apr1', 'pw-apr1', openssl('-apr1', 'pw-apr1')],
    ['sha256', 'pw-sha256', openssl('-5', 'pw-sha256')],
    ['sha512', 'pw-sha512', openssl('-6', 'pw-sha512')],
    ['sha512r', 'pw-sha512r', crypt('pw-sha512r', '$6$rounds=6000$saltsalt$')],
    ['bcrypt2y', 'pw-bcrypt', bcryptHash.replace(/^\$2b\$/, '$2y$')],
    ['bcrypt2b', 'pw-bcrypt', bcryptHash],
    ['bcrypt2a', 'pw-bcrypt', bcryptHash.replace(/^\$2b\$/, '$2a$')],
    ['plain', 'pw-plain', '{PLAIN}pw-plain'],
    ['sha', 'pw-sha', `{SHA}${createHash('sha1').update('pw-sha').digest('base64')}`],
    ['ssha', 'pw-ssha', ssha('pw-ssha')],
  ];
}

function conf(port: number): string {
  return `events {}
http {
  access_log off;
  server {
    listen 127.0.0.1:${port};
    listen [::1]:${port};
    server_name localhost;
    location /v4/ { allow 127.0.0.1; deny all; }
    location /v6/ { deny 127.0.0.0/8; allow ::1; deny all; }
    location /order/ { allow 127.0.0.1; deny 127.0.0.1; }
    location /auth/ { auth_basic "Zone $host"; auth_basic_user_file htpasswd; }
    location /auth/off/ { auth_basic off; }
    location /any/ { satisfy any; allow ::1; deny all; auth_basic "any"; auth_basic_user_file htpasswd; }
    location /all/ { allow 127.0.0.1; deny all; auth_basic "all"; auth_basic_user_file htpasswd; }
    location /missing/ { auth_basic "m"; auth_basic_user_file missing.htpasswd; }
    location /le/ { limit_except GET { allow 127.0.0.1; deny all; } }
    location /realip/ { set_real_ip_from 127.0.0.1; deny 10.0.0.0/8; allow all; }
    location /denied/ { deny all; }
    location /delay/ { auth_delay 200ms; auth_basic "d"; auth_basic_user_file htpasswd; }
    location /ep/ { error_page 404 /denied/index.html; }
    location /tf/ { try_files $uri /denied/index.html; }
  }
}
`;
}

/** The access phase's lines of an error log, without time, pid and connection. */
function accessLines(log: string): string[] {
  return log.split('\n')
    .map((line) => /\] \d+#\d+: \*\d+ (.*?), client: (\S+), server/.exec(line))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => `${m[1] as string} (${m[2] as string})`)
    .filter((line) => /access forbidden by rule|was not found in|password mismatch|no user\/password|delaying unauthorized|^open\(\) ".*htpasswd"/.test(line))
    .sort();
}

describe('the access phase side by side with nginx', () => {
  let dir: TempDir;
  let nginx: RunningServer | undefined;
  let hitless: RunningServer | undefined;
  let nginxPort = 0;
  let hitlessPort = 0;
  const table = users();

  before(async () => {
    dir = tempDir();
    // nginx's workers run as nobody: the tree must be readable to them.
    chmodSync(dir.path, 0o755);
    for (const path of ['v4', 'v6', 'order', 'auth', 'auth/off', 'any', 'all', 'missing', 'le', 'realip', 'denied', 'delay']) dir.write(`html/${path}/index.html`, `${path}\n`);
    writeFileSync(join(dir.path, 'htpasswd'), `# a comment\n\n${table.map(([user, , hash]) => `${user}:${hash}`).join('\n')}\n`);
    nginxPort = await freePort();
    hitlessPort = await freePort();
    dir.write('nginx.conf', conf(nginxPort));
    dir.write('hitless.conf', conf(hitlessPort));
    const globals = (name: string): string => `daemon off; pid ${join(dir.path, `${name}.pid`)}; error_log ${join(dir.path, `${name}.log`)} info;`;
    nginx = await startServer('nginx', ['-p', `${dir.path}/`, '-c', join(dir.path, 'nginx.conf'), '-g', `${globals('nginx')} user nobody nogroup;`], [nginxPort]);
    hitless = await startServer('hitless', ['-p', `${dir.path}/`, '-c', join(dir.path, 'hitless.conf'), '-g', globals('hitless')], [hitlessPort]);
  });

  after(async () => {
    await nginx?.stop();
    await hitless?.stop();
    dir.remove();
  });

  /** The same request to both; they must answer alike, and `expected` is what nginx answers. */
  async function both(host: string, path: string, expected: number, options: Parameters<typeof fetch>[3] = {}): Promise<Answer> {
    const [fromNginx, fromHitless] = [await fetch(host, nginxPort, path, options), await fetch(host, hitlessPort, path, options)];
    assert.equal(fromNginx.status, expected, `nginx ${host} ${path}`);
    assert.deepEqual(fromHitless, fromNginx, `${host} ${path}`);
    return fromHitless;
  }

  it('checks allow and deny in order, by address family, first match winning', async () => {
    await both('127.0.0.1', '/v4/', 200);
    await both('::1', '/v4/', 403);
    await both('127.0.0.1', '/v6/', 403);
    await both('::1', '/v6/', 200);
    await both('127.0.0.1', '/order/', 200);
    await both('::1', '/order/', 200);
  });

  it('checks the realip address', async () => {
    await both('127.0.0.1', '/realip/', 403, { headers: { 'x-real-ip': '10.1.2.3' } });
    await both('127.0.0.1', '/realip/', 200, { headers: { 'x-real-ip': '192.0.2.1' } });
  });

  it('accepts every hash format nginx reads, and refuses a wrong password', async () => {
    for (const [user, password] of table) {
      await both('127.0.0.1', '/auth/', 200, { auth: `${user}:${password}` });
      await both('127.0.0.1', '/auth/', 401, { auth: `${user}:wrong` });
    }
  });

  it('asks with the realm, for a missing user, no credentials or malformed ones', async () => {
    const answer = await both('127.0.0.1', '/auth/', 401);
    assert.equal(answer.challenge, 'Basic realm="Zone localhost"');
    await both('127.0.0.1', '/auth/', 401, { auth: 'nobody:pw' });
    await both('127.0.0.1', '/auth/', 401, { auth: ':pw' });
    await both('127.0.0.1', '/auth/', 401, { headers: { authorization: 'Basic !!!' } });
    await both('127.0.0.1', '/auth/off/', 200);
  });

  it('combines access and auth as satisfy any and all do', async () => {
    await both('::1', '/any/', 200);
    await both('127.0.0.1', '/any/', 401);
    await both('127.0.0.1', '/any/', 200, { auth: 'plain:pw-plain' });
    await both('127.0.0.1', '/all/', 401);
    await both('127.0.0.1', '/all/', 200, { auth: 'plain:pw-plain' });
    await both('::1', '/all/', 403, { auth: 'plain:pw-plain' });
  });

  it('delays a 401 with auth_delay, and only a 401', async () => {
    await both('127.0.0.1', '/delay/', 401, { auth: 'plain:wrong' });
    await both('127.0.0.1', '/delay/', 200, { auth: 'plain:pw-plain' });
  });

  it('answers 403 for a user file that does not exist', async () => {
    await both('127.0.0.1', '/missing/', 403, { auth: 'plain:pw-plain' });
  });

  it('applies limit_except rules to the other methods only', async () => {
    await both('::1', '/le/', 200);
    await both('::1', '/le/', 403, { method: 'POST' });
    await both('127.0.0.1', '/le/', 405, { method: 'POST' });
  });

  it('runs again for the location an internal redirect reaches', async () => {
    await both('127.0.0.1', '/ep/none', 403);
    await both('127.0.0.1', '/tf/none', 403);
  });

  it('reads the user file again when it changes', async () => {
    const file = join(dir.path, 'htpasswd');
    const before = readFileSync(file, 'utf8');
    await both('127.0.0.1', '/auth/', 401, { auth: 'plain:changed' });
    writeFileSync(file, `${before}`.replace('{PLAIN}pw-plain', '{PLAIN}changed'));
    await both('127.0.0.1', '/auth/', 200, { auth: 'plain:changed' });
    await both('127.0.0.1', '/auth/', 401, { auth: 'plain:pw-plain' });
    writeFileSync(file, before);
    await both('127.0.0.1', '/auth/', 200, { auth: 'plain:pw-plain' });
  });

  it('logs what nginx logs, and no password or hash', () => {
    const nginxLog = readFileSync(join(dir.path, 'nginx.log'), 'utf8');
    const hitlessLog = readFileSync(join(dir.path, 'hitless.log'), 'utf8');
    assert.deepEqual(accessLines(hitlessLog), accessLines(nginxLog));
    assert.ok(accessLines(nginxLog).length > 20);
    for (const [, password, hash] of table) {
      assert.equal(hitlessLog.includes(password), false, 'a password in the log');
      assert.equal(hitlessLog.includes(hash), false, 'a hash in the log');
    }
    assert.equal(hitlessLog.includes('changed'), false);
  });
});
