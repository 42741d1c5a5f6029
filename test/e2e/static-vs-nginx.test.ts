/**
 * Static files side by side with Debian's nginx: one document root, one configuration (but the
 * port), the same requests to both; status and the headers nginx's static, index, autoindex,
 * range and not-modified modules decide must be equal, and so must the bodies once the signature
 * of the built-in pages, the port and the multipart boundary are set aside.
 */
import assert from 'node:assert/strict';
import { chmodSync, lchownSync, mkdirSync, readFileSync, renameSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHitlessIn as startHitless } from './helpers/side-by-side.js';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { RawClient } from '../http/helpers.js';

interface Answer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | undefined>>;
  readonly body: string;
}

const COMPARED = ['content-type', 'content-length', 'last-modified', 'etag', 'accept-ranges', 'content-range', 'location'] as const;

function fetch(port: number, path: string, method: string, headers: Record<string, string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, headers: { host: 'localhost', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => {
        const out: Record<string, string | undefined> = {};
        for (const name of COMPARED) out[name] = res.headers[name] as string | undefined;
        resolve({ status: res.statusCode ?? 0, headers: out, body: Buffer.concat(chunks).toString('latin1') });
      });
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`timeout on ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

/** What may differ between the two servers: the signature, the port, the boundary. */
function normalize(answer: Answer, port: number): Answer {
  const fix = (text: string): string => text.replace(/<center>(hitless(?:\/[\d.]+)?|nginx\/[\d.]+)<\/center>/g, '<center>nginx</center>').replaceAll(`:${port}`, ':PORT').replace(/\d{20}/g, 'BOUNDARY');
  const headers: Record<string, string | undefined> = {};
  for (const [name, value] of Object.entries(answer.headers)) headers[name] = value === undefined ? undefined : fix(value);
  // The built-in pages differ in length by the signature's.
  if (answer.status >= 300 && headers['content-type'] === 'text/html') headers['content-length'] = undefined;
  return { status: answer.status, headers, body: fix(answer.body) };
}

describe('static files: hitless and nginx side by side', () => {
  let files: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  let hitlessPort = 0;
  let nginxPort = 0;

  before(async () => {
    files = tempDir({
      'www/index.html': '<html>index</html>\n',
      'www/a.txt': 'The quick brown fox jumps over the lazy dog.\n',
      'www/style.css': 'body{}',
      'www/dir/b.txt': 'b',
      'www/dir/sub/c.txt': 'c',
      'www/dir/long-name-of-more-than-fifty-characters-in-total-for-cutting.txt': 'long',
      'www/noindex/x.bin': 'x',
      'www/dir sp/y.txt': 'y',
      'outside/secret.txt': 'outside',
      'aliased/z.txt': 'z',
    });
    // Long UTF-8 names, cut in characters under a utf-8 charset (ngx_http_autoindex_html()).
    const u8 = join(files.path, 'www/u8');
    mkdirSync(u8);
    for (const name of [`long-${'\u0444'.repeat(45)}`, `esc-<>&-${'\u0444'.repeat(45)}`, `short-${'\u0444'.repeat(3)}`]) {
      writeFileSync(join(u8, name), '');
      utimesSync(join(u8, name), 1_600_000_000, 1_600_000_000);
    }
    writeFileSync(join(files.path, 'www/big.bin'), Buffer.alloc(200_000, 'xyz'));
    symlinkSync(join(files.path, 'outside/secret.txt'), join(files.path, 'www/link.txt'));
    writeFileSync(join(files.path, 'www/ofc.txt'), 'first\n');
    // if_not_owner: a link owned as its target is (root) is followed, one owned by nobody is not.
    symlinkSync(join(files.path, 'www/a.txt'), join(files.path, 'www/mine.txt'));
    symlinkSync(join(files.path, 'www/a.txt'), join(files.path, 'www/theirs.txt'));
    lchownSync(join(files.path, 'www/theirs.txt'), 65534, 65534);
    // from=: a link in the part of the path before from= is not checked.
    symlinkSync(join(files.path, 'www'), join(files.path, 'linkroot'));
    mkdirSync(join(files.path, 'prefix'));
    // nginx's workers run as nobody: the tree must be readable by others.
    chmodSync(files.path, 0o755);
    const when = 1_600_000_000;
    for (const file of ['www/index.html', 'www/a.txt', 'www/dir/b.txt', 'www/dir/sub/c.txt', 'www/dir/long-name-of-more-than-fifty-characters-in-total-for-cutting.txt']) utimesSync(join(files.path, file), when, when);
    utimesSync(join(files.path, 'www/dir/sub'), when, when);
    const www = join(files.path, 'www');
    const conf = (port: number): string => `events {}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    server {
        listen 127.0.0.1:${port};
        root ${www};
        location /dir/ { autoindex on; }
        location /u8/ { autoindex on; charset utf-8; }
        location /u8bytes/ { alias ${www}/u8/; autoindex on; }
        location /json/ { alias ${www}/dir/; autoindex on; autoindex_format json; }
        location /xml/ { alias ${www}/dir/; autoindex on; autoindex_format xml; }
        location /nolinks/ { alias ${www}/; disable_symlinks on; }
        location ~ ^/re/(.+)$ { alias ${files.path}/aliased/$1; }
        location /tf/ { try_files $uri $uri/ /a.txt; }
        location /few/ { alias ${www}/; max_ranges 2; }
        location /owner/ { alias ${www}/; disable_symlinks if_not_owner; }
        location /viaroot/ { alias ${files.path}/linkroot/; disable_symlinks on from=${files.path}/linkroot; }
        location /viaroot-all/ { alias ${files.path}/linkroot/; disable_symlinks on; }
        location /owner-from/ { alias ${files.path}/linkroot/; disable_symlinks if_not_owner from=${files.path}/linkroot; }
        location /cached/ { alias ${www}/; open_file_cache max=10 inactive=60s; open_file_cache_valid 1h; open_file_cache_errors on; }
        location /threads/ { alias ${www}/; aio threads; }
        location /lm/ { alias ${www}/; add_header Last-Modified "Mon, 28 Sep 1970 06:00:00 GMT"; }
        location /nolm/ { alias ${www}/; add_header Last-Modified ""; }
    }
}
`;
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': conf(nginxPort) }, nginxPort);
    hitlessPort = await freePort();
    const hitlessConf = join(files.path, 'prefix/hitless.conf');
    writeFileSync(hitlessConf, conf(hitlessPort));
    stopHitless = await startHitless(join(files.path, 'prefix'), hitlessConf, hitlessPort);
  });

  after(async () => {
    await stopHitless?.();
    await nginx?.stop();
    files?.remove();
  });

  const cases: [string, string, Record<string, string>][] = [
    ['GET', '/index.html', {}],
    ['HEAD', '/index.html', {}],
    ['GET', '/', {}],
    ['GET', '/a.txt', {}],
    ['GET', '/style.css', {}],
    ['GET', '/big.bin', {}],
    ['GET', '/dir', {}],
    ['GET', '/dir?x=1', {}],
    ['GET', '/dir/', {}],
    ['GET', '/json/', {}],
    ['GET', '/xml/', {}],
    ['GET', '/noindex/', {}],
    ['GET', '/missing.txt', {}],
    ['GET', '/a.txt', { range: 'bytes=0-4' }],
    ['GET', '/a.txt', { range: 'bytes=-5' }],
    ['GET', '/a.txt', { range: 'bytes=10-' }],
    ['GET', '/a.txt', { range: 'bytes=0-1,5-9' }],
    ['GET', '/a.txt', { range: 'bytes=1000-2000' }],
    ['GET', '/a.txt', { range: 'bytes=5-1' }],
    ['GET', '/a.txt', { range: `bytes=${Array.from({ length: 1000 }, (_, i) => `${i % 40}-${i % 40}`).join(',')}` }],
    ['GET', '/big.bin', { range: `bytes=${Array.from({ length: 500 }, (_, i) => `${i * 300}-${i * 300 + 10}`).join(',')}` }],
    ['GET', '/few/a.txt', { range: 'bytes=0-1,3-4,6-7' }],
    ['GET', '/a.txt', { range: 'bytes=0-4', 'if-range': '"nope"' }],
    ['GET', '/u8/', {}],
    ['GET', '/u8bytes/', {}],
    // If-Range is judged against the Last-Modified that add_header leaves (ngx_http_range_parse() after the headers filter).
    ['GET', '/lm/a.txt', { range: 'bytes=0-4', 'if-range': 'Mon, 28 Sep 1970 06:00:00 GMT' }],
    ['GET', '/lm/a.txt', { range: 'bytes=0-4', 'if-range': 'Tue, 29 Sep 1970 06:00:00 GMT' }],
    ['GET', '/nolm/a.txt', { range: 'bytes=0-4', 'if-range': 'Mon, 28 Sep 1970 06:00:00 GMT' }],
    ['GET', '/a.txt', { 'if-none-match': '"5f5e1000-2d"' }],
    ['GET', '/a.txt', { 'if-none-match': '"other"' }],
    ['GET', '/a.txt', { 'if-modified-since': new Date(1_600_000_000_000).toUTCString() }],
    ['GET', '/a.txt', { 'if-match': '"other"' }],
    ['GET', '/a.txt', { 'if-unmodified-since': new Date(1_500_000_000_000).toUTCString() }],
    ['GET', '/link.txt', {}],
    ['GET', '/nolinks/link.txt', {}],
    ['GET', '/nolinks/a.txt', {}],
    ['GET', '/re/z.txt', {}],
    ['GET', '/tf/nothing', {}],
    ['GET', '/dir/sub', {}],
    ['DELETE', '/a.txt', {}],
    ['DELETE', '/noindex/', {}],
    ['GET', '/dir%20sp', {}],
    ['GET', '/dir%20sp/y.txt', {}],
    ['GET', '/owner/mine.txt', {}],
    ['GET', '/owner/theirs.txt', {}],
    ['GET', '/owner/a.txt', {}],
    ['GET', '/viaroot/a.txt', {}],
    ['GET', '/viaroot/theirs.txt', {}],
    ['GET', '/viaroot-all/a.txt', {}],
    ['GET', '/owner-from/theirs.txt', {}],
    ['GET', '/owner-from/mine.txt', {}],
    ['GET', '/cached/a.txt', {}],
    ['GET', '/cached/a.txt', { range: 'bytes=0-4' }],
    ['GET', '/cached/dir', {}],
    ['GET', '/threads/big.bin', {}],
    ['GET', '/threads/a.txt', { range: 'bytes=0-1,5-9' }],
    ['HEAD', '/threads/index.html', {}],
    ['GET', '/threads/missing.txt', {}],
    ['GET', '/threads/nolinks/link.txt', {}],
  ];

  for (const [method, path, headers] of cases) {
    it(`${method} ${path} ${JSON.stringify(headers).slice(0, 60)}`, async () => {
      const ours = normalize(await fetch(hitlessPort, path, method, headers), hitlessPort);
      const theirs = normalize(await fetch(nginxPort, path, method, headers), nginxPort);
      assert.deepEqual(ours, theirs);
    });
  }

  it('open_file_cache keeps a descriptor and a lookup error until open_file_cache_valid runs out, as nginx does', async () => {
    const both = async (path: string): Promise<[Answer, Answer]> => [
      normalize(await fetch(hitlessPort, path, 'GET', {}), hitlessPort),
      normalize(await fetch(nginxPort, path, 'GET', {}), nginxPort),
    ];
    const www = join(files.path, 'www');
    let [ours, theirs] = await both('/cached/ofc.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.body, 'first\n');
    [ours, theirs] = await both('/cached/later.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.status, 404);
    // Another inode under the same name, and the missing file made: the caches do not look yet.
    writeFileSync(join(www, 'ofc.new'), 'second, and longer\n');
    renameSync(join(www, 'ofc.new'), join(www, 'ofc.txt'));
    writeFileSync(join(www, 'later.txt'), 'here now\n');
    [ours, theirs] = await both('/cached/ofc.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.body, 'first\n');
    [ours, theirs] = await both('/cached/later.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.status, 404);
    // A level without the cache sees the files as they are.
    [ours, theirs] = await both('/ofc.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.body, 'second, and longer\n');
    [ours, theirs] = await both('/later.txt');
    assert.deepEqual(ours, theirs);
    assert.equal(ours.status, 200);
  });

  it('answers traversal and bad escapes as nginx does', async () => {
    for (const path of ['/../outside/secret.txt', '/%2e%2e/outside/secret.txt', '/dir/..%2f..%2foutside/secret.txt', '/a.txt%00', '/dir/%2e%2e/a.txt', '/dir%2fb.txt']) {
      const status = async (port: number): Promise<number> => {
        const client = await RawClient.connect(port);
        try {
          return (await client.get(path)).status;
        } finally {
          client.destroy();
        }
      };
      assert.equal(await status(hitlessPort), await status(nginxPort), path);
    }
  });
});

describe("Debian's default site: hitless and nginx side by side", () => {
  let files: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  let hitlessPort = 0;
  let nginxPort = 0;

  before(async () => {
    files = tempDir();
    // The site as Debian ships it, on a free loopback port; mime.types as the stock nginx.conf includes it.
    const site = readFileSync('/etc/nginx/sites-enabled/default', 'utf8').replace(/^\s*listen \[::\]:80 default_server;$/m, '');
    const conf = (port: number): string => `events {}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
${site.replace(/listen 80 default_server;/, `listen 127.0.0.1:${port} default_server;`)}
}
`;
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': conf(nginxPort) }, nginxPort);
    hitlessPort = await freePort();
    mkdirSync(join(files.path, 'prefix'));
    const hitlessConf = join(files.path, 'prefix/hitless.conf');
    writeFileSync(hitlessConf, conf(hitlessPort));
    stopHitless = await startHitless(join(files.path, 'prefix'), hitlessConf, hitlessPort);
  });

  after(async () => {
    await stopHitless?.();
    await nginx?.stop();
    files?.remove();
  });

  it('serves index.nginx-debian.html, a range of it and a 304 the same way', async () => {
    const first = await fetch(nginxPort, '/index.nginx-debian.html', 'GET', {});
    assert.equal(first.status, 200);
    const etag = first.headers.etag ?? '';
    for (const [path, headers] of [
      ['/', {}],
      ['/index.nginx-debian.html', {}],
      ['/index.nginx-debian.html', { range: 'bytes=10-99' }],
      ['/index.nginx-debian.html', { 'if-none-match': etag }],
      ['/nothing-here', {}],
    ] as const) {
      const ours = normalize(await fetch(hitlessPort, path, 'GET', { ...headers }), hitlessPort);
      const theirs = normalize(await fetch(nginxPort, path, 'GET', { ...headers }), nginxPort);
      assert.deepEqual(ours, theirs, `${path} ${JSON.stringify(headers)}`);
    }
  });
});
