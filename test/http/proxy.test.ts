import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, get, RawClient, serve, type Served } from './helpers.js';
import { closedPort, httpUpstream, rawUpstream, type Upstream } from './proxy-upstreams.js';
import { VERSION } from '../../src/core/version.js';

describe('proxy_pass', () => {
  let dir = '';
  let app: Upstream;
  let busy: Upstream;
  let dead = 0;
  let served: Served;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-'));
    app = await httpUpstream((req, res, body) => {
      if (req.url === '/chunked') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.write('part one, ');
        setTimeout(() => res.end('part two'), 5);
        return;
      }
      if (req.url?.startsWith('/rules/')) {
        // The same Location for each rule set; a Refresh whose URL follows "url=".
        res.writeHead(302, { location: `http://127.0.0.1:${app.port}/rules/next?a=1`, refresh: `5; url=http://127.0.0.1:${app.port}/rules/r`, 'content-length': '0' });
        res.end();
        return;
      }
      if (req.url?.startsWith('/redirect')) {
        res.writeHead(302, { location: `http://127.0.0.1:${app.port}/app/next`, 'content-length': '0' });
        res.end();
        return;
      }
      if (req.url === '/status/503') {
        res.writeHead(503, { 'content-length': '4' });
        res.end('busy');
        return;
      }
      const json = JSON.stringify({ method: req.method, url: req.url, body });
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(json), server: 'upstream/1.0', 'x-accel-buffering': 'no', 'x-secret': 's', 'x-kept': 'k', connection: 'keep-alive' });
      res.end(json);
    });
    busy = await httpUpstream((_req, res) => {
      res.writeHead(503, { 'content-length': '4' });
      res.end('busy');
    });
    dead = await closedPort();
    served = await serve(
      `http {
        log_format up '$request $status $upstream_addr $upstream_status';
        access_log ${dir}/access.log up;
        upstream app { server 127.0.0.1:${app.port}; keepalive 8; }
        upstream failover { server 127.0.0.1:${dead}; server 127.0.0.1:${app.port}; }
        upstream none { server 127.0.0.1:${dead}; }
        upstream flaky { server 127.0.0.1:${busy.port}; server 127.0.0.1:${app.port}; }
        upstream flaky2 { server 127.0.0.1:${busy.port}; server 127.0.0.1:${app.port}; }
        server {
          listen 127.0.0.1:8080;
          server_name localhost;
          location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Real-IP $remote_addr;
            proxy_set_header X-Drop "";
            proxy_hide_header X-Secret;
          }
          location /app/ { proxy_pass http://127.0.0.1:${app.port}/; }
          location /host/ { proxy_pass http://app/; proxy_set_header Host $host; proxy_pass_header Server; }
          location /small/ { proxy_pass http://app/; client_max_body_size 10; }
          location /failover/ { proxy_pass http://failover/; }
          location /none/ { proxy_pass http://none/; }
          location /retry503/ { proxy_pass http://flaky/; proxy_next_upstream error http_503; }
          location /pass503/ { proxy_pass http://flaky2/; }
          location /rules/ { proxy_pass http://127.0.0.1:${app.port}; proxy_redirect ~^http://[^/]+(/rules/)(.*)$ $1x/$2; }
          location /rules/none/ { proxy_pass http://127.0.0.1:${app.port}; proxy_redirect http://elsewhere/ /; }
          location /lmt { proxy_pass http://127.0.0.1:${app.port}/replacement; limit_except POST { proxy_pass http://127.0.0.1:${app.port}; } }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
  });

  after(async () => {
    await served.stop();
    await app.stop();
    await busy.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes the request and the response, with nginx\'s default headers', async () => {
    const reply = await get(served.port, '/a/b?c=d', { headers: { 'x-forwarded-for': '10.0.0.9', 'x-drop': 'gone' } });
    assert.equal(reply.status, 200);
    assert.deepEqual(JSON.parse(reply.body), { method: 'GET', url: '/a/b?c=d', body: '' });
    const seen = app.requests.at(-1);
    assert.equal(seen?.headers.host, 'app');
    assert.equal(seen?.headers['x-forwarded-for'], '10.0.0.9, 127.0.0.1');
    assert.equal(seen?.headers['x-real-ip'], '127.0.0.1');
    assert.equal(seen?.headers['x-drop'], undefined, 'an empty proxy_set_header removes the header');
    assert.equal(reply.headers.server, `hitless/${VERSION}`);
    assert.equal(reply.headers['x-accel-buffering'], undefined);
    assert.equal(reply.headers['x-secret'], undefined);
    assert.equal(reply.headers['x-kept'], 'k');
  });

  it('removes hop-by-hop headers, and those the client\'s Connection names', async () => {
    const client = await RawClient.connect(served.port);
    await client.get('/', 'localhost', 'Connection: keep-alive, X-Hop-Private\r\nX-Hop-Private: 1\r\nKeep-Alive: timeout=5\r\nTE: trailers\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\n');
    client.destroy();
    const headers = app.requests.at(-1)?.headers ?? {};
    for (const name of ['x-hop-private', 'keep-alive', 'te', 'upgrade', 'proxy-connection']) assert.equal(headers[name], undefined, name);
  });

  it('keeps upstream connections alive and reuses them', async () => {
    const before = app.connections;
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 5; i++) assert.equal((await get(served.port, `/k${i}`, { agent })).status, 200);
    agent.destroy();
    assert.ok(app.connections - before <= 1, `opened ${app.connections - before} upstream connections for 5 requests`);
  });

  it('replaces the location prefix with the URI part of proxy_pass', async () => {
    const reply = await get(served.port, '/app/x%20y?q=1');
    assert.equal(JSON.parse(reply.body).url, '/x%20y?q=1');
  });

  it('sets Host from proxy_set_header and passes a hidden header when asked', async () => {
    const reply = await get(served.port, '/host/z', { host: 'example.test' });
    assert.equal(app.requests.at(-1)?.headers.host, 'example.test');
    // HTTP/1.0 with Connection: close upstream: never reused, even though this upstream claims keep-alive.
    const before = app.connections;
    await get(served.port, '/host/again');
    assert.equal(app.connections - before, 1);
    assert.equal(reply.headers.server, 'upstream/1.0');
  });

  it('proxies a method limit_except restricts to the block\'s own proxy_pass (proxy_if.t)', async () => {
    assert.equal(JSON.parse((await get(served.port, '/lmt')).body).url, '/lmt');
    assert.equal(JSON.parse((await get(served.port, '/lmt', { method: 'POST' })).body).url, '/replacement');
  });

  it('rewrites Location with proxy_redirect default', async () => {
    const reply = await get(served.port, '/app/redirect');
    assert.equal(reply.status, 302);
    // The rewritten Location is the response's location, made absolute by absolute_redirect.
    assert.equal(reply.headers.location, `http://localhost:${served.port}/app/app/next`);
  });

  it('replaces the whole value with a regex rule, rewrites a Refresh after url=, and leaves a Location no rule matches as it came', async () => {
    const reply = await get(served.port, '/rules/a');
    assert.equal(reply.headers.location, `http://localhost:${served.port}/rules/x/next?a=1`);
    assert.equal(reply.headers.refresh, '5; url=/rules/x/r');
    const untouched = await get(served.port, '/rules/none/a');
    assert.equal(untouched.headers.location, `http://127.0.0.1:${app.port}/rules/next?a=1`);
    assert.equal(untouched.headers.refresh, `5; url=http://127.0.0.1:${app.port}/rules/r`);
  });

  it('passes a chunked response through, and unchunks it for an HTTP/1.0 client', async () => {
    const reply = await get(served.port, '/chunked');
    assert.equal(reply.body, 'part one, part two', JSON.stringify(reply));
    const client = await RawClient.connect(served.port);
    client.send('GET /chunked HTTP/1.0\r\nHost: localhost\r\n\r\n');
    await client.untilEnded();
    client.destroy();
  });

  it('reads the whole request body before the upstream sees the request', async () => {
    const client = await RawClient.connect(served.port);
    const count = app.requests.length;
    client.send('POST /slow-body HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello');
    await new Promise((resolve) => setTimeout(resolve, 100));
    assert.equal(app.requests.length, count, 'the upstream saw nothing of a half-sent body');
    client.send('world');
    const reply = await client.read();
    assert.deepEqual(JSON.parse(reply.body), { method: 'POST', url: '/slow-body', body: 'helloworld' });
    assert.equal(app.requests.at(-1)?.headers['content-length'], '10');
    client.destroy();
  });

  it('de-chunks a chunked request body and sends it with Content-Length', async () => {
    const client = await RawClient.connect(served.port);
    client.send('POST /c HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n');
    const reply = await client.read();
    assert.equal(JSON.parse(reply.body).body, 'abcde');
    assert.equal(app.requests.at(-1)?.headers['content-length'], '5');
    assert.equal(app.requests.at(-1)?.headers['transfer-encoding'], undefined);
    client.destroy();
  });

  it('answers 413 to a body over client_max_body_size, without bothering the upstream', async () => {
    const count = app.requests.length;
    const client = await RawClient.connect(served.port);
    client.send('POST /small/ HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\nhello world');
    const reply = await client.read();
    assert.equal(reply.status, 413);
    assert.equal(app.requests.length, count);
    client.destroy();
  });

  it('tries the next peer when one refuses connections', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/failover/f')).status, 200);
  });

  it('answers 502 when no peer is up, and logs it in nginx\'s words', async () => {
    const reply = await get(served.port, '/none/');
    assert.equal(reply.status, 502);
    assert.match(reply.body, /502 Bad Gateway/);
    const log = readFileSync(join(dir, 'error.log'), 'utf8');
    assert.match(log, /\[error\] \d+#0: \*\d+ connect\(\) failed \(111: Connection refused\) while connecting to upstream, client: 127\.0\.0\.1, server: localhost, request: "GET \/none\/ HTTP\/1\.1", upstream: "http:\/\/127\.0\.0\.1:\d+\/", host: "localhost"/);
  });

  it('moves on after a 503 only when proxy_next_upstream says http_503', async () => {
    for (let i = 0; i < 4; i++) assert.equal((await get(served.port, '/retry503/x')).status, 200);
    const statuses = [];
    for (let i = 0; i < 4; i++) statuses.push((await get(served.port, '/pass503/x')).status);
    assert.deepEqual(statuses.sort(), [200, 200, 503, 503]);
  });

  it('logs $upstream_addr and $upstream_status', async () => {
    await get(served.port, '/logged');
    served.runtime.flushLogs();
    const lines = readFileSync(join(dir, 'access.log'), 'utf8').trim().split('\n');
    assert.ok(lines.includes(`GET /logged HTTP/1.1 200 127.0.0.1:${app.port} 200`), lines.slice(-3).join('\n'));
  });

  it('refuses request smuggling before anything reaches the upstream', async () => {
    const count = app.requests.length;
    for (const attack of [
      'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: localhost\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
      'POST / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
    ]) {
      const client = await RawClient.connect(served.port);
      client.send(attack);
      const reply = await client.read();
      assert.ok(reply.status === 400 || reply.status === 501, String(reply.status));
      await client.untilEnded();
      client.destroy();
    }
    assert.equal(app.requests.length, count);
    assert.equal(app.requests.some((r) => r.url === '/smuggled'), false);
  });
});

describe('proxy_pass: failures nginx handles quietly', () => {
  let dir = '';
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('retries an idempotent request on a fresh connection when a pooled one was closed by the upstream', async () => {
    // This upstream answers one request per connection, says keep-alive, then closes: the race nginx users see as 502s.
    const upstream = await rawUpstream((socket) => {
      socket.once('data', () => {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok');
        setTimeout(() => socket.destroy(), 20);
      });
    });
    const served = await serve(`http { upstream u { server 127.0.0.1:${upstream.port}; keepalive 4; } server { listen 127.0.0.1:8080; location / { proxy_pass http://u; proxy_http_version 1.1; proxy_set_header Connection ""; } } }`, dir);
    try {
      for (let i = 0; i < 5; i++) {
        assert.equal((await get(served.port, `/r${i}`)).status, 200);
        await new Promise((resolve) => setTimeout(resolve, 10)); // sometimes inside the close race, sometimes after it
      }
      // Now force the race: the pooled connection is closed without FIN arriving first.
      assert.equal((await get(served.port, '/last')).status, 200);
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });

  it('streams the body as it arrives with proxy_request_buffering off', async () => {
    let received = '';
    let headSeen: () => void = () => undefined;
    const head = new Promise<void>((resolve) => (headSeen = resolve));
    const upstream = await rawUpstream((socket) => {
      socket.on('data', (data: Buffer) => {
        received += data.toString('latin1');
        if (received.includes('\r\n\r\n')) headSeen();
        if (received.endsWith('helloworld')) socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      });
    });
    const served = await serve(`http { server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:${upstream.port}; proxy_request_buffering off; } } }`, dir);
    try {
      const client = await RawClient.connect(served.port);
      client.send('POST /s HTTP/1.1\r\nHost: localhost\r\nContent-Length: 10\r\n\r\nhello');
      await head; // the upstream has the request before the client has sent all of its body
      assert.doesNotMatch(received, /world/);
      client.send('world');
      assert.equal((await client.read()).body, 'ok');
      assert.match(received, /^POST \/s HTTP\/1\.0\r\n[^]*Content-Length: 10\r\n\r\nhelloworld$/);
      client.destroy();
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });

  it('answers 504 when the upstream is silent past proxy_read_timeout', async () => {
    const upstream = await rawUpstream(() => undefined);
    const served = await serve(`http { server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:${upstream.port}; proxy_read_timeout 100ms; } } }`, dir);
    try {
      assert.equal((await get(served.port, '/')).status, 504);
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });

  it('aborts the upstream request when the client goes away', async () => {
    let closed = false;
    const upstream = await rawUpstream((socket) => {
      socket.resume(); // read, so the upstream's side sees our FIN
      socket.on('close', () => (closed = true));
    });
    const served = await serve(`http { server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:${upstream.port}; } } }`, dir);
    try {
      const client = await RawClient.connect(served.port);
      client.send('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
      while (upstream.connections === 0) await new Promise((resolve) => setTimeout(resolve, 5));
      client.destroy();
      for (let i = 0; i < 100 && !closed; i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.equal(closed, true);
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });

  it('tunnels a WebSocket upgrade in both directions', async () => {
    const upstream = await rawUpstream((socket) => {
      socket.once('data', (head) => {
        assert.match(head.toString(), /^GET \/ws HTTP\/1\.1\r\n/);
        assert.match(head.toString(), /\r\nUpgrade: websocket\r\n/i);
        socket.write('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\nhello from upstream|');
        socket.on('data', (data) => socket.write(`echo:${data.toString()}`));
      });
    });
    const served = await serve(
      `http { server { listen 127.0.0.1:8080; location /ws { proxy_pass http://127.0.0.1:${upstream.port}; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "upgrade"; } } }`,
      dir,
    );
    try {
      const client = await RawClient.connect(served.port);
      let text = '';
      client.socket.on('data', (d: string) => (text += d));
      client.send('GET /ws HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n');
      for (let i = 0; i < 100 && !text.includes('hello from upstream|'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/);
      assert.match(text, /\r\nUpgrade: websocket\r\n/);
      client.send('ping');
      for (let i = 0; i < 100 && !text.includes('echo:ping'); i++) await new Promise((resolve) => setTimeout(resolve, 10));
      assert.ok(text.endsWith('hello from upstream|echo:ping'), JSON.stringify(text));
      client.destroy();
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });
  it('does not tunnel a 101 to a request that asked for no upgrade (nginx upgrades only on the Upgrade request header)', async () => {
    const upstream = await rawUpstream((socket) => {
      socket.once('data', () => socket.write('HTTP/1.1 101 Switching\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\nhandshaked\r\n'));
      socket.on('data', () => undefined);
    });
    const served = await serve(
      `http { server { listen 127.0.0.1:8080; location / { proxy_pass http://127.0.0.1:${upstream.port}; proxy_http_version 1.1; proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection "Upgrade"; proxy_read_timeout 1s; } } }`,
      dir,
    );
    try {
      const client = await RawClient.connect(served.port);
      let text = '';
      client.socket.on('data', (d: string) => (text += d));
      const closed = new Promise<void>((resolve) => client.socket.once('close', () => resolve()));
      client.send('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\n\r\n');
      // The upstream never closes: the request ends at proxy_read_timeout, a tunnel never would.
      await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 10_000))]);
      assert.equal(client.socket.destroyed || client.socket.readableEnded, true, `the connection was closed: ${JSON.stringify(text)}`);
      assert.match(text, /^HTTP\/1\.1 101 /);
      assert.doesNotMatch(text, /\r\n\r\nhandshaked/);
      client.destroy();
    } finally {
      await served.stop();
      await upstream.stop();
    }
  });
});

describe('proxy_next_upstream and non-idempotent methods (nginx retries them only when nothing was sent)', () => {
  let dir = '';
  let app: Upstream;
  let resetter: Upstream;
  let dead = 0;
  let served: Served;

  const post = async (path: string): Promise<number> => {
    const client = await RawClient.connect(served.port);
    try {
      client.send(`POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 4\r\n\r\nbody`);
      return (await client.read()).status;
    } finally {
      client.destroy();
    }
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-proxy-'));
    app = await httpUpstream((req, res, body) => res.end(`${req.method} ${body}`));
    // Reads the request, then resets the connection without a byte of response.
    resetter = await rawUpstream((socket) => socket.once('data', () => socket.resetAndDestroy()));
    dead = await closedPort();
    // One group per test: a fresh round robin starts with its first server.
    served = await serve(
      `http {
        access_log off;
        upstream refused { server 127.0.0.1:${dead}; server 127.0.0.1:${app.port}; }
        upstream reset { server 127.0.0.1:${resetter.port}; server 127.0.0.1:${app.port}; }
        upstream reset2 { server 127.0.0.1:${resetter.port}; server 127.0.0.1:${app.port}; }
        upstream reset3 { server 127.0.0.1:${resetter.port}; server 127.0.0.1:${app.port}; }
        server {
          listen 127.0.0.1:8080;
          location /refused/ { proxy_pass http://refused; }
          location /reset/ { proxy_pass http://reset; }
          location /reset-get/ { proxy_pass http://reset3; }
          location /reset-ni/ { proxy_pass http://reset2; proxy_next_upstream error timeout non_idempotent; }
        }
      }`,
      dir,
    );
  });

  after(async () => {
    await served?.stop();
    await app?.stop();
    await resetter?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('passes a POST on to the next peer when the first refuses the connection', async () => {
    assert.equal(await post('/refused/p'), 200);
    assert.deepEqual(app.requests.map((r) => `${r.method} ${r.url} ${r.body}`), ['POST /refused/p body']);
  });

  it('answers 502 to a POST the first peer received and reset, without trying the next one', async () => {
    const before = app.requests.length;
    assert.equal(await post('/reset/p'), 502);
    assert.equal(resetter.connections, 1);
    assert.equal(app.requests.length, before, 'the second peer never saw the POST');
  });

  it('passes that POST on with proxy_next_upstream ... non_idempotent, and a GET without it', async () => {
    assert.equal(await post('/reset-ni/p'), 200);
    assert.equal((await get(served.port, '/reset-get/g')).status, 200);
    assert.deepEqual(app.requests.slice(-2).map((r) => `${r.method} ${r.url}`), ['POST /reset-ni/p', 'GET /reset-get/g']);
    assert.equal(resetter.connections, 3);
  });
});

describe('proxy_pass: configuration errors in nginx\'s words', () => {
  it('refuses what nginx refuses', () => {
    assert.equal(errorOf('http { server { location / { proxy_pass ftp://x; } } }'), 'invalid URL prefix in "ftp://x" in /x.conf:1');
    assert.equal(errorOf('http { server { location / { proxy_pass http://no-such-host.invalid; } } }'), 'host not found in upstream "no-such-host.invalid" in /x.conf:1');
    assert.equal(errorOf('http { upstream b { server 127.0.0.1; } server { location / { proxy_pass http://b:8080; } } }'), 'upstream "b" may not have port 8080 in /x.conf:1');
    assert.equal(
      errorOf('http { server { location ~ ^/a { proxy_pass http://127.0.0.1/x; } } }'),
      '"proxy_pass" cannot have URI part in location given by regular expression, or inside named location, or inside "if" statement, or inside "limit_except" block in /x.conf:1',
    );
    assert.equal(errorOf('http { server { location / { proxy_http_version 2.0; } } }'), 'invalid value "2.0" in /x.conf:1');
    assert.equal(errorOf('http { server { location / { proxy_next_upstream error sometimes; } } }'), 'invalid value "sometimes" in /x.conf:1');
    assert.equal(errorOf('http { server { proxy_pass http://127.0.0.1; } }'), '"proxy_pass" directive is not allowed here in /x.conf:1');
    assert.equal(errorOf('http { upstream u { server 127.0.0.1; keepalive 0; } }'), 'invalid value "0" in "keepalive" directive in /x.conf:1');
  });
});
