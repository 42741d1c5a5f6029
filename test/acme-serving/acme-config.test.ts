// nginx-acme's directives as hitless reads them: its defaults, its -t messages (t/acme_conf_issuer.t,
// t/acme_conf_certificate.t and src/conf.rs), and the typed model the master's manager reads.
import { describe, it, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { acmeSettingsOf } from '../../src/acme/acme-config.js';
import { load, errorOf } from '../http/helpers.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
after(() => dir.remove());

/** An http block with the issuer `example` and the given extra text, and one ssl server using $acme_certificate. */
function http(issuer: string, server = 'server_name example.test; acme_certificate example;', extra = ''): string {
  return `http {
    ${issuer}
    ${extra}
    server { listen 127.0.0.1:8080; server_name example.test; }
    server {
      listen 127.0.0.1:8443 ssl;
      ${server}
      ssl_certificate $acme_certificate;
      ssl_certificate_key $acme_certificate_key;
    }
  }`;
}

const ISSUER = 'acme_issuer example { uri https://localhost:9000/dir; ssl_verify off; }';

describe('acme_issuer', () => {
  it('reads every directive of the block, with nginx-acme\'s defaults', () => {
    const config = load(http(`acme_issuer example {
      uri https://localhost:9000/dir;
      account_key ecdsa:384;
      challenge tls-alpn;
      contact admin@example.test;
      contact https://example.test/contact;
      ssl_verify off;
      ssl_trusted_certificate ca.pem;
      state_path state;
      accept_terms_of_service;
      external_account_key kid-1 data:c2VjcmV0LWhtYWMta2V5;
    }
    acme_issuer other { uri https://acme.test/directory; }`), '/srv/hitless/');
    const { issuers } = acmeSettingsOf(config);
    assert.equal(issuers.length, 2);
    const [example, other] = issuers;
    assert.deepEqual({ ...example, externalAccountKey: undefined }, {
      name: 'example',
      uri: 'https://localhost:9000/dir',
      contact: ['mailto:admin@example.test', 'https://example.test/contact'],
      accountKey: undefined,
      accountKeyType: 'ecdsa:384',
      externalAccountKey: undefined,
      trustedCertificate: '/srv/hitless/ca.pem',
      verify: false,
      statePath: '/srv/hitless/state',
      acceptTermsOfService: true,
      challenge: 'tls-alpn-01',
      dnsCommand: undefined,
      commonNameInCsr: false,
      preferredChain: undefined,
      profile: undefined,
      resolver: undefined,
      where: '/x.conf:2',
    });
    assert.equal(example?.externalAccountKey?.kid, 'kid-1');
    assert.equal(example?.externalAccountKey?.hmacKey.toString(), 'secret-hmac-key');
    // Defaults: ecdsa:256, http-01, ssl_verify on, state_path acme_<name> under the prefix, no terms accepted.
    assert.equal(other?.accountKeyType, 'ecdsa:256');
    assert.equal(other?.challenge, 'http-01');
    assert.equal(other?.verify, true);
    assert.equal(other?.statePath, '/srv/hitless/acme_other');
    assert.equal(other?.acceptTermsOfService, false);
  });

  it('takes an account key file and an external account key file; state_path off persists nothing', () => {
    const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const keyFile = dir.write('account.key', privateKey.export({ type: 'pkcs8', format: 'pem' }) as string);
    const macFile = dir.write('eab.key', 'c2VjcmV0LWhtYWMta2V5\n');
    const config = load(http(`acme_issuer example { uri https://localhost:9000/dir; account_key ${keyFile}; external_account_key kid ${macFile}; state_path off; }`));
    const [issuer] = acmeSettingsOf(config).issuers;
    assert.equal(issuer?.accountKey, keyFile);
    assert.equal(issuer?.externalAccountKey?.file, macFile);
    assert.equal(issuer?.externalAccountKey?.hmacKey.toString(), 'secret-hmac-key');
    assert.equal(issuer?.statePath, undefined);
  });

  it('refuses what nginx-acme refuses, with its messages', () => {
    const cases: [string, RegExp][] = [
      ['acme_issuer example { ssl_verify off; }', /^acme_issuer: "uri" is missing in \/x\.conf:2$/],
      ['acme_issuer example { uri https://localhost/dir; account_key ecdsa:234; }', /^account_key: unsupported curve in \/x\.conf:2$/],
      ['acme_issuer example { uri https://localhost/dir; account_key rsa:1024; }', /^account_key: unsupported key size in /],
      ['acme_issuer example { uri https://localhost/dir; account_key /no/such-file.key; }', /^acme_issuer: cannot load account key: cannot load certificate key "\/no\/such-file\.key": BIO_new_file\(\) failed/],
      ['acme_issuer example { uri https://localhost/dir; challenge bad-value; }', /^unsupported challenge: bad-value in /],
      ['acme_issuer example { uri https://localhost/dir; bogus 1; }', /^unknown directive "bogus" in /],
      ['acme_issuer example { uri https://localhost/dir; uri; }', /^invalid number of arguments in "uri" in /],
      ['acme_issuer example { uri https://localhost/dir; ssl_verify off; ssl_verify on; }', /^"ssl_verify" directive "is duplicate" in /],
      ['acme_issuer example { uri https://localhost/dir; ssl_verify maybe; }', /^invalid value "maybe" in "ssl_verify" directive, it must be "on" or "off" in /],
      ['acme_issuer example { uri https://localhost/dir; accept_terms_of_service; accept_terms_of_service; }', /^"accept_terms_of_service" directive "is duplicate" in /],
      ['acme_issuer example { uri https://localhost/dir; external_account_key kid data:not*base64; }', /^"external_account_key" directive "invalid base64url encoded value" in /],
      ['acme_issuer example { uri https://localhost/dir; external_account_key kid /no/such.key; }', /^external_account_key: No such file or directory \(os error 2\) in /],
      ['acme_issuer example { uri https://localhost/dir; profile classic maybe; }', /^"profile" directive "invalid value" in /],
      ['acme_issuer example { uri not-a-url; }', /^invalid URI "not-a-url" in "uri" directive in /],
      ['acme_issuer example { uri https://localhost/dir; } acme_issuer example { uri https://localhost/dir; }', /^"acme_issuer" directive is duplicate in /],
      ['acme_issuer example { uri https://localhost/dir; challenge dns-01; }', /^"challenge dns-01" must have "command=" parameter in /],
    ];
    for (const [issuer, message] of cases) assert.match(errorOf(http(issuer)), message, issuer);
  });

  it('warns where hitless differs: acme_shared_zone, no resolver, preferred_chain and profile', () => {
    const config = load(http('acme_issuer example { uri https://localhost/dir; preferred_chain "ISRG Root X1"; profile tlsserver; }', undefined, 'acme_shared_zone zone=ngx_acme_shared:1M;'));
    const warnings = config.warnings.map((warning) => warning.message);
    assert.ok(warnings.some((w) => /^"acme_shared_zone" has no effect in hitless \(.*\) in \/x\.conf:3$/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /^acme_issuer: "resolver" is not configured \(/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /^"preferred_chain" has no effect in hitless/.test(w)), warnings.join('\n'));
    assert.ok(warnings.some((w) => /^"profile" has no effect in hitless/.test(w)), warnings.join('\n'));
    // hitless's request always names the first DNS name as Subject CN: `off` cannot be honoured.
    const cn = (value: string): string[] => load(http(`acme_issuer example { uri https://localhost/dir; common_name_in_csr ${value}; }`, undefined, 'resolver 127.0.0.1;')).warnings.map((warning) => warning.message);
    assert.deepEqual(cn('on'), []);
    assert.match(cn('off').join('\n'), /^"common_name_in_csr off" has no effect in hitless \(.*\) in \/x\.conf:2$/);
    assert.equal(acmeSettingsOf(load(http('acme_issuer example { uri https://localhost/dir; common_name_in_csr on; }'))).issuers[0]?.commonNameInCsr, true);
    const quiet = load(http(ISSUER, undefined, 'resolver 127.0.0.1:5353 ipv6=off; resolver_timeout 5s;'));
    // nginx-acme resolves the ACME server with the http block's resolver: the manager gets it.
    assert.deepEqual(acmeSettingsOf(quiet).issuers[0]?.resolver, { servers: [{ host: '127.0.0.1', port: 5353 }], timeoutMs: 5_000, ipv4: true, ipv6: false });
    assert.deepEqual(quiet.warnings.map((warning) => warning.message), []);
  });

  it('refuses acme_shared_zone as nginx-acme does', () => {
    assert.match(errorOf(http(ISSUER, undefined, 'acme_shared_zone bad-value;')), /^"acme_shared_zone" must have "zone" parameter in /);
    assert.match(errorOf(http(ISSUER, undefined, 'acme_shared_zone zone=test:bad-size;')), /^acme_shared_zone: invalid zone size "test:bad-size" in /);
    assert.match(errorOf(http(ISSUER, undefined, 'acme_shared_zone zone=test:4k;')), /^acme_shared_zone: zone test is too small in /);
  });
});

describe('acme_certificate', () => {
  it('takes its identifiers from the arguments, else from server_name; .example.test is www.example.test and example.test', () => {
    const explicit = acmeSettingsOf(load(http(ISSUER, 'acme_certificate example .Example.test 192.0.2.1 key=rsa:3072;')));
    assert.deepEqual(explicit.certificates.map(({ names, keyType, keyBits, issuer }) => ({ names, keyType, keyBits, issuer })), [
      { names: ['www.example.test', 'example.test', '192.0.2.1'], keyType: 'rsa', keyBits: 3072, issuer: 'example' },
    ]);
    const named = acmeSettingsOf(load(http(ISSUER, 'server_name 2001:db8::0:1 .example.test ~^regex$ ""; acme_certificate example;')));
    // The store name comes first: the first DNS name (nginx-acme's first_name()).
    assert.deepEqual(named.certificates[0]?.identifiers, [
      { type: 'dns', value: 'www.example.test' },
      { type: 'ip', value: '2001:db8::1' },
      { type: 'dns', value: 'example.test' },
    ]);
    const config = load(http(ISSUER, 'server_name ~^regex$ example.test; acme_certificate example;'));
    assert.ok(config.warnings.some((warning) => warning.message === '"acme_certificate": unsupported regular expression in server_name: ~^regex$'));
  });

  it('refuses what nginx-acme refuses, with its messages', () => {
    const cases: [string, RegExp][] = [
      ['server_name www.example.*; acme_certificate example;', /^"acme_certificate": invalid server name: unexpected character '\*' at position 12 in /],
      ['server_name .example..test; acme_certificate example;', /^"acme_certificate": invalid server name: unexpected character '\.' at position 9 in /],
      ['acme_certificate example;', /^"acme_certificate": no identifiers found in "server_name" in /],
      ['acme_certificate no-such-issuer .example.test;', /^issuer "no-such-issuer" is missing in /],
      ['acme_certificate example example.test key=ecdsa:234;', /^acme_certificate: unsupported curve in /],
      ['acme_certificate example example.test key=file.key;', /^"acme_certificate" directive invalid "key" value in /],
      ['acme_certificate example example.test.;', /^acme_certificate: invalid server name: does not end with a label in /],
      ['acme_certificate example a.test; acme_certificate example b.test;', /^"acme_certificate" directive is duplicate in /],
      ['acme_certificate "" a.test;', /^"acme_certificate" directive "issuer" is missing in /],
    ];
    for (const [server, message] of cases) assert.match(errorOf(http(ISSUER, server)), message, server);
  });

  it('one order for servers asking for the same certificate; another order under the same first name is refused', () => {
    const twice = `http {
      ${ISSUER}
      server { listen 127.0.0.1:8080; server_name example.test; acme_certificate example; }
      server { listen 127.0.0.1:8081; server_name example.test; acme_certificate example; }
    }`;
    assert.equal(acmeSettingsOf(load(twice)).certificates.length, 1);
    const clash = twice.replace('listen 127.0.0.1:8081; server_name example.test; acme_certificate example;', 'listen 127.0.0.1:8081; acme_certificate example example.test key=rsa:2048;');
    assert.match(errorOf(clash), /^"acme_certificate": another certificate for "example\.test" is requested in \/x\.conf:3 in \/x\.conf:4$/);
  });

  it('$acme_certificate is the whole ssl_certificate with $acme_certificate_key, and no other variable', () => {
    const mixed = http(ISSUER).replace('ssl_certificate_key $acme_certificate_key;', 'ssl_certificate_key /etc/key.pem;');
    assert.match(errorOf(mixed), /^"ssl_certificate \$acme_certificate" must be the only "ssl_certificate" of its server/);
    assert.match(errorOf(http(ISSUER, 'server_name example.test; acme_certificate example; location / { return 200 $acme_certificate; }')), /^unknown "acme_certificate" variable/);
    const stapled = load(http(ISSUER, 'server_name example.test; acme_certificate example; ssl_stapling on;', 'resolver 127.0.0.1;'));
    assert.ok(stapled.warnings.some((warning) => warning.message.startsWith('"ssl_stapling" has no effect with an "ssl_certificate" with variables')));
  });
});
