/**
 * ngx_brotli's filter and static modules over real sockets: responses compressed with br decode
 * with zlib.brotliDecompressSync to the original; br wins over gzip for a client that takes both;
 * brotli_types, brotli_min_length, the status rule and a q of 0 keep a response as it is; Vary
 * follows gzip_vary; brotli_static serves FILE.br before FILE.gz. (Debian's nginx has no brotli
 * module installed, so this is not side by side.)
 */
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { brotliCompressSync, brotliDecompressSync, gunzipSync, gzipSync } from 'node:zlib';
import { freePort } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { fetchRaw, fieldsOf, type RawAnswer } from './helpers/nginx-pair.js';
import { startHitlessIn } from './helpers/side-by-side.js';

const TEXT = Array.from({ length: 3000 }, (_, i) => `line ${i}: brotli squeezes this\n`).join('');

/** The body as the client reads it, decoded by its Content-Encoding. */
function decodedBody(answer: RawAnswer): string {
  const body = Buffer.from(answer.body, 'latin1');
  const encoding = fieldsOf(answer, 'content-encoding').join(', ');
  if (encoding === 'br') return brotliDecompressSync(body).toString('latin1');
  if (encoding === 'gzip') return gunzipSync(body).toString('latin1');
  return answer.body;
}

describe('brotli and brotli_static (google/ngx_brotli)', () => {
  let files: TempDir;
  let upstream: Server;
  let stop: (() => Promise<void>) | undefined;
  let port = 0;

  before(async () => {
    files = tempDir({ 'www/a.txt': TEXT, 'www/tiny.txt': 'tiny', 'www/page.html': `<p>${TEXT}</p>`, 'www/img.bin': TEXT, 'www/plain.txt': TEXT });
    writeFileSync(join(files.path, 'www/pre.txt.br'), brotliCompressSync(`${TEXT}(br)\n`));
    writeFileSync(join(files.path, 'www/pre.txt.gz'), gzipSync(`${TEXT}(gz)\n`));
    writeFileSync(join(files.path, 'www/pre.txt'), TEXT);
    writeFileSync(join(files.path, 'www/gzonly.txt.gz'), gzipSync(`${TEXT}(gz)\n`));
    writeFileSync(join(files.path, 'www/gzonly.txt'), TEXT);
    upstream = createServer((_req, res) => {
      // A body of unknown length, in pieces.
      res.writeHead(200, { 'Content-Type': 'text/plain' });
      for (let i = 0; i < 10; i++) res.write(TEXT.slice(i * 1000, (i + 1) * 1000));
      res.end(TEXT.slice(10_000));
    });
    const upstreamPort = await freePort();
    await new Promise<void>((resolve) => upstream.listen(upstreamPort, '127.0.0.1', resolve));
    port = await freePort();
    const www = join(files.path, 'www');
    const conf = join(files.path, 'hitless.conf');
    writeFileSync(
      conf,
      `events {}
http {
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log ${files.path}/access.log ratio;
    log_format ratio "$uri $brotli_ratio";
    server {
        listen 127.0.0.1:${port};
        root ${www};
        brotli on;
        brotli_types text/plain;
        brotli_min_length 100;
        gzip on;
        gzip_types text/plain;
        gzip_vary on;
        location /q0/ { alias ${www}/; brotli_comp_level 0; brotli_window 1k; }
        location /q11/ { alias ${www}/; brotli_comp_level 11; brotli_window 16m; }
        location /star/ { alias ${www}/; brotli_types *; }
        location /novary/ { alias ${www}/; gzip_vary off; }
        location /redirect { return 301 /a.txt; }
        location /proxy/ { proxy_pass http://127.0.0.1:${upstreamPort}/; }
        location /static/ { alias ${www}/; brotli off; gzip off; brotli_static on; gzip_static on; }
        location /always/ { alias ${www}/; brotli off; gzip off; brotli_static always; }
        location /staticgzip/ { alias ${www}/; brotli off; brotli_static on; }
    }
}
`,
    );
    stop = await startHitlessIn(files.path, conf, port);
  });

  after(async () => {
    await stop?.();
    await new Promise((resolve) => upstream?.close(resolve));
    files?.remove();
  });

  const both = { 'accept-encoding': 'gzip, deflate, br' };
  const cases: [path: string, headers: Record<string, string>, encoding: string, vary: boolean, body: string][] = [
    ['/a.txt', both, 'br', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'br' }, 'br', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'gzip' }, 'gzip', true, TEXT],
    ['/a.txt', {}, '', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'br;q=0, gzip' }, 'gzip', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'br; q=0.000' }, '', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'br;q=0.5' }, 'br', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'BR' }, 'br', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'brotli' }, '', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'xbr' }, '', true, TEXT],
    // gzip_proxied does not apply to brotli: a proxied request still gets br, but not gzip.
    ['/a.txt', { ...both, via: '1.1 cache' }, 'br', true, TEXT],
    ['/a.txt', { 'accept-encoding': 'gzip', via: '1.1 cache' }, '', true, TEXT],
    ['/tiny.txt', both, '', false, 'tiny'],
    ['/img.bin', both, '', false, TEXT],
    ['/star/img.bin', both, 'br', true, TEXT],
    ['/page.html', both, 'br', true, `<p>${TEXT}</p>`],
    ['/q0/a.txt', both, 'br', true, TEXT],
    ['/q11/a.txt', both, 'br', true, TEXT],
    ['/novary/a.txt', both, 'br', false, TEXT],
    ['/proxy/x', both, 'br', true, TEXT],
    ['/static/pre.txt', both, 'br', true, `${TEXT}(br)\n`],
    ['/static/pre.txt', { 'accept-encoding': 'gzip' }, 'gzip', true, `${TEXT}(gz)\n`],
    ['/static/pre.txt', {}, '', true, TEXT],
    ['/static/gzonly.txt', both, 'gzip', true, `${TEXT}(gz)\n`],
    ['/always/pre.txt', {}, 'br', false, `${TEXT}(br)\n`],
    ['/always/plain.txt', {}, '', false, TEXT],
    // brotli_static on took the client for br (r->gzip_ok = 0): with no .br, the gzip filter leaves the file as it is.
    ['/staticgzip/plain.txt', both, '', true, TEXT],
    ['/staticgzip/plain.txt', { 'accept-encoding': 'gzip' }, 'gzip', true, TEXT],
  ];

  for (const [path, headers, encoding, vary, body] of cases) {
    it(`GET ${path} ${JSON.stringify(headers)}: ${encoding === '' ? 'as it is' : encoding}`, async () => {
      const answer = await fetchRaw(port, path, headers);
      assert.equal(answer.status, 200);
      assert.equal(fieldsOf(answer, 'content-encoding').join(', '), encoding);
      assert.deepEqual(fieldsOf(answer, 'vary'), vary ? ['Accept-Encoding'] : []);
      if (encoding === 'br' && !path.startsWith('/static/') && !path.startsWith('/always/')) {
        assert.deepEqual(fieldsOf(answer, 'content-length'), []);
        assert.deepEqual(fieldsOf(answer, 'accept-ranges'), []);
      }
      assert.equal(decodedBody(answer), body);
    });
  }

  it('leaves a redirect and a HEAD body alone, and marks a HEAD as br', async () => {
    const redirect = await fetchRaw(port, '/redirect', both);
    assert.equal(redirect.status, 301);
    assert.deepEqual(fieldsOf(redirect, 'content-encoding'), []);
    const head = await fetchRaw(port, '/a.txt', both, 'HEAD');
    assert.deepEqual(fieldsOf(head, 'content-encoding'), ['br']);
    assert.equal(head.body, '');
  });

  it('sets $brotli_ratio, the input over the output as "%d.%02d"', async () => {
    await fetchRaw(port, '/q11/a.txt', both);
    // The access log line is written when the response is done; a bounded number of reads for it to land.
    let line: string | undefined;
    for (let i = 0; i < 200 && line === undefined; i++) {
      line = readFileSync(join(files.path, 'access.log'), 'latin1').split('\n').find((l) => l.startsWith('/q11/a.txt '));
      if (line === undefined) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    assert.match(line ?? '', /^\/q11\/a\.txt [1-9]\d*\.\d\d$/);
  });
});
