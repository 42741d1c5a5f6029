import assert from 'node:assert/strict';
import { readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import { createServer } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ConfigError } from '../../src/core/errors.js';
import { ErrorLog } from '../../src/core/log.js';
import { HttpRuntime } from '../../src/http/runtime.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { get, load, RawClient, serve, type Served } from './helpers.js';
import { VERSION } from '../../src/core/version.js';

const CONFIG = `
http {
  log_format plain '$remote_addr "$request" $status $body_bytes_sent $connection_requests "$http_user_agent" $host $server_name';
  log_format js escape=json '{"ua":"$http_user_agent","args":"$args"}';
  access_log logs/access.log plain;
  add_header X-Everywhere yes;

  server {
    listen 127.0.0.1:8080;
    server_name localhost;
    keepalive_requests 3;

    location / { return 200 "hello $host$request_uri $arg_a\\n"; }
    location = /healthz { return 204; }
    location = /empty { return 200; }
    location /old/ { return 301 /new/; }
    location = /away { return https://example.com/; }
    location = /teapot { return 418; }
    location = /missing { return 404; }
    location = /gone { return 410 "gone for good"; }
    location = /close { return 444; }
    location = /json { default_type application/json; return 200 '{"ok":true}'; }
    location = /vars {
      return 200 "$remote_addr|$remote_port|$server_addr|$server_port|$server_protocol|$request_method|$scheme|$request_uri|$uri|$args|$is_args|$arg_x|$cookie_sid|$http_x_test|$remote_user|$status|$msec|$time_local|$time_iso8601|$pid|$hostname|$connection|$connection_requests|$request_time|$request|$body_bytes_sent|$bytes_sent";
    }
    location ~ ^/user/(?<name>[a-z]+)/(\\d+)$ { return 200 "user=$name id=$2"; }
    location /hdr/ {
      add_header X-Own $uri;
      add_header X-Always always-$status always;
      location = /hdr/404 { return 404; }
      location /hdr/ { return 200 ok; }
    }
    location /nolog/ { access_log off; return 200 quiet; }
    location /jslog/ { access_log logs/json.log js; return 200 json; }
    location /elog/ { error_log logs/location-error.log; root /nonexistent-hitless-root; }
    location /kh/ { keepalive_timeout 30s 25; return 200 kh; }
    location /nokeep/ { keepalive_timeout 0; return 200 nokeep; }
    location /short/ { keepalive_timeout 20ms; return 200 short; }
  }

  server {
    listen 127.0.0.1:8080;
    server_name *.example.org ~^(?<sub>[a-z]+)\\.example\\.net$;
    location / { return 200 "vhost $server_name $sub"; }
  }

  server {
    listen 127.0.0.1:8080;
    server_name dup.test localhost;
    location / { return 200 never; }
  }
}`;

describe('HttpRuntime: serving a configuration on loopback', () => {
  let dir: TempDir;
  let served: Served;
  let errorLogPath: string;

  before(async () => {
    dir = tempDir();
    errorLogPath = join(dir.path, 'logs/error.log');
    served = await serve(CONFIG, dir.path, new ErrorLog([{ file: errorLogPath, level: 'info' }]));
  });

  after(async () => {
    await served.stop();
    dir.remove();
  });

  const accessLog = (name = 'access.log'): string[] => {
    served.runtime.flushLogs();
    return readFileSync(join(dir.path, 'logs', name), 'latin1').trim().split('\n');
  };

  it('answers return code text with variables, Content-Type from default_type', async () => {
    const reply = await get(served.port, '/path?a=1&b=2', { host: 'LocalHost:8080' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, 'hello localhost/path?a=1&b=2 1\n');
    assert.equal(reply.headers['content-type'], 'text/plain');
    assert.equal(reply.headers['server'], `hitless/${VERSION}`);
    assert.equal(reply.headers['x-everywhere'], 'yes');
    assert.equal((await get(served.port, '/json')).headers['content-type'], 'application/json');
  });

  it('answers return 204 and return 200 with empty bodies', async () => {
    const noContent = await get(served.port, '/healthz');
    assert.equal(noContent.status, 204);
    assert.equal(noContent.body, '');
    assert.equal(noContent.headers['content-length'], undefined);
    const empty = await get(served.port, '/empty');
    assert.equal(empty.status, 200);
    assert.equal(empty.headers['content-length'], '0');
  });

  it('evaluates every variable of the access log and return', async () => {
    const reply = await get(served.port, '/vars?x=1', {
      headers: { cookie: 'a=1; sid=abc', 'x-test': 'hi', authorization: `Basic ${Buffer.from('alice:secret').toString('base64')}` },
    });
    const [remoteAddr, remotePort, serverAddr, serverPort, protocol, method, scheme, requestUri, uri, args, isArgs, argX, cookie, header, user, status, msec, timeLocal, iso, pid, host, connection, requests, requestTime, request, bodyBytes, bytes] = reply.body.split('|');
    assert.deepEqual([remoteAddr, serverAddr, serverPort, protocol, method, scheme], ['127.0.0.1', '127.0.0.1', String(served.port), 'HTTP/1.1', 'GET', 'http']);
    assert.match(remotePort ?? '', /^\d+$/);
    assert.deepEqual([requestUri, uri, args, isArgs, argX, cookie, header, user, status], ['/vars?x=1', '/vars', 'x=1', '?', '1', 'abc', 'hi', 'alice', '000']);
    assert.match(msec ?? '', /^\d+\.\d{3}$/);
    assert.match(timeLocal ?? '', /^\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} [+-]\d{4}$/);
    assert.match(iso ?? '', /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{2}:\d{2}$/);
    assert.equal(pid, String(process.pid));
    assert.ok((host ?? '').length > 0);
    assert.match(connection ?? '', /^\d+$/);
    assert.equal(requests, '1');
    assert.match(requestTime ?? '', /^\d+\.\d{3}$/);
    assert.equal(request, 'GET /vars?x=1 HTTP/1.1');
    assert.deepEqual([bodyBytes, bytes], ['0', '0']);
  });

  it('redirects: return 301 /path is made absolute, return URL is a 302', async () => {
    const moved = await get(served.port, '/old/x', { host: 'localhost' });
    assert.equal(moved.status, 301);
    assert.equal(moved.headers.location, `http://localhost:${served.port}/new/`);
    assert.match(moved.body, /<title>301 Moved Permanently<\/title>/);
    const away = await get(served.port, '/away');
    assert.equal(away.status, 302);
    assert.equal(away.headers.location, 'https://example.com/');
    assert.match(away.body, /302 Found/);
  });

  it("answers errors with nginx's pages, or the text given", async () => {
    const missing = await get(served.port, '/missing');
    assert.equal(missing.status, 404);
    assert.match(missing.body, /<center><h1>404 Not Found<\/h1><\/center>/);
    assert.equal(missing.headers['content-type'], 'text/html');
    const gone = await get(served.port, '/gone');
    assert.equal(gone.status, 410);
    assert.equal(gone.body, 'gone for good');
    const teapot = await get(served.port, '/teapot');
    assert.equal(teapot.status, 418);
    assert.equal(teapot.body, '');
  });

  it('answers 404 where no location matches and nothing returns', async () => {
    const reply = await get(served.port, '/anything', { host: 'a.example.org' });
    assert.equal(reply.status, 200);
    assert.equal((await get(served.port, '/hdr/x')).status, 200);
  });

  it('uses regex captures, named and numbered', async () => {
    assert.equal((await get(served.port, '/user/bob/42')).body, 'user=bob id=42');
  });

  it('chooses the server by Host: wildcard, regex with captures, else the default', async () => {
    assert.equal((await get(served.port, '/', { host: 'www.example.org' })).body, 'vhost *.example.org ');
    assert.equal((await get(served.port, '/', { host: 'shop.example.net' })).body, 'vhost *.example.org shop');
    assert.match((await get(served.port, '/', { host: 'nobody.test' })).body, /^hello nobody\.test\//);
    assert.equal((await get(served.port, '/', { host: 'dup.test' })).body, 'never');
  });

  it('logs a conflicting server name as nginx warns', () => {
    assert.match(readFileSync(errorLogPath, 'utf8'), /\[warn\] \d+#0: conflicting server name "localhost" on 127\.0\.0\.1:8080, ignored/);
  });

  it('applies add_header only to 2xx/3xx unless always, and its own level replaces the inherited ones', async () => {
    const ok = await get(served.port, '/hdr/x');
    assert.equal(ok.headers['x-own'], '/hdr/x');
    assert.equal(ok.headers['x-always'], 'always-200');
    assert.equal(ok.headers['x-everywhere'], undefined);
    const notFound = await get(served.port, '/hdr/404');
    assert.equal(notFound.headers['x-own'], undefined);
    assert.equal(notFound.headers['x-always'], 'always-404');
    assert.equal((await get(served.port, '/missing')).headers['x-everywhere'], undefined);
  });

  it('HEAD gets the headers without the body', async () => {
    const reply = await get(served.port, '/path', { method: 'HEAD' });
    assert.equal(reply.status, 200);
    assert.equal(reply.body, '');
    assert.equal(reply.headers['content-length'], String('hello localhost/path \n'.length));
  });

  it('keeps a connection alive for keepalive_requests requests, the last one says Connection: close', async () => {
    const client = await RawClient.connect(served.port);
    const first = await client.get('/a');
    const second = await client.get('/b');
    const third = await client.get('/c');
    assert.equal(first.headers.connection, 'keep-alive');
    assert.equal(second.headers.connection, 'keep-alive');
    assert.equal(third.headers.connection, 'close');
    await client.untilEnded();
    assert.equal(client.error, undefined);
    client.destroy();
  });

  it('sends Keep-Alive: timeout=N with a header_timeout, and closes with keepalive_timeout 0', async () => {
    const client = await RawClient.connect(served.port);
    const kh = await client.get('/kh/');
    assert.equal(kh.headers['keep-alive'], 'timeout=25');
    const nokeep = await client.get('/nokeep/');
    assert.equal(nokeep.headers.connection, 'close');
    await client.untilEnded();
    client.destroy();
  });

  it('closes an idle keep-alive connection when its keepalive_timeout expires', async () => {
    const client = await RawClient.connect(served.port);
    assert.equal((await client.get('/short/')).headers.connection, 'keep-alive');
    await client.untilEnded();
    assert.equal(client.error, undefined);
    client.destroy();
  });

  it('answers a HTTP/1.1 request without Host with 400 and logs it in nginx words', async () => {
    const client = await RawClient.connect(served.port);
    client.send('GET / HTTP/1.1\r\n\r\n');
    const reply = await client.read();
    assert.equal(reply.status, 400);
    assert.equal(reply.headers.connection, 'close');
    await client.untilEnded();
    client.destroy();
    assert.match(readFileSync(errorLogPath, 'utf8'), /\[info\] \d+#0: \*\d+ client sent HTTP\/1\.1 request without "Host" header, client: 127\.0\.0\.1, server: localhost, request: "GET \/ HTTP\/1\.1"/);
  });

  it('answers an invalid Host or a URI above the root with 400', async () => {
    assert.equal((await get(served.port, '/', { host: 'a..b' })).status, 400);
    const client = await RawClient.connect(served.port);
    client.send('GET /../etc/passwd HTTP/1.1\r\nHost: localhost\r\n\r\n');
    assert.equal((await client.read()).status, 400);
    client.destroy();
  });

  it('return 444 closes the connection without a response', async () => {
    const client = await RawClient.connect(served.port);
    client.send('GET /close HTTP/1.1\r\nHost: localhost\r\n\r\n');
    await client.closed;
    assert.equal(client.ended || client.error !== undefined, true);
  });

  it('writes access log lines in the configured format, counting requests per connection', async () => {
    const client = await RawClient.connect(served.port);
    await client.get('/log-1', 'localhost', 'User-Agent: t"est\r\n');
    await client.get('/log-2', 'localhost');
    client.destroy();
    const lines = accessLog();
    const first = lines.find((line) => line.includes('/log-1'));
    const second = lines.find((line) => line.includes('/log-2'));
    assert.equal(first, '127.0.0.1 "GET /log-1 HTTP/1.1" 200 23 1 "t\\x22est" localhost localhost');
    assert.equal(second, '127.0.0.1 "GET /log-2 HTTP/1.1" 200 23 2 "-" localhost localhost');
    assert.ok(lines.some((line) => line.includes('"GET /close HTTP/1.1" 444 0')));
  });

  it('honours access_log off and per-location formats with escape=json', async () => {
    await get(served.port, '/nolog/');
    await get(served.port, '/jslog/?q="x"', { headers: { 'user-agent': 'a\\b' } });
    assert.equal(accessLog().some((line) => line.includes('/nolog/')), false);
    assert.deepEqual(accessLog('json.log'), ['{"ua":"a\\\\b","args":"q=\\"x\\""}']);
  });

  it('reopens access logs after rotation', async () => {
    await get(served.port, '/before-rotation');
    served.runtime.flushLogs();
    renameSync(join(dir.path, 'logs/access.log'), join(dir.path, 'logs/access.log.1'));
    served.runtime.reopenLogs();
    await get(served.port, '/after-rotation');
    const fresh = accessLog();
    assert.equal(fresh.length, 1);
    assert.match(fresh[0] ?? '', /after-rotation/);
  });

  it("writes a location's error lines to its error_log, and reopens that file after rotation", async () => {
    const file = join(dir.path, 'logs/location-error.log');
    await get(served.port, '/elog/before');
    assert.match(readFileSync(file, 'utf8'), /\[error\] \d+#0: \*\d+ open\(\) "\/nonexistent-hitless-root\/elog\/before" failed \(2: No such file or directory\)/);
    renameSync(file, `${file}.1`);
    served.runtime.reopenLogs();
    await get(served.port, '/elog/after');
    const fresh = readFileSync(file, 'utf8').trim().split('\n');
    assert.equal(fresh.length, 1);
    assert.match(fresh[0] ?? '', /\/elog\/after/);
  });
});

describe('HttpRuntime: access log files', () => {
  it("refuses a log it cannot open, in nginx's words", () => {
    const dir = tempDir({ 'logs/blocked': 'a file where a directory should be' });
    try {
      assert.throws(() => new HttpRuntime(load('http { access_log logs/blocked/access.log; server { } }', dir.path), { log: new ErrorLog([]) }), (err: unknown) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^open\(\) ".*\/logs\/blocked\/access\.log" failed \(\d+: /);
        return true;
      });
    } finally {
      dir.remove();
    }
  });
});

describe('HttpRuntime: sockets', () => {
  let dir: TempDir;
  let served: Served;

  before(async () => {
    dir = tempDir();
    served = await serve(
      `http { access_log off;
        server { listen 127.0.0.1:8080; return 200 specific; }
        server { listen 8080; return 200 wildcard; } }`,
      dir.path,
    );
  });

  after(async () => {
    await served.stop();
    dir.remove();
  });

  it('serves an address without bind from the wildcard socket, choosing by local address', async () => {
    assert.deepEqual([...served.ports.keys()], ['*:8080']);
    assert.equal((await get(served.port, '/')).body, 'specific');
    const other = createServer();
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.2', resolve));
    try {
      served.runtime.attach('*:8080', other);
      const address = other.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      const client = await RawClient.connect(port, '127.0.0.2');
      assert.equal((await client.get('/')).body, 'wildcard');
      client.destroy();
    } finally {
      other.close();
    }
  });

  it('refuses a key the configuration does not have', () => {
    assert.throws(() => served.runtime.attach('127.0.0.1:9', createServer()), /No listening socket "127\.0\.0\.1:9"/);
  });
});
