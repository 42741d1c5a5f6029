import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HttpParseError, parseRequestHead, parseResponseHead } from '../../../src/http/h1/head-parser.js';

const req = (text: string) => parseRequestHead(Buffer.from(text, 'latin1'));

function refused(text: string): [number, string] {
  try {
    req(text);
  } catch (err) {
    assert.ok(err instanceof HttpParseError, String(err));
    return [err.status, err.message];
  }
  return assert.fail(`accepted ${JSON.stringify(text)}`);
}

describe('request heads', () => {
  it('parses the request line, headers and framing', () => {
    const head = req('POST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-A:  spaced value \r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\nhello');
    assert.ok(head);
    assert.equal(head.method, 'POST');
    assert.equal(head.target, '/a?b=1');
    assert.equal(head.versionMinor, 1);
    assert.equal(head.host, 'example.com');
    assert.equal(head.contentLength, 5);
    assert.equal(head.chunked, false);
    assert.deepEqual(head.connection, ['keep-alive', 'upgrade']);
    assert.equal(head.upgrade, 'websocket');
    assert.deepEqual(head.headers.slice(4, 6), ['X-A', 'spaced value']);
    assert.equal(head.headBytes, Buffer.byteLength(head ? 'POST /a?b=1 HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nX-A:  spaced value \r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n' : ''));
  });

  it('waits for more bytes until the head is complete', () => {
    assert.equal(req('GET / HTTP/1.1\r\nHost: a\r\n'), undefined);
    assert.equal(req('GET / HTT'), undefined);
  });

  it('accepts bare LF line ends and leading empty lines, as nginx does', () => {
    const head = req('\r\n\nGET / HTTP/1.0\nX: y\n\n');
    assert.equal(head?.versionMinor, 0);
    assert.equal(head?.host, undefined);
  });

  it('parses pipelined requests one after the other', () => {
    const buf = Buffer.from('GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n');
    const first = parseRequestHead(buf);
    const second = parseRequestHead(buf, first?.headBytes);
    assert.equal(first?.target, '/1');
    assert.equal(second?.target, '/2');
  });

  it('recognises chunked and Expect: 100-continue', () => {
    const head = req('PUT / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\nExpect: 100-continue\r\n\r\n');
    assert.equal(head?.chunked, true);
    assert.equal(head?.expectContinue, true);
  });

  describe('refuses smuggling and malformed input', () => {
    const cases: [string, string, number, RegExp][] = [
      ['Content-Length with Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /"Content-Length" and "Transfer-Encoding"/],
      ['Transfer-Encoding before Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n', 400, /"Content-Length" and "Transfer-Encoding"/],
      ['duplicate Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n', 400, /duplicate header line: "Content-Length: 3"/],
      ['a list in Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 3\r\n\r\n', 400, /invalid "Content-Length"/],
      ['a signed Content-Length', 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n', 400, /invalid "Content-Length"/],
      ['an unknown transfer coding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n', 501, /unknown "Transfer-Encoding": "gzip"/],
      ['chunked not alone', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n', 501, /unknown "Transfer-Encoding"/],
      // nginx keeps Transfer-Encoding once (ngx_http_process_unique_header_line()): a second line is a 400.
      ['a split Transfer-Encoding', 'POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n', 400, /duplicate header line: "Transfer-Encoding: identity", previous value: "Transfer-Encoding: chunked"/],
      ['two Authorization headers', 'GET / HTTP/1.1\r\nHost: a\r\nauthorization: a\r\nAuthorization: b\r\n\r\n', 400, /^client sent duplicate header line: "Authorization: \(hidden\)", previous value: "authorization: \(hidden\)"$/],
      ['two If-None-Match headers', 'GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: "a"\r\nIf-None-Match: "b"\r\n\r\n', 400, /duplicate header line/],
      ['two Proxy-Authorization headers', 'GET / HTTP/1.1\r\nHost: a\r\nProxy-Authorization: a\r\nProxy-Authorization: b\r\n\r\n', 400, /duplicate header line/],
      ['Transfer-Encoding in HTTP/1.0', 'POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n', 400, /HTTP\/1\.0/],
      ['whitespace before the colon', 'GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 3\r\n\r\n', 400, /invalid header line/],
      ['obsolete line folding', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n', 400, /invalid header line/],
      ['a bare CR inside a line', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n', 400, /invalid header line/],
      ['a NUL in a value', 'GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n', 400, /invalid header line/],
      ['a line with no colon', 'GET / HTTP/1.1\r\nHost: a\r\nnocolon\r\n\r\n', 400, /invalid header line/],
      ['two Host headers', 'GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n', 400, /duplicate header line: "Host: b"/],
      ['a malformed request line', 'GET  / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /invalid request/],
      ['a space in the target', 'GET /a b HTTP/1.1\r\nHost: a\r\n\r\n', 400, /invalid request/],
      ['HTTP/2.0 over HTTP/1', 'GET / HTTP/2.0\r\nHost: a\r\n\r\n', 505, /unsupported HTTP version/],
      // The target is read before the version: the HTTP/2 preface sent to an HTTP/1 port is a 400, as nginx answers.
      ['the HTTP/2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 400, /client sent invalid request/],
      ['a target neither a path nor absolute', 'GET * HTTP/1.1\r\nHost: a\r\n\r\n', 400, /client sent invalid request/],
      ['TRACE', 'TRACE / HTTP/1.1\r\nHost: a\r\n\r\n', 405, /TRACE method/],
      // nginx 1.29.3: CONNECT takes an authority-form target, host:port, and no server allows it.
      ['CONNECT to host:port', 'CONNECT localhost:8080 HTTP/1.1\r\nHost: a\r\n\r\n', 405, /client sent CONNECT method/],
      ['CONNECT to [v6]:port', 'CONNECT [::1]:443 HTTP/1.1\r\nHost: a\r\n\r\n', 405, /client sent CONNECT method/],
      ['CONNECT to a path', 'CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n', 400, /client sent invalid request/],
      ['CONNECT without a port', 'CONNECT localhost HTTP/1.1\r\nHost: a\r\n\r\n', 400, /client sent invalid request/],
    ];
    for (const [name, text, status, message] of cases) {
      it(name, () => {
        const [got, reason] = refused(text);
        assert.equal(got, status);
        assert.match(reason, message);
      });
    }
  });

  it('answers 414 for a request line over the limit and 494 (sent as 400) for a long header line or head', () => {
    assert.equal(refused(`GET /${'a'.repeat(9000)} HTTP/1.1\r\n`)[0], 414);
    assert.equal(refused(`GET /${'a'.repeat(9000)}`)[0], 414);
    assert.equal(refused(`GET / HTTP/1.1\r\nX: ${'a'.repeat(9000)}\r\n\r\n`)[0], 494);
    assert.equal(refused(`GET / HTTP/1.1\r\n${'X: aaaaaaaaaa\r\n'.repeat(3000)}\r\n`)[0], 494);
  });
});

describe('response heads', () => {
  it('parses status, reason and framing', () => {
    const head = parseResponseHead(Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
    assert.equal(head?.status, 404);
    assert.equal(head?.reason, 'Not Found');
    assert.equal(head?.contentLength, 0);
    assert.deepEqual(head?.connection, ['close']);
  });

  it('accepts a status line without a reason', () => {
    assert.equal(parseResponseHead(Buffer.from('HTTP/1.0 200\r\n\r\n'))?.versionMinor, 0);
  });

  it('refuses an ambiguous upstream response with 502', () => {
    for (const text of [
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n',
      'HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n',
      'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\n\r\n',
      'HTTX/1.1 200 OK\r\n\r\n',
      'HTTP/1.1 20 OK\r\n\r\n',
    ]) {
      assert.throws(() => parseResponseHead(Buffer.from(text)), (err: unknown) => err instanceof HttpParseError && err.status === 502, text);
    }
  });
});
