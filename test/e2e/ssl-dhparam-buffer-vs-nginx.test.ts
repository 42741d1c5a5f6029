/**
 * `ssl_dhparam` and `ssl_buffer_size`, hitless and Debian's nginx side by side on one
 * configuration: a TLSv1.2 client that offers only a DHE cipher gets it where ssl_dhparam is set
 * and a handshake failure where it is not; the TLS records of a large response, read on the wire
 * through a recording proxy, are no longer than ssl_buffer_size plus the record overhead; and -t
 * says the same of a missing and of a broken parameters file.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { fixture } from '../tls/session-client.js';
import { freePort } from './helpers/masters.js';
import { configTest, startServer, type RunningServer } from './helpers/side-by-side.js';

const BINARIES = ['nginx', 'hitless'] as const;
type Binary = (typeof BINARIES)[number];

/** The ports of one binary: with ssl_dhparam, without, ssl_buffer_size 4k, the default 16k. */
interface Ports {
  dh: number;
  noDh: number;
  small: number;
  large: number;
}

const BODY_SIZE = 200_000;

function conf(dir: string, ports: Ports, dhparam: string): string {
  const tls = `ssl_certificate ${fixture('a-rsa.fullchain.crt')}; ssl_certificate_key ${fixture('a-rsa.key')};`;
  return `pid ${join(dir, 'run.pid')};
error_log ${join(dir, 'error.log')} info;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${ports.dh} ssl; ${tls} ssl_protocols TLSv1.2; ssl_dhparam ${dhparam}; location / { return 200 "dh\\n"; } }
    server { listen 127.0.0.1:${ports.noDh} ssl; ${tls} ssl_protocols TLSv1.2; location / { return 200 "no dh\\n"; } }
    server { listen 127.0.0.1:${ports.small} ssl; ${tls} ssl_buffer_size 4k; root ${dir}/www; }
    server { listen 127.0.0.1:${ports.large} ssl; ${tls} root ${dir}/www; }
}
`;
}

/** A handshake offering DHE-RSA-AES128-GCM-SHA256 only: the cipher agreed, or the error's code. */
function dheHandshake(port: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256' });
    socket.once('secureConnect', () => {
      resolve(socket.getCipher().name);
      socket.destroy();
    });
    socket.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
  });
}

/**
 * GET /big through a loopback proxy that parses the server's bytes into TLS records (RFC 8446
 * section 5.1: type, version, 16-bit length); resolves with the application data record lengths.
 */
async function recordLengths(port: number): Promise<number[]> {
  const lengths: number[] = [];
  let pending = Buffer.alloc(0);
  const open = new Set<Socket>();
  const proxy: Server = createServer((client) => {
    const upstream = createConnection(port, '127.0.0.1');
    open.add(client).add(upstream);
    client.pipe(upstream);
    upstream.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 5) {
        const length = pending.readUInt16BE(3);
        if (pending.length < 5 + length) break;
        if (pending[0] === 23) lengths.push(length);
        pending = pending.subarray(5 + length);
      }
      client.write(chunk);
    });
    upstream.on('end', () => client.end());
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  const address = proxy.address();
  if (address === null || typeof address === 'string') throw new Error('no proxy port');
  try {
    const received = await new Promise<number>((resolve, reject) => {
      const socket = connect({ port: address.port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false });
      let bytes = 0;
      socket.once('secureConnect', () => socket.write('GET /big HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n'));
      socket.on('data', (chunk: Buffer) => (bytes += chunk.length));
      socket.once('end', () => resolve(bytes));
      socket.once('error', reject);
    });
    assert.ok(received > BODY_SIZE, `the whole response came (${received} bytes)`);
  } finally {
    for (const socket of open) socket.destroy();
    await new Promise((resolve) => proxy.close(resolve));
  }
  return lengths;
}

describe('ssl_dhparam and ssl_buffer_size: hitless and nginx side by side', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-dh-'));
  // nginx's workers run as nobody and read the docroot.
  chmodSync(dir, 0o755);
  const running: RunningServer[] = [];
  const ports = {} as Record<Binary, Ports>;

  before(async () => {
    writeFileSync(join(dir, 'broken-dh.pem'), '-----BEGIN DH PARAMETERS-----\nMIIBCAKCAQEAabc=\n-----END DH PARAMETERS-----\n');
    writeFileSync(join(dir, 'not-dh.pem'), 'not a parameters file\n');
    mkdirSync(join(dir, 'www'));
    writeFileSync(join(dir, 'www', 'big'), Buffer.alloc(BODY_SIZE, 'x'));
    for (const binary of BINARIES) {
      ports[binary] = { dh: await freePort(), noDh: await freePort(), small: await freePort(), large: await freePort() };
      const file = join(dir, `${binary}.conf`);
      writeFileSync(file, conf(dir, ports[binary], fixture('dhparam.pem')));
      const p = ports[binary];
      running.push(await startServer(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, `${binary}-error.log`), '-g', 'daemon off;'], [p.dh, p.noDh, p.small, p.large]));
    }
  });
  after(async () => {
    await Promise.all(running.map((server) => server.stop()));
    rmSync(dir, { recursive: true, force: true });
  });

  for (const binary of BINARIES) {
    it(`${binary}: a DHE-only TLSv1.2 client gets DHE with ssl_dhparam and a handshake failure without`, async () => {
      assert.equal(await dheHandshake(ports[binary].dh), 'DHE-RSA-AES128-GCM-SHA256');
      assert.match(await dheHandshake(ports[binary].noDh), /HANDSHAKE_FAILURE|ECONNRESET/);
    });

    it(`${binary}: ssl_buffer_size 4k sends records of at most 4k plus overhead; the default sends 16k`, async () => {
      // TLSv1.3 adds the inner content type and a 16-byte tag (RFC 8446 section 5.2); 256 is RFC 8446's bound.
      const small = await recordLengths(ports[binary].small);
      assert.ok(small.length > BODY_SIZE / 4096, `${small.length} records`);
      assert.ok(Math.max(...small) <= 4096 + 256, `largest record ${Math.max(...small)}`);
      const large = await recordLengths(ports[binary].large);
      assert.ok(Math.max(...large) > 4096 + 256, `largest default record ${Math.max(...large)}`);
      assert.ok(Math.max(...large) <= 16384 + 256, `largest default record ${Math.max(...large)}`);
    });
  }

  it('-t: a missing and a broken ssl_dhparam fail with the same messages', () => {
    for (const [name, expected] of [
      ['missing.pem', /BIO_new_file\(".*missing\.pem"\) failed \(SSL: error:80000002:system library::No such file or directory/],
      ['not-dh.pem', /PEM_read_bio_DHparams\(".*not-dh\.pem"\) failed \(SSL: error:0480006C:PEM routines::no start line:Expecting: DH PARAMETERS\)/],
      ['broken-dh.pem', /PEM_read_bio_DHparams\(".*broken-dh\.pem"\) failed \(SSL: .*error:0488000D:PEM routines::ASN1 lib\)/],
    ] as const) {
      const file = join(dir, `t-${name}.conf`);
      writeFileSync(file, conf(dir, { dh: 1, noDh: 2, small: 3, large: 4 }, join(dir, name)));
      for (const binary of BINARIES) {
        const result = configTest(binary, ['-p', `${dir}/`, '-c', file, '-e', join(dir, 't-error.log')]);
        assert.equal(result.status, 1, `${binary} -t ${name}: ${result.output}`);
        assert.match(result.output, /\[emerg\]/, `${binary} -t ${name}`);
        assert.match(result.output, expected, `${binary} -t ${name}`);
      }
    }
  });

  it('-t: ssl_buffer_size below 512 is a [warn] in hitless, accepted by both', () => {
    const file = join(dir, 't-buffer.conf');
    writeFileSync(file, conf(dir, { dh: 1, noDh: 2, small: 3, large: 4 }, fixture('dhparam.pem')).replace('ssl_buffer_size 4k', 'ssl_buffer_size 100'));
    assert.equal(configTest('nginx', ['-p', `${dir}/`, '-c', file, '-e', join(dir, 't-error.log')]).status, 0);
    const result = configTest('hitless', ['-p', `${dir}/`, '-c', file, '-e', join(dir, 't-error.log')]);
    assert.equal(result.status, 0, result.output);
    assert.match(result.output, /\[warn\] "ssl_buffer_size" 100 is sent as TLS records of 512 bytes in hitless .* in .*t-buffer\.conf:8/);
  });
});
