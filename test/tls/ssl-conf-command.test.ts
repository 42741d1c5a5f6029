/**
 * `ssl_conf_command` over real TLS handshakes (ssl_conf_command.t's three cases: Certificate and
 * PrivateKey replace the server's own, Options SessionTicket turns tickets back on, Options
 * -ServerPreference gives the client's cipher order), Ciphersuites and MaxProtocol; nginx's
 * SSL_CONF_cmd() messages for what OpenSSL refuses; the [warn]s for commands Node has no option
 * for and for ssl_early_data on.
 */
import assert from 'node:assert/strict';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { errorOf, load, serve, type Served } from '../http/helpers.js';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/** One handshake; resolves with the socket's state, then closes it. */
function handshake(port: number, options: ConnectionOptions = {}): Promise<{ subject: string; cipher: string; protocol: string; session: Buffer | undefined; reused: boolean }> {
  return new Promise((resolve, reject) => {
    const socket: TLSSocket = connect({ port, host: '127.0.0.1', servername: 'a.test', rejectUnauthorized: false, ...options });
    let session: Buffer | undefined;
    socket.on('session', (data: Buffer) => (session = data));
    socket.once('secureConnect', () => {
      const state = { subject: socket.getPeerX509Certificate()?.subject ?? '', cipher: socket.getCipher().name, protocol: socket.getProtocol() ?? '', reused: socket.isSessionReused() };
      // TLSv1.2 sends its ticket in the handshake; 'session' has fired by now.
      socket.end();
      socket.once('close', () => resolve({ ...state, session }));
    });
    socket.once('error', reject);
  });
}

describe('ssl_conf_command', () => {
  let served: Served;
  before(async () => {
    served = await serve(
      `http {
        # The prefix is the fixtures directory: no log file may be written there.
        access_log off;
        server {
          listen 127.0.0.1:1443 ssl;
          ssl_protocols TLSv1.2;
          ssl_session_tickets off;
          ssl_conf_command Options SessionTicket;
          ssl_prefer_server_ciphers on;
          ssl_conf_command Options -ServerPreference;
          ssl_ciphers ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256;
          ssl_certificate a-rsa.fullchain.crt;
          ssl_certificate_key a-rsa.key;
          ssl_conf_command Certificate b-rsa.fullchain.crt;
          ssl_conf_command PrivateKey b-rsa.key;
          return 200 ok;
        }
        server {
          listen 127.0.0.1:2443 ssl;
          ssl_certificate a-rsa.fullchain.crt;
          ssl_certificate_key a-rsa.key;
          ssl_conf_command Ciphersuites TLS_CHACHA20_POLY1305_SHA256;
          return 200 ok;
        }
        server {
          listen 127.0.0.1:3443 ssl;
          ssl_certificate a-rsa.fullchain.crt;
          ssl_certificate_key a-rsa.key;
          ssl_conf_command MaxProtocol TLSv1.2;
          return 200 ok;
        }
      }`,
      FIXTURES,
    );
  });
  after(() => served.stop());

  const port = (n: number): number => served.ports.get(`127.0.0.1:${n}443`) ?? 0;

  it('Certificate and PrivateKey replace the server\'s certificate', async () => {
    assert.match((await handshake(port(1))).subject, /CN=b\.test/);
  });

  it('Options SessionTicket resumes by ticket despite ssl_session_tickets off', async () => {
    const first = await handshake(port(1));
    assert.ok(first.session !== undefined);
    assert.equal((await handshake(port(1), { session: first.session })).reused, true);
  });

  it('Options -ServerPreference takes the client\'s cipher order despite ssl_prefer_server_ciphers on', async () => {
    assert.equal((await handshake(port(1), { ciphers: 'ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384' })).cipher, 'ECDHE-RSA-AES128-GCM-SHA256');
  });

  it('Ciphersuites sets the TLSv1.3 suites, MaxProtocol the highest version', async () => {
    assert.equal((await handshake(port(2))).cipher, 'TLS_CHACHA20_POLY1305_SHA256');
    assert.equal((await handshake(port(3))).protocol, 'TLSv1.2');
  });
});

describe('ssl_conf_command and ssl_early_data at -t', () => {
  const server = (directives: string): string => `http { server { listen 127.0.0.1:1443 ssl; ssl_certificate ${FIXTURES}a-rsa.fullchain.crt; ssl_certificate_key ${FIXTURES}a-rsa.key; ${directives} } }`;

  it('refuses a command and an Options value OpenSSL does not know, in nginx\'s words', () => {
    assert.equal(errorOf(server('ssl_conf_command Foo bar;')), 'SSL_CONF_cmd("Foo", "bar") failed (SSL: error:0A000182:SSL routines::unknown cmd name:cmd=Foo)');
    assert.equal(errorOf(server('ssl_conf_command Options Bogus;')), 'SSL_CONF_cmd("Options", "Bogus") failed (SSL: error:0A000180:SSL routines::bad value:cmd=Options, value=Bogus)');
  });

  it('warns for a command OpenSSL knows and Node has no option for, and for ssl_early_data on', () => {
    const config = load(server('ssl_conf_command RecordPadding 16; ssl_early_data on;'));
    assert.deepEqual(
      config.warnings.map((warning) => warning.message),
      [
        '"ssl_early_data" has no effect in hitless (Node\'s TLS server cannot accept 0-RTT early data: clients send it again after the handshake) in /x.conf:1',
        '"ssl_conf_command RecordPadding" has no effect in hitless (Node has no SSL_CONF_cmd() and no option for it)',
      ],
    );
    assert.deepEqual(load(server('ssl_early_data off;')).warnings, []);
  });
});
