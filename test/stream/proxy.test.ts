/** TCP proxying through a stream server: payloads both ways, half-close, timeouts, PROXY protocol, return, access log. */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { readProxyProtocol } from '../../src/core/proxy-protocol.js';
import { tempDir } from '../helpers/tmp.js';
import { waitFor } from '../e2e/helpers/masters.js';
import { echoBackend, exchange, memoryLog, serveStream, startBackend, type Backend, type ServedStream } from './helpers.js';

describe('stream proxy_pass to an echo backend', () => {
  let backend: Backend;
  let served: ServedStream;
  const dir = tempDir();

  before(async () => {
    backend = await echoBackend();
    served = await serveStream(`stream { proxy_half_close on;
      log_format s '$remote_addr $protocol $status $bytes_sent $bytes_received "$upstream_addr" $upstream_bytes_sent $upstream_bytes_received';
      access_log ${dir.path}/stream.log s;
      server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${backend.port}; }
    }`);
  });
  after(async () => {
    await served.stop();
    await backend.stop();
    dir.remove();
  });

  it('passes a small payload and the answer back', async () => {
    const answer = await exchange(served.port, 'ping');
    assert.equal(answer.toString(), 'ping');
  });

  it('passes 8 MiB both ways unchanged', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const answer = await exchange(served.port, payload, { timeoutMs: 60_000 });
    assert.equal(answer.length, payload.length);
    assert.ok(answer.equals(payload));
  });

  it('passes the client FIN on and still delivers what the backend sends after it', async () => {
    const late = await startBackend((socket) => {
      let got = '';
      socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
      // Answers only once the client's FIN has come through the proxy.
      socket.on('end', () => setTimeout(() => socket.end(`after FIN: ${got}`), 50));
    });
    const proxy = await serveStream(`stream { proxy_half_close on; server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${late.port}; } }`);
    try {
      const answer = await exchange(proxy.port, 'question');
      assert.equal(answer.toString(), 'after FIN: question');
    } finally {
      await proxy.stop();
      await late.stop();
    }
  });

  it('writes the session variables to the access log', async () => {
    await exchange(served.port, 'abc');
    served.runtime.flushLogs();
    const lines = readFileSync(`${dir.path}/stream.log`, 'utf8').trim().split('\n');
    assert.ok(lines.includes(`127.0.0.1 TCP 200 3 3 "127.0.0.1:${backend.port}" 3 3`), lines.join('\n'));
  });
});

describe('stream proxy_timeout, return and failures', () => {
  it('closes a session silent for proxy_timeout', async () => {
    const silent = await startBackend(() => undefined);
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on; server { listen 127.0.0.1:1; proxy_timeout 200ms; proxy_pass 127.0.0.1:${silent.port}; } }`, '/tmp', log);
    try {
      const answer = await exchange(proxy.port, 'x', { halfClose: false, timeoutMs: 5_000 });
      assert.equal(answer.length, 0);
      assert.ok(lines.some((line) => line.includes('timed out (110: Connection timed out) while proxying connection')), lines.join('\n'));
    } finally {
      await proxy.stop();
      await silent.stop();
    }
  });

  it('answers return with its value and closes', async () => {
    const proxy = await serveStream(`stream { proxy_half_close on; server { listen 127.0.0.1:1; return "hello $remote_addr\\n"; } }`);
    try {
      assert.equal((await exchange(proxy.port, '')).toString(), 'hello 127.0.0.1\n');
    } finally {
      await proxy.stop();
    }
  });

  it('closes the client when no peer can be reached, with status 502 in the log', async () => {
    const dir = tempDir();
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on;
      log_format s '$status $upstream_addr $upstream_connect_time';
      access_log ${dir.path}/s.log s;
      server { listen 127.0.0.1:1; proxy_connect_timeout 1s; proxy_pass 127.0.0.1:1; }
    }`, '/tmp', log);
    try {
      assert.equal((await exchange(proxy.port, 'x')).length, 0);
      proxy.runtime.flushLogs();
      assert.equal(readFileSync(`${dir.path}/s.log`, 'utf8'), '502 127.0.0.1:1 -\n');
      assert.ok(lines.some((line) => line.includes('connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: 127.0.0.1:1, upstream: "127.0.0.1:1"')), lines.join('\n'));
    } finally {
      await proxy.stop();
      dir.remove();
    }
  });
});

describe('PROXY protocol', () => {
  it('sends a v1 header with the client address before the session bytes (proxy_protocol on)', async () => {
    const backend = await echoBackend();
    const proxy = await serveStream(`stream { proxy_half_close on; server { listen 127.0.0.1:1; proxy_protocol on; proxy_pass 127.0.0.1:${backend.port}; } }`);
    try {
      const answer = (await exchange(proxy.port, 'data')).toString();
      assert.match(answer, new RegExp(`^PROXY TCP4 127\\.0\\.0\\.1 127\\.0\\.0\\.1 [0-9]+ ${proxy.port}\\r\\ndata$`));
    } finally {
      await proxy.stop();
      await backend.stop();
    }
  });

  it('sends a v2 header with proxy_protocol_version 2', async () => {
    const backend = await echoBackend();
    const proxy = await serveStream(`stream { proxy_half_close on; server { listen 127.0.0.1:1; proxy_protocol on; proxy_protocol_version 2; proxy_pass 127.0.0.1:${backend.port}; } }`);
    try {
      const answer = await exchange(proxy.port, 'data');
      const header = readProxyProtocol(answer);
      assert.equal(header.kind, 'header');
      if (header.kind !== 'header') return;
      assert.equal(header.addresses?.sourceAddress, '127.0.0.1');
      assert.equal(header.addresses?.destinationPort, proxy.port);
      assert.equal(answer.subarray(header.length).toString(), 'data');
    } finally {
      await proxy.stop();
      await backend.stop();
    }
  });

  it('reads a header on listen ... proxy_protocol and trusts its address with set_real_ip_from', async () => {
    const backend = await echoBackend();
    const proxy = await serveStream(`stream { proxy_half_close on;
      server { listen 127.0.0.1:1 proxy_protocol; set_real_ip_from 127.0.0.1; return "$remote_addr:$remote_port $realip_remote_addr $proxy_protocol_addr"; }
      server { listen 127.0.0.1:2 proxy_protocol; return "$remote_addr $proxy_protocol_addr"; }
      server { listen 127.0.0.1:3 proxy_protocol; proxy_pass 127.0.0.1:${backend.port}; }
    }`);
    try {
      const header = 'PROXY TCP4 203.0.113.7 192.0.2.1 5555 443\r\n';
      assert.equal((await exchange(proxy.ports[0] ?? 0, header)).toString(), '203.0.113.7:5555 127.0.0.1 203.0.113.7');
      assert.equal((await exchange(proxy.ports[1] ?? 0, header)).toString(), '127.0.0.1 203.0.113.7');
      // The bytes after the header are the session's; a broken header closes the connection.
      assert.equal((await exchange(proxy.ports[2] ?? 0, `${header}payload`)).toString(), 'payload');
      assert.equal((await exchange(proxy.ports[2] ?? 0, 'GET / HTTP/1.0\r\n\r\n')).length, 0);
    } finally {
      await proxy.stop();
      await backend.stop();
    }
  });
});

describe('stream limit_conn', () => {
  it('closes sessions over the limit and lets them in again once one ends', async () => {
    const backend = await echoBackend();
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on;
      limit_conn_zone $binary_remote_addr zone=per_ip:1m;
      server { listen 127.0.0.1:1; limit_conn per_ip 1; proxy_pass 127.0.0.1:${backend.port}; }
    }`, '/tmp', log);
    const first = connect({ port: proxy.port, host: '127.0.0.1' });
    try {
      first.write('hold');
      await new Promise((resolve) => first.once('data', resolve));
      assert.equal((await exchange(proxy.port, 'second')).length, 0);
      assert.ok(lines.some((line) => line.includes('limiting connections by zone "per_ip"')), lines.join('\n'));
      first.end();
      await new Promise((resolve) => first.once('close', resolve));
      let answer = '';
      for (let i = 0; i < 50 && answer === ''; i++) answer = (await exchange(proxy.port, 'third')).toString();
      assert.equal(answer, 'third');
    } finally {
      first.destroy();
      await proxy.stop();
      await backend.stop();
    }
  });

  // stream_limit_conn_dry_run.t: $limit_conn_status was an unknown variable in stream.
  it('sets $limit_conn_status: PASSED, REJECTED, REJECTED_DRY_RUN, and not found without a limit', async () => {
    const backend = await echoBackend();
    const dir = tempDir();
    const proxy = await serveStream(`stream { proxy_half_close on;
      limit_conn_zone $binary_remote_addr zone=per_ip:1m;
      log_format status '$server_port:$limit_conn_status';
      access_log ${dir.path}/status.log status;
      server { listen 127.0.0.1:1; limit_conn per_ip 1; proxy_pass 127.0.0.1:${backend.port}; }
      server { listen 127.0.0.1:2; limit_conn per_ip 1; proxy_pass 127.0.0.1:${backend.port}; }
      server { listen 127.0.0.1:3; limit_conn per_ip 1; limit_conn_dry_run on; proxy_pass 127.0.0.1:${backend.port}; }
      server { listen 127.0.0.1:4; proxy_pass 127.0.0.1:${backend.port}; }
    }`);
    const [held, rejected, dryRun, none] = proxy.ports as [number, number, number, number];
    const first = connect({ port: held, host: '127.0.0.1' });
    try {
      first.write('hold');
      await new Promise((resolve) => first.once('data', resolve));
      assert.equal((await exchange(rejected, 'x')).length, 0);
      assert.equal((await exchange(dryRun, 'y')).toString(), 'y');
      assert.equal((await exchange(none, 'z')).toString(), 'z');
      first.end();
      await new Promise((resolve) => first.once('close', resolve));
      const lines = await waitFor('four log lines', () => {
        proxy.runtime.flushLogs();
        const text = existsSync(`${dir.path}/status.log`) ? readFileSync(`${dir.path}/status.log`, 'utf8') : '';
        const found = text.split('\n').filter((line) => line !== '');
        return found.length === 4 ? found.sort() : undefined;
      }, 5000);
      assert.deepEqual(lines, [`${held}:PASSED`, `${rejected}:REJECTED`, `${dryRun}:REJECTED_DRY_RUN`, `${none}:-`].sort());
    } finally {
      first.destroy();
      await proxy.stop();
      await backend.stop();
      dir.remove();
    }
  });
});

// stream_proxy_protocol2_tlv.t: unknown "proxy_protocol_tlv_ssl" variable at -t.
describe('stream $proxy_protocol_tlv_*', () => {
  it('returns the TLVs of a listen ... proxy_protocol v2 header, by name, by type and ssl sub-TLV', async () => {
    const proxy = await serveStream(`stream { server { listen 127.0.0.1:1 proxy_protocol; return "$proxy_protocol_tlv_alpn|$proxy_protocol_tlv_0x02|$proxy_protocol_tlv_ssl_verify|$proxy_protocol_tlv_ssl_cn|$proxy_protocol_tlv_netns"; } }`);
    try {
      const tlv = (type: number, value: Buffer): Buffer => Buffer.concat([Buffer.from([type, 0, value.length]), value]);
      const ssl = Buffer.concat([Buffer.from([1, 0, 0, 0, 7]), tlv(0x22, Buffer.from('example.com'))]);
      const tlvs = Buffer.concat([tlv(0x01, Buffer.from('h2')), tlv(0x02, Buffer.from('localhost')), tlv(0x20, ssl)]);
      const head = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21, 0x11, 0, 12 + tlvs.length]);
      const header = Buffer.concat([head, Buffer.from([192, 0, 2, 1, 192, 0, 2, 2, 0, 1, 0, 2]), tlvs]);
      assert.equal((await exchange(proxy.port, header)).toString(), 'h2|localhost|7|example.com|');
      // A v1 header has no TLVs: every one is empty.
      assert.equal((await exchange(proxy.port, 'PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n')).toString(), '||||');
    } finally {
      await proxy.stop();
    }
  });
});

// stream_realip.t "server off": a server with a `listen ... proxy_protocol` and a plain listen
// read a PROXY header on both, and so closed the plain one's sessions as broken headers.
describe('stream listen ... proxy_protocol is per address', () => {
  it('reads a header only on the listen that asks for one', async () => {
    const proxy = await serveStream('stream { server { listen 127.0.0.1:1 proxy_protocol; listen 127.0.0.1:2; return "$proxy_protocol_addr:$proxy_protocol_port"; } }');
    try {
      assert.equal((await exchange(proxy.ports[0] ?? 0, 'PROXY TCP4 192.0.2.1 192.0.2.2 1234 5678\r\n')).toString(), '192.0.2.1:1234');
      assert.equal((await exchange(proxy.ports[1] ?? 0, '')).toString(), ':');
    } finally {
      await proxy.stop();
    }
  });
});
