/** The access phase's parts: allow/deny parsing and matching, htpasswd files, the password hashes. */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { checkAccess, compileAccessRules } from '../../src/http/access-module.js';
import { passwordMatches, shaCrypt } from '../../src/http/password-hash.js';
import { parseUserFile, UserFiles } from '../../src/http/user-files.js';
import { tempDir } from '../helpers/tmp.js';
import { errorOf, load } from './helpers.js';

function rulesOf(text: string): ReturnType<typeof compileAccessRules> {
  const http = load(`http { server { location / { ${text} } } }`).main.child('http');
  const location = http?.blocks[0]?.blocks[0];
  assert.ok(location !== undefined);
  return compileAccessRules(location);
}

describe('allow and deny', () => {
  it('keep the order they were written in, allow and deny interleaved, two on one line too', () => {
    const rules = rulesOf('deny 10.0.0.1; allow 10.0.0.0/8;\n deny all; allow ::1;');
    assert.deepEqual(rules.map((rule) => rule.deny), [true, false, true, false]);
    assert.equal(checkAccess(rules, '10.0.0.1'), 'deny');
    assert.equal(checkAccess(rules, '10.9.0.1'), 'allow');
    assert.equal(checkAccess(rules, '::1'), 'deny');
  });

  it('match by family, a v4-mapped address as IPv4, unix: only unix-socket clients', () => {
    const rules = rulesOf('allow 127.0.0.0/8; allow 2001:db8::/32; allow unix:; deny all;');
    assert.equal(checkAccess(rules, '127.1.2.3'), 'allow');
    assert.equal(checkAccess(rules, '::ffff:127.0.0.1'), 'allow');
    assert.equal(checkAccess(rules, '2001:db8::5'), 'allow');
    assert.equal(checkAccess(rules, '2001:db9::5'), 'deny');
    assert.equal(checkAccess(rules, 'unix:'), 'allow');
    assert.equal(checkAccess(rulesOf('allow 1.2.3.4;'), '5.6.7.8'), undefined);
    // ngx_http_access_handler(): without IPv4 rules a v4-mapped client meets the IPv6 ones.
    assert.equal(checkAccess(rulesOf('deny ::ffff:0:0/96; allow ::/0;'), '::ffff:10.0.0.1'), 'deny');
    assert.equal(checkAccess(rulesOf('deny ::ffff:0:0/96; allow 10.0.0.1;'), '::ffff:10.0.0.1'), 'allow');
  });

  it('are replaced, not added to, by a level with rules of its own', () => {
    const http = load('http { deny 10.0.0.0/8; server { location /a { allow all; } location /b { } } }').main.child('http');
    const [a, b] = http?.blocks[0]?.blocks ?? [];
    assert.ok(a !== undefined && b !== undefined);
    assert.equal(checkAccess(compileAccessRules(a), '10.0.0.1'), 'allow');
    assert.equal(checkAccess(compileAccessRules(b), '10.0.0.1'), 'deny');
  });

  it('refuse what nginx refuses, and warn about low address bits', () => {
    assert.match(errorOf('http { allow 10.0.0.0/33; }'), /^invalid parameter "10\.0\.0\.0\/33" in/);
    assert.match(errorOf('http { deny localhost; }'), /^invalid parameter "localhost" in/);
    assert.match(errorOf('http { satisfy some; }'), /^invalid value "some" in/);
    assert.match(errorOf('http { server { location / { limit_except GET { satisfy any; } } } }'), /"satisfy" directive is not allowed here/);
    const warnings = load('http { allow 10.1.2.3/8; }').warnings.map((w) => w.reason);
    assert.deepEqual(warnings, ['low address bits of 10.1.2.3/8 are meaningless']);
  });
});

describe('htpasswd files', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('are read as nginx reads them: comments, CR, extra fields, the first line of a user', () => {
    const users = parseUserFile('# alice:nope\nalice:{PLAIN}a:comment\r\n\rbob:x\nalice:{PLAIN}second\ncarol:{PLAIN}c\r\nnocolon\n');
    assert.deepEqual([...users], [['alice', '{PLAIN}a'], ['carol', '{PLAIN}c']]);
  });

  it('are parsed again only when they change, and their open() errors are kept', async () => {
    const files = new UserFiles();
    const path = dir.write('htpasswd', 'alice:{PLAIN}one\n');
    assert.deepEqual(await files.lookup(path, 'alice'), { kind: 'found', hash: '{PLAIN}one' });
    writeFileSync(path, 'alice:{PLAIN}two\n');
    // Same size: the mtime tells the change.
    utimesSync(path, new Date(), new Date(Date.now() + 5000));
    assert.deepEqual(await files.lookup(path, 'alice'), { kind: 'found', hash: '{PLAIN}two' });
    assert.deepEqual(await files.lookup(path, 'bob'), { kind: 'absent' });
    const missing = await files.lookup(join(dir.path, 'none'), 'alice');
    assert.equal(missing.kind === 'error' && missing.call === 'open' && missing.error.code, 'ENOENT');
    const directory = await files.lookup(dir.path, 'alice');
    assert.equal(directory.kind === 'error' && directory.call, 'pread');
  });
});

describe('password hashes', () => {
  const openssl = (...args: string[]): string => execFileSync('openssl', ['passwd', ...args]).toString().trim();
  const crypt = (password: string, salt: string): string => execFileSync('perl', ['-e', 'print crypt($ARGV[0], $ARGV[1])', password, salt]).toString();

  it('match what openssl and the C library make, and nothing else', async () => {
    const password = 'p@ss w0rd:';
    const hashes = [
      openssl('-1', password), openssl('-apr1', password), openssl('-5', password), openssl('-6', password),
      crypt(password, 'ab'), crypt(password, '$6$rounds=1200$abc$'), crypt(password, '$5$rounds=1000$abc$'),
      crypt(password, '$2b$04$abcdefghijklmnopqrstuu'), crypt(password, '$2y$04$abcdefghijklmnopqrstuu'),
      `{PLAIN}${password}`,
    ];
    for (const hash of hashes) {
      assert.equal(await passwordMatches(password, hash), true, hash.slice(0, 6));
      assert.equal(await passwordMatches(`x${password}`, hash), false, hash.slice(0, 6));
    }
  });

  it('follow DES crypt in using only the first 8 characters', async () => {
    assert.equal(await passwordMatches('12345678-and-more', crypt('12345678', 'ab')), true);
  });

  it('never match a format nobody knows', async () => {
    assert.equal(await passwordMatches('x', '$9$abc$def'), false);
    assert.equal(await passwordMatches('', ''), false);
    assert.equal(await passwordMatches('x', '*0'), false);
  });

  it('compute SHA-crypt as the specification\'s vectors and the C library do', () => {
    assert.equal(shaCrypt('sha512', 'Hello world!', '$6$saltstring'), '$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1');
    assert.equal(shaCrypt('sha256', 'Hello world!', '$5$saltstring'), '$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5');
    assert.equal(shaCrypt('sha512', 'Hello world!', '$6$rounds=10000$saltstringsaltstring'), '$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.');
    assert.equal(shaCrypt('sha256', 'we have a short salt string but not a short password', '$5$rounds=77777$short'), '$5$rounds=77777$short$JiO1O3ZpDAxGJeaDIuqCoEFysAe1mZNJRs3pw0KQRd/');
  });
});
