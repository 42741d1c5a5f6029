import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { runProbe } from '../../src/probe/probe.js';
import { formatProbeReport } from '../../src/probe/format-report.js';
import { refusedPort, startHttpServer, startTcpServer, type LoopbackServer } from './loopback.js';

const servers: LoopbackServer[] = [];
after(async () => {
  await Promise.all(servers.map((server) => server.close()));
});

async function serve(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<LoopbackServer> {
  const server = await startHttpServer(handler);
  servers.push(server);
  return server;
}

const ok = (_req: IncomingMessage, res: ServerResponse): void => {
  res.end('ok');
};

describe('runProbe', () => {
  it('counts every request as ok against a server that always answers 200', async () => {
    const server = await serve(ok);
    const report = await runProbe({ url: server.url, requests: 100, concurrency: 10 });
    assert.equal(report.total, 100);
    assert.equal(report.ok, 100, formatProbeReport(report));
    assert.equal(report.failed, 0);
    assert.deepEqual(report.byStatus, { '200': 100 });
    assert.deepEqual(report.byError, {});
    assert.deepEqual(report.firstFailures, []);
    assert.equal(report.stoppedBy, 'requests');
    assert.equal(report.mode, 'keep-alive');
    assert.notEqual(report.latencyMs, null);
    assert.ok(report.latencyMs !== null && report.latencyMs.p50 <= report.latencyMs.p99);
    assert.ok(report.latencyMs !== null && report.latencyMs.p99 <= report.latencyMs.max);
  });

  it('counts 503 responses by status and as failures', async () => {
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      res.statusCode = served % 4 === 0 ? 503 : 200;
      res.end();
    });
    const report = await runProbe({ url: server.url, requests: 40, concurrency: 4 });
    assert.deepEqual(report.byStatus, { '200': 30, '503': 10 });
    assert.equal(report.ok, 30);
    assert.equal(report.failed, 10);
    assert.equal(report.firstFailures[0]?.outcome, '503');
    assert.equal(report.firstFailures[0]?.message, 'HTTP 503 Service Unavailable');
  });

  it('counts a connection reset as reset', async () => {
    const server = await serve((req) => {
      req.socket.resetAndDestroy();
    });
    const report = await runProbe({ url: server.url, requests: 5, concurrency: 1 });
    assert.equal(report.total, 5);
    assert.equal(report.failed, 5);
    assert.deepEqual(report.byError, { reset: 5 });
    assert.deepEqual(report.byStatus, {});
    assert.equal(report.latencyMs, null);
  });

  it('counts a refused connection as refused', async () => {
    const port = await refusedPort();
    const report = await runProbe({ url: `http://127.0.0.1:${port}/`, requests: 5, concurrency: 2 });
    assert.deepEqual(report.byError, { refused: 5 });
    assert.equal(report.failed, 5);
    assert.equal(report.connections, 0);
  });

  it('counts a reset on a reused keep-alive connection as a failure, without retrying it', async () => {
    // The race a draining server must avoid: it closes a pooled keep-alive connection just as
    // the client writes its next request on it. Node reports ECONNRESET; a silent retry on a
    // new connection would hide the loss, so the server must see exactly one connection.
    const server = await startTcpServer((socket) => {
      let answered = 0;
      let buffered = '';
      socket.on('data', (chunk: Buffer) => {
        buffered += chunk.toString('latin1');
        while (buffered.includes('\r\n\r\n')) {
          buffered = buffered.slice(buffered.indexOf('\r\n\r\n') + 4);
          answered += 1;
          if (answered === 1) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
          else socket.destroy();
        }
      });
    });
    servers.push(server);
    const report = await runProbe({ url: server.url, requests: 2, concurrency: 1 });
    assert.equal(report.total, 2);
    assert.equal(report.ok, 1);
    assert.deepEqual(report.byError, { reset: 1 });
    assert.equal(server.connections(), 1);
  });

  it('counts a response whose body is cut short as truncated', async () => {
    const server = await serve((req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('x'.repeat(10), () => req.socket.destroy());
    });
    const report = await runProbe({ url: server.url, requests: 4, concurrency: 2 });
    assert.deepEqual(report.byError, { truncated: 4 });
    assert.match(report.firstFailures[0]?.message ?? '', /^Response body cut short: /);
    assert.deepEqual(report.byStatus, {});
    assert.equal(report.ok, 0);
    assert.equal(report.failed, 4);
  });

  it('counts a request without a response within timeoutMs as timeout', async () => {
    const server = await serve(() => {
      // Never answers; close() destroys the connection, and the probe gives up first.
    });
    const report = await runProbe({ url: server.url, requests: 3, concurrency: 3, timeoutMs: 150 });
    assert.deepEqual(report.byError, { timeout: 3 });
    assert.equal(report.failed, 3);
  });

  it('counts a body that stalls past timeoutMs as timeout, not truncated', async () => {
    const server = await serve((_req, res) => {
      res.writeHead(200, { 'Content-Length': '100' });
      res.write('x');
    });
    const report = await runProbe({ url: server.url, requests: 2, concurrency: 1, timeoutMs: 150 });
    assert.deepEqual(report.byError, { timeout: 2 });
  });

  it('opens a new TCP connection for every request with newConnections', async () => {
    const seen: (string | undefined)[] = [];
    const server = await serve((req, res) => {
      seen.push(req.headers.connection);
      res.end('ok');
    });
    const report = await runProbe({ url: server.url, requests: 30, concurrency: 3, newConnections: true });
    assert.equal(report.ok, 30, formatProbeReport(report));
    assert.equal(report.mode, 'new-connections');
    assert.equal(server.connections(), 30);
    assert.equal(report.connections, 30);
    assert.deepEqual(new Set(seen), new Set(['close']));
  });

  it('reuses keep-alive connections, never more than concurrency', async () => {
    const server = await serve(ok);
    const report = await runProbe({ url: server.url, requests: 200, concurrency: 5 });
    assert.equal(report.ok, 200);
    assert.ok(server.connections() <= 5, `${server.connections()} connections for concurrency 5`);
    assert.equal(report.connections, server.connections());
  });

  it('sends exactly the request budget, however many workers there are', async () => {
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      res.end();
    });
    const report = await runProbe({ url: server.url, requests: 37, concurrency: 8 });
    assert.equal(report.total, 37);
    assert.equal(served, 37);
  });

  it('sends no more requests than the budget when concurrency exceeds it', async () => {
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      res.end();
    });
    const report = await runProbe({ url: server.url, requests: 3, concurrency: 50 });
    assert.equal(report.total, 3);
    assert.equal(served, 3);
    assert.ok(server.connections() <= 3);
  });

  it('awaits and counts the requests in flight at the deadline', async () => {
    const server = await serve((_req, res) => {
      setTimeout(() => res.end('late'), 300);
    });
    const report = await runProbe({ url: server.url, durationMs: 100, concurrency: 2 });
    assert.equal(report.stoppedBy, 'duration');
    assert.equal(report.total, 2);
    assert.equal(report.ok, 2);
  });

  it('stops when the signal aborts and still resolves with the report', async () => {
    const controller = new AbortController();
    let served = 0;
    const server = await serve((_req, res) => {
      served += 1;
      if (served === 20) controller.abort();
      res.end();
    });
    const report = await runProbe({ url: server.url, durationMs: Infinity, concurrency: 4 }, controller.signal);
    assert.equal(report.stoppedBy, 'signal');
    assert.equal(report.failed, 0);
    assert.ok(report.total >= 20 && report.total <= 24, `total ${report.total}`);
    assert.equal(report.total, served);
  });

  it('sends nothing when the signal is already aborted', async () => {
    const server = await serve(ok);
    const report = await runProbe({ url: server.url }, AbortSignal.abort());
    assert.equal(report.total, 0);
    assert.equal(report.stoppedBy, 'signal');
    assert.equal(server.connections(), 0);
  });

  it('leaves no connection open once it resolves, in either mode and after timeouts', async () => {
    const server = await serve((req, res) => {
      if (req.headers['x-stall'] === undefined) res.end('ok');
    });
    await runProbe({ url: server.url, requests: 20, concurrency: 4 });
    await runProbe({ url: server.url, requests: 20, concurrency: 4, newConnections: true });
    await runProbe({ url: server.url, requests: 4, concurrency: 4, timeoutMs: 100, headers: { 'X-Stall': '1' } });
    await server.waitAllClosed();
    assert.equal(server.openConnections(), 0);
  });

  it('sends the given method and headers', async () => {
    const seen: string[] = [];
    const server = await serve((req, res) => {
      seen.push(`${req.method} ${String(req.headers['x-probe'])}`);
      res.end();
    });
    await runProbe({ url: server.url, requests: 2, concurrency: 1, method: 'HEAD', headers: { 'X-Probe': 'yes' } });
    assert.deepEqual(seen, ['HEAD yes', 'HEAD yes']);
  });

  it('rejects options that cannot work with HITLESS_ERR_USAGE', async () => {
    const usage = { code: 'HITLESS_ERR_USAGE' };
    await assert.rejects(runProbe({ url: 'ftp://127.0.0.1/' }), usage);
    await assert.rejects(runProbe({ url: 'not a url' }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', concurrency: 0 }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', requests: 1.5 }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', durationMs: 0 }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', timeoutMs: Number.NaN }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', method: 'G T' }), usage);
    await assert.rejects(runProbe({ url: 'http://127.0.0.1/', headers: { 'X-Bad': 'a\r\nb' } }), usage);
  });
});
