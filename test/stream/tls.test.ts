/** TLS in stream: termination on listen ... ssl (with the certificate store, rotated live) and TLS to upstreams (proxy_ssl). */
import assert from 'node:assert/strict';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers/tmp.js';
import { after, before, describe, it } from 'node:test';
import { connect as connectTls, createServer as createTlsServer, type PeerCertificate } from 'node:tls';
import { localServingState } from '../../src/http/serving-state.js';
import { echoBackend, exchange, memoryLog, serveStream, type Backend, type ServedStream } from './helpers.js';

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
