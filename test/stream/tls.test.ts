/** TLS in stream: termination on listen ... ssl (with the certificate store, rotated live) and TLS to upstreams (proxy_ssl). */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:net';
import { connect as connectTls, createServer as createTlsServer, type PeerCertificate } from 'node:tls';
import { localServingState } from '../../src/http/serving-state.js';
import { clientHello, echoBackend, errorOf, exchange, memoryLog, serveStream, type Backend, type ServedStream } from './helpers.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url);
const path = (name: string): string => new URL(name, fixtures).pathname;
const pem = (name: string): string => readFileSync(path(name), 'utf8');

/** Connects with TLS, sends `text`, half-closes, and resolves the answer and the certificate served. */
function tlsExchange(port: number, servername: string, text: string): Promise<{ answer: string; cert: PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername, ca: pem('ca.crt') }, () => socket.end(text));
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve({ answer, cert: socket.getPeerCertificate() }));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

/** The CN of the certificate a handshake with `servername` gets, whatever names it has; rejects when the handshake fails. */
function servedCn(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername, ca: pem('ca.crt'), checkServerIdentity: () => undefined }, () => {
      resolve(String(socket.getPeerCertificate().subject.CN));
      socket.destroy();
    });
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('stream TLS termination', () => {
  let backend: Backend;
  let served: ServedStream;
  const state = localServingState();

  before(async () => {
    backend = await echoBackend();
    served = await serveStream(`stream { proxy_half_close on;
      log_format t '$ssl_protocol $ssl_server_name $bytes_received';
      server {
        listen 127.0.0.1:1 ssl;
        ssl_certificate ${path('a-rsa.fullchain.crt')};
        ssl_certificate_key ${path('a-rsa.key')};
        proxy_pass 127.0.0.1:${backend.port};
      }
    }`, '/tmp', undefined, state);
  });
  after(async () => {
    await served.stop();
    await backend.stop();
  });

  it('terminates TLS and passes the plaintext to the backend', async () => {
    const { answer, cert } = await tlsExchange(served.port, 'a.test', 'secret');
    assert.equal(answer, 'secret');
    assert.match(String(cert.subject.CN), /a\.test/);
  });

  it('answers a name of the certificate store with the stored certificate, live', async () => {
    state.tls.certificates.put({ name: 'b.test', cert: pem('b-rsa.fullchain.crt'), key: pem('b-rsa.key') });
    const { answer, cert } = await tlsExchange(served.port, 'b.test', 'rotated');
    assert.equal(answer, 'rotated');
    assert.match(String(cert.subject.CN), /b\.test/);
  });

  it('closes a client that speaks no TLS', async () => {
    assert.equal((await exchange(served.port, 'GET / HTTP/1.0\r\n\r\n')).length, 0);
  });

  // stream_proxy_ssl_verify.t hung in its graceful shutdown: a TLS client that gave up mid-handshake
  // left a session waiting for ssl_handshake_timeout, as its FIN came as an 'end' and no 'close'.
  it('ends a handshake the client half-closes, instead of waiting for ssl_handshake_timeout', async () => {
    const { log, lines } = memoryLog();
    const quiet = await serveStream(`stream { server {
      listen 127.0.0.1:1 ssl; ssl_handshake_timeout 1h;
      ssl_certificate ${path('a-rsa.fullchain.crt')}; ssl_certificate_key ${path('a-rsa.key')};
      return ok;
    } }`, '/tmp', log);
    try {
      // A FIN before any byte, and one after half a ClientHello's record header.
      assert.equal((await exchange(quiet.port, '', { timeoutMs: 10_000 })).length, 0);
      assert.equal((await exchange(quiet.port, Buffer.from([0x16, 0x03, 0x01]), { timeoutMs: 10_000 })).length, 0);
      assert.ok(lines.some((line) => line.includes('peer closed connection in SSL handshake while SSL handshaking')), lines.join('\n'));
    } finally {
      await quiet.stop();
    }
  });
});

describe('stream ssl_certificate with variables and ssl_certificate_cache', () => {
  it('loads the files $ssl_server_name names in the handshake, cached where the server says so', async () => {
    const dir = tempDir({
      'a.test.crt': pem('a-rsa.fullchain.crt'),
      'a.test.key': pem('a-rsa.key'),
      'b.test.crt': pem('b-rsa.fullchain.crt'),
      'b.test.key': pem('b-rsa.key'),
    });
    const { log, lines } = memoryLog();
    const served = await serveStream(`stream {
      ssl_certificate ${dir.path}/$ssl_server_name.crt;
      ssl_certificate_key ${dir.path}/$ssl_server_name.key;
      server { listen 127.0.0.1:1 ssl; ssl_certificate_cache max=10 valid=1h; return "$ssl_server_name"; }
      server { listen 127.0.0.1:2 ssl; return "$ssl_server_name"; }
    }`, '/tmp', log);
    const [cached = 0, uncached = 0] = served.ports;
    try {
      assert.match(await servedCn(cached, 'a.test'), /a\.test/);
      assert.match(await servedCn(uncached, 'a.test'), /a\.test/);
      assert.equal((await tlsExchange(uncached, 'b.test', '')).answer, 'b.test');
      for (const ext of ['crt', 'key']) {
        writeFileSync(join(dir.path, `a.test.${ext}.tmp`), readFileSync(join(dir.path, `b.test.${ext}`)));
        renameSync(join(dir.path, `a.test.${ext}.tmp`), join(dir.path, `a.test.${ext}`));
      }
      assert.match(await servedCn(cached, 'a.test'), /a\.test/, 'cached: the files as they were');
      assert.match(await servedCn(uncached, 'a.test'), /b\.test/, 'no cache: the files as they are');
      await assert.rejects(servedCn(uncached, 'c.test'));
      assert.ok(lines.some((line) => line.includes(`cannot load certificate "${dir.path}/c.test.crt"`)), lines.join('\n'));
    } finally {
      await served.stop();
      dir.remove();
    }
  });
});

describe('stream proxy_ssl', () => {
  it('speaks TLS to the upstream and verifies its certificate and name', async () => {
    const upstream = createTlsServer({ cert: pem('a-rsa.fullchain.crt'), key: pem('a-rsa.key') }, (socket) => {
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    const port = (upstream.address() as { port: number }).port;
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on;
      server {
        listen 127.0.0.1:1;
        proxy_ssl on; proxy_ssl_verify on; proxy_ssl_trusted_certificate ${path('ca.crt')};
        proxy_ssl_name a.test; proxy_ssl_server_name on;
        proxy_pass 127.0.0.1:${port};
      }
      server {
        listen 127.0.0.1:2;
        proxy_ssl on; proxy_ssl_verify on; proxy_ssl_trusted_certificate ${path('ca.crt')};
        proxy_ssl_name wrong.test;
        proxy_pass 127.0.0.1:${port};
      }
    }`, '/tmp', log);
    try {
      assert.equal((await exchange(proxy.ports[0] ?? 0, 'over tls')).toString(), 'over tls');
      assert.equal((await exchange(proxy.ports[1] ?? 0, 'refused')).length, 0);
      assert.ok(lines.some((line) => line.includes('upstream SSL certificate does not match "wrong.test"')), lines.join('\n'));
    } finally {
      await proxy.stop();
      await new Promise((resolve) => upstream.close(resolve));
    }
  });
});

// stream_ssl_alpn.t, stream_proxy_ssl_alpn.t: ssl_alpn and proxy_ssl_alpn were unknown directives.
describe('stream ssl_alpn and proxy_ssl_alpn', () => {
  let served: ServedStream;
  const state = localServingState();
  const cert = `ssl_certificate ${path('a-rsa.fullchain.crt')}; ssl_certificate_key ${path('a-rsa.key')};`;

  before(async () => {
    served = await serveStream(`stream {
      ${cert}
      server { listen 127.0.0.1:1 ssl; ssl_alpn first second; return "X $ssl_alpn_protocol X"; }
      server { listen 127.0.0.1:2 ssl; ssl_alpn v1 v2; return $ssl_alpn_protocol; }
    }`, '/tmp', undefined, state);
  });
  after(async () => {
    await served.stop();
  });

  /** The answer of a TLS session that offers `alpn` (none when undefined); rejects when the handshake fails. */
  const ask = (port: number, alpn?: string[]): Promise<string> => new Promise((resolve, reject) => {
    const socket = connectTls({ port, host: '127.0.0.1', servername: 'a.test', ca: pem('ca.crt'), ...(alpn === undefined ? {} : { ALPNProtocols: alpn }) });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });

  it('chooses the first of the server\'s protocols the client offers, none without ALPN, and fails the handshake on no match', async () => {
    assert.equal(await ask(served.ports[0] ?? 0, ['first']), 'X first X');
    assert.equal(await ask(served.ports[0] ?? 0, ['wrong', 'second', 'first']), 'X first X');
    assert.equal(await ask(served.ports[0] ?? 0, ['wrong', 'second']), 'X second X');
    assert.equal(await ask(served.ports[0] ?? 0), 'X  X');
    await assert.rejects(ask(served.ports[0] ?? 0, ['wrong']), /no.application.protocol|alert number 120/i);
  });

  it('offers proxy_ssl_alpn\'s values to the upstream, leaving out those that come out empty', async () => {
    const upstream = served.ports[1] ?? 0;
    const proxy = await serveStream(`stream {
      proxy_ssl on;
      ${cert}
      server { listen 127.0.0.1:1 ssl; proxy_pass 127.0.0.1:${upstream}; proxy_ssl_alpn v2; }
      server { listen 127.0.0.1:2 ssl; ssl_alpn v1 v2; proxy_pass 127.0.0.1:${upstream}; proxy_ssl_alpn $ssl_alpn_protocol; }
      server { listen 127.0.0.1:3 ssl; proxy_pass 127.0.0.1:${upstream}; }
    }`, '/tmp', undefined, state);
    try {
      assert.equal(await ask(proxy.ports[0] ?? 0), 'v2');
      assert.equal(await ask(proxy.ports[1] ?? 0, ['v1']), 'v1');
      assert.equal(await ask(proxy.ports[1] ?? 0), '', 'an empty value is not offered: no ALPN at all');
      assert.equal(await ask(proxy.ports[2] ?? 0), '');
    } finally {
      await proxy.stop();
    }
  });

  it('refuses a protocol longer than 255 bytes and a duplicate, as nginx does', () => {
    assert.match(errorOf(`stream { server { listen 1234; ssl_alpn ${'a'.repeat(256)}; return x; } }`), /^"ssl_alpn" directive protocol too long in \/x\.conf:1$/);
    assert.match(errorOf('stream { server { listen 1234; ssl_alpn a; ssl_alpn b; return x; } }'), /^"ssl_alpn" directive is duplicate in \/x\.conf:1$/);
    assert.match(errorOf(`stream { server { listen 1234; proxy_ssl_alpn ${'a'.repeat(256)}; proxy_pass 127.0.0.1:9; } }`), /^"proxy_ssl_alpn" directive protocol too long in \/x\.conf:1$/);
  });
});

// stream_server_name.t and the ssl tests that use it: server_name, default_server and
// server_names_hash_* were refused in stream (nginx 1.25.5 chooses among the servers of an
// address by the SNI name, or by ssl_preread's).
describe('stream server_name', () => {
  let served: ServedStream;
  const state = localServingState();

  before(async () => {
    served = await serveStream(`stream {
      server_names_hash_bucket_size 64;
      ssl_certificate ${path('a-rsa.fullchain.crt')}; ssl_certificate_key ${path('a-rsa.key')};
      server { listen 127.0.0.1:1 ssl; server_name localhost; return "$server_name"; }
      server { listen 127.0.0.1:1; server_name www.example.com; return "$server_name"; }
      server { listen 127.0.0.1:1; server_name ~^(?P<name>[a-z]+)\\.example\\.com$; return "$name"; }
      server { listen 127.0.0.1:1; server_name *.wc.example.com; return "$server_name"; }
      server { listen 127.0.0.1:1; server_name .dot.example.com; return "$server_name"; }
      server { listen 127.0.0.1:1; server_name nothing.example.com; }
      server { listen 127.0.0.1:2; server_name one; ssl_preread on; return "one $ssl_preread_server_name"; }
      server { listen 127.0.0.1:2 default_server; server_name two; ssl_preread on; return "two $ssl_preread_server_name"; }
    }`, '/tmp', undefined, state);
  });
  after(async () => {
    await served.stop();
  });

  /** What a TLS session with SNI `name` (none when undefined) was answered, or the error. */
  const ask = (name: string | undefined): Promise<string> => new Promise((resolve) => {
    const socket = connectTls({ port: served.ports[0] ?? 0, host: '127.0.0.1', rejectUnauthorized: false, ...(name === undefined ? {} : { servername: name }) });
    let answer = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('end', () => resolve(answer));
    socket.on('error', (err) => resolve(`error: ${err.message}`));
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });

  it('chooses the server by the SNI name: exact (any case), regex with named captures, wildcards, else the first', async () => {
    assert.equal(await ask('xxx'), 'localhost');
    assert.equal(await ask(undefined), 'localhost');
    assert.equal(await ask('WWW.EXAMPLE.COM'), 'www.example.com');
    assert.equal(await ask('blah.example.com'), 'blah');
    assert.equal(await ask('a.b.wc.example.com'), '*.wc.example.com');
    assert.equal(await ask('www.dot.example.com'), 'dot.example.com');
    assert.equal(await ask('dot.example.com.'), 'dot.example.com');
  });

  it('ends a session with 500 in a server without proxy_pass or return (no longer refused at -t)', async () => {
    assert.equal(await ask('nothing.example.com'), '');
  });

  it('chooses the server by ssl_preread\'s server name, else the default_server', async () => {
    const plain = (name: string): Promise<string> => new Promise((resolve, reject) => {
      const raw = connect({ port: served.ports[1] ?? 0, host: '127.0.0.1' }, () => raw.write(clientHello(name)));
      const chunks: Buffer[] = [];
      raw.on('data', (chunk: Buffer) => chunks.push(chunk));
      raw.on('error', reject);
      raw.on('close', () => resolve(Buffer.concat(chunks).toString('latin1')));
    });
    assert.equal(await plain('one'), 'one one');
    assert.equal(await plain('ONE'), 'one ONE');
    assert.equal(await plain('other'), 'two other');
  });
});
