import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { toByteString } from '../../src/core/byte-string.js';
import { normalizeUri, parseRequestTarget, validateHost } from '../../src/http/uri.js';
import { findArg, findCookie } from '../../src/http/variables.js';

describe('uri: $uri as ngx_http_parse_complex_uri() makes it', () => {
  const table: [string, string | undefined][] = [
    ['/', '/'],
    ['/a/b', '/a/b'],
    ['//a///b//', '/a/b/'],
    ['/a/./b/.', '/a/b/'],
    ['/a/b/../c', '/a/c'],
    ['/a/b/..', '/a/'],
    ['/a/%2E%2E/b', '/b'],
    ['/a%2fb', '/a/b'],
    ['/caf%C3%A9', '/caf\u00c3\u00a9'],
    ['/%41', '/A'],
    ['/..', undefined],
    ['/a/../..', undefined],
    ['/%zz', undefined],
    ['/%00', undefined],
    ['a', undefined],
  ];
  for (const [raw, uri] of table) it(`${raw} -> ${String(uri)}`, () => assert.equal(normalizeUri(raw), uri));
});

describe('uri: request targets', () => {
  it('splits origin-form', () => {
    assert.deepEqual(parseRequestTarget('/a?b=1&c'), { path: '/a', args: 'b=1&c', hasArgs: true, host: undefined, requestUri: '/a?b=1&c' });
  });

  it('takes the host of absolute-form, which wins over Host', () => {
    const target = parseRequestTarget('http://Example.com:8080/x?y');
    assert.equal(target?.host, 'Example.com:8080');
    assert.equal(target?.path, '/x');
    assert.equal(parseRequestTarget('http://example.com')?.path, '/');
  });

  it('refuses anything else', () => {
    assert.equal(parseRequestTarget('*'), undefined);
    assert.equal(parseRequestTarget('ftp://x/'), undefined);
  });
});

describe('uri: Host as ngx_http_validate_host() takes it', () => {
  const table: [string, string | undefined][] = [
    ['Example.COM', 'example.com'],
    ['example.com:8080', 'example.com'],
    ['example.com.', 'example.com'],
    ['[::1]:80', '[::1]'],
    ['', undefined],
    ['.', undefined],
    ['a..b', undefined],
    ['a/b', undefined],
    ['a b', undefined],
    [':80', undefined],
    // nginx 1.29.4's stricter ngx_http_validate_host() (http_host.t): a port is digits up to 65535,
    // nothing may follow an IP literal but a port, and a host holds RFC 3986 reg-name characters only.
    ['abcd-ef.g02.xyz.:88', 'abcd-ef.g02.xyz'],
    ['example.com.:1.2', undefined],
    ['example.com:65535', 'example.com'],
    ['example.com:65536', undefined],
    ['example.com:8x', undefined],
    ['[abcd::ef98:0:7654:321].', undefined],
    ['[abcd::ef98:0:7654:321].:98', undefined],
    ['[abcd::ef98:0:7654:321]..:98', undefined],
    ['[::1', undefined],
    ['a_b~c!$&\'()*+,;=%41', 'a_b~c!$&\'()*+,;=%41'],
    ['a"b', undefined],
    ['a\u00e9b', undefined],
  ];
  for (const [raw, host] of table) it(`${JSON.stringify(raw)} -> ${String(host)}`, () => assert.equal(validateHost(raw)?.host, host));
  it('gives the port, 0 without one ($request_port)', () => {
    assert.deepEqual(validateHost('Example.com:8080'), { host: 'example.com', port: 8080 });
    assert.deepEqual(validateHost('[::1]:443'), { host: '[::1]', port: 443 });
    assert.deepEqual(validateHost('example.com'), { host: 'example.com', port: 0 });
    assert.deepEqual(validateHost('example.com:'), { host: 'example.com', port: 0 });
  });
});

describe('uri: arguments, cookies, byte strings', () => {
  it('finds $arg_name caselessly and raw, only with "="', () => {
    assert.equal(findArg('a=1&B=2&c', 'b'), '2');
    assert.equal(findArg('a=1&b=%20', 'b'), '%20');
    assert.equal(findArg('ab=1', 'b'), undefined);
    assert.equal(findArg('c', 'c'), undefined);
    assert.equal(findArg('', 'a'), undefined);
  });

  it('finds $cookie_name', () => {
    assert.equal(findCookie('a=1; Session=xyz; b=2', 'session'), 'xyz');
    assert.equal(findCookie(undefined, 'a'), undefined);
  });

  it('turns configuration text into bytes once', () => {
    assert.equal(toByteString('/plain'), '/plain');
    assert.equal(toByteString('/é'), '/\u00c3\u00a9');
  });
});
