import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ConfBlockView } from '../../src/conf/registry.js';
import { serversOf } from '../../src/http/core-module.js';
import { primaryServerName, VirtualHosts } from '../../src/http/server-names.js';
import { errorOf, load } from './helpers.js';

/** Builds the name tables of one address from `server { server_name ...; }` blocks; servers are told apart by index. */
function hostsOf(serverNames: readonly string[], defaultIndex = 0): { find(host: string): { index: number; match: RegExpExecArray | undefined } } {
  const http = load(`http { ${serverNames.map((names) => `server { listen 80; ${names} }`).join(' ')} }`).main.child('http');
  assert.ok(http);
  const servers = serversOf(http);
  const conflicts: string[] = [];
  const hosts = VirtualHosts.build(servers, servers[defaultIndex] as ConfBlockView, (s) => s.get('server_name'), '0.0.0.0:80', {
    invalid: (reason) => assert.fail(reason),
    conflict: (reason) => conflicts.push(reason),
  });
  return {
    find(host) {
      const { server, match } = hosts.find(host);
      return { index: servers.indexOf(server), match };
    },
  };
}

describe('server_name: choosing the virtual server (nginx docs, "Server names")', () => {
  const hosts = hostsOf([
    'server_name example.org www.example.org;',
    'server_name *.example.org;',
    'server_name mail.*;',
    'server_name ~^(?<user>.+)\\.example\\.net$;',
  ]);
  const table: [string, number][] = [
    ['example.org', 0],
    ['www.example.org', 0],
    ['a.example.org', 1],
    ['a.b.example.org', 1],
    ['mail.example.com', 2],
    ['mail.example.co.uk', 2],
    ['bob.example.net', 3],
    ['example.net', 0],
    ['unknown.test', 0],
  ];
  for (const [host, index] of table) it(`${host} -> server ${index}`, () => assert.equal(hosts.find(host).index, index));

  it('keeps the named captures of the regex that chose the server', () => {
    assert.equal(hosts.find('bob.example.net').match?.groups?.user, 'bob');
  });
});

describe('server_name: precedence', () => {
  it('exact beats wildcards; the longest leading wildcard wins', () => {
    const hosts = hostsOf(['server_name *.example.org;', 'server_name *.sub.example.org;', 'server_name www.sub.example.org;']);
    assert.equal(hosts.find('x.sub.example.org').index, 1);
    assert.equal(hosts.find('x.example.org').index, 0);
    assert.equal(hosts.find('www.sub.example.org').index, 2);
  });

  it('a leading wildcard beats a trailing one, the longest trailing wildcard wins', () => {
    const hosts = hostsOf(['server_name www.*;', 'server_name *.example.com;', 'server_name www.example.*;']);
    assert.equal(hosts.find('www.example.com').index, 1);
    assert.equal(hosts.find('www.example.org').index, 2);
    assert.equal(hosts.find('www.other.org').index, 0);
  });

  it('.example.com is example.com and *.example.com', () => {
    const hosts = hostsOf(['server_name other;', 'server_name .example.com;']);
    assert.equal(hosts.find('example.com').index, 1);
    assert.equal(hosts.find('a.example.com').index, 1);
    assert.equal(hosts.find('xexample.com').index, 0);
  });

  it('wildcards beat regexes, and the first matching regex wins', () => {
    const hosts = hostsOf(['server_name ~^www\\.;', 'server_name ~example;', 'server_name *.example.com;']);
    assert.equal(hosts.find('www.example.com').index, 2);
    assert.equal(hosts.find('www.example.org').index, 0);
    assert.equal(hosts.find('api.example.org').index, 1);
  });

  it('falls back to the default server of the address', () => {
    const hosts = hostsOf(['server_name a;', 'server_name b;'], 1);
    assert.equal(hosts.find('c').index, 1);
  });

  it('server_name "" takes requests without a Host header, the default server_name is ""', () => {
    const hosts = hostsOf(['server_name a;', 'server_name "";']);
    assert.equal(hosts.find('').index, 1);
    const defaulted = hostsOf(['server_name a;', '']);
    assert.equal(defaulted.find('').index, 1);
  });

  it('lowercases names and makes $hostname the host name', () => {
    const http = load('http { server { server_name WWW.Example.COM $hostname; } }').main.child('http');
    const names = http?.child('server')?.get('server_name') ?? [];
    assert.equal(names[0]?.name, 'www.example.com');
    assert.notEqual(names[1]?.name, '$hostname');
  });
});

describe('server_name: nginx error messages', () => {
  const cases: [string, string][] = [
    ['server_name *;', 'server name "*" is invalid in /x.conf:2'],
    ['server_name *x.com;', 'server name "*x.com" is invalid in /x.conf:2'],
    ['server_name .;', 'server name "." is invalid in /x.conf:2'],
    ['server_name ~;', 'empty regex in server name "~" in /x.conf:2'],
  ];
  for (const [line, message] of cases) it(message, () => assert.equal(errorOf(`http {\nserver { ${line} } }`), message));

  it('pcre2_compile() failed: missing closing parenthesis in "^(a" in /x.conf:2', () => {
    assert.equal(errorOf('http {\nserver { server_name ~^(a; } }'), 'pcre2_compile() failed: missing closing parenthesis in "^(a" in /x.conf:2');
  });

  it('invalid server name or wildcard "www.*.example.com" on 0.0.0.0:80 (no file: nginx finds it after reading)', () => {
    assert.equal(
      errorOf('http {\nserver { listen 80; server_name a; }\nserver { listen 80; server_name www.*.example.com; } }'),
      'invalid server name or wildcard "www.*.example.com" on 0.0.0.0:80',
    );
  });

  it('accepts (?P<name>) captures, as PCRE does', () => {
    assert.doesNotThrow(() => load('http { server { server_name ~^(?P<sub>\\w+)\\.example\\.com$; } }'));
  });

  it('$server_name is the first name: a regex with its "~", ".example.com" without its dot', () => {
    const first = (names: string): string => primaryServerName(load(`http { server { server_name ${names}; } }`).main.child('http')?.child('server')?.get('server_name') ?? []);
    assert.equal(first('~^EXAMPLE\\.COM$ other'), '~^EXAMPLE\\.COM$');
    assert.equal(first('.example.com'), 'example.com');
    assert.equal(first('www.Example.com'), 'www.example.com');
  });
});
