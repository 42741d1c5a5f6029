/**
 * Debian's stock /etc/nginx, as the package installs it, served by hitless and by Debian's nginx
 * side by side (issue 13's "Done when"): each server gets its own copy of the tree in a temporary
 * prefix, with only what two servers on one machine cannot share patched (a free loopback port
 * instead of port 80, the pid file and logs in the copy, no IPv6 listen). Everything else is the
 * stock file: `user www-data`, `worker_processes auto`, `load_module` of Debian's modules,
 * `include mime.types`, `root /var/www/html`, `index`, `try_files $uri $uri/ =404`, `gzip on`.
 *
 * HITLESS_SIDE_BY_SIDE_AS_NGINX=1 runs a second nginx in hitless's place: the test's own check
 * that it compares only what nginx itself makes the same.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, before, describe, it } from 'node:test';
import { freePort } from './helpers/masters.js';
import { configTest, copyTree, patchFile, pick, send, startServer, type RequestSpec, type Response, type RunningServer } from './helpers/side-by-side.js';

const UNDER_TEST = process.env['HITLESS_SIDE_BY_SIDE_AS_NGINX'] === '1' ? 'nginx' : 'hitless';
const STOCK = '/etc/nginx';
const PAGE = '/var/www/html/index.nginx-debian.html';
/** The headers compared, beyond the status and the body. */
const HEADERS = ['content-type', 'last-modified', 'etag', 'accept-ranges', 'content-range', 'content-length'];

if (!existsSync(join(STOCK, 'sites-available/default')) || !existsSync(PAGE)) {
  throw new Error(`Debian's stock nginx configuration (${STOCK}) and ${PAGE} are needed: apt-get install nginx-light (.ci/run does)`);
}

/** A copy of /etc/nginx under `dir`, listening on 127.0.0.1:`port`, as a prefix of its own. */
function stockCopy(dir: string, port: number): string[] {
  copyTree(STOCK, dir);
  mkdirSync(join(dir, 'logs'));
  // `load_module modules/...` is relative to the prefix, Debian's /usr/share/nginx.
  symlinkSync('/usr/share/nginx/modules', join(dir, 'modules'));
  patchFile(join(dir, 'nginx.conf'), [
    [/^pid \/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
    [/\/var\/log\/nginx\//g, `${dir}/logs/`],
    [/\/etc\/nginx\//g, `${dir}/`],
  ]);
  patchFile(join(dir, 'sites-enabled/default'), [
    [/^(\s*)listen 80 default_server;$/m, `$1listen 127.0.0.1:${port} default_server;`],
    [/^\s*listen \[::\]:80 default_server;\n/m, ''],
  ]);
  return ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs/error.log')];
}

describe(`Debian's stock /etc/nginx: ${UNDER_TEST} serves what nginx serves`, () => {
  const base = mkdtempSync(join(tmpdir(), 'hitless-debian-'));
  // `user www-data`: the workers read the docroot only, and /var/www/html is world-readable; the
  // copies are made readable too, for a worker that opens a file below its prefix.
  chmodSync(base, 0o755);
  const servers: RunningServer[] = [];
  const ports = { nginx: 0, other: 0 };
  const args = { nginx: [] as string[], other: [] as string[] };
  let started: Promise<void> = Promise.resolve();

  before(async () => {
    ports.nginx = await freePort();
    ports.other = await freePort();
    args.nginx = stockCopy(join(base, 'nginx'), ports.nginx);
    args.other = stockCopy(join(base, UNDER_TEST === 'nginx' ? 'nginx-2' : 'hitless'), ports.other);
    const nginxTest = configTest('nginx', args.nginx);
    assert.equal(nginxTest.status, 0, `nginx -t on its copy: ${nginxTest.output}`);
    servers.push(await startServer('nginx', [...args.nginx, '-g', 'daemon off;'], [ports.nginx]));
    // A server that does not start fails every comparison with its reason, not the -t test.
    started = startServer(UNDER_TEST, [...args.other, '-g', 'daemon off;'], [ports.other]).then((server) => void servers.push(server));
    await started.catch(() => undefined);
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(base, { recursive: true, force: true });
  });

  it(`${UNDER_TEST} -t accepts the stock configuration`, () => {
    const result = configTest(UNDER_TEST, args.other);
    assert.equal(result.status, 0, result.output);
  });

  /** The same request to both; the response of each, nginx's first. */
  async function both(spec: RequestSpec | ((server: 'nginx' | 'other') => RequestSpec)): Promise<[Response, Response]> {
    const specOf = typeof spec === 'function' ? spec : () => spec;
    await started;
    return [await send(ports.nginx, specOf('nginx')), await send(ports.other, specOf('other'))];
  }

  it('GET /index.nginx-debian.html', async () => {
    const [expected, actual] = await both({ path: '/index.nginx-debian.html' });
    assert.equal(expected.status, 200, 'nginx itself');
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('GET /index.nginx-debian.html with Accept-Encoding: gzip (the stock gzip on)', async () => {
    const [expected, actual] = await both({ path: '/index.nginx-debian.html', headers: { 'accept-encoding': 'gzip' } });
    assert.equal(expected.headers['content-encoding'], 'gzip', 'nginx itself');
    const compared = ['content-type', 'content-encoding', 'content-length', 'etag', 'last-modified', 'vary', 'accept-ranges'];
    assert.deepEqual(pick(actual, compared, false), pick(expected, compared, false));
    assert.deepEqual(gunzipSync(actual.body), gunzipSync(expected.body));
  });

  it('GET / (index index.nginx-debian.html)', async () => {
    const [expected, actual] = await both({ path: '/' });
    assert.equal(expected.status, 200, 'nginx itself');
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('HEAD /index.nginx-debian.html', async () => {
    const [expected, actual] = await both({ method: 'HEAD', path: '/index.nginx-debian.html' });
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('Range: bytes=0-99 is 206 with the first 100 bytes', async () => {
    const [expected, actual] = await both({ path: '/index.nginx-debian.html', headers: { range: 'bytes=0-99' } });
    assert.equal(expected.status, 206, 'nginx itself');
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('Range: bytes=-100 (a suffix) is 206 with the last 100 bytes', async () => {
    const [expected, actual] = await both({ path: '/index.nginx-debian.html', headers: { range: 'bytes=-100' } });
    assert.equal(expected.status, 206, 'nginx itself');
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('If-None-Match with the ETag of the first response is 304', async () => {
    const [first, firstOther] = await both({ path: '/index.nginx-debian.html' });
    const etags = { nginx: first.headers.etag, other: firstOther.headers.etag };
    assert.equal(typeof etags.nginx, 'string', 'nginx sent an ETag');
    const [expected, actual] = await both((server) => ({ path: '/index.nginx-debian.html', headers: { 'if-none-match': (server === 'nginx' ? etags.nginx : etags.other) ?? '' } }));
    assert.equal(expected.status, 304, 'nginx itself');
    // A 304 has no body and, in nginx, no Content-Length or Accept-Ranges.
    assert.deepEqual(pick(actual, HEADERS, true), pick(expected, HEADERS, true));
  });

  it('a missing file is 404 (try_files ... =404)', async () => {
    const [expected, actual] = await both({ path: '/no-such-file.html' });
    assert.equal(expected.status, 404, 'nginx itself');
    // The error page's body names the server: only the status and the type are compared.
    assert.deepEqual(pick(actual, ['content-type'], false), pick(expected, ['content-type'], false));
  });
});
