/**
 * `valid_referers` and `$invalid_referer` side by side with Debian's nginx: none, blocked,
 * server_names (names, wildcards and a regex name), host names with wildcards and URI prefixes,
 * ~regexes, and inheritance (a level without valid_referers takes the enclosing one's, a level
 * with host names only keeps the enclosing regexes); every answer must be nginx's.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

describe('valid_referers: hitless and nginx side by side', () => {
  let pair: NginxPair;

  before(async () => {
    pair = await startPair(
      (port) => `events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        server_name site.test *.site.test ~^www\\d+\\.regex\\.test$;
        valid_referers none blocked server_names *.example.com .example.net www.example.* example.org/galleries/ ~\\.search\\.;
        location / { return 200 "[$invalid_referer]"; }
        location /strict { valid_referers example.com; return 200 "[$invalid_referer]"; }
        location /hosts-only { valid_referers only.test; return 200 "[$invalid_referer]"; }
        location /nested { location /nested/inner { return 200 "[$invalid_referer]"; } }
    }
}
`,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  const referers: (string | undefined)[] = [
    undefined,
    '',
    'junk',
    'http://x',
    'ftp://example.com/',
    'http://a.example.com/',
    'https://A.B.EXAMPLE.COM:8443/x',
    'http://example.com/',
    'http://example.net/',
    'http://sub.example.net/p',
    'http://www.example.co.uk/',
    'http://www.example/',
    'http://example.org/galleries/x.jpg',
    'http://example.org/other/',
    'http://example.org:81/galleries/',
    'http://www.search.engine/?q=1',
    'http://WWW.SEARCH.ENGINE/',
    'http://site.test/',
    'http://a.site.test/',
    'http://www42.regex.test/',
    'http://wwwx.regex.test/',
    'http://only.test/',
    `http://${'a'.repeat(300)}.example.com/`,
  ];
  for (const path of ['/', '/strict', '/hosts-only', '/nested/inner']) {
    for (const referer of referers) {
      it(`${path} Referer: ${referer === undefined ? '(none)' : JSON.stringify(referer.slice(0, 60))}`, async () => {
        const headers: Record<string, string> = referer === undefined ? {} : { referer };
        const expected = await fetchRaw(pair.ports.nginx, path, headers);
        const actual = await fetchRaw(pair.ports.hitless, path, headers);
        assert.equal(expected.status, 200, 'nginx itself');
        assert.equal(actual.body, expected.body);
      });
    }
  }
});
