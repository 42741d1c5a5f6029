/**
 * sub_filter side by side with Debian's nginx (built --with-http_sub_module): one configuration,
 * the same requests; status, body and the fields sub_filter changes (Content-Length, Last-Modified,
 * ETag, Accept-Ranges, Transfer-Encoding) must be nginx's, for static files, return, error
 * statuses, variables, the merge of levels, and a proxied body whose matches straddle the
 * upstream's writes.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, fieldsOf, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

const COMPARED = ['content-length', 'last-modified', 'etag', 'accept-ranges', 'transfer-encoding', 'content-encoding', 'content-type'];

function comparable(answer: RawAnswer): Record<string, unknown> {
  const out: Record<string, unknown> = { status: answer.status, body: answer.body };
  for (const name of COMPARED) out[name] = fieldsOf(answer, name);
  return out;
}

/** The upstream's body, written in pieces that split the strings the proxied locations look for. */
const PIECES = ['<p>Hello, wo', 'RLD! hello', ', w', 'orld', '! xyz'];

describe('sub_filter: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: http.Server;

  before(async () => {
    upstream = http.createServer((req, res) => {
      res.setHeader('Content-Type', 'text/html');
      if (req.url === '/encoded') res.setHeader('Content-Encoding', 'x-none');
      const pieces = [...PIECES];
      // Each piece its own write, the next one after the previous has been handed to the socket.
      const next = (): void => {
        const piece = pieces.shift();
        if (piece === undefined) res.end();
        else res.write(piece, () => setImmediate(next));
      };
      next();
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const up = (upstream.address() as AddressInfo).port;
    pair = await startPair(
      (port, dir) => `events {}
http {
    access_log off;
    default_type text/html;
    sub_filter http-level HTTP;
    server {
        listen 127.0.0.1:${port};
        root ${dir}/www;
        location /once/ { alias ${dir}/www/; sub_filter foo bar; }
        location /all/ { alias ${dir}/www/; sub_filter foo bar; sub_filter_once off; }
        location /multi/ { alias ${dir}/www/; sub_filter_once off; sub_filter abc 1; sub_filter bcd 2; sub_filter ab X; sub_filter abcz Y; sub_filter b _; }
        location /multi-once/ { alias ${dir}/www/; sub_filter abc 1; sub_filter bcd 2; sub_filter b _; }
        location /tail/ { alias ${dir}/www/; sub_filter_once off; sub_filter abcd X; sub_filter b Y; }
        location /lm/ { alias ${dir}/www/; sub_filter foo bar; sub_filter_last_modified on; }
        location /types/ { alias ${dir}/www/; sub_filter foo bar; sub_filter_types text/plain; }
        location /var/ { alias ${dir}/www/; sub_filter_once off; sub_filter $arg_s "[$arg_r$uri]"; sub_filter FOO "<$arg_r>"; }
        location /var-only/ { alias ${dir}/www/; sub_filter $arg_s "[$arg_r]"; }
        location /inherit/ { alias ${dir}/www/; }
        location /return { sub_filter foo bar; return 200 "a foo b"; }
        location /error { sub_filter foo bar; return 404 "not foo"; }
        location /empty { sub_filter foo bar; return 200 ""; }
        location /proxy { sub_filter_once off; sub_filter "world" "there"; sub_filter ", " "; "; proxy_pass http://127.0.0.1:${up}; }
        location /encoded { sub_filter_once off; sub_filter "world" "there"; proxy_pass http://127.0.0.1:${up}; }
        location /unbuffered { proxy_buffering off; sub_filter_once off; sub_filter "hello, world" "HI"; sub_filter_types *; proxy_pass http://127.0.0.1:${up}; }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'www'));
        writeFileSync(join(dir, 'www/a.html'), 'x foo FOO fOo http-level y');
        writeFileSync(join(dir, 'www/m.html'), 'abcd abcz abd bcd ab zabc');
        writeFileSync(join(dir, 'www/t1.html'), 'zabce');
        writeFileSync(join(dir, 'www/t2.html'), 'zabc');
        writeFileSync(join(dir, 'www/a.txt'), 'foo txt');
        writeFileSync(join(dir, 'www/a.css'), 'foo css');
        writeFileSync(join(dir, 'www/long.html'), `${'<div>foo</div>\n'.repeat(6000)}end foo`);
        utimesSync(join(dir, 'www/a.html'), 1_600_000_000, 1_600_000_000);
      },
    );
  });

  after(async () => {
    await pair?.stop();
    upstream?.close();
  });

  const requests: [path: string, headers?: Record<string, string>, method?: string][] = [
    ['/once/a.html'],
    ['/all/a.html'],
    ['/all/long.html'],
    ['/multi/m.html'],
    ['/multi-once/m.html'],
    ['/tail/t1.html'],
    ['/tail/t2.html'],
    ['/lm/a.html'],
    ['/once/a.txt'],
    ['/types/a.txt'],
    ['/types/a.css'],
    ['/var/a.html?s=X&r=r'],
    ['/var/a.html?s=Y'],
    ['/var/a.html'],
    ['/var-only/a.html'],
    ['/var-only/a.html?s=fOO&r=v'],
    ['/inherit/a.html'],
    ['/return'],
    ['/error'],
    ['/empty'],
    ['/once/a.html', { range: 'bytes=0-3' }],
    ['/once/a.html', { 'if-modified-since': 'Sun, 13 Sep 2020 12:26:40 GMT' }],
    ['/once/a.html', {}, 'HEAD'],
    ['/proxy'],
    ['/encoded'],
    ['/unbuffered'],
  ];

  for (const [path, headers = {}, method = 'GET'] of requests) {
    it(`${method} ${path} ${JSON.stringify(headers)}`, async () => {
      const [mine, theirs] = await Promise.all([fetchRaw(pair.ports.hitless, path, headers, method), fetchRaw(pair.ports.nginx, path, headers, method)]);
      assert.deepEqual(comparable(mine), comparable(theirs));
    });
  }

  it('replaces across the upstream\'s writes', async () => {
    const answer = await fetchRaw(pair.ports.hitless, '/proxy');
    assert.equal(answer.body, '<p>Hello; there! hello; there! xyz');
  });
});
