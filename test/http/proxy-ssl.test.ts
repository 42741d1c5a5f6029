import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { createServer, type Server } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import type { TLSSocket } from 'node:tls';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, get, load, serve, type Served } from './helpers.js';

/** The committed fixtures made by scripts/make-test-certs.sh. */
const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));
const pem = (name: string): Buffer => readFileSync(join(TLS, name));

/** An https upstream on loopback: what it saw per TLS connection, and how to stop it. */
interface TlsUpstream {
  readonly port: number;
  /** One entry per TLS connection: the SNI it got (false for none), the client certificate's CN, whether the session was resumed. */
  readonly handshakes: { servername: string | false; clientCn: string | undefined; resumed: boolean }[];
  stop(): Promise<void>;
}

async function tlsUpstream(leaf: string, options: { requireClientCert?: boolean } = {}): Promise<TlsUpstream> {
  const handshakes: TlsUpstream['handshakes'] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    { cert: pem(`${leaf}.fullchain.crt`), key: pem(`${leaf}.key`), ...(options.requireClientCert === true ? { requestCert: true, rejectUnauthorized: false, ca: pem('ca.crt') } : {}) },
    (req, res) => {
      const socket = req.socket as TLSSocket;
      const body = JSON.stringify({ url: req.url, host: req.headers.host });
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'x-tls': socket.getProtocol() ?? '' });
      res.end(body);
    },
  );
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  server.on('tlsClientError', () => undefined);
  server.on('secureConnection', (socket: TLSSocket) => {
    const cert = socket.getPeerCertificate();
    const clientCn = cert.subject === undefined ? undefined : String(cert.subject.CN);
    handshakes.push({ servername: socket.servername ?? false, clientCn, resumed: socket.isSessionReused() });
    // mTLS as an upstream that requires a client certificate does it: no certificate, no service.
    if (options.requireClientCert === true && clientCn === undefined) socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    handshakes,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

describe('proxy_pass https://', () => {
  let dir = '';
  let good: TlsUpstream;
  let other: TlsUpstream;
  let expired: TlsUpstream;
  let mtls: TlsUpstream;
  let pooled: TlsUpstream;
  let resumed: TlsUpstream;
  let served: Served;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-ssl-'));
    good = await tlsUpstream('a-rsa');
    other = await tlsUpstream('a-other-ca');
    expired = await tlsUpstream('a-expired');
    mtls = await tlsUpstream('a-ec', { requireClientCert: true });
    pooled = await tlsUpstream('a-rsa');
    resumed = await tlsUpstream('b-rsa');
    const verify = `proxy_ssl_verify on; proxy_ssl_trusted_certificate ${TLS}ca.crt;`;
    // A peer that fails is out for fail_timeout: each failing location has peers of its own.
    served = await serve(
      `http {
        upstream a.test { server 127.0.0.1:${good.port}; }
        upstream b.test { server 127.0.0.1:${good.port}; }
        upstream other { server 127.0.0.1:${other.port}; }
        upstream pool { server 127.0.0.1:${pooled.port}; keepalive 4; }
        upstream b-resumed { server 127.0.0.1:${resumed.port}; }
        server {
          listen 127.0.0.1:8080;
          location /verified/ { proxy_pass https://a.test/; ${verify} }
          location /sni/ { proxy_pass https://a.test/; proxy_ssl_server_name on; ${verify} }
          location /wrong-name/ { proxy_pass https://b.test/; ${verify} }
          location /untrusted/ { proxy_pass https://other/; proxy_ssl_name a.test; ${verify} }
          location /expired/ { proxy_pass https://127.0.0.1:${expired.port}/; proxy_ssl_name a.test; ${verify} }
          location /no-verify/ { proxy_pass https://127.0.0.1:${other.port}/; }
          location /depth0/ { proxy_pass https://a.test/; ${verify} proxy_ssl_verify_depth 0; }
          location /mtls/ { proxy_pass https://127.0.0.1:${mtls.port}/; proxy_ssl_certificate ${TLS}b-rsa.crt; proxy_ssl_certificate_key ${TLS}b-rsa.key; proxy_ssl_name a.test; ${verify} }
          location /no-cert/ { proxy_pass https://127.0.0.1:${mtls.port}/; proxy_ssl_name a.test; ${verify} proxy_ssl_protocols TLSv1.2; }
          location /pool/ {
            proxy_pass https://pool/; proxy_ssl_name a.test; ${verify}
            proxy_http_version 1.1; proxy_set_header Connection "";
          }
          location /pool-sni/ {
            proxy_pass https://pool/; proxy_ssl_name a.test; proxy_ssl_server_name on; ${verify}
            proxy_http_version 1.1; proxy_set_header Connection "";
          }
          location /resume/ { proxy_pass https://b-resumed/; }
          location /no-resume/ { proxy_pass https://b-resumed/; proxy_ssl_session_reuse off; }
          location /tls12/ { proxy_pass https://127.0.0.1:${good.port}/; proxy_ssl_protocols TLSv1.2; }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    for (const upstream of [good, other, expired, mtls, pooled, resumed]) await upstream.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const errorLog = (): string => readFileSync(join(dir, 'error.log'), 'utf8');

  it('proxies over TLS with the certificate verified, Host and SSL name from $proxy_host', async () => {
    const reply = await get(served.port, '/verified/x?y=1');
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.body), { url: '/x?y=1', host: 'a.test' });
  });

  it('sends SNI only with proxy_ssl_server_name on', async () => {
    const start = good.handshakes.length;
    assert.equal((await get(served.port, '/verified/')).status, 200);
    assert.equal((await get(served.port, '/sni/')).status, 200);
    assert.deepEqual(good.handshakes.slice(start).map((h) => h.servername), [false, 'a.test']);
  });

  it('answers 502 with nginx\'s log line for a certificate that does not match the name', async () => {
    assert.equal((await get(served.port, '/wrong-name/')).status, 502);
    assert.match(errorLog(), /\[error\] .*upstream SSL certificate does not match "b\.test" while SSL handshaking to upstream, client: 127\.0\.0\.1, server: , request: "GET \/wrong-name\/ HTTP\/1\.1", upstream: "https:\/\/127\.0\.0\.1:\d+\/"/);
  });

  it('answers 502 for a certificate from an untrusted CA', async () => {
    assert.equal((await get(served.port, '/untrusted/')).status, 502);
    assert.match(errorLog(), /upstream SSL certificate verify error: \(20:unable to get local issuer certificate\) while SSL handshaking to upstream, client: 127\.0\.0\.1, server: , request: "GET \/untrusted\/ HTTP\/1\.1"/);
  });

  it('answers 502 for an expired certificate', async () => {
    assert.equal((await get(served.port, '/expired/')).status, 502);
    assert.match(errorLog(), /upstream SSL certificate verify error: \(10:certificate has expired\) while SSL handshaking to upstream, client: 127\.0\.0\.1, server: , request: "GET \/expired\/ HTTP\/1\.1"/);
  });

  it('refuses a chain longer than proxy_ssl_verify_depth', async () => {
    assert.equal((await get(served.port, '/depth0/')).status, 502);
    assert.match(errorLog(), /upstream SSL certificate verify error: \(22:certificate chain too long\) while SSL handshaking to upstream, client: 127\.0\.0\.1, server: , request: "GET \/depth0\/ HTTP\/1\.1"/);
  });

  it('accepts any certificate with proxy_ssl_verify off, nginx\'s default', async () => {
    assert.equal((await get(served.port, '/no-verify/')).status, 200);
  });

  it('presents proxy_ssl_certificate to an upstream that requires one, and fails without', async () => {
    const start = mtls.handshakes.length;
    assert.equal((await get(served.port, '/mtls/')).status, 200);
    assert.equal(mtls.handshakes[start]?.clientCn, 'b.test');
    assert.equal((await get(served.port, '/no-cert/')).status, 502);
    assert.equal(mtls.handshakes[start + 1]?.clientCn, undefined);
  });

  it('keeps TLS connections alive in the pool, per SSL name and settings', async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 5; i++) assert.equal((await get(served.port, `/pool/${i}`, { agent })).status, 200);
    assert.equal(pooled.handshakes.length, 1, 'five requests over one TLS connection');
    // Other TLS settings (SNI on) to the same peer: never handed the pooled connection.
    for (let i = 0; i < 2; i++) assert.equal((await get(served.port, `/pool-sni/${i}`, { agent })).status, 200);
    agent.destroy();
    assert.deepEqual(pooled.handshakes.map((h) => h.servername), [false, 'a.test']);
  });

  it('resumes the TLS session on the next connection to a peer unless proxy_ssl_session_reuse is off', async () => {
    for (let i = 0; i < 2; i++) assert.equal((await get(served.port, '/resume/')).status, 200);
    for (let i = 0; i < 2; i++) assert.equal((await get(served.port, '/no-resume/')).status, 200);
    assert.deepEqual(resumed.handshakes.map((h) => h.resumed), [false, true, false, false]);
  });

  it('offers only the protocols of proxy_ssl_protocols', async () => {
    const reply = await get(served.port, '/tls12/');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['x-tls'], 'TLSv1.2');
  });
});

describe('proxy_ssl configuration', () => {
  const location = (body: string): string => `http { server { listen 127.0.0.1:8080; location / { ${body} } } }`;

  it('takes port 443 and $proxy_host without it for https', () => {
    const config = load(location(`proxy_pass https://127.0.0.1/;`));
    assert.ok(config);
    assert.doesNotThrow(() => load(location(`proxy_pass https://127.0.0.1:8443/;`)));
  });

  it('refuses proxy_ssl_verify on without proxy_ssl_trusted_certificate', () => {
    assert.equal(errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_verify on;')), 'no proxy_ssl_trusted_certificate for proxy_ssl_verify');
  });

  it('refuses proxy_ssl_certificate without its key', () => {
    assert.equal(errorOf(location(`proxy_pass https://127.0.0.1; proxy_ssl_certificate ${TLS}b-rsa.crt;`)), `no "proxy_ssl_certificate_key" is defined for certificate "${TLS}b-rsa.crt"`);
  });

  it('refuses a trusted certificate file that cannot be read', () => {
    assert.equal(
      errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_verify on; proxy_ssl_trusted_certificate /nonexistent/ca.crt;')),
      // nginx 1.27's ngx_ssl_trusted_certificate() (through its certificate cache) calls it a certificate.
      'cannot load certificate "/nonexistent/ca.crt": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen(/nonexistent/ca.crt, r) error:10000080:BIO routines::no such file)',
    );
  });

  it('reads a trusted certificate only with proxy_ssl_verify on, as ngx_http_proxy_set_ssl() does', () => {
    assert.doesNotThrow(() => load(location('proxy_pass https://127.0.0.1; proxy_ssl_trusted_certificate /nonexistent/ca.crt;')));
  });

  it('refuses an empty proxy_ssl_certificate_key for a certificate, which nginx takes for the configuration\'s directory', () => {
    assert.match(errorOf(location(`proxy_pass https://127.0.0.1; proxy_ssl_certificate ${TLS}b-rsa.crt; proxy_ssl_certificate_key "";`)), /^cannot load certificate key "\/[^"]*": /);
  });

  it('refuses an unknown protocol and a bad depth in nginx\'s words', () => {
    assert.equal(errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_protocols TLSv1.2 TLSv9;')), 'invalid value "TLSv9" in /x.conf:1');
    assert.equal(errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_verify_depth x;')), 'invalid number "x" in "proxy_ssl_verify_depth" directive in /x.conf:1');
    assert.equal(errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_server_name maybe;')), 'invalid value "maybe" in "proxy_ssl_server_name" directive, it must be "on" or "off" in /x.conf:1');
  });

  it('checks the variables of proxy_ssl_name', () => {
    assert.equal(errorOf(location('proxy_pass https://127.0.0.1; proxy_ssl_name $nope;')), 'unknown "nope" variable');
  });
});
