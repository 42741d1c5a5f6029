/**
 * A server with no `ssl_certificate` of its own, on an address whose default server names its
 * certificate with variables, handshakes with the default's certificate and answers as itself,
 * hitless and Debian's nginx side by side (nginx keeps the default server's SSL_CTX, whose
 * certificate callback loads the files; hitless used to answer with an empty context, and the
 * handshake failed); and a session of such a default resumes on another address that shares
 * its cache (the handshake starts on the settings' context, with its session id context).
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** `port`: a default with variable certificates and a server with none; `first` and `second`: two such defaults sharing a session cache. */
function conf(dir: string, port: number, first: number, second: number): string {
  const variable = `ssl_certificate ${dir}/$name.crt; ssl_certificate_key ${dir}/$name.key;`;
  const cached = (listen: number): string =>
    `server { listen 127.0.0.1:${listen} ssl; server_name default.test; ${variable} ssl_session_cache shared:SSL:1m; ssl_session_tickets off; return 200 "$ssl_session_reused"; }`;
  return `pid ${join(dir, `${port}.pid`)};
error_log ${join(dir, `${port}-error.log`)} info;
events {}
http {
    access_log off;
    geo $name { default a-rsa; }
    server { listen 127.0.0.1:${port} ssl; server_name default.test; ${variable} return 200 "default"; }
    server { listen 127.0.0.1:${port} ssl; server_name no-context.test; return 200 "no context"; }
    ${cached(first)}
    ${cached(second)}
}
`;
}

/** A TLS 1.2 request to `port` offering `session`: the body and the session the server gave (at most 10 s). */
function resume(port: number, session?: Buffer): Promise<{ body: string; session: Buffer | undefined }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'default.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ...(session === undefined ? {} : { session }) });
    let text = '';
    let latest: Buffer | undefined;
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('session', (data: Buffer) => (latest = data));
    socket.once('secureConnect', () => socket.write('GET / HTTP/1.0\r\nHost: default.test\r\n\r\n'));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve({ body: text.slice(text.indexOf('\r\n\r\n') + 4), session: latest }));
    socket.once('error', reject);
  });
}

/** A request to `servername`: the leaf's subject and the body, or the error's code (at most 10 s). */
function request(port: number, servername: string): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false });
    let text = '';
    let subject = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.once('secureConnect', () => {
      subject = socket.getPeerX509Certificate()?.subject ?? '';
      socket.write(`GET / HTTP/1.0\r\nHost: ${servername}\r\n\r\n`);
    });
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.once('end', () => resolve(`${subject}|${text.slice(text.indexOf('\r\n\r\n') + 4)}`));
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

describe('a server without certificates behind a default with variable ones: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-noctx-'));
  // nginx's workers run as nobody and load the variable certificate in each handshake.
  chmodSync(dir, 0o755);
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, { port: number; first: number; second: number }>;

  before(async () => {
    writeFileSync(join(dir, 'a-rsa.crt'), readFileSync(fixture('a-rsa.fullchain.crt')));
    writeFileSync(join(dir, 'a-rsa.key'), readFileSync(fixture('a-rsa.key')));
    for (const binary of BINARIES) {
      const p = { port: await freePort(), first: await freePort(), second: await freePort() };
      ports[binary] = p;
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, p.port, p.first, p.second));
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.port, p.first, p.second]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: the default's certificate, the server's own answer`, async () => {
      const subject = new X509Certificate(readFileSync(fixture('a-rsa.crt'))).subject;
      assert.equal(await request(ports[binary].port, 'no-context.test'), `${subject}|no context`);
      assert.equal(await request(ports[binary].port, 'default.test'), `${subject}|default`);
    });

    it(`${binary}: a session of one such default resumes on another address sharing its cache`, async () => {
      const first = await resume(ports[binary].first);
      assert.equal(first.body, '.');
      assert.ok(first.session !== undefined, 'the server gave a session');
      assert.equal((await resume(ports[binary].second, first.session)).body, 'r');
    });
  }
});
