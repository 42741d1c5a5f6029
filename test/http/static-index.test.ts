import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { h2connect, h2request } from './h2-client.js';
import { get, RawClient, serve, type Served } from './helpers.js';

describe('index, autoindex formats, error pages and redirects with files', () => {
  let dir: TempDir;
  let served: Served;

  before(async () => {
    dir = tempDir({
      'www/second/default.htm': 'second index',
      'www/abs/x': 'x',
      'www/home.html': 'absolute index',
      'www/404.html': 'custom 404 page',
      'www/list/a&b.txt': '12345678901',
      'www/list/z.txt': 'z',
      'www/list/big.txt': 'b'.repeat(20_000),
      'www/vary/en.html': 'english',
      'www/tf/here.txt': 'here',
      'www/named/sub/x': 'x',
      'www/deb/index.html': 'debian index',
      'www/deb/sub/index.html': 'debian sub',
    });
    const www = join(dir.path, 'www');
    served = await serve(
      `http {
        server {
          listen 127.0.0.1:8080;
          server_name primary.test;
          root ${www};
          index index.html default.htm;
          error_page 404 /404.html;
          location /abs/ { index missing.html /home.html; }
          location /xml/ { alias ${www}/list/; autoindex on; autoindex_format xml; }
          location /jsonp/ { alias ${www}/list/; autoindex on; autoindex_format jsonp; }
          location /rounded/ { alias ${www}/list/; autoindex on; autoindex_exact_size off; }
          location /vary/ { index $arg_lang.html; }
          location /named/ { server_name_in_redirect on; port_in_redirect off; }
          location /tf/ {
            try_files $uri =404;
            location /tf/inner/ { }
          }
          location /deb/ { try_files $uri $uri/ =404; }
          location /loop/ { try_files $uri /loop/again; }
          location /nodelay/ { tcp_nodelay off; }
        }
      }`,
      dir.path,
    );
  });

  after(async () => {
    await served?.stop();
    dir?.remove();
  });

  it('tries the index files in order', async () => {
    assert.equal((await get(served.port, '/second/')).body, 'second index');
  });

  it('redirects to an absolute last index without testing it', async () => {
    assert.equal((await get(served.port, '/abs/')).body, 'absolute index');
  });

  it('takes index names with variables', async () => {
    assert.equal((await get(served.port, '/vary/?lang=en')).body, 'english');
  });

  it('sends the error_page file with the status of the error', async () => {
    const reply = await get(served.port, '/nothing-here');
    assert.equal(reply.status, 404);
    assert.equal(reply.body, 'custom 404 page');
    assert.equal(reply.headers['accept-ranges'], undefined);
    const conditional = await get(served.port, '/nothing-here', { headers: { 'if-modified-since': new Date(Date.now() + 3_600_000).toUTCString() } });
    assert.equal(conditional.status, 404);
  });

  it('lists as XML and as JSONP with nginx\'s framing', async () => {
    const xml = await get(served.port, '/xml/');
    assert.equal(xml.headers['content-type'], 'text/xml; charset=utf-8');
    assert.match(xml.body, /^<\?xml version="1\.0"\?>\r\n<list>\r\n<file mtime="\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ" size="11">a&amp;b\.txt<\/file>\r\n/);
    const jsonp = await get(served.port, '/jsonp/?callback=cb');
    assert.equal(jsonp.headers['content-type'], 'application/javascript');
    assert.ok(jsonp.body.startsWith('/* callback */\r\ncb([\r\n{ "name":"a&b.txt", "type":"file", "mtime":"'), jsonp.body);
    assert.ok(jsonp.body.endsWith(' }\r\n]);'));
    assert.equal((await get(served.port, '/jsonp/?callback=a(b)')).status, 400);
    assert.equal((await get(served.port, '/jsonp/')).headers['content-type'], 'application/json');
  });

  it('rounds sizes with autoindex_exact_size off', async () => {
    const reply = await get(served.port, '/rounded/');
    assert.match(reply.body, /<a href="big\.txt">big\.txt<\/a> +\d\d-\w{3}-\d{4} \d\d:\d\d {5}20K\r\n/);
    assert.match(reply.body, /<a href="a%26b\.txt">a&amp;b\.txt<\/a> +\d\d-\w{3}-\d{4} \d\d:\d\d {6}11\r\n/);
  });

  it('redirects with the server name and without the port when asked', async () => {
    const named = await get(served.port, '/named/sub', { host: 'other.test' });
    assert.equal(named.status, 301);
    assert.equal(named.headers.location, 'http://primary.test/named/sub/');
    const plain = await get(served.port, '/list', { host: 'other.test' });
    assert.equal(plain.headers.location, `http://other.test:${served.port}/list/`);
  });

  it('try_files is not inherited by a nested location', async () => {
    assert.equal((await get(served.port, '/tf/here.txt')).body, 'here');
    assert.equal((await get(served.port, '/tf/gone')).body, 'custom 404 page');
  });

  it('try_files $uri $uri/ serves a directory\'s index, and redirects one without its slash (Debian\'s default site)', async () => {
    assert.equal((await get(served.port, '/deb/')).body, 'debian index');
    const bare = await get(served.port, '/deb/sub');
    assert.equal(bare.status, 301);
    assert.equal(bare.headers.location, `http://localhost:${served.port}/deb/sub/`);
    assert.equal((await get(served.port, '/deb/sub/')).body, 'debian sub');
  });

  it('stops an internal redirect loop with 500', async () => {
    assert.equal((await get(served.port, '/loop/x')).status, 500);
  });

  it('serves under tcp_nodelay off', async () => {
    assert.equal((await get(served.port, '/nodelay/')).status, 404);
  });
});

describe('a large file to a slow client', () => {
  let dir: TempDir;
  let served: Served;
  const size = 32 * 1024 * 1024;

  before(async () => {
    dir = tempDir();
    writeFileSync(join(dir.path, 'huge.bin'), Buffer.alloc(size, 7));
    served = await serve(`http { server { listen 127.0.0.1:8080; root ${dir.path}; } }`, dir.path);
  });

  after(async () => {
    await served?.stop();
    dir?.remove();
  });

  it('reads the file only as fast as the client takes it', async () => {
    const sockets: Socket[] = [];
    for (const server of served.servers) server.on('connection', (socket: Socket) => sockets.push(socket));
    const client = await RawClient.connect(served.port);
    try {
      client.socket.pause();
      client.send('GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n');
      // Wait, bounded, until the server stops queueing bytes for the paused client.
      let last = -1;
      let steady = 0;
      for (let i = 0; i < 400 && steady < 10; i++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        const queued = sockets.reduce((sum, socket) => sum + socket.bytesWritten, 0);
        steady = queued === last && queued > 0 ? steady + 1 : 0;
        last = queued;
      }
      assert.equal(steady, 10, 'the server kept writing');
      assert.ok(last < 8 * 1024 * 1024, `${last} bytes queued for a paused client`);
      let received = 0;
      client.socket.removeAllListeners('data');
      const done = new Promise<void>((resolve) => {
        client.socket.on('data', (chunk: Buffer | string) => {
          received += chunk.length;
          if (received >= size) resolve();
        });
      });
      client.socket.resume();
      await done;
      assert.ok(received >= size);
    } finally {
      client.destroy();
    }
  });
});

describe('static files over HTTP/2', () => {
  let dir: TempDir;
  let served: Served;
  const big = Buffer.alloc(300_000, 'q');

  before(async () => {
    dir = tempDir({ 'a.txt': 'hello h2' });
    writeFileSync(join(dir.path, 'big.bin'), big);
    served = await serve(`http { server { listen 127.0.0.1:8080 http2; root ${dir.path}; } }`, dir.path);
  });

  after(async () => {
    await served?.stop();
    dir?.remove();
  });

  it('serves a file, a large one with flow control, a range, a 304 and a HEAD', async () => {
    const session = await h2connect(served.port);
    try {
      const file = await h2request(session, '/a.txt');
      assert.equal(file.status, 200);
      assert.equal(file.body, 'hello h2');
      assert.equal(file.headers['accept-ranges'], 'bytes');
      const large = await h2request(session, '/big.bin');
      assert.equal(large.body.length, big.length);
      const range = await h2request(session, '/big.bin', { headers: { range: 'bytes=10-19' } });
      assert.equal(range.status, 206);
      assert.equal(range.headers['content-range'], `bytes 10-19/${big.length}`);
      const etag = String(file.headers.etag);
      assert.equal((await h2request(session, '/a.txt', { headers: { 'if-none-match': etag } })).status, 304);
      const head = await h2request(session, '/a.txt', { method: 'HEAD' });
      assert.equal(head.headers['content-length'], '8');
      assert.equal(head.body, '');
    } finally {
      session.close();
    }
  });
});
