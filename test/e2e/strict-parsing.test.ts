/**
 * Strict HTTP/1.1 parsing (issue 15), against the real binary and Debian's nginx side by side:
 * VT and NBSP are not optional whitespace (RFC 9110 section 5.6.3), so `chunked\xa0` is not
 * chunked and `5\xa0` is no length; an absolute-form target with userinfo is refused rather than
 * forwarded with `Host: good@evil.example`. Where hitless is stricter than nginx (a control
 * character in any field value, RFC 9110 section 5.5), the case says so and asserts hitless's
 * answer only.
 */
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from './helpers/masters.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';
import { tempDir } from '../helpers/tmp.js';

/** Sends raw bytes on a new connection and returns the status line of the answer (or '' when closed without one). */
function statusLine(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => socket.end(Buffer.from(request, 'latin1')));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (answer += chunk));
    socket.on('close', () => resolve(answer.split('\r\n')[0] ?? ''));
    socket.on('error', reject);
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
  });
}

const CHUNKED_BODY = '\r\n5\r\nhello\r\n0\r\n\r\n';

interface Case {
  readonly name: string;
  readonly request: string;
  readonly hitless: string;
  /** nginx's answer, when it differs from hitless's on purpose. */
  readonly nginx?: string;
}

const CASES: readonly Case[] = [
  { name: 'Transfer-Encoding: chunked followed by NBSP is not chunked (501)', request: `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\xa0\r\n${CHUNKED_BODY}`, hitless: 'HTTP/1.1 501 Not Implemented' },
  { name: 'Content-Length: 5 followed by NBSP is no length (400)', request: 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\xa0\r\n\r\nhello', hitless: 'HTTP/1.1 400 Bad Request' },
  { name: 'an absolute-form target with userinfo is refused (400)', request: 'GET http://good@evil.example/ HTTP/1.1\r\nHost: a\r\n\r\n', hitless: 'HTTP/1.1 400 Bad Request' },
  { name: 'an absolute-form target with an empty userinfo host is refused (400)', request: 'GET http://evil.example@/ HTTP/1.1\r\nHost: a\r\n\r\n', hitless: 'HTTP/1.1 400 Bad Request' },
  { name: 'an absolute-form target with a port and an IPv6 literal is taken', request: 'GET http://[::1]:80/ HTTP/1.1\r\nHost: a\r\n\r\n', hitless: 'HTTP/1.1 200 OK' },
  { name: 'a plain chunked request is taken', request: `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n${CHUNKED_BODY}`, hitless: 'HTTP/1.1 200 OK' },
  // ngx_http_parse_request_line(): a line with no version is an HTTP/0.9 request, answered with the body alone.
  { name: 'an HTTP/0.9 request is answered with the body alone', request: 'GET /\r\n', hitless: 'ok\n' },
  // sw_start: a byte no method starts with (a uwsgi packet's 0, a lowercase letter) is refused at once.
  { name: 'a request starting with a byte no method starts with is a 400', request: '\x00\x10\x00\x00uwsgi', hitless: 'HTTP/1.1 400 Bad Request' },
  { name: 'a lowercase method is a 400', request: 'get / HTTP/1.1\r\nHost: a\r\n\r\n', hitless: 'HTTP/1.1 400 Bad Request' },
  // ngx_http_discard_request_body(): the body a `return` does not read is parsed as far as it came; a chunk longer than its size is a 400.
  { name: 'a runaway chunk in a body nobody reads is a 400', request: 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nSEE-THIS\r\n0\r\n\r\n', hitless: 'HTTP/1.1 400 Bad Request' },
  // Stricter than nginx: a control character in a field value is refused whatever the field.
  { name: 'Transfer-Encoding: VT chunked is refused (400; nginx 501)', request: `POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \x0bchunked\r\n${CHUNKED_BODY}`, hitless: 'HTTP/1.1 400 Bad Request', nginx: 'HTTP/1.1 501 Not Implemented' },
  { name: 'a VT in any field value is refused (400; nginx passes it on)', request: 'POST / HTTP/1.1\r\nHost: a\r\nX-A: \x0bv\r\nContent-Length: 5\r\n\r\nhello', hitless: 'HTTP/1.1 400 Bad Request', nginx: 'HTTP/1.1 200 OK' },
];

describe('strict HTTP/1.1 parsing, hitless and nginx side by side', () => {
  const dir = tempDir();
  const servers: RunningServer[] = [];
  const ports = { hitless: 0, nginx: 0 };

  before(async () => {
    for (const name of ['hitless', 'nginx'] as const) {
      ports[name] = await freePort();
      const conf = join(dir.path, `${name}.conf`);
      writeFileSync(conf, `worker_processes 1;\npid ${dir.path}/${name}.pid;\nerror_log ${dir.path}/${name}-error.log info;\nevents {}\nhttp {\n  access_log off;\n  server {\n    listen 127.0.0.1:${ports[name]};\n    location / { return 200 "ok\\n"; }\n  }\n}\n`);
      servers.push(await startServer(name, ['-p', `${dir.path}/`, '-c', conf, '-g', 'daemon off;'], [ports[name]]));
    }
  });
  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    dir.remove();
  });

  for (const test of CASES) {
    it(test.name, async () => {
      assert.equal(await statusLine(ports.nginx, test.request), test.nginx ?? test.hitless, 'nginx itself');
      assert.equal(await statusLine(ports.hitless, test.request), test.hitless);
    });
  }
});
