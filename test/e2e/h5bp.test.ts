/**
 * h5bp's server-configs-nginx (test/fixtures/h5bp, unchanged) with its test/vhosts as conf.d,
 * served by hitless and by Debian's nginx side by side (issue 13's "Done when"), as h5bp's own CI
 * runs it: a test site of small files under /var/www/server.localhost (here a temporary
 * directory both servers read), the four vhosts, HTTP and HTTPS. Each server gets its own copy of
 * the tree with only ports, paths and the certificate patched.
 *
 * Compared: the status and the headers of issue 13's static file serving (Content-Type, ETag,
 * Last-Modified, Content-Length, Location), and the body where it is a file of the site. Not
 * compared: the headers h5bp adds with add_header, expires and gzip (Cache-Control, X-Content-
 * Type-Options, Referrer-Policy, Vary, ...: issue 14), and the bodies and lengths of the error
 * pages the server writes itself, which name the server. h5bp's `charset utf-8` is part of
 * Content-Type, and so compared.
 *
 * HITLESS_SIDE_BY_SIDE_AS_NGINX=1 runs a second nginx in hitless's place: the test's own check
 * that it compares only what nginx itself makes the same.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from './helpers/masters.js';
import { configTest, copyTree, patchFile, pick, send, startServer, type RequestSpec, type Response, type RunningServer } from './helpers/side-by-side.js';

const UNDER_TEST = process.env['HITLESS_SIDE_BY_SIDE_AS_NGINX'] === '1' ? 'nginx' : 'hitless';
const H5BP = fileURLToPath(new URL('../../../test/fixtures/h5bp/', import.meta.url));
const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
/** What issue 13 serves: compared on every response. */
const HEADERS = ['content-type', 'etag', 'last-modified', 'location'];

/** The test site: a few files of each kind h5bp configures, named as h5bp's server-configs-test names them. */
const SITE: Readonly<Record<string, string | Buffer>> = {
  'test.html': '<!doctype html>\n<title>h5bp test</title>\n<p>test\n',
  'test.css': 'body { color: #222; }\n',
  'test.js': 'console.log("test");\n',
  'test.json': '{"test": true}\n',
  'test.svg': '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
  'test.txt': 'plain text\n',
  'test.webmanifest': '{"name": "test"}\n',
  // Bytes only: the type comes from the extension.
  'test.woff2': Buffer.from('774f463200010000000000000000000000000000', 'hex'),
  'test.png': Buffer.from('89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360000000000500010d0a2db40000000049454e44ae426082', 'hex'),
  '404.html': '<!doctype html>\n<title>Page Not Found</title>\n<p>Sorry, but the page you were trying to view does not exist.\n',
  '.hidden_file': 'hidden\n',
  '.hidden_directory/test.html': 'hidden\n',
  '.well-known/test.html': 'well known\n',
  '.well-known/.hidden_file': 'hidden\n',
  'test/.gitignore': '*\n',
  'test.bak': 'backup\n',
  'test.conf': 'conf\n',
};

interface Case {
  readonly name: string;
  readonly request: RequestSpec;
  /** True when the body is a file of the site: then its length and bytes are compared too. */
  readonly file: boolean;
  /** nginx's status, checked first so that a broken setup cannot pass both sides. */
  readonly status: number;
}

const host = (name: string): Readonly<Record<string, string>> => ({ host: name });
const site = host('server.localhost');
const CASES: readonly Case[] = [
  { name: 'an HTML page', request: { path: '/test.html', headers: site }, file: true, status: 200 },
  { name: 'a style sheet', request: { path: '/test.css', headers: site }, file: true, status: 200 },
  { name: 'a script', request: { path: '/test.js', headers: site }, file: true, status: 200 },
  { name: 'JSON', request: { path: '/test.json', headers: site }, file: true, status: 200 },
  { name: 'an SVG image', request: { path: '/test.svg', headers: site }, file: true, status: 200 },
  { name: 'plain text', request: { path: '/test.txt', headers: site }, file: true, status: 200 },
  { name: 'a web manifest', request: { path: '/test.webmanifest', headers: site }, file: true, status: 200 },
  { name: 'a font', request: { path: '/test.woff2', headers: site }, file: true, status: 200 },
  { name: 'an image', request: { path: '/test.png', headers: site }, file: true, status: 200 },
  { name: 'HEAD of a page', request: { method: 'HEAD', path: '/test.html', headers: site }, file: true, status: 200 },
  { name: 'a cache-busting name (try_files $uri $1.$2)', request: { path: '/test.12345.css', headers: site }, file: true, status: 200 },
  { name: 'a missing file (error_page 404 /404.html)', request: { path: '/no-such-file.html', headers: site }, file: true, status: 404 },
  { name: 'a dot-file (deny all)', request: { path: '/.hidden_file', headers: site }, file: false, status: 403 },
  { name: 'a file in a dot-directory', request: { path: '/.hidden_directory/test.html', headers: site }, file: false, status: 403 },
  { name: 'a file under /.well-known/', request: { path: '/.well-known/test.html', headers: site }, file: true, status: 200 },
  { name: 'a dot-file under /.well-known/', request: { path: '/.well-known/.hidden_file', headers: site }, file: false, status: 403 },
  { name: 'a backup file (deny all)', request: { path: '/test.bak', headers: site }, file: false, status: 403 },
  { name: 'a directory without a slash (301)', request: { path: '/test', headers: site }, file: false, status: 301 },
  { name: 'a directory without an index (403)', request: { path: '/test/', headers: site }, file: false, status: 403 },
  { name: 'www. to the bare name (return 301)', request: { path: '/test.html?a=1', headers: host('www.server.localhost') }, file: false, status: 301 },
  { name: 'the bare name to www. (return 301)', request: { path: '/test.html', headers: host('www-server.localhost') }, file: false, status: 301 },
  { name: 'an unknown name over HTTP: the default server to https (return 301)', request: { path: '/x', headers: host('unknown.localhost') }, file: false, status: 301 },
  { name: 'HTTPS: an HTML page', request: { path: '/test.html', headers: host('secure.server.localhost'), tls: { servername: 'secure.server.localhost' } }, file: true, status: 200 },
  { name: 'HTTPS: www. to the bare name', request: { path: '/test.html', headers: host('www.secure.server.localhost'), tls: { servername: 'www.secure.server.localhost' } }, file: false, status: 301 },
];

/** A copy of h5bp's tree under `dir`, its vhosts as conf.d/, on the given loopback ports. */
function h5bpCopy(dir: string, www: string, http: number, https: number): string[] {
  copyTree(H5BP, dir);
  mkdirSync(join(dir, 'logs'));
  copyTree(join(dir, 'test/vhosts'), join(dir, 'conf.d'));
  patchFile(join(dir, 'nginx.conf'), [
    [/^error_log \/var\/log\/nginx\/error\.log warn;$/m, `error_log ${dir}/logs/error.log warn;`],
    [/^pid \/var\/run\/nginx\.pid;$/m, `pid ${dir}/nginx.pid;`],
    [/access_log \/var\/log\/nginx\/access\.log main;/, `access_log ${dir}/logs/access.log main;`],
  ]);
  patchFile(join(dir, 'h5bp/tls/certificate_files.conf'), [
    [/\/etc\/nginx\/certs\/default\.crt/, join(TLS, 'a-rsa.fullchain.crt')],
    [/\/etc\/nginx\/certs\/default\.key/, join(TLS, 'a-rsa.key')],
  ]);
  for (const vhost of readdirSync(join(dir, 'conf.d'))) {
    const path = join(dir, 'conf.d', vhost);
    const text = readFileSync(path, 'utf8');
    // Every vhost listens on 80 or 443 (and on [::]: the same, left out here); only server.localhost has a root.
    const patches = ([
      [/^\s*listen \[::\]:\d+[^;]*;\n/gm, ''],
      [/^(\s*)listen 80\b/gm, `$1listen 127.0.0.1:${http}`],
      [/^(\s*)listen 443\b/gm, `$1listen 127.0.0.1:${https}`],
      [/root \/var\/www\/server\.localhost;/g, `root ${www};`],
    ] as const).filter(([pattern]) => new RegExp(pattern.source, 'm').test(text));
    assert.ok(patches.length >= 2, `${vhost}: no listen to patch`);
    patchFile(path, patches);
  }
  return ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs/error.log')];
}

describe(`h5bp's server-configs-nginx with its test vhosts: ${UNDER_TEST} serves what nginx serves`, () => {
  const base = mkdtempSync(join(tmpdir(), 'hitless-h5bp-'));
  // `user www-data` in h5bp's nginx.conf: the workers must be able to read the site.
  chmodSync(base, 0o755);
  const www = join(base, 'www');
  const servers: RunningServer[] = [];
  const ports = { nginx: { http: 0, https: 0 }, other: { http: 0, https: 0 } };
  let otherArgs: string[] = [];
  let started: Promise<void> = Promise.resolve();

  before(async () => {
    for (const [relative, content] of Object.entries(SITE)) {
      mkdirSync(join(www, relative, '..'), { recursive: true });
      writeFileSync(join(www, relative), content);
    }
    for (const side of [ports.nginx, ports.other]) {
      side.http = await freePort();
      side.https = await freePort();
    }
    const nginxArgs = h5bpCopy(join(base, 'nginx'), www, ports.nginx.http, ports.nginx.https);
    otherArgs = h5bpCopy(join(base, UNDER_TEST === 'nginx' ? 'nginx-2' : 'hitless'), www, ports.other.http, ports.other.https);
    const nginxTest = configTest('nginx', nginxArgs);
    assert.equal(nginxTest.status, 0, `nginx -t on its copy: ${nginxTest.output}`);
    servers.push(await startServer('nginx', [...nginxArgs, '-g', 'daemon off;'], [ports.nginx.http, ports.nginx.https]));
    // A server that does not start fails every comparison with its reason, not the -t test.
    started = startServer(UNDER_TEST, [...otherArgs, '-g', 'daemon off;'], [ports.other.http, ports.other.https]).then((server) => void servers.push(server));
    await started.catch(() => undefined);
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    rmSync(base, { recursive: true, force: true });
  });

  it(`${UNDER_TEST} -t accepts h5bp's nginx.conf with the test vhosts`, () => {
    const result = configTest(UNDER_TEST, otherArgs);
    assert.equal(result.status, 0, result.output);
  });

  /** The parts compared, with the port (which differs by design) taken out of Location. */
  function comparable(response: Response, port: number, file: boolean): Record<string, unknown> {
    const picked = pick(response, file ? [...HEADERS, 'content-length'] : HEADERS, file);
    if (typeof picked['location'] === 'string') picked['location'] = picked['location'].replace(`:${port}/`, ':PORT/');
    return picked;
  }

  for (const test of CASES) {
    it(`${test.request.method ?? 'GET'} ${test.request.headers?.['host'] ?? ''}${test.request.path}: ${test.name}`, async () => {
      const portOf = (side: { http: number; https: number }): number => (test.request.tls === undefined ? side.http : side.https);
      const expected = await send(portOf(ports.nginx), test.request);
      assert.equal(expected.status, test.status, 'nginx itself');
      await started;
      const actual = await send(portOf(ports.other), test.request);
      assert.deepEqual(comparable(actual, portOf(ports.other), test.file), comparable(expected, portOf(ports.nginx), test.file));
    });
  }
});
