import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runProbe } from '../../src/probe/probe.js';
import { formatProbeReport } from '../../src/probe/format-report.js';
import { startHttpsServer, type LoopbackServer } from './loopback.js';

// A throwaway self-signed certificate, made per run with the openssl command (.ci/run installs it).
describe('runProbe over https', () => {
  let dir = '';
  let cert = '';
  let server: LoopbackServer | undefined;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-probe-'));
    execFileSync(
      'openssl',
      [
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
        '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    cert = readFileSync(join(dir, 'cert.pem'), 'utf8');
    server = await startHttpsServer({ key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert }, (_req, res) => {
      res.end('ok');
    });
  });

  after(async () => {
    await server?.close();
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('counts ok responses and reuses TLS connections when the CA is given', async () => {
    assert.ok(server);
    const report = await runProbe({ url: server.url, requests: 40, concurrency: 4, ca: cert });
    assert.equal(report.ok, 40, formatProbeReport(report));
    assert.ok(server.connections() <= 4);
  });

  it('opens a new TLS connection per request with newConnections', async () => {
    assert.ok(server);
    const before = server.connections();
    const report = await runProbe({ url: server.url, requests: 10, concurrency: 2, ca: cert, newConnections: true });
    assert.equal(report.ok, 10, formatProbeReport(report));
    assert.equal(server.connections() - before, 10);
    assert.equal(report.connections, 10);
  });

  it('counts an untrusted certificate under its error code', async () => {
    assert.ok(server);
    const report = await runProbe({ url: server.url, requests: 3, concurrency: 1 });
    assert.deepEqual(report.byError, { DEPTH_ZERO_SELF_SIGNED_CERT: 3 });
    assert.equal(report.failed, 3);
  });

  it('accepts any certificate with rejectUnauthorized: false', async () => {
    assert.ok(server);
    const report = await runProbe({ url: server.url, requests: 3, concurrency: 1, rejectUnauthorized: false });
    assert.equal(report.ok, 3, formatProbeReport(report));
  });
});
