/**
 * `expires` and `add_header` side by side with Debian's nginx: one configuration, the same
 * requests; the Expires, Cache-Control and added fields of every response must be the ones nginx
 * sends (times relative to the request within 2 s, the two requests not being the same second).
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync, utimesSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, fieldsOf, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

const COMPARED = ['expires', 'cache-control', 'last-modified', 'x-http', 'x-server', 'x-own', 'x-always', 'x-safe', 'x-empty', 'x-var'];

/** The compared fields; a time relative to now (max-age, an Expires near now) marked with `~` and its number, for {@link assertSame}. */
function comparable(answer: RawAnswer): Record<string, unknown> {
  const out: Record<string, unknown> = { status: answer.status };
  for (const name of COMPARED) {
    out[name] = fieldsOf(answer, name).map((value) => {
      const maxAge = /^max-age=(\d+)$/.exec(value);
      if (maxAge !== null && Number(maxAge[1]) > 0 && Number(maxAge[1]) !== 315360000) return `max-age~${Number(maxAge[1]) * 1000}`;
      const date = Date.parse(value);
      if (name === 'expires' && !Number.isNaN(date) && Math.abs(date - Date.now()) < 400 * 86400_000) return `expires~${date}`;
      return value;
    });
  }
  return out;
}

/** Two `~` values that differ by at most 2 s: the two servers were asked a moment apart. */
function near(a: unknown, b: unknown): boolean {
  const [kindA, msA] = typeof a === 'string' ? a.split('~') : [];
  const [kindB, msB] = typeof b === 'string' ? b.split('~') : [];
  return kindA !== undefined && kindA === kindB && msA !== undefined && msB !== undefined && Math.abs(Number(msA) - Number(msB)) <= 2000;
}

/** The compared fields of both answers are the same, times relative to now within 2 s. */
function assertSame(actual: RawAnswer, expected: RawAnswer): void {
  const a = comparable(actual);
  const e = comparable(expected);
  for (const name of ['expires', 'cache-control']) {
    const av = a[name];
    const ev = e[name];
    if (Array.isArray(av) && Array.isArray(ev)) a[name] = av.map((value: unknown, i) => (near(value, ev[i]) ? ev[i] : value));
  }
  assert.deepEqual(a, e);
}

describe('expires and add_header: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: http.Server;

  before(async () => {
    // An upstream that sets its own caching fields, which expires replaces.
    upstream = http.createServer((_req, res) => {
      res.setHeader('Cache-Control', ['private', 'no-transform']);
      res.setHeader('Expires', 'Wed, 21 Oct 2015 07:28:00 GMT');
      res.setHeader('Last-Modified', 'Wed, 21 Oct 2015 07:28:00 GMT');
      res.end('up');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const up = (upstream.address() as AddressInfo).port;
    pair = await startPair(
      (port, dir) => `events {}
http {
    access_log off;
    map $arg_e $exp { default off; a 1h; n -1h; e epoch; m max; bad xyz; mod @1h; z 0; }
    add_header X-Http http;
    server {
        listen 127.0.0.1:${port};
        root ${dir}/www;
        add_header X-Server server;
        location /access/ { alias ${dir}/www/; expires 1h; }
        location /negative/ { alias ${dir}/www/; expires -1h; }
        location /zero/ { alias ${dir}/www/; expires 0; }
        location /epoch/ { alias ${dir}/www/; expires epoch; }
        location /max/ { alias ${dir}/www/; expires max; }
        location /modified/ { alias ${dir}/www/; expires modified 1d; }
        location /modified-future/ { alias ${dir}/www/; expires modified 1000d; }
        location /var/ { alias ${dir}/www/; expires $exp; }
        location /var-modified/ { alias ${dir}/www/; expires modified $exp; }
        location /return { expires 1h; return 200 "ok"; }
        location /return-modified { expires modified 1h; return 200 "ok"; }
        location /missing/ { alias ${dir}/none/; expires 1h; add_header X-Safe safe; add_header X-Always always always; }
        location /redirect { expires 1h; add_header X-Safe safe; return 302 /x; }
        location /own { add_header X-Own own; add_header X-Empty ""; add_header X-Var "[$arg_v]"; return 200 "own"; }
        location /inherit { return 200 "inherit"; }
        location /proxy { expires 2h; proxy_pass http://127.0.0.1:${up}; }
        location /proxy-off { expires off; proxy_pass http://127.0.0.1:${up}; }
        location /outer/ {
            expires 3h;
            location /outer/inner/ { alias ${dir}/www/; }
            location /outer/off/ { alias ${dir}/www/; expires off; }
        }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'www'));
        writeFileSync(join(dir, 'www/a.txt'), 'a');
        // A modification time in the past, so that "modified 1d" is fixed and already past.
        utimesSync(join(dir, 'www/a.txt'), 1_600_000_000, 1_600_000_000);
        writeFileSync(join(dir, 'www/new.txt'), 'new');
      },
    );
  });

  after(async () => {
    await pair?.stop();
    upstream?.close();
  });

  const paths = [
    '/access/a.txt',
    '/negative/a.txt',
    '/zero/a.txt',
    '/epoch/a.txt',
    '/max/a.txt',
    '/modified/a.txt',
    '/modified-future/new.txt',
    '/var/a.txt?e=a',
    '/var/a.txt?e=n',
    '/var/a.txt?e=e',
    '/var/a.txt?e=m',
    '/var/a.txt?e=bad',
    '/var/a.txt?e=mod',
    '/var/a.txt?e=z',
    '/var/a.txt',
    '/var-modified/a.txt?e=a',
    '/var-modified/a.txt?e=e',
    '/var-modified/a.txt?e=mod',
    '/return',
    '/return-modified',
    '/missing/x',
    '/redirect',
    '/own?v=1',
    '/own',
    '/inherit',
    '/proxy',
    '/proxy-off',
    '/outer/inner/a.txt',
    '/outer/off/a.txt',
  ];
  for (const path of paths) {
    it(`GET ${path}`, async () => {
      const expected = await fetchRaw(pair.ports.nginx, path);
      const actual = await fetchRaw(pair.ports.hitless, path);
      assertSame(actual, expected);
    });
  }

  it('GET with If-Modified-Since: the 304 carries expires and add_header too', async () => {
    const headers = { 'if-modified-since': new Date(1_600_000_000_000).toUTCString() };
    const expected = await fetchRaw(pair.ports.nginx, '/access/a.txt', headers);
    const actual = await fetchRaw(pair.ports.hitless, '/access/a.txt', headers);
    assert.equal(expected.status, 304, 'nginx itself');
    assertSame(actual, expected);
  });
});
