/** `listen ... proxy_protocol` in http: the header read before HTTP, `$proxy_protocol_*`, realip from it. */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { writeProxyProtocol } from '../../src/core/proxy-protocol.js';
import { ErrorLog } from '../../src/core/log.js';
import { serve, type Served } from './helpers.js';

/** Writes `chunks` one by one (each after the previous left) and reads to the close; bounded by 5 s. */
function exchange(port: number, chunks: readonly (string | Buffer)[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no close within 5 s'));
    }, 5000);
    socket.on('data', (chunk: Buffer) => got.push(chunk));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(got).toString('latin1'));
    });
    socket.on('connect', () => {
      let i = 0;
      const next = (): void => {
        const chunk = chunks[i++];
        if (chunk === undefined) return;
        socket.write(chunk, () => setImmediate(next));
      };
      next();
    });
  });
}

const REQUEST = 'GET / HTTP/1.0\r\nHost: localhost\r\n\r\n';

describe('http listen ... proxy_protocol', () => {
  let served: Served;
  let dir: string;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-pp-'));
    served = await serve(`http {
      server {
        listen 127.0.0.1:18090 proxy_protocol;
        set_real_ip_from 127.0.0.1;
        real_ip_header proxy_protocol;
        location / { return 200 "$proxy_protocol_addr|$proxy_protocol_port|$proxy_protocol_server_addr|$proxy_protocol_server_port|$remote_addr|$remote_port|$realip_remote_addr"; }
      }
    }`, '/tmp/', new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]));
  });
  after(async () => {
    await served.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('reads a v1 header sent with the request, and realip takes its source address and port', async () => {
    const reply = await exchange(served.port, [`PROXY TCP4 192.0.2.1 192.0.2.2 1234 5678\r\n${REQUEST}`]);
    assert.match(reply, /^HTTP\/1\.1 200 /);
    assert.match(reply, /\r\n\r\n192\.0\.2\.1\|1234\|192\.0\.2\.2\|5678\|192\.0\.2\.1\|1234\|127\.0\.0\.1$/);
  });

  it('reads a header that arrives in pieces, then the request after it', async () => {
    const reply = await exchange(served.port, ['PROXY TCP6 2001:db8::1 ', '2001:db8::2 80 443\r\nGET / HT', 'TP/1.0\r\nHost: localhost\r\n\r\n']);
    assert.match(reply, /\r\n\r\n2001:db8::1\|80\|2001:db8::2\|443\|2001:db8::1\|80\|127\.0\.0\.1$/);
  });

  it('reads a v2 header', async () => {
    const header = writeProxyProtocol(2, { sourceAddress: '198.51.100.7', sourcePort: 40000, destinationAddress: '198.51.100.8', destinationPort: 8443 });
    const reply = await exchange(served.port, [Buffer.concat([header, Buffer.from(REQUEST)])]);
    assert.match(reply, /\r\n\r\n198\.51\.100\.7\|40000\|198\.51\.100\.8\|8443\|198\.51\.100\.7\|40000\|127\.0\.0\.1$/);
  });

  it('gives no addresses for PROXY UNKNOWN, and keeps the connection address', async () => {
    const reply = await exchange(served.port, [`PROXY UNKNOWN\r\n${REQUEST}`]);
    assert.match(reply, /\r\n\r\n\|\|\|\|127\.0\.0\.1\|\d+\|127\.0\.0\.1$/);
  });

  it('closes a connection whose header is broken without an answer, and logs nginx\'s line', async () => {
    const reply = await exchange(served.port, [REQUEST]);
    assert.equal(reply, '');
    const log = readFileSync(join(dir, 'error.log'), 'utf8');
    assert.match(log, /\[error\] .*broken header: "GET \/ HTTP\/1\.0Host: localhost" while reading PROXY protocol, client: 127\.0\.0\.1/);
  });
});
