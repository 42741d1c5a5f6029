/**
 * proxy_upload_rate and proxy_download_rate with variables (nginx 1.27: ngx_stream_complex_value_size()),
 * a FIN that comes while paced bytes wait, and what stream_access_log.t needed besides: an
 * access_log path with variables, the stream block's own log file, $upstream_first_byte_time
 * and $upstream_session_time. All were refused at -t before (unknown directive or variable, or
 * "variables in the stream access_log path are not supported").
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../e2e/helpers/masters.js';
import { errorOf, memoryLog, serveStream, startBackend, type Backend, type ServedStream } from './helpers.js';

/** Sends `data` (no FIN), resolves with what came back 300 ms after the first byte. */
function firstBytes(port: number, data: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let got = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no byte within 5 s'));
    }, 5000);
    socket.on('connect', () => socket.write(data));
    socket.on('error', reject);
    socket.on('data', (chunk: Buffer) => {
      if (got === '') {
        clearTimeout(timer);
        setTimeout(() => {
          socket.destroy();
          resolve(got);
        }, 300);
      }
      got += chunk.toString('latin1');
    });
  });
}

describe('stream proxy rates', () => {
  const dir = tempDir();
  const backends: Backend[] = [];
  const served: ServedStream[] = [];
  after(async () => {
    for (const one of served) await one.stop();
    for (const backend of backends) await backend.stop();
    dir.remove();
  });

  const echo = async (): Promise<Backend> => {
    const backend = await startBackend((socket) => {
      socket.on('data', (chunk: Buffer) => socket.write(chunk));
      socket.on('end', () => socket.end());
    });
    backends.push(backend);
    return backend;
  };

  it('takes its rate from a variable, and an invalid size logs nginx\'s error and means no limit', async () => {
    const backend = await echo();
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream {
      map $server_port $down { default 1; }
      map $server_port $bad { default x1; }
      server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${backend.port}; proxy_download_rate $down; }
      server { listen 127.0.0.1:2; proxy_pass 127.0.0.1:${backend.port}; proxy_download_rate $bad; }
    }`, '/tmp', log);
    served.push(proxy);
    assert.equal(await firstBytes(proxy.ports[0] ?? 0, '0123456789'), '0');
    assert.equal(await firstBytes(proxy.ports[1] ?? 0, '0123456789'), '0123456789');
    assert.ok(lines.some((line) => /^\[error\] invalid size "x1", client: 127\.0\.0\.1, server: 127\.0\.0\.1:\d+$/.test(line)), lines.join('\n'));
  });

  it('passes every byte that waited before a client\'s FIN, then the FIN (proxy_half_close off)', async () => {
    let resolveGot: (text: string) => void = () => undefined;
    const got = new Promise<string>((resolve) => (resolveGot = resolve));
    const backend = await startBackend((socket) => {
      let text = '';
      socket.on('data', (chunk: Buffer) => (text += chunk.toString()));
      socket.on('end', () => resolveGot(text));
    });
    backends.push(backend);
    const proxy = await serveStream(`stream { server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${backend.port}; proxy_upload_rate 6; } }`);
    served.push(proxy);
    const socket = connect({ port: proxy.port, host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => undefined);
    socket.on('connect', () => socket.end('0123456789'));
    // 6 bytes in the first second, the other 4 in the next, and the FIN after them.
    assert.equal(await got, '0123456789');
    socket.destroy();
    await waitFor('the session to end', () => (proxy.runtime.connections === 0 ? true : undefined), 5000);
  });

  it('writes an access_log whose path has variables, opens the stream block\'s own, and logs the upstream times', async () => {
    const backend = await echo();
    const proxy = await serveStream(`stream {
      log_format time '$upstream_connect_time:$upstream_first_byte_time:$upstream_session_time:$session_time';
      access_log ${dir.path}/block.log time;
      server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${backend.port}; access_log ${dir.path}/port_$server_port.log time; }
    }`);
    served.push(proxy);
    assert.ok(existsSync(`${dir.path}/block.log`), 'nginx opens the stream block\'s log though no server writes it');
    const socket = connect({ port: proxy.port, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      socket.on('error', reject);
      socket.on('connect', () => socket.write('ping'));
      socket.on('data', () => {
        socket.end();
        resolve();
      });
    });
    const path = `${dir.path}/port_${proxy.port}.log`;
    const line = await waitFor('the log line', () => {
      proxy.runtime.flushLogs();
      return existsSync(path) ? readFileSync(path, 'utf8') : undefined;
    }, 5000);
    assert.match(line, /^\d+\.\d{3}:\d+\.\d{3}:\d+\.\d{3}:\d+\.\d{3}\n$/);
  });

  it('refuses what nginx refuses at -t', () => {
    assert.match(errorOf('stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_download_rate 1x; } }'), /^"proxy_download_rate" directive invalid value in \/x\.conf:1$/);
    assert.match(errorOf('stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_upload_rate $nothing; } }'), /^unknown "nothing" variable$/);
    assert.match(errorOf('stream { proxy_buffer_size 1y; server { listen 1234; proxy_pass 127.0.0.1:9; } }'), /^"proxy_buffer_size" directive invalid value in \/x\.conf:1$/);
  });
});
