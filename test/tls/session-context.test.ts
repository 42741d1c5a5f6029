/**
 * A TLS session is bound to the client verification it was made under, as nginx binds it with
 * SSL_CTX_set_session_id_context() (ngx_ssl_session_id_context(): a digest of the server's
 * certificates and client CAs): a client certificate verified by one server's CAs never counts as
 * verified by a server that trusts other CAs, even when the session is offered there (421, so that
 * the client makes a new connection), and a server that verifies clients resumes its own sessions.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect as tlsConnect, type SecureVersion } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;
const pem = (name: string): string => readFileSync(`${FIXTURES}${name}`, 'latin1');

interface Reply {
  readonly status: number;
  readonly body: string;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
}

/** One request over a new TLS connection, offering `session` and sending `client`'s certificate when given. */
function httpsGet(port: number, servername: string, maxVersion: SecureVersion, options: { session?: Buffer; client?: string; host?: string } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    let session: Buffer | undefined;
    const s = tlsConnect({
      host: '127.0.0.1',
      port,
      servername,
      ca: pem('ca.crt'),
      checkServerIdentity: () => undefined,
      ALPNProtocols: ['http/1.1'],
      maxVersion,
      ...(options.session === undefined ? {} : { session: options.session }),
      ...(options.client === undefined ? {} : { cert: pem(`${options.client}.crt`), key: pem(`${options.client}.key`) }),
    }, () => s.write(`GET / HTTP/1.1\r\nHost: ${options.host ?? servername}\r\nConnection: close\r\n\r\n`));
    let text = '';
    s.setEncoding('latin1');
    s.on('session', (ticket: Buffer) => (session = ticket));
    s.on('data', (chunk: string) => (text += chunk));
    s.on('end', () => {
      const reused = s.isSessionReused();
      s.destroy();
      resolve({ status: Number(/^HTTP\/1\.1 (\d+)/.exec(text)?.[1] ?? 0), body: text.slice(text.indexOf('\r\n\r\n') + 4), reused, session });
    });
    s.on('error', reject);
  });
}

describe('TLS sessions and client verification across servers', () => {
  let served: Served;
  const port = (): number => served.ports.get('127.0.0.1:1443') ?? 0;

  before(async () => {
    served = await serve(
      `http {
        access_log off;
        ssl_certificate a-rsa.fullchain.crt;
        ssl_certificate_key a-rsa.key;
        server {
          listen 127.0.0.1:1443 ssl;
          server_name a.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          return 200 "$ssl_client_verify $ssl_session_reused";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name other.test;
          ssl_verify_client on;
          ssl_client_certificate client-other-ca.crt;
          return 200 "$ssl_client_verify $ssl_session_reused";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name plain.test;
          return 200 "$ssl_client_verify $ssl_session_reused";
        }
        server {
          listen 127.0.0.1:1443 ssl;
          server_name same.test;
          ssl_verify_client on;
          ssl_client_certificate client-ca.crt;
          return 200 "$ssl_client_verify $ssl_session_reused";
        }
      }`,
      FIXTURES,
    );
  });
  after(async () => {
    await served.stop();
  });

  for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
    it(`${version}: a session verified by one server's CA is not verified for a server trusting another CA`, async () => {
      const first = await httpsGet(port(), 'a.test', version, { client: 'client-a' });
      assert.deepEqual([first.status, first.body], [200, 'SUCCESS .']);
      assert.ok(first.session, 'no session was issued');
      const again = await httpsGet(port(), 'a.test', version, { session: first.session });
      assert.deepEqual([again.status, again.body, again.reused], [200, 'SUCCESS r', true], 'the session does not resume on its own server');
      // Resumed, but the verification it holds is a.test's: a new connection is asked for.
      const elsewhere = await httpsGet(port(), 'other.test', version, { session: first.session });
      assert.notEqual(elsewhere.body, 'SUCCESS r', 'a client certificate verified by another CA was accepted');
      assert.equal(elsewhere.status, 421);
      // The same CA and settings: the verification holds there too.
      const alike = await httpsGet(port(), 'same.test', version, { session: first.session });
      assert.deepEqual([alike.status, alike.body], [200, 'SUCCESS r']);
    });
  }

  it('a Host other than the SNI name reaches no server that verifies clients (421), as in nginx', async () => {
    const misdirected = await httpsGet(port(), 'a.test', 'TLSv1.3', { client: 'client-a', host: 'same.test' });
    assert.equal(misdirected.status, 421);
    const open = await httpsGet(port(), 'a.test', 'TLSv1.3', { client: 'client-a', host: 'plain.test' });
    // As in nginx, $ssl_client_verify tells what the handshake verified, whichever server answers.
    assert.deepEqual([open.status, open.body], [200, 'SUCCESS .']);
  });

  it('a certificate-verifying server resumes its own sessions (OpenSSL refuses without a session id context)', async () => {
    for (const version of ['TLSv1.2', 'TLSv1.3'] as const) {
      const { session } = await httpsGet(port(), 'a.test', version, { client: 'client-a' });
      assert.ok(session, 'no session was issued');
      const again = await httpsGet(port(), 'a.test', version, { session });
      assert.equal(again.reused, true, version);
    }
  });
});
