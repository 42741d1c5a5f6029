/**
 * The variables of ngx_http_variables.c and of the ssl and upstream modules that hitless added
 * after the first ones: $request_id, $request_length, $request_completion, $request_body, $pipe,
 * $connection_time, $nginx_version, $http2, $limit_rate, $http_cookie, $sent_http_*,
 * $upstream_http_*, $upstream_cookie_*, $upstream_header_time, and the $ssl_* of a client
 * certificate. Requests over real sockets; log-phase variables read from an access log.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { sessionIdOf } from '../../src/tls/sni.js';
import { daysRemaining, legacyName, tabbedCertificate } from '../../src/tls/ssl-variables.js';
import { findSetCookie } from '../../src/http/variables.js';
import { RawClient, serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

describe('variables: request, connection and response', () => {
  let served: Served;
  let upstream: Upstream;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-vars-'));
    upstream = await httpUpstream((_req, res) => {
      res.writeHead(200, { 'Content-Length': '7', 'X-From': 'upstream', 'Set-Cookie': ['a=1; Path=/', 'Session=abc; HttpOnly'] });
      res.end('proxied');
    });
    served = await serve(
      `http {
        log_format vars '$request_completion|$sent_http_content_type|$sent_http_content_length|$upstream_http_x_from|$upstream_cookie_session|$request_body|$request_length|$pipe|$upstream_header_time';
        access_log ${dir}/access.log vars;
        server {
          listen 127.0.0.1:8080;
          location / { return 200 "$request_id|$nginx_version|$http2|$limit_rate|$connection_time|$http_cookie\\n"; }
          location /up/ { proxy_pass http://127.0.0.1:${upstream.port}; }
          location /port { return 200 "[$is_request_port$request_port]"; }
        }
      }`,
      dir,
    );
  });

  after(async () => {
    await served?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const logLines = (): string[] => readFileSync(join(dir, 'access.log'), 'latin1').trim().split('\n');

  it('$request_port and $is_request_port: the request line\'s host first, then Host; nothing without a port', async () => {
    const client = await RawClient.connect(served.port);
    try {
      assert.equal((await client.get('/port', 'localhost')).body, '[]');
      assert.equal((await client.get('/port', 'localhost:8080')).body, '[:8080]');
      client.send('GET http://localhost:8081/port HTTP/1.1\r\nHost: localhost:9000\r\n\r\n');
      assert.equal((await client.read()).body, '[:8081]');
    } finally {
      client.destroy();
    }
  });

  it('$request_id is 32 hex digits, one per request; $nginx_version, $http2, $limit_rate, $connection_time', async () => {
    const client = await RawClient.connect(served.port);
    try {
      const first = await client.get('/', 'a', 'Cookie: a=1\r\nCookie: b=2\r\n');
      const second = await client.get('/');
      const [id1, version, http2, limitRate, connectionTime, cookie] = first.body.trim().split('|');
      const [id2] = second.body.trim().split('|');
      assert.match(id1 ?? '', /^[0-9a-f]{32}$/);
      assert.match(id2 ?? '', /^[0-9a-f]{32}$/);
      assert.notEqual(id1, id2);
      assert.equal(version, '1.22.1');
      assert.equal(http2, '');
      assert.equal(limitRate, '0');
      assert.match(connectionTime ?? '', /^\d+\.\d{3}$/);
      assert.equal(cookie, 'a=1; b=2');
    } finally {
      client.destroy();
    }
  });

  it('log phase: $request_completion, $sent_http_*, $upstream_http_*, $upstream_cookie_*, $request_body, $request_length, $pipe', async () => {
    const client = await RawClient.connect(served.port);
    try {
      // Two requests in one write: the second is pipelined behind the first.
      client.send('POST /up/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\nHost: a\r\n\r\n');
      const proxied = await client.read();
      assert.equal(proxied.body, 'proxied', JSON.stringify(proxied));
      await client.read();
    } finally {
      client.destroy();
    }
    const lines = logLines();
    const post = lines.at(-2)?.split('|') ?? [];
    const get = lines.at(-1)?.split('|') ?? [];
    assert.equal(post[0], 'OK');
    assert.equal(post[3], 'upstream');
    assert.equal(post[4], 'abc');
    assert.equal(post[5], 'hello');
    assert.equal(post[6], String('POST /up/ HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n'.length + 5));
    assert.equal(post[7], '.');
    assert.match(post[8] ?? '', /^\d+\.\d{3}$/);
    assert.equal(get[1], 'text/plain');
    assert.match(get[2] ?? '', /^\d+$/);
    assert.equal(get[3], '-', 'not found is - in a log');
    assert.equal(get[7], 'p');
  });
});

describe('variables: $ssl_* of a TLS connection and its client certificate', () => {
  let served: Served;
  let dir: string;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-sslvars-'));
    served = await serve(
      `http {
        access_log off;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name on.test;
          ssl_certificate a-rsa.fullchain.crt;
          ssl_certificate_key a-rsa.key;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          location /raw { return 200 "$ssl_client_raw_cert"; }
          location /cert { return 200 "$ssl_client_cert"; }
          location / { return 200 "$ssl_session_id|$ssl_alpn_protocol|$ssl_early_data|$ssl_client_s_dn_legacy|$ssl_client_v_start|$ssl_client_v_end|$ssl_client_v_remain"; }
        }
      }`,
      FIXTURES,
    );
  });

  after(async () => {
    await served?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  function httpsGet(path: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const socket = tlsConnect(
        { host: '127.0.0.1', port: served.port, servername: 'on.test', ca: pem('ca.crt'), checkServerIdentity: () => undefined, ALPNProtocols: ['http/1.1'], cert: pem('client-a.fullchain.crt'), key: pem('client-a.key') },
        () => socket.write(`GET ${path} HTTP/1.1\r\nHost: on.test\r\nConnection: close\r\n\r\n`),
      );
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => resolve(text.slice(text.indexOf('\r\n\r\n') + 4)));
      socket.on('error', reject);
    });
  }

  it('gives the client certificate as PEM, tabbed PEM, legacy name and validity', async () => {
    const cert = new X509Certificate(pem('client-a.crt'));
    assert.equal(await httpsGet('/raw'), cert.toString());
    assert.equal(await httpsGet('/cert'), tabbedCertificate(cert));
    const [sessionId, alpn, early, legacy, start, end, remain] = (await httpsGet('/')).split('|');
    assert.match(sessionId ?? '', /^[0-9a-f]*$/);
    assert.equal(alpn, 'http/1.1');
    assert.equal(early, '');
    assert.equal(legacy, legacyName(cert.subject));
    assert.equal(start, cert.validFrom);
    assert.equal(end, cert.validTo);
    assert.equal(remain, daysRemaining(cert));
  });

  it('formats as nginx does', () => {
    const cert = new X509Certificate(pem('client-a.crt'));
    const tabbed = tabbedCertificate(cert);
    assert.ok(tabbed.startsWith('-----BEGIN CERTIFICATE-----\n\t'));
    assert.ok(tabbed.endsWith('\n\t-----END CERTIFICATE-----\n'));
    assert.equal(legacyName('C=US\nO=Example\nCN=a'), '/C=US/O=Example/CN=a');
    assert.equal(daysRemaining(cert, Date.parse(cert.validTo) - 3.5 * 86_400_000), '3');
    assert.equal(daysRemaining(cert, Date.parse(cert.validTo) - 3_600_000), '0');
    // SEQUENCE { INTEGER 1, INTEGER 0x0304, OCTET STRING 2 bytes, OCTET STRING id }
    const der = Buffer.from('3012020101020203040402130104060a0b0c0d0e0f', 'hex');
    assert.equal(sessionIdOf(der), '0a0b0c0d0e0f');
    assert.equal(sessionIdOf(Buffer.from('0400', 'hex')), '');
    // ngx_http_parse_set_cookie_lines(): spaces around "=" are skipped, the value runs to ";" as it is.
    assert.equal(findSetCookie(['Set-Cookie', 'a=1; Path=/', 'set-cookie', 'B = 2 ; x'], 'b'), '2 ');
    // A tab is no space there (proxy_upstream_cookie.t "tabbed"), and the name must start the value.
    assert.equal(findSetCookie(['Set-Cookie', 'tc\t=\tcontent ;'], 'tc'), undefined);
    assert.equal(findSetCookie(['Set-Cookie', ' tc=x'], 'tc'), undefined);
    assert.equal(findSetCookie(['Set-Cookie', 'tc==;abc'], 'tc'), '=');
  });
});
