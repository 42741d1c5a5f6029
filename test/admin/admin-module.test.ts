import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errorOf, load } from '../http/helpers.js';

describe('admin_listen and certificate_store', () => {
  it('takes a unix socket and a loopback port with a token file, relative to the prefix', () => {
    const main = load('admin_listen unix:logs/admin.sock;\nadmin_listen [::1]:9901 token_file=conf/token;\ncertificate_store /var/lib/hitless/certs;').main;
    const [unix, tcp] = main.get('admin_listen');
    assert.equal(unix?.kind, 'unix');
    assert.ok(unix?.kind === 'unix' && unix.path.endsWith('/logs/admin.sock'));
    assert.deepEqual(tcp?.kind === 'tcp' ? [tcp.host, tcp.port, tcp.tokenFile.endsWith('/conf/token')] : [], ['::1', 9901, true]);
    assert.equal(main.get('certificate_store'), '/var/lib/hitless/certs');
  });

  it('is off unless configured, and the store defaults to store/certificates under the prefix', () => {
    const main = load('').main;
    assert.deepEqual(main.get('admin_listen'), []);
    assert.match(main.get('certificate_store'), /\/store\/certificates$/);
  });

  const cases: [string, string][] = [
    ['admin_listen 0.0.0.0:9901 token_file=t;', 'admin_listen on "0.0.0.0:9901" is refused: the admin API listens on loopback addresses only'],
    ['admin_listen 127.0.0.1:9901;', 'admin_listen on "127.0.0.1:9901" needs token_file=: a TCP admin API takes a bearer token'],
    ['admin_listen localhost:9901 token_file=t;', 'invalid admin address "localhost:9901": expected unix:path, 127.0.0.1:port or [::1]:port'],
    ['admin_listen 127.0.0.1:0 token_file=t;', 'invalid port in "127.0.0.1:0"'],
    ['admin_listen unix:;', 'no path in the unix domain socket "unix:"'],
    ['admin_listen unix:/a token_file=t;', '"token_file" is for a TCP admin_listen; a unix socket is protected by its mode'],
    ['admin_listen unix:/a mode=0666;', 'invalid parameter "mode=0666"'],
  ];
  for (const [line, message] of cases) it(message, () => assert.equal(errorOf(`\n${line}`), `${message} in /x.conf:2`));

  it('is not allowed in http', () => {
    assert.equal(errorOf('http {\nadmin_listen unix:/a; }'), '"admin_listen" directive is not allowed here in /x.conf:2');
  });
});
