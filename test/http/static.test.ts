import assert from 'node:assert/strict';
import { mkdirSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { errorOf, get, load, RawClient, serve, type Served } from './helpers.js';

const MTIME = 1_700_000_000;

describe('static files: root, alias, index, autoindex, try_files, conditionals, ranges', () => {
  let dir: TempDir;
  let served: Served;
  let logFile = '';
  const big = Buffer.alloc(3 * 1024 * 1024 + 17, 'abcdefghij');

  before(async () => {
    dir = tempDir({
      'www/a.txt': 'hello world\n',
      'www/page.html': '<p>page</p>',
      'www/sub/index.html': 'sub index',
      'www/list/one.txt': '1',
      'www/list/b dir/x': 'x',
      'www/noindex/f': 'f',
      'other/b.txt': 'outside',
      'aliased/c.txt': 'via alias',
      'regex/d.txt': 'regex alias',
      'fallback.txt': 'fallback',
    });
    writeFileSync(join(dir.path, 'www/big.bin'), big);
    for (const file of ['www/a.txt', 'www/page.html']) utimesSync(join(dir.path, file), MTIME, MTIME);
    symlinkSync(join(dir.path, 'other/b.txt'), join(dir.path, 'www/link.txt'));
    mkdirSync(join(dir.path, 'logs'));
    logFile = join(dir.path, 'logs/error.log');
    const www = join(dir.path, 'www');
    served = await serve(
      `error_log ${logFile} info;
      http {
        types { text/plain txt; text/html html; }
        server {
          listen 127.0.0.1:8080;
          root ${www};
          location /alias/ { alias ${join(dir.path, 'aliased')}/; }
          location ~ ^/re/(.*)$ { alias ${join(dir.path, 'regex')}/$1; }
          location /list/ { autoindex on; }
          location /json/ { alias ${join(dir.path, 'www/list')}/; autoindex on; autoindex_format json; }
          location /tf/ { try_files $uri /fallback-uri; }
          location = /fallback-uri { internal; return 200 "fell back"; }
          location /tf-code/ { try_files $uri =410; }
          location /tf-named/ { try_files $uri @named; }
          location @named { return 200 "named $uri"; }
          location /nolinks/ { alias ${www}/; disable_symlinks on; }
          location /quiet/ { alias ${www}/; log_not_found off; }
          location /ranges1/ { alias ${www}/; max_ranges 1; }
          location /noetag/ { alias ${www}/; etag off; }
          location /relative/ { alias ${www}/; absolute_redirect off; }
          location /vars/ { return 200 "$document_root|$request_filename|$realpath_root"; }
          location /err/ { alias ${www}/; error_page 404 /fallback-uri; }
        }
      }`,
      dir.path,
      new ErrorLog([{ file: logFile, level: 'info' }]),
    );
  });

  after(async () => {
    await served?.stop();
    dir?.remove();
  });

  it('serves a file with nginx\'s headers', async () => {
    const reply = await get(served.port, '/a.txt');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello world\n');
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.headers['content-length'], '12');
    assert.equal(reply.headers['last-modified'], new Date(MTIME * 1000).toUTCString());
    assert.equal(reply.headers.etag, `"${MTIME.toString(16)}-c"`);
    assert.equal(reply.headers['accept-ranges'], 'bytes');
  });

  it('answers HEAD with the headers and no body', async () => {
    const reply = await get(served.port, '/a.txt', { method: 'HEAD' });
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-length'], '12');
    assert.equal(reply.body, '');
  });

  it('streams a large file whole', async () => {
    const reply = await get(served.port, '/big.bin');
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, big.length);
    assert.equal(reply.body, big.toString('latin1'));
  });

  it('answers a missing file with 404 and logs open() as nginx does', async () => {
    const reply = await get(served.port, '/nope.txt');
    assert.equal(reply.status, 404);
    const { readFileSync } = await import('node:fs');
    assert.match(readFileSync(logFile, 'utf8'), /\[error\] .*open\(\) ".*\/www\/nope\.txt" failed \(2: No such file or directory\), client: 127\.0\.0\.1/);
  });

  it('log_not_found off keeps a 404 out of the log', async () => {
    const { readFileSync } = await import('node:fs');
    assert.equal((await get(served.port, '/quiet/quiet-missing')).status, 404);
    assert.doesNotMatch(readFileSync(logFile, 'utf8'), /quiet-missing/);
  });

  it('redirects a directory without a slash, keeping the arguments', async () => {
    const reply = await get(served.port, '/sub?x=1');
    assert.equal(reply.status, 301);
    assert.equal(reply.headers.location, `http://localhost:${served.port}/sub/?x=1`);
    const relative = await get(served.port, '/relative/sub');
    assert.equal(relative.headers.location, '/relative/sub/');
  });

  it('serves the index by an internal redirect', async () => {
    const reply = await get(served.port, '/sub/');
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'sub index');
    assert.equal(reply.headers['content-type'], 'text/html');
  });

  it('answers a directory without index or autoindex with 403', async () => {
    assert.equal((await get(served.port, '/noindex/')).status, 403);
  });

  it('lists a directory as nginx\'s HTML', async () => {
    const reply = await get(served.port, '/list/');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'text/html');
    const one = statSync(join(dir.path, 'www/list/one.txt'));
    const d = new Date(Math.floor(one.mtimeMs / 1000) * 1000);
    const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
    const p = (n: number): string => String(n).padStart(2, '0');
    const when = `${p(d.getUTCDate())}-${months[d.getUTCMonth()] ?? ''}-${d.getUTCFullYear()} ${p(d.getUTCHours())}:${p(d.getUTCMinutes())}`;
    assert.ok(reply.body.startsWith('<html>\r\n<head><title>Index of /list/</title></head>\r\n<body>\r\n<h1>Index of /list/</h1><hr><pre><a href="../">../</a>\r\n'));
    assert.ok(reply.body.includes(`<a href="b%20dir/">b dir/</a>${' '.repeat(44)} `), reply.body);
    assert.ok(reply.body.includes(`<a href="one.txt">one.txt</a>${' '.repeat(43)} ${when}${' '.repeat(19)}1\r\n`), reply.body);
    assert.ok(reply.body.endsWith('</pre><hr></body>\r\n</html>\r\n'));
  });

  it('lists a directory as JSON', async () => {
    const reply = await get(served.port, '/json/');
    assert.equal(reply.headers['content-type'], 'application/json');
    const list = JSON.parse(reply.body) as { name: string; type: string; size?: number }[];
    assert.deepEqual(list.map((e) => [e.name, e.type, e.size]), [['b dir', 'directory', undefined], ['one.txt', 'file', 1]]);
  });

  it('maps alias, also in a regex location with captures', async () => {
    assert.equal((await get(served.port, '/alias/c.txt')).body, 'via alias');
    assert.equal((await get(served.port, '/re/d.txt')).body, 'regex alias');
  });

  it('try_files: a file, a fallback URI into an internal location, =code and @named', async () => {
    assert.equal((await get(served.port, '/tf/../a.txt')).body, 'hello world\n');
    assert.equal((await get(served.port, '/tf/none')).body, 'fell back');
    assert.equal((await get(served.port, '/tf-code/none')).status, 410);
    assert.equal((await get(served.port, '/tf-named/none')).body, 'named /tf-named/none');
  });

  it('an internal location refuses a client with 404', async () => {
    assert.equal((await get(served.port, '/fallback-uri')).status, 404);
  });

  it('error_page catches the 404 of a missing file', async () => {
    const reply = await get(served.port, '/err/missing');
    assert.equal(reply.status, 404);
    assert.equal(reply.body, 'fell back');
  });

  it('answers If-None-Match and If-Modified-Since with 304, If-Match and If-Unmodified-Since with 412', async () => {
    const etag = `"${MTIME.toString(16)}-c"`;
    const date = new Date(MTIME * 1000).toUTCString();
    const none = await get(served.port, '/a.txt', { headers: { 'if-none-match': etag } });
    assert.equal(none.status, 304);
    assert.equal(none.headers.etag, etag);
    assert.equal(none.headers['content-type'], undefined);
    assert.equal((await get(served.port, '/a.txt', { headers: { 'if-modified-since': date } })).status, 304);
    assert.equal((await get(served.port, '/a.txt', { headers: { 'if-modified-since': new Date((MTIME + 5) * 1000).toUTCString() } })).status, 200);
    assert.equal((await get(served.port, '/a.txt', { headers: { 'if-match': '"other"' } })).status, 412);
    assert.equal((await get(served.port, '/a.txt', { headers: { 'if-unmodified-since': new Date((MTIME - 5) * 1000).toUTCString() } })).status, 412);
    assert.equal((await get(served.port, '/a.txt', { headers: { 'if-match': etag } })).status, 200);
    const noEtag = await get(served.port, '/noetag/a.txt');
    assert.equal(noEtag.headers.etag, undefined);
  });

  it('answers a single range with 206 and Content-Range', async () => {
    const reply = await get(served.port, '/a.txt', { headers: { range: 'bytes=0-4' } });
    assert.equal(reply.status, 206);
    assert.equal(reply.body, 'hello');
    assert.equal(reply.headers['content-range'], 'bytes 0-4/12');
    const suffix = await get(served.port, '/a.txt', { headers: { range: 'bytes=-6' } });
    assert.equal(suffix.body, 'world\n');
    const open = await get(served.port, '/big.bin', { headers: { range: `bytes=${big.length - 3}-` } });
    assert.equal(open.body, big.subarray(big.length - 3).toString('latin1'));
  });

  it('answers several ranges with multipart/byteranges as nginx frames it', async () => {
    const reply = await get(served.port, '/a.txt', { headers: { range: 'bytes=0-1,6-7' } });
    assert.equal(reply.status, 206);
    const match = /^multipart\/byteranges; boundary=(\d{20})$/.exec(reply.headers['content-type'] ?? '');
    assert.ok(match, reply.headers['content-type']);
    const b = match[1] ?? '';
    assert.equal(reply.body, `\r\n--${b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 0-1/12\r\n\r\nhe\r\n--${b}\r\nContent-Type: text/plain\r\nContent-Range: bytes 6-7/12\r\n\r\nwo\r\n--${b}--\r\n`);
    assert.equal(Number(reply.headers['content-length']), Buffer.byteLength(reply.body, 'latin1'));
  });

  it('answers an unsatisfiable range with 416 and bytes */size', async () => {
    const reply = await get(served.port, '/a.txt', { headers: { range: 'bytes=100-200' } });
    assert.equal(reply.status, 416);
    assert.equal(reply.headers['content-range'], 'bytes */12');
  });

  it('answers 1,000 ranges with the whole file, and max_ranges 1 with the whole file for two', async () => {
    const list = Array.from({ length: 1000 }, (_, i) => `${i % 12}-${i % 12}`).join(',');
    const reply = await get(served.port, '/a.txt', { headers: { range: `bytes=${list}` } });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello world\n');
    assert.equal((await get(served.port, '/ranges1/a.txt', { headers: { range: 'bytes=0-1,3-4' } })).status, 200);
    assert.equal((await get(served.port, '/ranges1/a.txt', { headers: { range: 'bytes=0-1' } })).status, 206);
  });

  it('If-Range with another ETag sends the whole file', async () => {
    const reply = await get(served.port, '/a.txt', { headers: { range: 'bytes=0-1', 'if-range': '"nope"' } });
    assert.equal(reply.status, 200);
    assert.equal(reply.body.length, 12);
  });

  it('refuses symlinks under disable_symlinks on, follows them by default', async () => {
    assert.equal((await get(served.port, '/link.txt')).body, 'outside');
    assert.equal((await get(served.port, '/nolinks/link.txt')).status, 403);
    assert.equal((await get(served.port, '/nolinks/a.txt')).status, 200);
  });

  it('keeps traversal inside the root: .., %2e%2e, encoded slashes and NUL', async () => {
    const raw = async (path: string): Promise<{ status: number; body: string }> => {
      const client = await RawClient.connect(served.port);
      try {
        return await client.get(path);
      } finally {
        client.destroy();
      }
    };
    assert.equal((await raw('/../other/b.txt')).status, 400);
    assert.equal((await raw('/%2e%2e/other/b.txt')).status, 400);
    assert.equal((await raw('/sub/..%2f..%2fother/b.txt')).status, 400);
    assert.equal((await raw('/a.txt%00.html')).status, 400);
    assert.equal((await raw('/sub/%2e%2e/a.txt')).body, 'hello world\n');
    assert.equal((await raw('/sub%2findex.html')).body, 'sub index');
    assert.equal((await raw('/a.txt#fragment')).body, 'hello world\n');
  });

  it('answers other methods with 405', async () => {
    assert.equal((await get(served.port, '/a.txt', { method: 'DELETE' })).status, 405);
    assert.equal((await get(served.port, '/a.txt', { method: 'POST' })).status, 405);
    assert.equal((await get(served.port, '/noindex/', { method: 'DELETE' })).status, 405);
  });

  it('defines $document_root, $request_filename and $realpath_root', async () => {
    const reply = await get(served.port, '/vars/x');
    const www = join(dir.path, 'www');
    const { realpathSync } = await import('node:fs');
    assert.equal(reply.body, `${www}|${www}/vars/x|${realpathSync(www)}`);
  });
});

describe('static directives at -t', () => {
  it('refuses root and alias in one location, and alias in a named location', () => {
    assert.match(errorOf('http { server { location / { root /a; alias /b; } } }'), /"alias" directive is duplicate, "root" directive was specified earlier/);
    assert.match(errorOf('http { server { location @x { alias /b; } } }'), /the "alias" directive cannot be used inside the named location/);
    assert.match(errorOf('http { root $document_root; }'), /the \$document_root variable cannot be used in the "root" directive/);
    assert.match(errorOf('http { autoindex_format yaml; }'), /invalid value "yaml" in "autoindex_format" directive/);
  });

  it('warns about tuning knobs that have no effect and duplicate extensions', () => {
    const config = load('http { sendfile on; tcp_nopush on; types_hash_max_size 2048; types { text/plain txt; text/x txt; } }');
    const warnings = config.warnings.map((warning) => warning.message);
    assert.ok(warnings.some((w) => /^"sendfile" has no effect in hitless \(.+\) in \/x\.conf:1$/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => w.startsWith('"tcp_nopush" has no effect in hitless')));
    assert.ok(warnings.some((w) => w.startsWith('"types_hash_max_size" has no effect in hitless')));
    assert.ok(warnings.some((w) => w.startsWith('duplicate extension "txt", content type: "text/x", previous content type: "text/plain"')));
  });

  it('loads Debian\'s mime.types through include', () => {
    for (const file of ['/etc/nginx/mime.types']) {
      const config = load(`http { include ${file}; }`);
      const http = config.main.child('http');
      assert.equal(http?.get('types').byExtension.get('css'), 'text/css', file);
    }
  });
});
