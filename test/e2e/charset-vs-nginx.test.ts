/**
 * The charset filter side by side with Debian's nginx: one configuration (but the ports) with a
 * one-byte map (koi8-r to windows-1251) and a map to utf-8 (windows-1251 to utf-8), the same
 * requests to both. Status, the headers the filter decides (Content-Type, Content-Length,
 * Accept-Ranges, Content-Range, Content-Encoding) and the bodies must be equal: recoded each way,
 * through `charset $variable`, X-Accel-Charset and override_charset from a proxied response, a
 * body large enough that utf-8 characters fall across the chunks it is read in, and a gzip_static
 * file that goes as it is.
 */
import assert from 'node:assert/strict';
import { chmodSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { pick, send, startHitlessIn } from './helpers/side-by-side.js';

const COMPARED = ['content-type', 'content-length', 'accept-ranges', 'content-range', 'content-encoding', 'x-accel-charset'];

/** windows-1251 text: ASCII, three mapped letters, the euro sign, and 0xFF that no map names. */
const W1251 = Buffer.concat([Buffer.from('<p>abc '), Buffer.from([0xe0, 0xe1, 0xf6, 0x20, 0x80, 0x20, 0xff]), Buffer.from('</p>\n')]);
/** koi8-r text for the one-byte map. */
const KOI8 = Buffer.concat([Buffer.from('koi '), Buffer.from([0xc1, 0xc2, 0xc3, 0x20, 0xfe]), Buffer.from('\n')]);
/**
 * utf-8 text: mapped and unmapped characters, one outside the BMP, and invalid bytes. Not 0xF8 to
 * 0xFF: Debian's nginx (1.22) reads them as the lead of a four-byte character and takes the next
 * byte with them; the current ngx_utf8_decode(), which hitless follows, takes them alone.
 */
const UTF8 = Buffer.concat([Buffer.from('utf аб ц € ж 😀 '), Buffer.from([0xd0, 0x41, 0x20, 0xc0, 0x80, 0x20, 0xe2, 0x82, 0x0a])]);
/** Large enough (and at an odd offset) that the 32 KB reads cut two- and three-byte characters. */
const BIG = Buffer.concat([Buffer.from('x'), Buffer.from('аб€ж'.repeat(30_000))]);

describe('charset: hitless and nginx side by side', () => {
  let files: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  const ports = { hitless: 0, nginx: 0 };

  before(async () => {
    files = tempDir({});
    const www = join(files.path, 'www');
    files.write('www/.keep', '');
    writeFileSync(join(www, 'w.html'), W1251);
    writeFileSync(join(www, 'k.html'), KOI8);
    writeFileSync(join(www, 'u.html'), UTF8);
    writeFileSync(join(www, 'big.html'), BIG);
    writeFileSync(join(www, 'w.txt'), W1251);
    writeFileSync(join(www, 'w.bin'), W1251);
    writeFileSync(join(www, 'g.html'), W1251);
    writeFileSync(join(www, 'g.html.gz'), gzipSync(W1251));
    chmodSync(files.path, 0o755);
    const conf = (port: number): string => `events {}
http {
    types { text/html html; text/plain txt; application/octet-stream bin; }
    charset_map koi8-r windows-1251 { C1 E0; C2 E1; C3 F6; }
    charset_map windows-1251 utf-8 { E0 D0B0; E1 D0B1; F6 D186; 80 E282AC; }
    map $arg_cs $wanted { default utf-8; w windows-1251; k koi8-r; l latin1; }
    server {
        listen 127.0.0.1:${port};
        root ${www};
        location /koi/ { alias ${www}/; charset windows-1251; source_charset koi8-r; }
        location /back/ { alias ${www}/; charset koi8-r; source_charset windows-1251; }
        location /utf/ { alias ${www}/; charset utf-8; source_charset windows-1251; charset_types text/plain; }
        location /from-utf/ { alias ${www}/; charset windows-1251; source_charset utf-8; }
        location /var/ { alias ${www}/; charset $wanted; source_charset windows-1251; }
        location /arg/ { alias ${www}/; charset $arg_cs; source_charset windows-1251; }
        location /gz/ { alias ${www}/; gzip_static on; charset utf-8; source_charset windows-1251; }
        location /same/ { alias ${www}/; charset UTF-8; source_charset utf-8; }
        location /named/ { alias ${www}/; charset windows-1251; }
        location /proxy/ { charset utf-8; override_charset on; proxy_pass http://127.0.0.1:${port}/named/; }
        location /no-override/ { charset utf-8; proxy_pass http://127.0.0.1:${port}/named/; }
        location /accel/ { source_charset windows-1251; proxy_pass http://127.0.0.1:${port}/set-accel/; }
        location /accel-unknown/ { source_charset windows-1251; proxy_pass http://127.0.0.1:${port}/set-unknown/; }
        location /set-accel/ { alias ${www}/; add_header X-Accel-Charset utf-8; }
        location /set-unknown/ { alias ${www}/; add_header X-Accel-Charset x-unknown; }
        location /moved { charset utf-8; source_charset windows-1251; return 301 /w.html; }
    }
}
`;
    ports.nginx = await freePort();
    nginx = await startNginx({ 'nginx.conf': conf(ports.nginx) }, ports.nginx);
    ports.hitless = await freePort();
    const hitlessConf = join(files.path, 'hitless.conf');
    writeFileSync(hitlessConf, conf(ports.hitless));
    stopHitless = await startHitlessIn(files.path, hitlessConf, ports.hitless);
  });

  after(async () => {
    await stopHitless?.();
    await nginx?.stop();
    files?.remove();
  });

  const cases: [string, string, Record<string, string>][] = [
    ['GET', '/koi/k.html', {}],
    ['GET', '/back/w.html', {}],
    ['GET', '/utf/w.html', {}],
    ['GET', '/utf/w.txt', {}],
    ['GET', '/utf/w.bin', {}],
    ['HEAD', '/utf/w.html', {}],
    ['GET', '/from-utf/u.html', {}],
    ['GET', '/from-utf/big.html', {}],
    ['GET', '/var/w.html', {}],
    ['GET', '/var/w.html?cs=w', {}],
    ['GET', '/var/w.html?cs=k', {}],
    ['GET', '/var/w.html?cs=l', {}],
    ['GET', '/arg/w.html?cs=UTF-8', {}],
    ['GET', '/gz/g.html', { 'accept-encoding': 'gzip' }],
    ['GET', '/gz/g.html', {}],
    ['GET', '/same/u.html', {}],
    ['GET', '/proxy/w.html', {}],
    ['GET', '/no-override/w.html', {}],
    ['GET', '/accel/w.html', {}],
    ['GET', '/accel-unknown/w.html', {}],
    ['GET', '/moved', {}],
    ['GET', '/koi/k.html', { range: 'bytes=4-6' }],
    ['GET', '/utf/w.html', { range: 'bytes=0-3' }],
  ];

  for (const [method, path, headers] of cases) {
    it(`${method} ${path} ${JSON.stringify(headers)}`, async () => {
      const ours = await send(ports.hitless, { method, path, headers });
      const theirs = await send(ports.nginx, { method, path, headers });
      // The built-in 301 page differs by the signature; Debian's 1.22 gzip_static sends no Accept-Ranges (the current one does, as hitless).
      const fix = (answer: Record<string, unknown>): Record<string, unknown> => {
        if (answer['status'] === 301) return { ...answer, body: undefined, 'content-length': undefined };
        return path.startsWith('/gz/') ? { ...answer, 'accept-ranges': undefined } : answer;
      };
      assert.deepEqual(fix(pick(ours, COMPARED, true)), fix(pick(theirs, COMPARED, true)));
    });
  }

  it('closes the connection when the charset variable is not found, as nginx does (NGX_ERROR from the header filter)', async () => {
    const outcome = (port: number): Promise<string> => send(port, { path: '/arg/w.html' }).then((answer) => `status ${answer.status}`, (err: unknown) => (err as NodeJS.ErrnoException).code ?? 'error');
    const theirs = await outcome(ports.nginx);
    assert.equal(theirs, 'ECONNRESET');
    assert.equal(await outcome(ports.hitless), theirs);
  });

  it('recodes what the maps say, so that the comparison is not of two unchanged bodies', async () => {
    const utf = await send(ports.hitless, { path: '/utf/w.html' });
    assert.equal(utf.headers['content-type'], 'text/html; charset=utf-8');
    assert.equal(utf.body.toString('utf8'), '<p>abc абц € ?</p>\n');
    const back = await send(ports.hitless, { path: '/from-utf/big.html' });
    assert.equal(back.body.toString('latin1'), `x${'\xe0\xe1\x80&#1078;'.repeat(30_000)}`);
  });
});
