/**
 * `geo` side by side with Debian's nginx: networks (IPv4, IPv6, v4-mapped, longest prefix,
 * delete, include), ranges (split, nested, deleted, default, IPv6 clients), the client address
 * and proxy / proxy_recursive with X-Forwarded-For; every answer must be nginx's.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

describe('geo: hitless and nginx side by side', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair(
      (port, dir) => `events {}
http {
    access_log off;
    geo $arg_ip $net {
        default                 none;
        10.0.0.0/8              ten;
        10.1.0.0/16             ten-one;
        10.1.2.3                host;
        192.168.0.0/16          private;
        delete 192.168.0.0/16;
        2001:db8::/32           doc6;
        2001:db8:1::/48         doc6-one;
        ::ffff:10.9.0.0/112     mapped-net;
        255.255.255.255         broadcast;
        include                 ${dir}/geo-extra.conf;
    }
    geo $arg_ip $range {
        ranges;
        default                 outside;
        10.0.0.0-10.255.255.255 ten;
        10.1.0.0-10.1.0.255     inner;
        10.2.255.0-10.3.0.255   across;
        delete 10.2.255.0-10.3.0.255;
        172.16.0.1-172.16.0.1   one;
        255.255.255.254-255.255.255.254 almost;
    }
    geo $client { default other; 127.0.0.0/8 loopback; }
    geo $proxied {
        proxy 127.0.0.1;
        default other;
        127.0.0.0/8 loopback;
        10.0.0.0/8 ten;
        203.0.113.0/24 doc;
    }
    geo $recursive {
        proxy 127.0.0.1;
        proxy 10.0.0.0/8;
        proxy_recursive;
        default other;
        10.0.0.0/8 ten;
        203.0.113.0/24 doc;
    }
    server {
        listen 127.0.0.1:${port};
        location / { return 200 "net=$net range=$range client=$client proxied=$proxied recursive=$recursive"; }
    }
}
`,
      (dir) => writeFileSync(join(dir, 'geo-extra.conf'), '172.16.0.0/12 included;\n'),
    );
  });

  after(async () => {
    await pair?.stop();
  });

  const cases: [string, Record<string, string>][] = [
    ['', {}],
    ['10.0.0.1', {}],
    ['10.1.0.1', {}],
    ['10.1.2.3', {}],
    ['10.1.2.4', {}],
    ['10.2.255.7', {}],
    ['10.3.0.7', {}],
    ['192.168.1.1', {}],
    ['172.16.0.1', {}],
    ['172.31.255.255', {}],
    ['255.255.255.255', {}],
    ['255.255.255.254', {}],
    ['not-an-address', {}],
    ['2001:db8::1', {}],
    ['2001:db8:1::1', {}],
    ['2001:db9::1', {}],
    ['::ffff:10.1.2.3', {}],
    ['::ffff:10.9.1.1', {}],
    ['::1', {}],
    ['1.2.3.4', { 'x-forwarded-for': '203.0.113.5' }],
    ['1.2.3.4', { 'x-forwarded-for': '203.0.113.5, 10.0.0.2' }],
    ['1.2.3.4', { 'x-forwarded-for': '10.0.0.3, 10.0.0.2' }],
    ['1.2.3.4', { 'x-forwarded-for': 'garbage' }],
  ];
  for (const [ip, headers] of cases) {
    it(`ip=${ip} ${JSON.stringify(headers)}`, async () => {
      const path = ip === '' ? '/' : `/?ip=${encodeURIComponent(ip)}`;
      const expected = await fetchRaw(pair.ports.nginx, path, headers);
      const actual = await fetchRaw(pair.ports.hitless, path, headers);
      assert.equal(expected.status, 200, 'nginx itself');
      assert.equal(actual.body, expected.body);
    });
  }
});
