/**
 * The ACME client against Debian's pebble on loopback: accounts (ES256, ES384, RS256, EAB),
 * issuance by http-01 and by tls-alpn-01 with pebble's nonce rejection on (5% and 50%), the
 * chain checked against pebble's root, the ARI certificate identifier checked against openssl;
 * and, where pebble cannot produce the answer, a small loopback HTTPS server: 429 with
 * Retry-After, a badNonce that never ends, renewalInfo and `replaces`, polls with Retry-After.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash, createPrivateKey, generateKeyPairSync, webcrypto, X509Certificate, type KeyObject } from 'node:crypto';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createSecureContext, createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import * as x509 from '@peculiar/x509';
import { AcmeClient, AcmeError, AcmeProblemError, certificateIdentifier, type PendingChallenge } from '../../src/acme/client.js';
import { ACME_IDENTIFIER_OID, tlsAlpnCertificate } from '../../src/acme/challenge-certificate.js';
import { createSelfSigned } from '../../src/tls/self-signed.js';
import { startPebble, type Pebble } from '../helpers/pebble.js';
import { tempDir } from '../helpers/tmp.js';

const ec256 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey;
const ec384 = (): KeyObject => generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
const rsa2048 = (): KeyObject => generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

function listen<T extends HttpServer | HttpsServer | TlsServer>(server: T): Promise<T> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}
const portOf = (server: HttpServer | HttpsServer | TlsServer): number => (server.address() as AddressInfo).port;
const close = (server: HttpServer | HttpsServer | TlsServer): Promise<void> => new Promise((resolve) => {
  (server as HttpServer).closeAllConnections?.();
  server.close(() => resolve());
});

/** What the ACME server's validation connects to: an http-01 token table and tls-alpn-01 certificates. */
class ChallengeResponder {
  readonly http = new Map<string, string>();
  readonly alpn = new Map<string, { cert: string; key: string }>();
  alpnHandshakes = 0;
  readonly httpServer = createHttpServer((req, res) => {
    const token = /^\/\.well-known\/acme-challenge\/([A-Za-z0-9_-]+)$/.exec(req.url ?? '')?.[1];
    const answer = token === undefined ? undefined : this.http.get(token);
    if (answer === undefined) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain' }).end(answer);
  });
  readonly tlsServer = createTlsServer({
    ALPNProtocols: ['acme-tls/1'],
    SNICallback: (name, callback) => {
      const pair = this.alpn.get(name);
      callback(pair === undefined ? new Error(`no challenge for ${name}`) : null, pair === undefined ? undefined : createSecureContext(pair));
    },
  }, (socket: TLSSocket) => {
    if (socket.alpnProtocol === 'acme-tls/1') this.alpnHandshakes++;
    socket.end();
  });

  async start(): Promise<void> {
    await listen(this.httpServer);
    await listen(this.tlsServer);
  }

  async stop(): Promise<void> {
    await close(this.httpServer);
    await close(this.tlsServer);
  }

  readonly present = async (challenge: PendingChallenge): Promise<void> => {
    if (challenge.type === 'http-01') this.http.set(challenge.token, challenge.keyAuthorization);
    else this.alpn.set(challenge.identifier, await tlsAlpnCertificate(challenge.identifier, challenge.keyAuthorization));
  };

  readonly cleanup = (challenge: PendingChallenge): Promise<void> => {
    this.http.delete(challenge.token);
    this.alpn.delete(challenge.identifier);
    return Promise.resolve();
  };
}

/** Splits a PEM chain into its certificates. */
function certificatesOf(chain: string): X509Certificate[] {
  return (chain.match(/-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g) ?? []).map((pem) => new X509Certificate(pem));
}

/** Checks the chain leaf first up to `rootPem` with node:crypto and with `openssl verify`. */
function assertChainVerifies(chain: string, rootPem: string, names: readonly string[]): void {
  const certificates = certificatesOf(chain);
  const root = new X509Certificate(rootPem);
  assert.ok(certificates.length >= 2, 'a leaf and at least one intermediate');
  const [leaf] = certificates;
  assert.ok(leaf !== undefined);
  for (const name of names) assert.equal(leaf.checkHost(name), name, `the leaf covers ${name}`);
  for (let i = 0; i < certificates.length; i++) {
    const issuer = certificates[i + 1] ?? root;
    assert.ok(certificates[i]?.checkIssued(issuer), `certificate ${i} is issued by the next one`);
    assert.ok(certificates[i]?.verify(issuer.publicKey), `certificate ${i} is signed by the next one`);
  }
  const dir = tempDir({ 'root.pem': rootPem, 'chain.pem': chain, 'leaf.pem': leaf.toString() });
  try {
    const out = execFileSync('openssl', ['verify', '-CAfile', `${dir.path}/root.pem`, '-untrusted', `${dir.path}/chain.pem`, `${dir.path}/leaf.pem`], { encoding: 'utf8' });
    assert.match(out, /leaf\.pem: OK/);
  } finally {
    dir.remove();
  }
}

/** The ARI identifier must match openssl's reading of the AKI and serial. */
function assertIdentifierMatchesOpenssl(leafPem: string): void {
  const id = certificateIdentifier(leafPem);
  const [aki, serial] = id.split('.');
  assert.ok(aki !== undefined && serial !== undefined);
  const out = execFileSync('openssl', ['x509', '-noout', '-ext', 'authorityKeyIdentifier', '-serial'], { input: leafPem, encoding: 'utf8' });
  const opensslAki = /Authority Key Identifier:\s*(?:keyid:)?([0-9A-F:]+)/i.exec(out)?.[1]?.replace(/:/g, '').toLowerCase();
  const opensslSerial = /serial=([0-9A-F]+)/i.exec(out)?.[1]?.toLowerCase();
  assert.equal(Buffer.from(aki, 'base64url').toString('hex'), opensslAki);
  const serialBytes = Buffer.from(serial, 'base64url');
  // DER content octets: the serial's value, with one 0x00 first exactly when its top bit is set.
  const stripped = serialBytes[0] === 0 ? serialBytes.subarray(1) : serialBytes;
  assert.equal(stripped.toString('hex').replace(/^0+/, ''), opensslSerial?.replace(/^0+/, ''));
  assert.equal(stripped.toString('hex').replace(/^0+/, ''), new X509Certificate(leafPem).serialNumber.toLowerCase().replace(/^0+/, ''));
  assert.equal(serialBytes[0] === 0, ((stripped[0] ?? 0) & 0x80) !== 0);
}

/** A self-signed certificate with the given serial and Authority Key Identifier (hex). */
async function certificateWith(serialHex: string, akiHex: string): Promise<string> {
  const alg = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  type Gen = typeof x509.X509CertificateGenerator.createSelfSigned;
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: serialHex,
    name: 'CN=ari.example.test',
    notBefore: new Date(),
    notAfter: new Date(Date.now() + 86_400_000),
    signingAlgorithm: alg,
    keys: keys as unknown as Parameters<Gen>[0]['keys'],
    extensions: [new x509.AuthorityKeyIdentifierExtension(akiHex)],
  }, webcrypto as unknown as NonNullable<Parameters<Gen>[1]>);
  return cert.toString('pem') + '\n';
}

/** Runs `fn` and returns what it threw. */
async function rejection(fn: () => Promise<unknown>): Promise<unknown> {
  try {
    await fn();
  } catch (err) {
    return err;
  }
  assert.fail('it did not fail');
}

describe('ACME client against pebble (default 5% nonce rejection)', { timeout: 120_000 }, () => {
  const responder = new ChallengeResponder();
  let pebble: Pebble;

  before(async () => {
    await responder.start();
    pebble = await startPebble({ httpPort: portOf(responder.httpServer), tlsPort: portOf(responder.tlsServer) });
  });
  after(async () => {
    await pebble?.stop();
    await responder.stop();
  });

  it('creates an account, finds it again, and issues by http-01 a chain that verifies against pebble\'s root', async () => {
    const accountKey = ec256();
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey, ca: pebble.caPem });
    try {
      const account = await client.account({ contact: ['mailto:ops@example.test'], termsOfServiceAgreed: true });
      assert.match(account.url, /^https:\/\/127\.0\.0\.1:\d+\//);
      const again = await client.account({ contact: ['mailto:ops@example.test'], termsOfServiceAgreed: true });
      assert.equal(again.url, account.url);

      const names = ['a.example.test', 'www.a.example.test'];
      const seen: PendingChallenge[] = [];
      const ordersBefore = pebble.orders();
      const result = await client.issue({
        names,
        certificateKey: ec256(),
        challenge: 'http-01',
        present: async (challenge) => {
          seen.push(challenge);
          await responder.present(challenge);
        },
        cleanup: responder.cleanup,
      });
      assert.equal(pebble.orders(), ordersBefore + 1);
      assert.match(result.orderUrl, /^https:\/\/127\.0\.0\.1:\d+\//);
      assertChainVerifies(result.certificate, await pebble.rootPem(), names);
      assertIdentifierMatchesOpenssl(result.certificate);
      for (const challenge of seen) {
        assert.equal(challenge.type, 'http-01');
        assert.ok(challenge.keyAuthorization.startsWith(`${challenge.token}.`));
      }
      assert.equal(responder.http.size, 0, 'every presented challenge was cleaned up');
      // Pebble 2.4 has no renewalInfo in its directory.
      assert.equal(await client.renewalInfo(result.certificate), undefined);
    } finally {
      client.close();
    }
  });

  it('issues by tls-alpn-01 with an ES384 account key and an RSA certificate key', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec384(), ca: pebble.caPem });
    try {
      await client.account({ contact: [], termsOfServiceAgreed: true });
      const handshakes = responder.alpnHandshakes;
      const result = await client.issue({ names: ['alpn.example.test'], certificateKey: rsa2048(), challenge: 'tls-alpn-01', present: responder.present, cleanup: responder.cleanup });
      assertChainVerifies(result.certificate, await pebble.rootPem(), ['alpn.example.test']);
      assert.equal(certificatesOf(result.certificate)[0]?.publicKey.asymmetricKeyType, 'rsa');
      assert.ok(responder.alpnHandshakes > handshakes, 'pebble validated over ALPN acme-tls/1');
      assert.equal(responder.alpn.size, 0);
    } finally {
      client.close();
    }
  });

  it('a failed validation is an AcmeProblemError with pebble\'s type and detail, and the challenge is cleaned up', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec256(), ca: pebble.caPem });
    try {
      await client.account({ contact: [], termsOfServiceAgreed: true });
      let cleaned = 0;
      // Present nothing: pebble's VA gets a 404 for the token.
      const err = await rejection(() => client.issue({ names: ['fail.example.test'], certificateKey: ec256(), challenge: 'http-01', present: () => Promise.resolve(), cleanup: () => Promise.resolve(void cleaned++) }));
      assert.ok(err instanceof AcmeProblemError, String(err));
      assert.match(err.problemType, /^urn:ietf:params:acme:error:/);
      assert.notEqual(err.detail, '');
      assert.match(err.message, /fail\.example\.test/);
      assert.equal(cleaned, 1);
    } finally {
      client.close();
    }
  });

  it('an AbortSignal ends an issuance at once and the challenge is still cleaned up', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec256(), ca: pebble.caPem });
    try {
      await client.account({ contact: [], termsOfServiceAgreed: true });
      const controller = new AbortController();
      let cleaned = 0;
      const err = await rejection(() => client.issue({
        names: ['abort.example.test'],
        certificateKey: ec256(),
        challenge: 'http-01',
        signal: controller.signal,
        present: () => Promise.resolve(controller.abort()),
        cleanup: () => Promise.resolve(void cleaned++),
      }));
      assert.ok(err instanceof AcmeError, String(err));
      assert.match(err.message, /aborted/);
      assert.equal(cleaned, 1);
    } finally {
      client.close();
    }
  });
});

describe('ACME client against pebble rejecting 50% of nonces', { timeout: 120_000 }, () => {
  const responder = new ChallengeResponder();
  let pebble: Pebble;

  before(async () => {
    await responder.start();
    pebble = await startPebble({ httpPort: portOf(responder.httpServer), tlsPort: portOf(responder.tlsServer), nonceReject: 50, certificateValidityPeriod: 600 });
  });
  after(async () => {
    await pebble?.stop();
    await responder.stop();
  });

  it('retries every badNonce and issues by http-01 and by tls-alpn-01', async () => {
    assert.match(pebble.log(), /reject 50% of good nonces/);
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec256(), ca: pebble.caPem });
    try {
      // Twenty account look-ups: at 50% rejection, more POSTs than twenty reach pebble (each
      // badNonce retried with the nonce it carried), and every look-up still succeeds.
      const postsBefore = pebble.log().split('POST /sign-me-up').length - 1;
      for (let i = 0; i < 20; i++) await client.account({ contact: [], termsOfServiceAgreed: true });
      assert.ok(pebble.log().split('POST /sign-me-up').length - 1 - postsBefore > 20, 'pebble rejected some nonces');
      for (const challenge of ['http-01', 'tls-alpn-01'] as const) {
        const result = await client.issue({ names: [`${challenge}.nonce.example.test`], certificateKey: ec256(), challenge, present: responder.present, cleanup: responder.cleanup });
        assertChainVerifies(result.certificate, await pebble.rootPem(), [`${challenge}.nonce.example.test`]);
        const leaf = certificatesOf(result.certificate)[0];
        assert.ok(leaf !== undefined);
        const lifetime = Date.parse(leaf.validTo) - Date.parse(leaf.validFrom);
        assert.ok(lifetime <= 601_000, `certificateValidityPeriod applies (${lifetime} ms)`);
      }
    } finally {
      client.close();
    }
  });
});

describe('ACME client: external account binding against pebble', { timeout: 60_000 }, () => {
  const hmacKey = Buffer.from('zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W', 'base64url');
  let pebble: Pebble;

  before(async () => {
    pebble = await startPebble({ httpPort: 1, tlsPort: 1, eab: { 'kid-1': hmacKey.toString('base64url') } });
  });
  after(async () => {
    await pebble?.stop();
  });

  it('creates an RS256 account with the right MAC key', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: rsa2048(), ca: pebble.caPem });
    try {
      const { url } = await client.account({ contact: [], termsOfServiceAgreed: true, externalAccountBinding: { kid: 'kid-1', hmacKey } });
      assert.match(url, /^https:/);
    } finally {
      client.close();
    }
  });

  it('a wrong MAC key is an AcmeProblemError that names the problem and not the key', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec256(), ca: pebble.caPem });
    const wrongKey = Buffer.from('b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH', 'base64url');
    try {
      const err = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true, externalAccountBinding: { kid: 'kid-1', hmacKey: wrongKey } }));
      assert.ok(err instanceof AcmeProblemError, String(err));
      assert.equal(err.code, 'HITLESS_ERR_ACME');
      assert.equal(err.problemType, 'urn:ietf:params:acme:error:unauthorized');
      assert.notEqual(err.detail, '');
      assert.equal(err.status, 403);
      assert.match(err.message, /^ACME new account: urn:ietf:params:acme:error:/);
      assert.ok(!err.message.includes(wrongKey.toString('base64url')) && !err.message.includes(wrongKey.toString('base64')));
      const unknownKid = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true, externalAccountBinding: { kid: 'kid-9', hmacKey } }));
      assert.ok(unknownKid instanceof AcmeProblemError, String(unknownKid));
    } finally {
      client.close();
    }
  });

  it('no binding where the directory requires one is refused before anything is sent', async () => {
    const client = new AcmeClient({ directoryUrl: pebble.directoryUrl, accountKey: ec256(), ca: pebble.caPem });
    try {
      const err = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true }));
      assert.ok(err instanceof AcmeError && !(err instanceof AcmeProblemError), String(err));
      assert.match(err.message, /requires an external account binding/);
    } finally {
      client.close();
    }
  });
});

describe('ACME client: failures pebble cannot produce', { timeout: 60_000 }, () => {
  let tls: { cert: string; key: string };
  let server: HttpsServer;
  let handler: (path: string, method: string, payload: unknown, res: import('node:http').ServerResponse) => void = () => undefined;
  let base = '';
  let nonce = 0;

  before(async () => {
    tls = await createSelfSigned(['127.0.0.1']);
    server = createHttpsServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      let body = '';
      req.setEncoding('utf8');
      req.on('data', (chunk: string) => (body += chunk));
      req.on('end', () => {
        res.setHeader('replay-nonce', `nonce${nonce++}`);
        const path = req.url ?? '/';
        if (path === '/dir') {
          res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({
            newNonce: `${base}/nonce`, newAccount: `${base}/account`, newOrder: `${base}/order`, renewalInfo: `${base}/ari/`,
          }));
          return;
        }
        if (path === '/nonce') {
          res.writeHead(200).end();
          return;
        }
        let payload: unknown;
        try {
          const jws = JSON.parse(body) as { payload: string };
          payload = jws.payload === '' ? undefined : JSON.parse(Buffer.from(jws.payload, 'base64url').toString('utf8'));
        } catch {
          payload = undefined;
        }
        handler(path, req.method ?? 'GET', payload, res);
      });
    });
    await listen(server);
    base = `https://127.0.0.1:${portOf(server)}`;
  });
  after(async () => {
    await close(server);
  });

  const problem = (res: import('node:http').ServerResponse, status: number, type: string, headers: Record<string, string> = {}): void => {
    res.writeHead(status, { 'content-type': 'application/problem+json', ...headers }).end(JSON.stringify({ type: `urn:ietf:params:acme:error:${type}`, detail: `${type} for the test`, status }));
  };

  it('an unreachable directory is a clear AcmeError, at once', async () => {
    const closed = await listen(createHttpServer());
    const port = portOf(closed);
    await close(closed);
    const client = new AcmeClient({ directoryUrl: `https://127.0.0.1:${port}/dir`, accountKey: ec256(), timeoutMs: 5_000 });
    const err = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true }));
    assert.ok(err instanceof AcmeError, String(err));
    assert.equal(err.code, 'HITLESS_ERR_ACME');
    assert.equal(err.message, `ACME directory: "https://127.0.0.1:${port}/dir" unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
  });

  it('a directory that accepts the connection and never answers is an AcmeError after timeoutMs', async () => {
    const silent = createNetServer((socket) => socket.on('error', () => undefined).resume());
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const port = (silent.address() as AddressInfo).port;
    const client = new AcmeClient({ directoryUrl: `https://127.0.0.1:${port}/dir`, accountKey: ec256(), timeoutMs: 300 });
    try {
      const err = await rejection(() => client.renewalInfo('unused'));
      assert.ok(err instanceof AcmeError, String(err));
      assert.equal(err.message, `ACME directory: no answer from "https://127.0.0.1:${port}/dir" within 300 ms`);
    } finally {
      client.close();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it('a directory whose certificate is not trusted is refused, unless verify is off', async () => {
    handler = (_path, _method, _payload, res) => res.writeHead(201, { location: `${base}/acct/1` }).end('{}');
    const untrusted = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256() });
    const err = await rejection(() => untrusted.account({ contact: [], termsOfServiceAgreed: true }));
    assert.ok(err instanceof AcmeError, String(err));
    assert.match(err.message, /unreachable: .*(self.signed|SELF_SIGNED|unable to verify)/i);
    untrusted.close();
    const unverified = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256(), verify: false });
    assert.deepEqual(await unverified.account({ contact: [], termsOfServiceAgreed: true }), { url: `${base}/acct/1` });
    unverified.close();
  });

  it('429 with Retry-After is an AcmeProblemError with retryAfterMs', async () => {
    handler = (_path, _method, _payload, res) => problem(res, 429, 'rateLimited', { 'retry-after': '7' });
    const client = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256(), ca: tls.cert });
    try {
      const err = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true }));
      assert.ok(err instanceof AcmeProblemError, String(err));
      assert.equal(err.problemType, 'urn:ietf:params:acme:error:rateLimited');
      assert.equal(err.detail, 'rateLimited for the test');
      assert.equal(err.status, 429);
      assert.equal(err.retryAfterMs, 7_000);
      handler = (_path, _method, _payload, res) => problem(res, 503, 'serverInternal', { 'retry-after': new Date(Date.now() + 60_000).toUTCString() });
      const unavailable = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true }));
      assert.ok(unavailable instanceof AcmeProblemError && unavailable.retryAfterMs !== undefined, String(unavailable));
      assert.ok(unavailable.retryAfterMs > 50_000 && unavailable.retryAfterMs <= 60_000);
    } finally {
      client.close();
    }
  });

  it('a badNonce on every answer is retried a bounded number of times, then reported', async () => {
    let posts = 0;
    handler = (_path, _method, _payload, res) => {
      posts++;
      problem(res, 400, 'badNonce');
    };
    const client = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256(), ca: tls.cert });
    try {
      const err = await rejection(() => client.account({ contact: [], termsOfServiceAgreed: true }));
      assert.ok(err instanceof AcmeProblemError, String(err));
      assert.equal(err.problemType, 'urn:ietf:params:acme:error:badNonce');
      assert.equal(posts, 17);
    } finally {
      client.close();
    }
  });

  it('renewalInfo reads the suggested window and Retry-After; new-order carries replaces when the directory offers ARI', async () => {
    const start = new Date(Date.now() + 86_400_000);
    const end = new Date(Date.now() + 2 * 86_400_000);
    const leaf = await certificateWith('01f2', 'aabbccdd');
    const id = certificateIdentifier(leaf);
    let orderPayload: unknown;
    let ariPath = '';
    let polls = 0;
    handler = (path, method, payload, res) => {
      if (path.startsWith('/ari/')) {
        ariPath = path;
        assert.equal(method, 'GET');
        res.writeHead(200, { 'content-type': 'application/json', 'retry-after': '21600' }).end(JSON.stringify({ suggestedWindow: { start: start.toISOString(), end: end.toISOString() }, explanationURL: 'https://example.test/why' }));
      } else if (path === '/account') {
        res.writeHead(200, { location: `${base}/acct/1`, 'content-type': 'application/json' }).end('{}');
      } else if (path === '/order') {
        orderPayload = payload;
        res.writeHead(201, { location: `${base}/order/1`, 'content-type': 'application/json' }).end(JSON.stringify({ status: 'ready', authorizations: [], finalize: `${base}/finalize` }));
      } else if (path === '/order/1') {
        // Polled: "ready", then "processing" with Retry-After 1 after finalize, then "valid".
        polls++;
        const order = polls === 1 ? { status: 'ready', finalize: `${base}/finalize` } : polls === 2 ? { status: 'processing' } : { status: 'valid', certificate: `${base}/cert` };
        res.writeHead(200, { 'content-type': 'application/json', ...(polls === 2 ? { 'retry-after': '1' } : {}) }).end(JSON.stringify(order));
      } else if (path === '/finalize') {
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ status: 'processing' }));
      } else if (path === '/cert') {
        res.writeHead(200, { 'content-type': 'application/pem-certificate-chain' }).end(leaf);
      } else {
        res.writeHead(404).end();
      }
    };
    const client = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256(), ca: tls.cert });
    try {
      const window = await client.renewalInfo(leaf);
      assert.equal(ariPath, `/ari/${id}`);
      assert.deepEqual(window, { start, end, retryAfterMs: 21_600_000, explanationUrl: 'https://example.test/why' });
      const began = Date.now();
      const result = await client.issue({ names: ['ari.example.test'], certificateKey: ec256(), challenge: 'http-01', replaces: id, present: () => Promise.resolve(), cleanup: () => Promise.resolve() });
      assert.deepEqual(orderPayload, { identifiers: [{ type: 'dns', value: 'ari.example.test' }], replaces: id });
      assert.equal(result.certificate, leaf);
      assert.equal(result.orderUrl, `${base}/order/1`);
      // The "processing" poll said Retry-After: 1, and the client waited that long.
      assert.ok(polls >= 3 && Date.now() - began >= 1_000, `polls ${polls}, waited ${Date.now() - began} ms`);
    } finally {
      client.close();
    }
  });

  it('follows the directory\'s redirects as nginx-acme does (acme_redirect.t), and stops a redirect loop', async () => {
    const leaf = await certificateWith('01f3', 'aabbccde');
    let loops = 0;
    handler = (path, _method, _payload, res) => {
      if (path === '/moved') res.writeHead(301, { location: '/moved/again' }).end();
      else if (path === '/moved/again') res.writeHead(302, { location: `${base}/dir` }).end();
      else if (path === '/loop') res.writeHead(301, { location: `/loop?${++loops}` }).end();
      else if (path.startsWith('/loop?')) res.writeHead(308, { location: `/loop?${++loops}` }).end();
      else if (path.startsWith('/ari/')) res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ suggestedWindow: { start: '2027-01-01T00:00:00Z', end: '2027-01-02T00:00:00Z' } }));
      else res.writeHead(404).end();
    };
    const moved = new AcmeClient({ directoryUrl: `${base}/moved`, accountKey: ec256(), ca: tls.cert });
    const looping = new AcmeClient({ directoryUrl: `${base}/loop`, accountKey: ec256(), ca: tls.cert });
    try {
      assert.deepEqual(await moved.renewalInfo(leaf), { start: new Date('2027-01-01T00:00:00Z'), end: new Date('2027-01-02T00:00:00Z') });
      await assert.rejects(looping.renewalInfo(leaf), (err: unknown) => err instanceof AcmeError && /more than 10 redirects from ".*\/loop"/.test(err.message));
      assert.equal(loops, 11);
    } finally {
      moved.close();
      looping.close();
    }
  });

  it('a poll is bounded: an order that stays "processing" ends in an AcmeError, never a loop', async () => {
    let orderPolls = 0;
    let retryAfter: string | undefined;
    handler = (path, _method, _payload, res) => {
      if (path === '/account') res.writeHead(200, { location: `${base}/acct/1`, 'content-type': 'application/json' }).end('{}');
      else if (path === '/order') res.writeHead(201, { location: `${base}/order/2`, 'content-type': 'application/json' }).end(JSON.stringify({ status: 'processing', authorizations: [] }));
      else if (path === '/order/2') {
        orderPolls++;
        res.writeHead(200, { 'content-type': 'application/json', ...(retryAfter !== undefined ? { 'retry-after': retryAfter } : {}) }).end(JSON.stringify({ status: 'processing' }));
      } else res.writeHead(404).end();
    };
    const client = new AcmeClient({ directoryUrl: `${base}/dir`, accountKey: ec256(), ca: tls.cert, pollTimeoutMs: 1_000 });
    const order = { names: ['slow.example.test'], certificateKey: ec256(), challenge: 'http-01' as const, present: () => Promise.resolve(), cleanup: () => Promise.resolve() };
    try {
      const err = await rejection(() => client.issue(order));
      assert.ok(err instanceof AcmeError, String(err));
      assert.match(err.message, /^ACME order: still "processing" after \d+ polls in 1000 ms or less$/);
      assert.ok(orderPolls >= 2 && orderPolls <= 5, `${orderPolls} polls in 1 s`);
      // A Retry-After beyond the poll's time limit ends it at once and says when to come back.
      retryAfter = '3600';
      orderPolls = 0;
      const later = await rejection(() => client.issue(order));
      assert.ok(later instanceof AcmeError, String(later));
      assert.equal(later.retryAfterMs, 3_600_000);
      assert.equal(orderPolls, 1);
    } finally {
      client.close();
    }
  });
});

describe('certificateIdentifier', () => {
  it('is RFC 9773 section 4.1\'s example', async () => {
    assert.equal(certificateIdentifier(await certificateWith('0087654321', '69885b6b87464041e1b37b847ba0ae2cde01c8d4')), 'aYhba4dGQEHhs3uEe6CuLN4ByNQ.AIdlQyE');
  });

  it('says what is missing for a certificate without an Authority Key Identifier', async () => {
    const { cert } = await tlsAlpnCertificate('x.example.test', 'token.thumb');
    assert.throws(() => certificateIdentifier(cert), /no Authority Key Identifier/);
  });
});

describe('tlsAlpnCertificate', () => {
  it('is self-signed for the name with the critical acmeIdentifier extension of sha256(keyAuthorization)', async () => {
    const { cert, key } = await tlsAlpnCertificate('alpn.example.test', 'tok.thumb');
    const x = new X509Certificate(cert);
    assert.equal(x.checkHost('alpn.example.test'), 'alpn.example.test');
    assert.ok(x.checkIssued(x) && x.verify(x.publicKey));
    assert.ok(x.checkPrivateKey(createPrivateKey(key)));
    const extension = new x509.X509Certificate(cert).getExtension(ACME_IDENTIFIER_OID);
    assert.ok(extension !== null);
    assert.equal(extension.critical, true);
    const digest = createHash('sha256').update('tok.thumb').digest();
    assert.equal(Buffer.from(extension.value).toString('hex'), `0420${digest.toString('hex')}`);
    // openssl reads the same: the extension marked critical.
    assert.match(execFileSync('openssl', ['x509', '-noout', '-text'], { input: cert, encoding: 'utf8' }), /1\.3\.6\.1\.5\.5\.7\.1\.31: critical/);
  });
});

describe('account keys', () => {
  it('an unsupported key type is refused without the key in the message', () => {
    const key = generateKeyPairSync('ed25519').privateKey;
    const pem = key.export({ format: 'pem', type: 'pkcs8' }).toString();
    assert.throws(() => new AcmeClient({ directoryUrl: 'https://127.0.0.1:1/dir', accountKey: key }), (err: unknown) => {
      assert.ok(err instanceof AcmeError);
      assert.match(err.message, /ed25519.*not supported/);
      assert.ok(!err.message.includes(pem.split('\n')[1] ?? 'x'));
      return true;
    });
  });
});
