/**
 * The proxy directives and upstream headers that nginx-tests found missing, side by side with
 * Debian's nginx through one node upstream: proxy_method (with variables), proxy_set_body,
 * X-Accel-Redirect (kept headers, named locations, unsafe URIs, proxy_ignore_headers),
 * proxy_cookie_domain/_path/_flags, proxy_bind (http and stream), proxy_limit_rate, a 401's
 * WWW-Authenticate with proxy_intercept_errors, Upgrade in a 426, a repeated Expires, and an
 * upstream connection not kept when the answer came before the streamed body was sent.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { fetchRaw, fieldsOf, startPair, type NginxPair, type RawAnswer } from './helpers/nginx-pair.js';

/** The node upstream both servers proxy to. */
function upstreamApp(): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://upstream');
    const parts: Buffer[] = [];
    req.on('data', (chunk: Buffer) => parts.push(chunk));
    req.on('end', () => {
      const body = Buffer.concat(parts).toString('latin1');
      switch (url.pathname) {
        case '/echo':
          res.setHeader('X-Seen-Addr', req.socket.remoteAddress ?? '');
          res.end(`method=${req.method ?? ''} body=${body} length=${req.headers['content-length'] ?? '-'}`);
          return;
        case '/xar':
          res.writeHead(200, [
            'X-Accel-Redirect', url.searchParams.get('to') ?? '',
            'Content-Type', 'text/blah',
            'Set-Cookie', 'blah=blah; Domain=www.example.com',
            'Content-Disposition', 'attachment',
            'Something', 'other',
          ]);
          res.end('upstream body');
          return;
        case '/cookie':
          res.setHeader('Set-Cookie', url.searchParams.getAll('c'));
          res.end('cookies');
          return;
        case '/auth':
          res.writeHead(401, [['WWW-Authenticate', 'foo'], ['WWW-Authenticate', 'bar']].flat());
          res.end('denied');
          return;
        case '/upgrade426':
          res.writeHead(426, ['Connection', 'Upgrade', 'Upgrade', 'websocket']);
          res.end('upgrade');
          return;
        case '/dup-expires':
          res.setHeader('Expires', ['foo', 'bar']);
          res.end('expires');
          return;
        case '/big':
          res.end('X'.repeat(60_000));
          return;
        default:
          res.statusCode = 404;
          res.end();
      }
    });
  });
}

/** A TCP upstream for the stream proxy: it writes back the address the connection came from. */
function addressEcho(): Server {
  return createServer((socket) => socket.end(`${socket.remoteAddress ?? ''}\n`));
}

function listen(server: Server | http.Server): Promise<number> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
}

/** What one line of a raw TCP exchange answers (at most 10 s). */
function readLine(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket: Socket = createConnection({ host: '127.0.0.1', port });
    let text = '';
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
    socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    socket.on('end', () => resolve(text.trim()));
    socket.on('error', reject);
  });
}

/** The fields a test compares: those it names, in order, with their values. */
function picked(answer: RawAnswer, names: readonly string[]): string[] {
  return names.flatMap((name) => fieldsOf(answer, name).map((value) => `${name}: ${value}`));
}

describe('proxy directives and upstream headers, as nginx has them', () => {
  let pair: NginxPair;
  const app = upstreamApp();
  const echo = addressEcho();

  before(async () => {
    const [appPort, echoPort] = [await listen(app), await listen(echo)];
    const u = `http://127.0.0.1:${appPort}`;
    pair = await startPair(
      (port, _dir, extra) => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {}
stream {
    server {
        listen 127.0.0.1:${extra[0] ?? 0};
        proxy_bind 127.0.0.2;
        proxy_pass 127.0.0.1:${echoPort};
    }
}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        location /method { proxy_pass ${u}/echo; proxy_method $arg_m; }
        location /setbody { proxy_pass ${u}/echo; proxy_set_body "fixed $arg_b"; }
        location /xar { proxy_pass ${u}/xar; }
        location /xar-ignored { proxy_pass ${u}/xar; proxy_ignore_headers X-Accel-Redirect; }
        location /target { return 200 "target uri=$uri args=$args method=$request_method"; }
        location @named { return 200 "named uri=$uri method=$request_method"; }
        location /cookie {
            proxy_pass ${u}/cookie;
            proxy_cookie_domain ~^(.+)\\.com$ $1.org;
            proxy_cookie_domain .example.net .$host;
            proxy_cookie_path /path/ /new/;
            proxy_cookie_flags a secure httponly samesite=strict;
            proxy_cookie_flags ~^b nosecure nosamesite;
        }
        location /bind { proxy_pass ${u}/echo; proxy_bind $arg_b; }
        location /bind-off { proxy_pass ${u}/echo; proxy_bind off; }
        location /auth { proxy_pass ${u}/auth; proxy_intercept_errors on; error_page 401 /intercepted; }
        location = /intercepted { return 200 "intercepted"; }
        location /upgrade { proxy_pass ${u}/upgrade426; }
        location /dup { proxy_pass ${u}/dup-expires; }
        location /slow { proxy_pass ${u}/big; proxy_limit_rate 20000; }
    }
}
`,
      () => undefined,
      1,
    );
  });

  after(async () => {
    app.close();
    app.closeAllConnections();
    echo.close();
    await pair?.stop();
  });

  /** The same request to both; nginx's answer, checked by `expect`, must be hitless's. */
  async function same(path: string, expect: (answer: RawAnswer) => void, options: { method?: string; headers?: Record<string, string>; fields?: readonly string[] } = {}): Promise<void> {
    const ask = (port: number): Promise<RawAnswer> => fetchRaw(port, path, options.headers ?? {}, options.method ?? 'GET');
    const expected = await ask(pair.ports.nginx);
    expect(expected);
    const actual = await ask(pair.ports.hitless);
    assert.equal(actual.status, expected.status, `status of ${path}`);
    // hitless signs its own pages (a deliberate difference): the signature is left out.
    const unsigned = (body: string): string => body.replace(/<center>(?:nginx|hitless)\/[0-9.]+<\/center>/, '<center>SERVER</center>');
    assert.equal(unsigned(actual.body), unsigned(expected.body), `body of ${path}`);
    const names = options.fields ?? [];
    assert.deepEqual(picked(actual, names), picked(expected, names), `fields of ${path}`);
  }

  it('proxy_method sends the method a variable names, and the request\'s own without one', async () => {
    await same('/method?m=PUT', (answer) => assert.match(answer.body, /^method=PUT /));
    // An empty value is an empty method (ngx_http_proxy_create_request() takes it as it is), which the upstream refuses.
    await same('/method', (answer) => assert.equal(answer.status, 400));
  });

  it('proxy_set_body replaces the client\'s body, with its own Content-Length', async () => {
    await same('/setbody?b=one', (answer) => assert.equal(answer.body, 'method=GET body=fixed one length=9'));
    await same('/setbody?b=two', (answer) => assert.equal(answer.body, 'method=POST body=fixed two length=9'), { method: 'POST' });
  });

  it('X-Accel-Redirect redirects internally as GET with the kept headers, to a named location as it is', async () => {
    const kept = ['content-type', 'set-cookie', 'content-disposition', 'something', 'x-accel-redirect'];
    await same('/xar?to=/target%3Fx%3D1', (answer) => {
      assert.equal(answer.body, 'target uri=/target args=x=1 method=GET');
      assert.deepEqual(fieldsOf(answer, 'content-type'), ['text/blah']);
      assert.deepEqual(fieldsOf(answer, 'something'), []);
    }, { fields: kept });
    await same('/xar?to=/target', (answer) => assert.match(answer.body, /method=GET$/), { method: 'POST', fields: kept });
    await same('/xar?to=/target%2520x', (answer) => assert.match(answer.body, /^target uri=\/target x /), { fields: kept });
    await same('/xar?to=@named', (answer) => assert.equal(answer.body, 'named uri=/xar method=POST'), { method: 'POST', fields: kept });
  });

  it('X-Accel-Redirect refuses an unsafe URI with 404, and proxy_ignore_headers turns it off', async () => {
    await same('/xar?to=/foo/..', (answer) => assert.equal(answer.status, 404));
    await same('/xar?to=/foo/.%252e', (answer) => assert.equal(answer.status, 404));
    await same('/xar-ignored?to=/target', (answer) => assert.equal(answer.body, 'upstream body'), { fields: ['x-accel-redirect', 'content-type'] });
  });

  it('proxy_cookie_domain, _path and _flags rewrite Set-Cookie as nginx does', async () => {
    const cases = [
      'a=1; Domain=www.example.COM; Path=/path/x',
      'a=2; Secure; SameSite=Lax;HttpOnly',
      'bee=3; Secure; samesite=none; Domain=.example.net',
      'c=4;path=/path/;  Domain = x.com ',
      'novalue',
    ];
    await same(`/cookie?${cases.map((c) => `c=${encodeURIComponent(c)}`).join('&')}`, (answer) => {
      assert.equal(fieldsOf(answer, 'set-cookie').length, cases.length);
      assert.equal(fieldsOf(answer, 'set-cookie')[0], 'a=1; Domain=www.example.org; Path=/new/x; Secure; HttpOnly; SameSite=Strict');
    }, { fields: ['set-cookie'] });
  });

  it('proxy_bind connects from the address it names, a variable\'s, or none', async () => {
    await same('/bind?b=127.0.0.2', (answer) => assert.deepEqual(fieldsOf(answer, 'x-seen-addr'), ['127.0.0.2']), { fields: ['x-seen-addr'] });
    await same('/bind', (answer) => assert.deepEqual(fieldsOf(answer, 'x-seen-addr'), ['127.0.0.1']), { fields: ['x-seen-addr'] });
    await same('/bind-off', (answer) => assert.deepEqual(fieldsOf(answer, 'x-seen-addr'), ['127.0.0.1']), { fields: ['x-seen-addr'] });
  });

  it('the stream proxy_bind connects from its address', async () => {
    assert.equal(await readLine(pair.extra.nginx[0] as number), '127.0.0.2', 'nginx itself');
    assert.equal(await readLine(pair.extra.hitless[0] as number), '127.0.0.2');
  });

  it('a 401 intercepted keeps its WWW-Authenticate fields, a 426 its Upgrade, and a repeated Expires is dropped (nginx 1.23 and later)', async () => {
    // nginx 1.22 keeps the first WWW-Authenticate only; 1.23.0 keeps them all (ticket #485,
    // proxy_intercept_errors.t "intercepted 401 multi"), as hitless does.
    const nginx = await fetchRaw(pair.ports.nginx, '/auth');
    assert.equal(nginx.status, 401);
    assert.equal(nginx.body, 'intercepted');
    assert.deepEqual(fieldsOf(nginx, 'www-authenticate'), ['foo'], 'nginx 1.22 itself');
    const hitless = await fetchRaw(pair.ports.hitless, '/auth');
    assert.equal(hitless.status, 401);
    assert.equal(hitless.body, 'intercepted');
    assert.deepEqual(fieldsOf(hitless, 'www-authenticate'), ['foo', 'bar']);
    await same('/upgrade', (answer) => assert.deepEqual(fieldsOf(answer, 'upgrade'), ['websocket']), { fields: ['upgrade'] });
    // A repeated Expires: nginx 1.22 passes both; since 1.23.0 the second is a [warn] and dropped
    // (proxy_duplicate_headers.t "duplicate expires ignored"), as in hitless.
    assert.deepEqual(fieldsOf(await fetchRaw(pair.ports.nginx, '/dup'), 'expires'), ['foo', 'bar'], 'nginx 1.22 itself');
    assert.deepEqual(fieldsOf(await fetchRaw(pair.ports.hitless, '/dup'), 'expires'), ['foo']);
  });

  it('proxy_limit_rate reads 60000 bytes at 20000 a second: all of them, over more than a second', async () => {
    for (const [name, port] of [['nginx', pair.ports.nginx], ['hitless', pair.ports.hitless]] as const) {
      const started = Date.now();
      const answer = await fetchRaw(port, '/slow');
      const elapsed = Date.now() - started;
      assert.equal(answer.body.length, 60_000, name);
      // Whole seconds count (ngx_event_pipe_read_upstream()): the third 20000 bytes wait for the
      // second after next, at least one whole second after the start.
      assert.ok(elapsed >= 1000, `${name} read it all in ${elapsed} ms`);
    }
  });
});
