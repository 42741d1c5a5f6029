import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { connect as tlsConnect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { createRegistry } from '../../src/modules.js';
import { configureArguments } from '../../src/cli/version.js';
import { errorOf, load, RawClient, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');
const fingerprint = (name: string): string => new X509Certificate(readFileSync(`${FIXTURES}${name}.crt`)).fingerprint256;

/** Connects over TLS and returns the leaf the server sent; the socket is closed. */
async function handshake(port: number, options: ConnectionOptions = {}): Promise<{ fingerprint: string; socket: TLSSocket }> {
  const socket = await new Promise<TLSSocket>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, ca: CA, ...options }, () => resolve(s));
    s.once('error', reject);
  });
  const leaf = socket.getPeerX509Certificate();
  socket.destroy();
  return { fingerprint: leaf?.fingerprint256 ?? '', socket };
}

/** One HTTP/1.1 request over TLS, the raw response back. */
function httpsGet(port: number, servername: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername, ca: CA, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`GET ${path} HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.setEncoding('latin1');
    s.on('data', (chunk: string) => (text += chunk));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
}

/** One HTTP/2 request over TLS (ALPN h2). */
function h2Get(port: number, servername: string, path: string): Promise<{ status: number; body: string; alpn: string | false }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`https://127.0.0.1:${port}`, { ca: CA, servername });
    session.once('error', reject);
    const stream = session.request({ ':path': path, ':authority': servername });
    let status = 0;
    let body = '';
    stream.setEncoding('latin1');
    stream.on('response', (headers) => (status = Number(headers[':status'])));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => {
      const alpn = session.alpnProtocol ?? false;
      session.close();
      resolve({ status, body, alpn });
    });
    stream.on('error', reject);
    stream.end();
  });
}

describe('ssl: certificates by SNI, ALPN, variables', () => {
  let served: Served;
  let upstream: HttpServer;
  const portOf = (key: string): number => served.ports.get(key) ?? 0;

  before(async () => {
    upstream = createHttpServer((req, res) => res.end(`upstream ${req.url ?? ''} ${req.headers['x-scheme'] ?? ''}`));
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const address = upstream.address();
    const upstreamPort = typeof address === 'object' && address !== null ? address.port : 0;
    served = await serve(
      `http {
        access_log off;
        ssl_certificate a-rsa.fullchain.crt;
        ssl_certificate_key a-rsa.key;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name a.test;
          ssl_certificate a-rsa.fullchain.crt;
          ssl_certificate_key a-rsa.key;
          ssl_certificate a-ec.fullchain.crt;
          ssl_certificate_key a-ec.key;
          location / { return 200 "a $scheme $https $ssl_server_name $ssl_protocol $server_protocol"; }
          location /up/ { proxy_set_header X-Scheme $scheme; proxy_pass http://127.0.0.1:${upstreamPort}; }
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name b.test;
          ssl_certificate b-ec.fullchain.crt;
          ssl_certificate_key b-ec.key;
          location / { return 200 "b $ssl_cipher $ssl_session_reused"; }
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name *.w.test;
          ssl_certificate wildcard-ec.fullchain.crt;
          ssl_certificate_key wildcard-ec.key;
          return 200 "w";
        }
        server {
          listen 127.0.0.2:1443 ssl default_server;
          server_name _;
          ssl_reject_handshake on;
        }
        server {
          listen 127.0.0.2:1443 ssl;
          server_name b.test;
          ssl_certificate b-rsa.fullchain.crt;
          ssl_certificate_key b-rsa.key;
          return 200 "b2";
        }
        server {
          listen 127.0.0.1:2443 ssl;
          http2 on;
          server_name a.test;
          location / { return 200 "h2 $scheme $server_protocol $ssl_protocol"; }
          location /conn { return 200 "$remote_addr $remote_port $server_addr $server_port $ssl_server_name $ssl_protocol $ssl_cipher $ssl_alpn_protocol $connection $connection_requests"; }
          location /up/ { proxy_pass http://127.0.0.1:${upstreamPort}; }
        }
      }`,
      FIXTURES,
    );
  });

  after(async () => {
    await served.stop();
    await new Promise<void>((resolve) => upstream.close(() => resolve()));
  });

  it('picks the certificate by SNI with server_name rules', async () => {
    const port = portOf('127.0.0.1:1443');
    assert.equal((await handshake(port, { servername: 'b.test' })).fingerprint, fingerprint('b-ec'));
    assert.equal((await handshake(port, { servername: 'x.w.test' })).fingerprint, fingerprint('wildcard-ec'));
    assert.equal((await handshake(port, { servername: 'A.TEST', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-RSA-AES128-GCM-SHA256' })).fingerprint, fingerprint('a-rsa'));
  });

  it('answers without SNI or with an unknown name from the default server', async () => {
    const port = portOf('127.0.0.1:1443');
    const checkServerIdentity = (): undefined => undefined;
    assert.equal((await handshake(port, { servername: 'nobody.test', checkServerIdentity, sigalgs: 'rsa_pss_rsae_sha256' })).fingerprint, fingerprint('a-rsa'));
    assert.equal((await handshake(port, { checkServerIdentity, sigalgs: 'rsa_pss_rsae_sha256' })).fingerprint, fingerprint('a-rsa'));
  });

  it('serves RSA and ECDSA side by side: the client\'s algorithms choose', async () => {
    const port = portOf('127.0.0.1:1443');
    assert.equal((await handshake(port, { servername: 'a.test', sigalgs: 'ecdsa_secp256r1_sha256' })).fingerprint, fingerprint('a-ec'));
    assert.equal((await handshake(port, { servername: 'a.test', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' })).fingerprint, fingerprint('a-ec'));
    assert.equal((await handshake(port, { servername: 'a.test', sigalgs: 'rsa_pss_rsae_sha256' })).fingerprint, fingerprint('a-rsa'));
  });

  it('ssl_reject_handshake in the default server refuses unknown names and no SNI, a known name passes', async () => {
    // The helper binds every listen key on 127.0.0.1.
    const port = portOf('127.0.0.2:1443');
    await assert.rejects(handshake(port, { servername: 'nobody.test' }));
    await assert.rejects(handshake(port));
    assert.equal((await handshake(port, { servername: 'b.test' })).fingerprint, fingerprint('b-rsa'));
  });

  it('HTTP/1.1 over TLS: return with $scheme, $https and the ssl variables', async () => {
    const text = await httpsGet(portOf('127.0.0.1:1443'), 'a.test', '/');
    assert.match(text, /^HTTP\/1\.1 200 /);
    assert.ok(text.endsWith('a https on a.test TLSv1.3 HTTP/1.1'), text);
    const b = await httpsGet(portOf('127.0.0.1:1443'), 'b.test', '/');
    assert.match(b, /\r\n\r\nb TLS_AES_\w+ \.$/);
  });

  it('HTTP/1.1 over TLS: proxy_pass to an HTTP/1 upstream', async () => {
    const text = await httpsGet(portOf('127.0.0.1:1443'), 'a.test', '/up/x');
    assert.match(text, /^HTTP\/1\.1 200 .*\r\nupstream \/up\/x https\r\n/s);
  });

  it('HTTP/2 over TLS by ALPN: return and proxy_pass', async () => {
    const port = portOf('127.0.0.1:2443');
    const reply = await h2Get(port, 'a.test', '/');
    assert.deepEqual(reply, { status: 200, body: 'h2 https HTTP/2.0 TLSv1.3', alpn: 'h2' });
    const proxied = await h2Get(port, 'a.test', '/up/y');
    assert.equal(proxied.status, 200);
    assert.equal(proxied.body, 'upstream /up/y ');
  });

  it('HTTP/2 over TLS: every stream of a session reads the connection\'s addresses and handshake (read once per session)', async () => {
    const port = portOf('127.0.0.1:2443');
    const session = h2connect(`https://127.0.0.1:${port}`, { ca: CA, servername: 'a.test' });
    try {
      await new Promise<void>((resolve, reject) => {
        session.once('connect', () => resolve());
        session.once('error', reject);
      });
      const get = (): Promise<string> =>
        new Promise((resolve, reject) => {
          const stream = session.request({ ':path': '/conn', ':authority': 'a.test' });
          let body = '';
          stream.setEncoding('latin1');
          stream.on('data', (chunk: string) => (body += chunk));
          stream.on('end', () => resolve(body));
          stream.on('error', reject);
          stream.end();
        });
      const bodies: string[] = [];
      for (let i = 0; i < 3; i++) bodies.push(await get());
      bodies.push(...(await Promise.all([get(), get()])));
      const socket = session.socket as TLSSocket;
      const cipher = socket.getCipher().name;
      const fields = bodies.map((body) => body.split(' '));
      const connection = fields[0]?.[8];
      for (const [i, f] of fields.entries()) {
        assert.deepEqual(f.slice(0, 9), ['127.0.0.1', String(socket.localPort), '127.0.0.1', String(port), 'a.test', 'TLSv1.3', cipher, 'h2', connection], bodies[i]);
      }
      assert.deepEqual(fields.slice(0, 3).map((f) => f[9]), ['1', '2', '3']);
    } finally {
      session.destroy();
    }
  });

  it('offers only http/1.1 by ALPN without http2', async () => {
    const { socket } = await handshake(portOf('127.0.0.1:1443'), { servername: 'a.test', ALPNProtocols: ['h2', 'http/1.1'] });
    assert.equal(socket.alpnProtocol, 'http/1.1');
  });

  it('answers plain HTTP on an ssl port with 400 "The plain HTTP request was sent to HTTPS port"', async () => {
    const client = await RawClient.connect(portOf('127.0.0.1:1443'));
    const reply = await client.get('/', 'a.test');
    assert.equal(reply.status, 400);
    assert.match(reply.body, /The plain HTTP request was sent to HTTPS port/);
    assert.equal(reply.headers.connection, 'close');
    client.destroy();
  });
});

describe('ssl: configuration', () => {
  const cert = (name: string): string => `ssl_certificate ${FIXTURES}${name}.crt; ssl_certificate_key ${FIXTURES}${name.replace(/\.fullchain$/, '')}.key;`;

  it('refuses listen ... ssl without a certificate, naming the server', () => {
    assert.equal(errorOf('http {\nserver {\nlisten 127.0.0.1:8443 ssl;\n}\n}'), 'no "ssl_certificate" is defined for the "listen ... ssl" directive in /x.conf:2');
    assert.equal(
      errorOf('http {\nserver {\nlisten 127.0.0.1:8443 ssl;\nssl_reject_handshake on;\n}\nserver {\nlisten 127.0.0.1:8443 ssl;\nserver_name a;\n}\n}'),
      'no "ssl_certificate" is defined for the "listen ... ssl" directive in /x.conf:6',
    );
  });

  it('refuses files that do not load, as nginx says it', () => {
    assert.equal(
      errorOf('http { server { ssl_certificate /nonexistent.crt; ssl_certificate_key /nonexistent.key; } }'),
      'cannot load certificate "/nonexistent.crt": BIO_new_file() failed (SSL: error:80000002:system library::No such file or directory:calling fopen(/nonexistent.crt, r) error:10000080:BIO routines::no such file)',
    );
    assert.equal(
      errorOf(`http { server { ssl_certificate ${FIXTURES}a-rsa.crt; ssl_certificate_key ${FIXTURES}mismatched.key; } }`),
      `SSL_CTX_use_PrivateKey("${FIXTURES}mismatched.key") failed (SSL: error:05800074:x509 certificate routines::key values mismatch)`,
    );
    assert.equal(
      errorOf(`http { server { ssl_certificate ${FIXTURES}broken.crt; ssl_certificate_key ${FIXTURES}a-rsa.key; } }`),
      `cannot load certificate "${FIXTURES}broken.crt": PEM_read_bio_X509_AUX() failed (SSL: error:0480006C:PEM routines::no start line:Expecting: TRUSTED CERTIFICATE)`,
    );
    assert.equal(errorOf(`http { server { ssl_certificate ${FIXTURES}a-rsa.crt; } }`), `no "ssl_certificate_key" is defined for certificate "${FIXTURES}a-rsa.crt"`);
  });

  it('checks ssl_protocols, ssl_session_timeout and ssl_ciphers', () => {
    assert.equal(errorOf('http { ssl_protocols TLSv1.2 TLSv9; }'), 'invalid value "TLSv9" in /x.conf:1');
    assert.equal(errorOf('http { ssl_session_timeout 5x; }'), '"ssl_session_timeout" directive invalid value in /x.conf:1');
    assert.equal(errorOf(`http { server { ${cert('a-rsa.fullchain')} ssl_ciphers NOPE; } }`), 'SSL_CTX_set_cipher_list("NOPE") failed (SSL: error:0A0000B9:SSL routines::no cipher match)');
  });

  it('resolves relative certificate paths against the configuration directory', () => {
    const config = load('http { server { listen 127.0.0.1:8443 ssl; ssl_certificate a-rsa.fullchain.crt; ssl_certificate_key a-rsa.key; } }', FIXTURES);
    const http = config.main.child('http');
    const server = http?.blocks[0];
    assert.equal(server?.get('ssl_certificate')[0]?.path, `${FIXTURES}a-rsa.fullchain.crt`);
  });

  it('is built in as ngx_http_ssl_module (-V says --with-http_ssl_module)', () => {
    assert.match(configureArguments(createRegistry()), /--with-http_ssl_module/);
  });
});
