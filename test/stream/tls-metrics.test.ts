/**
 * The TLS metrics of a stream (L4) `listen ... ssl` server, as for http: handshakes, their
 * failures by OpenSSL's reason, and session resumptions, counted from the `hitless:tls:handshake`
 * channel with `module="stream"`; the client is OpenSSL's own `s_client`.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorLog, startServer, type RunningServer } from '../../src/index.js';
import { RequestMetrics } from '../../src/http/request-metrics.js';
import { freePort, waitFor } from '../e2e/helpers/masters.js';

const fixtures = new URL('../../../test/fixtures/tls/', import.meta.url);
const path = (name: string): string => new URL(name, fixtures).pathname;

/** Runs `openssl s_client` (asynchronously: the server is in this process) and returns what it printed. */
function sClient(port: number, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'a.test', '-CAfile', path('ca.crt'), '-ign_eof', ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output });
    });
    child.stdin.end();
  });
}

describe('stream TLS metrics', () => {
  let server: RunningServer;
  let metrics: RequestMetrics;
  let port: number;
  let dir: string;

  before(async () => {
    port = await freePort();
    dir = mkdtempSync(join(tmpdir(), 'hitless-stream-tls-'));
    metrics = new RequestMetrics();
    server = await startServer({
      prefix: '/tmp',
      log: new ErrorLog([]),
      configText: `events {}
        stream {
          server {
            listen 127.0.0.1:${port} ssl;
            ssl_certificate ${path('a-rsa.fullchain.crt')};
            ssl_certificate_key ${path('a-rsa.key')};
            ssl_protocols TLSv1.2;
            ssl_ciphers ECDHE-RSA-AES128-GCM-SHA256;
            ssl_session_cache shared:s:1m;
            ssl_session_tickets off;
            return "stream-tls\\n";
          }
        }`,
    });
  });
  after(async () => {
    metrics?.close();
    await server?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const counter = (family: string, labels: string): number => metrics.counters.snapshot().counters.find(([name, text]) => name === family && text === labels)?.[2] ?? 0;

  it('counts handshakes and a resumption with module="stream"', async () => {
    const session = join(dir, 'session.pem');
    const first = await sClient(port, ['-sess_out', session]);
    assert.match(first.output, /stream-tls/);
    const second = await sClient(port, ['-sess_in', session]);
    assert.match(second.output, /stream-tls/);
    assert.match(second.output, /^Reused, /m, second.output);
    await waitFor('two handshakes', () => (counter('hitless_tls_handshakes', 'module="stream"') === 2 ? true : undefined));
    assert.equal(counter('hitless_tls_session_resumptions', 'module="stream"'), 1);
    assert.equal(counter('hitless_tls_handshakes', 'module="http"'), 0);
  });

  it('counts a failed handshake by its reason', async () => {
    const failed = await sClient(port, ['-tls1_2', '-cipher', 'AES256-SHA256']);
    assert.notEqual(failed.code, 0, failed.output);
    const failures = await waitFor('a handshake failure', () => {
      const found = metrics.counters.snapshot().counters.filter(([name]) => name === 'hitless_tls_handshake_failures');
      return found.length > 0 ? found : undefined;
    });
    assert.deepEqual(failures, [['hitless_tls_handshake_failures', 'module="stream",reason="no_shared_cipher"', 1]]);
  });
});
