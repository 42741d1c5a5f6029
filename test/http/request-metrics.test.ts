/**
 * A serving process's counters, built on the diagnostics channels: requests by server_name and
 * status class with their bytes and duration, upstream attempts by peer, and TLS handshakes,
 * their failures by OpenSSL's reason and session resumptions, with a server run from code.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { ErrorLog, startServer, type RunningServer } from '../../src/index.js';
import { RequestMetrics } from '../../src/http/request-metrics.js';
import { freePort, waitFor } from '../e2e/helpers/masters.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url);
const path = (name: string): string => new URL(name, fixtures).pathname;

/** One HTTPS request; resolves with the status line and the TLS session to resume with. */
function fetchTls(port: number, target: string, options: Partial<ConnectionOptions> = {}): Promise<{ status: string; session: Buffer | undefined; reused: boolean }> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const socket: TLSSocket = connect({ host: '127.0.0.1', port, servername: 'a.test', ca: readFileSync(path('ca.crt')), ...options }, () => {
      socket.write(`GET ${target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n`);
    });
    socket.on('session', (data: Buffer) => (session = data));
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => resolve({ status: text.split('\r\n')[0] ?? '', session, reused: socket.isSessionReused() }));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('timed out')));
  });
}

describe('request metrics from the diagnostics channels', () => {
  let server: RunningServer;
  let metrics: RequestMetrics;
  let port: number;
  let backPort: number;

  before(async () => {
    port = await freePort();
    backPort = await freePort();
    metrics = new RequestMetrics();
    server = await startServer({
      prefix: '/tmp',
      log: new ErrorLog([]),
      configText: `events {}
        http {
          access_log off;
          server {
            listen 127.0.0.1:${port} ssl;
            server_name a.test;
            ssl_certificate ${path('a-rsa.fullchain.crt')};
            ssl_certificate_key ${path('a-rsa.key')};
            ssl_protocols TLSv1.2 TLSv1.3;
            location /up { proxy_pass http://127.0.0.1:${backPort}; }
            location /missing { return 404; }
            location / { return 200 "served"; }
          }
          server {
            listen 127.0.0.1:${backPort};
            server_name back;
            return 204;
          }
        }`,
    });
  });
  after(async () => {
    metrics?.close();
    await server?.close();
  });

  const counter = (family: string, labels: string): number => metrics.counters.snapshot().counters.find(([name, text]) => name === family && text === labels)?.[2] ?? 0;

  it('counts requests by server and status class, upstream attempts by peer, handshakes and resumptions', async () => {
    const first = await fetchTls(port, '/');
    assert.match(first.status, / 200 /);
    const second = await fetchTls(port, '/missing', first.session === undefined ? {} : { session: first.session });
    assert.match(second.status, / 404 /);
    assert.equal(second.reused, true, 'the second handshake did not resume');
    assert.match((await fetchTls(port, '/up')).status, / 204 /);
    await waitFor('the counts', () => (counter('hitless_http_requests', 'server="back",code="2xx"') === 1 && counter('hitless_http_requests', 'server="a.test",code="2xx"') === 2 ? true : undefined));
    assert.equal(counter('hitless_http_requests', 'server="a.test",code="4xx"'), 1);
    assert.equal(counter('hitless_tls_handshakes', 'module="http"'), 3);
    assert.equal(counter('hitless_tls_session_resumptions', 'module="http"'), 1);
    assert.equal(counter('hitless_upstream_peer_requests', `upstream="127.0.0.1:${backPort}",peer="127.0.0.1:${backPort}"`), 1);
    assert.ok(counter('hitless_http_request_bytes', 'server="a.test"') > 3 * 30);
    assert.ok(counter('hitless_http_response_bytes', 'server="a.test"') > 3 * 60);
    const durations = metrics.counters.snapshot().histograms.find(([name, labels]) => name === 'hitless_http_request_duration_seconds' && labels === 'server="a.test"');
    assert.equal(durations?.[4], 3);
    const upstream = metrics.counters.snapshot().histograms.find(([name]) => name === 'hitless_upstream_peer_response_time_seconds');
    assert.equal(upstream?.[4], 1);
  });

  it('counts a failed handshake by its reason', async () => {
    await assert.rejects(fetchTls(port, '/', { maxVersion: 'TLSv1.1', minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }));
    const failures = await waitFor('a handshake failure', () => {
      const found = metrics.counters.snapshot().counters.filter(([name]) => name === 'hitless_tls_handshake_failures');
      return found.length > 0 ? found : undefined;
    });
    assert.deepEqual(failures, [['hitless_tls_handshake_failures', 'module="http",reason="unsupported_protocol"', 1]]);
  });
});
