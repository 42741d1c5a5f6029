/**
 * ACME end to end against Debian's pebble: a fresh hitless obtains a certificate by http-01 (with
 * pebble's default 5% badNonce rejection on) and by tls-alpn-01 and serves it to a TLS client that
 * trusts pebble's root; with 45 s certificates it renews by itself under a load of new TLS
 * connections with no failed request; a restart re-uses the stored certificate (pebble sees no new
 * order); with pebble stopped, renewal fails, is retried with backoff, and the old certificate
 * keeps being served.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect, type ConnectionOptions } from 'node:tls';
import { after, describe, it } from 'node:test';
import { AdminClient } from '../../src/admin/admin-client.js';
import type { AcmeNameState } from '../../src/acme/manager.js';
import { runProbe } from '../../src/probe/probe.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { MasterUnderTest, TestPrefix, freePort, runHitlessCommand, startMaster, waitFor } from './helpers/masters.js';
import { scrapeMetrics } from './helpers/scrape.js';

/** pebble's certificateValidityPeriod here: renewal comes 30-37.5 s after issuance. */
const VALIDITY_S = 45;

const conf = (options: { http: number; tls: number; directory: string; challenge: string; issuerExtra?: string }): string => `worker_processes 2;
error_log logs/error.log info;
admin_listen unix:logs/admin.sock;
events {}
http {
    access_log off;
    acme_issuer pebble {
        uri ${options.directory};
        contact admin@a.test;
        ssl_trusted_certificate pebble-api.pem;
        state_path acme_pebble;
        challenge ${options.challenge};
        accept_terms_of_service;${options.issuerExtra ?? ''}
    }
    server {
        listen 127.0.0.1:${options.http};
        listen 127.0.0.1:${options.tls} ssl;
        server_name a.test;
        acme_certificate pebble;
        ssl_certificate $acme_certificate;
        ssl_certificate_key $acme_certificate_key;
        ssl_session_tickets off;
        location / { return 200 "ok\\n"; }
    }
}
`;

/**
 * A full handshake to a.test verified against `root` (pebble's): the leaf served. Without `sni`,
 * no server name is sent (a client dialing the address), and only the chain is verified.
 */
function servedLeaf(port: number, root: string, sni = true): Promise<X509Certificate> {
  return new Promise((resolve, reject) => {
    // requestOCSP: a client asking for a staple (IO::Socket::SSL does by default) must not crash
    // the worker of a variable certificate. tls.connect() hands it to the TLSSocket; @types/node
    // leaves it out of ConnectionOptions.
    const options = {
      host: '127.0.0.1',
      port,
      ...(sni ? { servername: 'a.test' } : { checkServerIdentity: () => undefined }),
      ca: root,
      ALPNProtocols: ['http/1.1'],
      requestOCSP: true,
    } as unknown as ConnectionOptions;
    const socket = connect(options, () => {
      const leaf = socket.getPeerX509Certificate();
      socket.destroy();
      if (leaf === undefined) reject(new Error('no certificate'));
      else resolve(leaf);
    });
    socket.setTimeout(5_000, () => socket.destroy(new Error('handshake timed out')));
    socket.on('error', reject);
  });
}

async function acmeState(api: AdminClient): Promise<AcmeNameState | undefined> {
  return (await api.listAcme()).find((state) => state.name === 'a.test');
}

/** Waits (bounded) until a.test holds a certificate other than `not`, and returns its state. */
async function issued(run: { api: AdminClient; prefix: TestPrefix; pebble: Pebble }, not: string | null, timeoutMs: number): Promise<AcmeNameState> {
  try {
    return await waitFor(`a certificate for a.test other than ${not ?? 'none'}`, async () => {
      const state = await acmeState(run.api).catch(() => undefined);
      return state !== undefined && state.notAfter !== null && state.notAfter !== not && !state.ordering ? state : undefined;
    }, timeoutMs);
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- error.log:\n${run.prefix.errorLog()}\n--- pebble:\n${run.pebble.log().slice(-4000)}`);
  }
}

/** A dns-01 hook (`present|cleanup RECORD VALUE`) that sets the TXT record in pebble-challtestsrv. */
const DNS_HOOK = (management: string): string => `#!${process.execPath}
const [action, record, value] = process.argv.slice(2);
const body = JSON.stringify(action === 'present' ? { host: record + '.', value } : { host: record + '.' });
const req = require('node:http').request('${management}/' + (action === 'present' ? 'set-txt' : 'clear-txt'), { method: 'POST', timeout: 5000 }, (res) => {
  res.resume();
  res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1));
});
req.on('timeout', () => req.destroy(new Error('timeout')));
req.on('error', (err) => { console.error(err.message); process.exit(1); });
req.end(body);
`;

interface Running {
  prefix: TestPrefix;
  master: MasterUnderTest | undefined;
  pebble: Pebble | undefined;
}

const running: Running[] = [];
after(async () => {
  for (const run of running) {
    await run.master?.stop();
    await run.pebble?.stop();
    run.prefix.remove();
  }
});

async function start(challenge: 'http-01' | 'tls-alpn-01' | 'dns-01', nonceReject: number | undefined, eab?: { pebble: Record<string, string>; directive: string }): Promise<{ run: Running; prefix: TestPrefix; http: number; tls: number; api: AdminClient; pebble: Pebble }> {
  const prefix = new TestPrefix();
  const run: Running = { prefix, master: undefined, pebble: undefined };
  running.push(run);
  const http = await freePort();
  const tls = await freePort();
  const pebble = await startPebble({ httpPort: http, tlsPort: tls, certificateValidityPeriod: VALIDITY_S, ...(nonceReject === undefined ? {} : { nonceReject }), ...(eab === undefined ? {} : { eab: eab.pebble }) });
  run.pebble = pebble;
  writeFileSync(join(prefix.dir, 'conf/pebble-api.pem'), pebble.caPem);
  let directive: string = challenge;
  if (challenge === 'dns-01') {
    // The operator's hook: the TXT record set and cleared in pebble-challtestsrv's DNS.
    const hook = join(prefix.dir, 'conf/dns-hook.cjs');
    writeFileSync(hook, DNS_HOOK(pebble.dnsManagementUrl), { mode: 0o755 });
    directive = `dns-01 command=${hook}`;
  }
  run.master = await startMaster({ prefix, conf: conf({ http, tls, directory: pebble.directoryUrl, challenge: directive, ...(eab === undefined ? {} : { issuerExtra: `\n        ${eab.directive}` }) }), port: http, program: 'hitless' });
  return { run, prefix, http, tls, api: new AdminClient({ socketPath: join(prefix.dir, 'logs/admin.sock') }), pebble };
}

describe('ACME against pebble', () => {
  it('obtains a certificate by http-01 with badNonce rejection on, renews it under load, re-uses it after a restart, and keeps serving it while pebble is down', async () => {
    const { run, prefix, api, pebble, tls, http } = await start('http-01', undefined);
    const root = await pebble.rootPem();

    // A fresh start: one order, served to a client that trusts pebble's root.
    const first = await issued({ api, prefix, pebble }, null, 30_000);
    const firstLeaf = await servedLeaf(tls, root);
    assert.equal(new Date(firstLeaf.validTo).toISOString(), first.notAfter);
    assert.ok(firstLeaf.checkHost('a.test') !== undefined);
    assert.equal(first.issuer, 'pebble');
    assert.equal(first.lastError, null);
    const state = join(prefix.dir, 'acme_pebble');
    assert.equal(statSync(state).mode & 0o777, 0o700);
    for (const file of ['account.key', 'account.url', 'a.test.key', 'a.test.crt']) assert.equal(statSync(join(state, file)).mode & 0o777, 0o600, file);
    const list = await runHitlessCommand(['certs', '-p', `${prefix.dir}/`, '-c', 'conf/hitless.conf', 'list']);
    assert.equal(list.code, 0, list.stderr);
    assert.match(list.stdout, /acme issuer {2}pebble \(a\.test\)/);
    assert.match(list.stdout, /next renewal \d{4}-/);
    // The metrics say the same: an ACME certificate's expiry, its next renewal, no failure.
    const socket = join(prefix.dir, 'logs/admin.sock');
    const metrics = (await scrapeMetrics(socket)).body;
    const gauge = (text: string, name: string): number | undefined => {
      const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('name="a.test"'));
      return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1));
    };
    assert.match(metrics, /^hitless_certificate_expiry_timestamp_seconds\{name="a\.test",source="acme"\} \d+$/m);
    assert.equal(gauge(metrics, 'hitless_certificate_expiry_timestamp_seconds'), Date.parse(first.notAfter ?? '') / 1000);
    assert.equal(gauge(metrics, 'hitless_acme_next_renewal_timestamp_seconds'), Math.floor(Date.parse(first.nextRenewal ?? '') / 1000));
    assert.equal(gauge(metrics, 'hitless_acme_renewal_failures'), 0);
    assert.match(metrics, /^hitless_acme_ordering\{name="a\.test",issuer="pebble"\} 0$/m);

    // Renewal by itself, under a load of new TLS connections: no request fails.
    const abort = new AbortController();
    const probe = runProbe({ url: `https://127.0.0.1:${tls}/`, newConnections: true, concurrency: 4, durationMs: 60_000, headers: { Host: 'a.test' }, ca: root }, abort.signal);
    let second: AcmeNameState;
    try {
      second = await issued({ api, prefix, pebble }, first.notAfter, VALIDITY_S * 1_000);
      // A few more handshakes on the new certificate before the load stops.
      await waitFor('the renewed certificate on the wire', async () => ((await servedLeaf(tls, root)).fingerprint256 !== firstLeaf.fingerprint256 ? true : undefined), 5_000);
    } finally {
      abort.abort();
    }
    const report = await probe;
    assert.ok(report.total > 20, `only ${report.total} requests`);
    assert.deepEqual({ failed: report.failed, byError: report.byError }, { failed: 0, byError: {} });
    const secondLeaf = await servedLeaf(tls, root);
    assert.equal(new Date(secondLeaf.validTo).toISOString(), second.notAfter);
    assert.equal(prefix.count('reconfiguring'), 0);

    // A restart re-uses the stored certificate: pebble sees no new order.
    const orders = pebble.orders();
    run.master?.signal('SIGQUIT');
    await run.master?.exited;
    run.master = await startMaster({ prefix, conf: conf({ http, tls, directory: pebble.directoryUrl, challenge: 'http-01' }), port: http, program: 'hitless' });
    const restarted = await waitFor('the restarted master to plan a.test', async () => {
      const now = await acmeState(api).catch(() => undefined);
      return now?.nextRenewal !== null && now?.nextRenewal !== undefined ? now : undefined;
    }, 10_000);
    assert.equal(restarted.notAfter, second.notAfter);
    assert.equal((await servedLeaf(tls, root)).fingerprint256, secondLeaf.fingerprint256);
    assert.equal(pebble.orders(), orders, 'the restart ordered a certificate');

    // Pebble down: the renewal fails, is retried with backoff, and the old certificate stays.
    await pebble.stop();
    run.pebble = undefined;
    await prefix.waitForLog('acme certificate "a.test" (issuer "pebble"): order failed', 2, VALIDITY_S * 1_000);
    const failures = [...prefix.errorLog().matchAll(/\[error\] .*acme certificate "a\.test" .*order failed: .*\(failure (\d+)\), next attempt in (\d+)s/g)];
    assert.ok(failures.length >= 2, prefix.errorLog());
    const delays = failures.map((match) => Number(match[2]));
    assert.ok((delays[1] ?? 0) > (delays[0] ?? 0), `backoff did not grow: ${delays.join(', ')}`);
    assert.match(prefix.errorLog(), /still serving the certificate valid until/);
    assert.equal((await servedLeaf(tls, root)).fingerprint256, secondLeaf.fingerprint256);
    const failing = await acmeState(api);
    assert.ok(failing !== undefined && failing.failures >= 2 && failing.lastError !== null, JSON.stringify(failing));
    const failingMetrics = (await scrapeMetrics(join(prefix.dir, 'logs/admin.sock'))).body;
    assert.ok((gauge(failingMetrics, 'hitless_acme_renewal_failures') ?? 0) >= 2, failingMetrics);
    assert.ok(gauge(failingMetrics, 'hitless_acme_last_failure_timestamp_seconds') !== undefined, failingMetrics);
    assert.equal(failing.notAfter, second.notAfter);
    // No key bytes in the log.
    assert.doesNotMatch(prefix.errorLog(), /PRIVATE KEY/);
  });

  it('obtains a certificate by tls-alpn-01 and serves it, and a reload keeps it without a new order', async () => {
    const { run, api, pebble, tls, prefix } = await start('tls-alpn-01', 0);
    const state = await issued({ api, prefix, pebble }, null, 30_000);
    const root = await pebble.rootPem();
    const leaf = await servedLeaf(tls, root);
    assert.equal(new Date(leaf.validTo).toISOString(), state.notAfter);
    assert.equal(pebble.orders(), 1);
    // Without SNI, with a staple asked for: the default server's ACME certificate, no worker lost.
    assert.equal((await servedLeaf(tls, root, false)).fingerprint256, leaf.fingerprint256);
    assert.doesNotMatch(prefix.errorLog(), /exited with code/);
    run.master?.signal('SIGHUP');
    await waitFor('generation 2', async () => ((await api.status()).generation === 2 ? true : undefined));
    await waitFor('the old workers to exit', async () => ((await api.status()).workers.length === 2 ? true : undefined));
    assert.equal((await servedLeaf(tls, root)).fingerprint256, leaf.fingerprint256);
    const after = await acmeState(api);
    assert.equal(after?.notAfter, state.notAfter);
    assert.equal(after?.nextRenewal, state.nextRenewal, 'the reload re-planned an unchanged certificate');
    assert.equal(pebble.orders(), 1);
  });

  it('obtains a certificate by dns-01 through the operator\'s command and pebble-challtestsrv', async () => {
    const { api, pebble, tls, prefix } = await start('dns-01', 0);
    const state = await issued({ api, prefix, pebble }, null, 30_000);
    const leaf = await servedLeaf(tls, await pebble.rootPem());
    assert.equal(new Date(leaf.validTo).toISOString(), state.notAfter);
    assert.match(pebble.log(), /_acme-challenge\.a\.test/);
  });

  it('reports a wrong external account key at [error] with the CA\'s problem, and backs off', async () => {
    const right = Buffer.alloc(32, 7).toString('base64url');
    const wrong = Buffer.alloc(32, 9).toString('base64url');
    const { api, prefix } = await start('http-01', 0, { pebble: { 'kid-1': right }, directive: `external_account_key kid-1 data:${wrong};` });
    await prefix.waitForLog('order failed', 1, 20_000);
    const line = prefix.errorLog().split('\n').find((l) => l.includes('order failed')) ?? '';
    assert.match(line, /^\S+ \S+ \[error\] .*acme certificate "a\.test" \(issuer "pebble"\): order failed: urn:ietf:params:acme:error:\w+: .*\(failure 1\), next attempt in 60s/);
    assert.doesNotMatch(prefix.errorLog(), new RegExp(wrong));
    const state = await acmeState(api);
    assert.equal(state?.failures, 1);
    assert.equal(state?.notAfter, null);
    assert.match(state?.lastError?.type ?? '', /^urn:ietf:params:acme:error:/);
  });
});
