/**
 * h5bp's server-configs-nginx (test/fixtures/h5bp, unchanged) served by hitless and by Debian's
 * nginx side by side, in the two layouts h5bp ships: its CI's test/vhosts as conf.d (issue 13),
 * and its conf.d templates (example.com over HTTP and HTTPS, the default servers; issue 14). A
 * test site of small files under a temporary directory both servers read. Each server gets its
 * own copy of the tree with only ports, paths and the certificate patched.
 *
 * Compared on every response: the status and every header but Date and Server (h5bp's
 * `server_tokens off` still names the product, "nginx" or "hitless"); Expires as its distance from
 * Date, which is when each server made it (as it is when it is `epoch`'s fixed date); Location with the port (which differs by design) taken
 * out. The body where it is a file of the site, decompressed when the response is gzipped (both
 * must say Content-Encoding alike); not the bodies and lengths of the error pages the server
 * writes itself, which name the server. Every request is sent twice: without Accept-Encoding and
 * with `Accept-Encoding: gzip` (h5bp's compression.conf, gzip_vary, gzip_min_length).
 *
 * HITLESS_SIDE_BY_SIDE_AS_NGINX=1 runs a second nginx in hitless's place: the test's own check
 * that it compares only what nginx itself makes the same.
 */
import assert from 'node:assert/strict';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { freePort } from './helpers/masters.js';
import { configTest, copyTree, patchFile, send, startServer, type RequestSpec, type Response, type RunningServer } from './helpers/side-by-side.js';

const UNDER_TEST = process.env['HITLESS_SIDE_BY_SIDE_AS_NGINX'] === '1' ? 'nginx' : 'hitless';
const H5BP = fileURLToPath(new URL('../../../test/fixtures/h5bp/', import.meta.url));
const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
/** Headers that differ by design: the clock, and the product's name. */
const NOT_COMPARED = new Set(['date', 'server']);

/** The test site: a few files of each kind h5bp configures, named as h5bp's server-configs-test names them. */
const SITE: Readonly<Record<string, string | Buffer>> = {
  'test.html': '<!doctype html>\n<title>h5bp test</title>\n<p>test\n',
  'test.css': 'body { color: #222; }\n',
  'test.js': 'console.log("test");\n',
  'test.json': '{"test": true}\n',
  'test.svg': '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
  'test.txt': 'plain text\n',
  // Over gzip_min_length 256 of h5bp's compression.conf, so that the text types are compressed.
  'long.html': `<!doctype html>\n<title>long</title>\n${'<p>A paragraph of the test site.\n'.repeat(40)}`,
  'long.css': `${'.rule { margin: 0 auto; padding: 1em; }\n'.repeat(40)}`,
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
  /** nginx's status, checked first so that a broken setup cannot pass both sides; 0: nginx closes the connection (444). */
  readonly status: number;
}

const host = (name: string): Readonly<Record<string, string>> => ({ host: name });
const site = host('server.localhost');
const VHOST_CASES: readonly Case[] = [
  { name: 'an HTML page', request: { path: '/test.html', headers: site }, file: true, status: 200 },
  { name: 'a long HTML page', request: { path: '/long.html', headers: site }, file: true, status: 200 },
  { name: 'a style sheet', request: { path: '/test.css', headers: site }, file: true, status: 200 },
  { name: 'a long style sheet', request: { path: '/long.css', headers: site }, file: true, status: 200 },
  { name: 'a script', request: { path: '/test.js', headers: site }, file: true, status: 200 },
  { name: 'JSON', request: { path: '/test.json', headers: site }, file: true, status: 200 },
  { name: 'an SVG image', request: { path: '/test.svg', headers: site }, file: true, status: 200 },
  { name: 'plain text', request: { path: '/test.txt', headers: site }, file: true, status: 200 },
  { name: 'a web manifest', request: { path: '/test.webmanifest', headers: site }, file: true, status: 200 },
  { name: 'a font', request: { path: '/test.woff2', headers: site }, file: true, status: 200 },
  { name: 'an image', request: { path: '/test.png', headers: site }, file: true, status: 200 },
  { name: 'HEAD of a page', request: { method: 'HEAD', path: '/long.html', headers: site }, file: true, status: 200 },
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

const example = host('example.com');
const secure = { headers: example, tls: { servername: 'example.com' } };
const TEMPLATE_CASES: readonly Case[] = [
  { name: 'an HTML page', request: { path: '/long.html', headers: example }, file: true, status: 200 },
  { name: 'a style sheet', request: { path: '/long.css', headers: example }, file: true, status: 200 },
  { name: 'a font', request: { path: '/test.woff2', headers: example }, file: true, status: 200 },
  { name: 'an image', request: { path: '/test.png', headers: example }, file: true, status: 200 },
  { name: 'a missing file (error_page 404 /404.html)', request: { path: '/no-such-file.html', headers: example }, file: true, status: 404 },
  { name: 'a dot-file (deny all)', request: { path: '/.hidden_file', headers: example }, file: false, status: 403 },
  { name: 'www. to the bare name (return 301)', request: { path: '/test.html?a=1', headers: host('www.example.com') }, file: false, status: 301 },
  { name: 'an unknown name: the default server closes (return 444)', request: { path: '/', headers: host('unknown.example.org') }, file: false, status: 0 },
  { name: 'HTTPS: an HTML page', request: { path: '/long.html', ...secure }, file: true, status: 200 },
  { name: 'HTTPS: a style sheet', request: { path: '/long.css', ...secure }, file: true, status: 200 },
  { name: 'HTTPS: www. to the bare name', request: { path: '/x', headers: host('www.example.com'), tls: { servername: 'www.example.com' } }, file: false, status: 301 },
];

/** How one layout's conf.d/ is made from h5bp's tree, and where its site's root is. */
interface Layout {
  readonly name: string;
  readonly cases: readonly Case[];
  /** Fills `dir`/conf.d from the copied tree. */
  readonly confD: (dir: string) => void;
  readonly root: RegExp;
}

const LAYOUTS: readonly Layout[] = [
  {
    name: 'its test vhosts',
    cases: VHOST_CASES,
    // As h5bp's CI runs it: test/vhosts mounted as conf.d/, in place of the shipped one.
    confD: (dir) => {
      rmSync(join(dir, 'conf.d'), { recursive: true });
      copyTree(join(dir, 'test/vhosts'), join(dir, 'conf.d'));
    },
    root: /root \/var\/www\/server\.localhost;/g,
  },
  {
    name: 'its conf.d templates',
    cases: TEMPLATE_CASES,
    // As h5bp's README says to use them: a template copied into conf.d/ beside the default
    // servers (no-ssl.default.conf; .default.conf, a dot-file, is not read by `include conf.d/*.conf`).
    confD: (dir) => {
      for (const template of readdirSync(join(dir, 'conf.d/templates'))) cpSync(join(dir, 'conf.d/templates', template), join(dir, 'conf.d', template));
    },
    root: /root \/var\/www\/example\.com\/public;/g,
  },
];

/** A copy of h5bp's tree under `dir` in `layout`, on the given loopback ports; the arguments that run it. */
function h5bpCopy(layout: Layout, dir: string, www: string, http: number, https: number): string[] {
  copyTree(H5BP, dir);
  mkdirSync(join(dir, 'logs'));
  layout.confD(dir);
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
    if (!vhost.endsWith('.conf') || vhost.startsWith('.')) continue;
    const text = readFileSync(path, 'utf8');
    // Every vhost listens on 80 or 443 (and on [::]: the same, left out here).
    const patches = ([
      [/^\s*listen \[::\]:\d+[^;]*;\n/gm, ''],
      [/^(\s*)listen 80\b/gm, `$1listen 127.0.0.1:${http}`],
      [/^(\s*)listen 443\b/gm, `$1listen 127.0.0.1:${https}`],
      [layout.root, `root ${www};`],
    ] as const).filter(([pattern]) => new RegExp(pattern.source, 'm').test(text));
    assert.ok(patches.length >= 2, `${vhost}: no listen to patch`);
    patchFile(path, patches);
  }
  return ['-p', `${dir}/`, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'logs/error.log')];
}

/** A response, or 'closed' when the server closed the connection without one (444). */
async function exchange(port: number, request: RequestSpec): Promise<Response | 'closed'> {
  try {
    return await send(port, request);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ECONNRESET' || (err as Error).message === 'socket hang up') return 'closed';
    throw err;
  }
}

/** What is compared of a response (see the file's comment). */
function comparable(response: Response | 'closed', port: number, file: boolean): Record<string, unknown> {
  if (response === 'closed') return { closed: true };
  const picked: Record<string, unknown> = { status: response.status };
  for (const [name, value] of Object.entries(response.headers).sort(([a], [b]) => a.localeCompare(b))) {
    if (NOT_COMPARED.has(name)) continue;
    if (!file && name === 'content-length') continue;
    picked[name] = value;
  }
  if (typeof picked['location'] === 'string') picked['location'] = picked['location'].replace(`:${port}/`, ':PORT/');
  const date = Date.parse(response.headers['date'] ?? '');
  // `expires epoch` is a fixed date (1970); any other is relative to the response's own Date.
  if (typeof picked['expires'] === 'string' && Date.parse(picked['expires']) > 86_400_000) picked['expires'] = `Date + ${(Date.parse(picked['expires']) - date) / 1000} s`;
  if (file) picked['body'] = (response.headers['content-encoding'] === 'gzip' && response.body.length > 0 ? gunzipSync(response.body) : response.body).toString('latin1');
  return picked;
}

for (const layout of LAYOUTS) {
  describe(`h5bp's server-configs-nginx with ${layout.name}: ${UNDER_TEST} serves what nginx serves`, () => {
    const base = mkdtempSync(join(tmpdir(), 'hitless-h5bp-'));
    // `user www-data` in h5bp's nginx.conf: the workers must be able to read the site.
    chmodSync(base, 0o755);
    const www = join(base, 'www');
    const servers: RunningServer[] = [];
    const ports = { nginx: { http: 0, https: 0 }, other: { http: 0, https: 0 } };
    let otherArgs: string[] = [];

    before(async () => {
      for (const [relative, content] of Object.entries(SITE)) {
        mkdirSync(join(www, relative, '..'), { recursive: true });
        writeFileSync(join(www, relative), content);
      }
      for (const side of [ports.nginx, ports.other]) {
        side.http = await freePort();
        side.https = await freePort();
      }
      const nginxArgs = h5bpCopy(layout, join(base, 'nginx'), www, ports.nginx.http, ports.nginx.https);
      otherArgs = h5bpCopy(layout, join(base, UNDER_TEST === 'nginx' ? 'nginx-2' : 'hitless'), www, ports.other.http, ports.other.https);
      const nginxTest = configTest('nginx', nginxArgs);
      assert.equal(nginxTest.status, 0, `nginx -t on its copy: ${nginxTest.output}`);
      servers.push(await startServer('nginx', [...nginxArgs, '-g', 'daemon off;'], [ports.nginx.http, ports.nginx.https]));
      servers.push(await startServer(UNDER_TEST, [...otherArgs, '-g', 'daemon off;'], [ports.other.http, ports.other.https]));
    });
    after(async () => {
      await Promise.all(servers.map((server) => server.stop()));
      rmSync(base, { recursive: true, force: true });
    });

    it(`${UNDER_TEST} -t accepts h5bp's nginx.conf with ${layout.name}`, () => {
      const result = configTest(UNDER_TEST, otherArgs);
      assert.equal(result.status, 0, result.output);
    });

    for (const test of layout.cases) {
      for (const encoding of [undefined, 'gzip']) {
        const request: RequestSpec = { ...test.request, headers: { ...test.request.headers, ...(encoding === undefined ? {} : { 'accept-encoding': encoding }) } };
        it(`${request.method ?? 'GET'} ${request.headers?.['host'] ?? ''}${request.path}${encoding === undefined ? '' : ` (Accept-Encoding: ${encoding})`}: ${test.name}`, async () => {
          const portOf = (side: { http: number; https: number }): number => (request.tls === undefined ? side.http : side.https);
          const expected = await exchange(portOf(ports.nginx), request);
          assert.equal(expected === 'closed' ? 0 : expected.status, test.status, 'nginx itself');
          const actual = await exchange(portOf(ports.other), request);
          const got = comparable(actual, portOf(ports.other), test.file);
          const want = comparable(expected, portOf(ports.nginx), test.file);
          // hitless takes Expires's now and Date's at two moments of one response (nginx: one cached
          // time per event loop turn): under load they may fall a second apart.
          const [g, w] = [/^Date \+ (-?\d+) s$/.exec(String(got['expires'])), /^Date \+ (-?\d+) s$/.exec(String(want['expires']))];
          if (g !== null && w !== null && Math.abs(Number(g[1]) - Number(w[1])) <= 1) got['expires'] = want['expires'];
          assert.deepEqual(got, want);
        });
      }
    }
  });
}
