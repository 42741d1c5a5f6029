/**
 * Logging side by side with Debian's nginx, compared as file contents (error lines without their
 * time, pid and connection number, and with each server's prefix written PREFIX): an access_log
 * path with variables writing one file per host through open_log_file_cache, one whose root does
 * not exist (nothing written, the root's test logged) and one whose directory does not exist
 * (never created, open() logged at [crit] to the location's error_log); a gzip log read back; and an error_log in a location
 * receiving the 404 line that the main error log does not; in stream, a server's error_log and the
 * stream block's taking their sessions' lines.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { freePort } from '../deploy/helpers/nginx.js';
import { fetchRaw, startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;

/** Waits (at most 5 s, checking every 20 ms) until `ready` holds for the file's bytes; returns them. */
async function fileWhen(path: string, ready: (data: Buffer) => boolean): Promise<Buffer> {
  for (let i = 0; i < 250; i++) {
    if (existsSync(path)) {
      const data = readFileSync(path);
      if (ready(data)) return data;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return assert.fail(`${path} did not reach the expected content within 5 s`);
}

/** An error log's lines that contain `text`, without time, pid and connection number, and with the prefix as PREFIX. */
function errorLines(data: Buffer, prefix: string, text: string): string[] {
  return data
    .toString('latin1')
    .split('\n')
    .filter((line) => line.includes(text))
    .map((line) => line.replace(/^\d{4}\/\d\d\/\d\d \d\d:\d\d:\d\d (\[\w+\]) \d+#\d+: (\*\d+ )?/, '$1 ').split(prefix).join('PREFIX/'));
}

describe('access_log and error_log: hitless and nginx side by side', () => {
  let pair: NginxPair;
  const prefixOf = (name: (typeof SERVERS)[number]): string => `${join(pair.dir, name)}/`;
  const logOf = (name: (typeof SERVERS)[number], file: string): string => join(pair.dir, name, 'logs', file);
  const get = (name: (typeof SERVERS)[number], path: string, host: string): Promise<unknown> => fetchRaw(pair.ports[name], path, { host });
  /** Waits until both servers' `file` in logs/ has a line with `text`; asserts their such lines are equal; returns them. */
  const sameErrorLines = async (file: string, text: string): Promise<string[]> => {
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => fileWhen(logOf(name, file), (data) => data.includes(text))));
    assert.ok(ours !== undefined && theirs !== undefined);
    const lines = errorLines(ours, prefixOf('hitless'), text);
    assert.deepEqual(lines, errorLines(theirs, prefixOf('nginx'), text));
    return lines;
  };

  before(async () => {
    pair = await startPair(
      (port, dir) => `events {}
http {
    log_format t '$host $request_method $uri $status';
    access_log off;
    open_log_file_cache max=2 inactive=30s;
    server {
        listen 127.0.0.1:${port};
        server_name a.test b.test c.test;
        root ${dir}/html;
        location /per-host { access_log logs/host-$host.log t; return 200 "ok\\n"; }
        location /closing { access_log logs/closing.log t; return 200 "ok\\n"; }
        location /gz { access_log logs/gz.log t gzip=6 buffer=64; return 200 "ok\\n"; }
        location /missing { error_log logs/missing.log info; }
        location /noroot { root ${dir}/absent; access_log logs/noroot-$host.log t; return 200 "ok\\n"; }
        location /nodir { error_log logs/nodir.log; access_log logs/absent/$host.log t; return 200 "ok\\n"; }
    }
}
`,
      (dir) => {
        mkdirSync(join(dir, 'html'));
        writeFileSync(join(dir, 'html', 'index.html'), 'index\n');
      },
    );
    // nginx's workers run as nobody and open the logs with variables themselves.
    for (const name of SERVERS) chmodSync(join(pair.dir, name, 'logs'), 0o777);
  });

  after(async () => {
    await pair?.stop();
  });

  it('has written the line when the client sees the connection close, as nginx logs before it closes', async () => {
    for (const name of SERVERS) {
      for (let i = 1; i <= 20; i++) {
        const socket = createConnection(pair.ports[name], '127.0.0.1');
        socket.on('data', () => undefined);
        // nginx closes lingering when the client's FIN came with the request (shutdown(2) first, the log
        // after), so it is asked without one; hitless is asked with one, where a late line shows most.
        const request = `GET /closing/${i} HTTP/1.0\r\nHost: a.test\r\n\r\n`;
        if (name === 'hitless') socket.end(request);
        else socket.write(request);
        await once(socket, 'close');
        // Read at once: no turn of hitless's event loop can be waited for from here.
        const lines = readFileSync(logOf(name, 'closing.log'), 'latin1').trim().split('\n');
        assert.equal(lines[lines.length - 1], `a.test GET /closing/${i} 200`, `${name}, request ${i}`);
      }
    }
  });

  it('writes one file per host from a path with variables, through an LRU of 2 descriptors for 3 hosts', async () => {
    for (const name of SERVERS) {
      for (const host of ['a.test', 'b.test', 'c.test', 'a.test', 'b.test']) await get(name, `/per-host/${host}`, host);
    }
    const expected: Record<string, string> = {
      'a.test': 'a.test GET /per-host/a.test 200\na.test GET /per-host/a.test 200\n',
      'b.test': 'b.test GET /per-host/b.test 200\nb.test GET /per-host/b.test 200\n',
      'c.test': 'c.test GET /per-host/c.test 200\n',
    };
    for (const [host, lines] of Object.entries(expected)) {
      const [ours, theirs] = await Promise.all(SERVERS.map((name) => fileWhen(logOf(name, `host-${host}.log`), (data) => data.length >= lines.length)));
      assert.equal(ours?.toString('latin1'), theirs?.toString('latin1'), host);
      assert.equal(ours?.toString('latin1'), lines, host);
    }
  });

  it('writes nothing while the root does not exist, and logs the root test as nginx does', async () => {
    for (const name of SERVERS) await get(name, '/noroot/x', 'a.test');
    const lines = await sameErrorLines('error.log', 'existence failed');
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /^\[error\] testing ".*\/absent" existence failed \(2: No such file or directory\) while logging request/);
    for (const name of SERVERS) assert.equal(existsSync(logOf(name, 'noroot-a.test.log')), false, name);
  });

  it("never creates the directory of a path with variables, and logs the failed open() at [crit] to the location's error_log", async () => {
    for (const name of SERVERS) await get(name, '/nodir/x', 'b.test');
    const lines = await sameErrorLines('nodir.log', '/absent/b.test.log');
    for (const name of SERVERS) assert.equal(readFileSync(logOf(name, 'error.log'), 'latin1').includes('/absent/b.test.log'), false, name);
    assert.match(lines[0] ?? '', /^\[crit\] open\(\) "PREFIX\/logs\/absent\/b\.test\.log" failed \(2: No such file or directory\) while logging request/);
    for (const name of SERVERS) assert.equal(existsSync(join(pair.dir, name, 'logs', 'absent')), false, name);
  });

  it('writes each flushed buffer of a gzip log as a gzip member that gunzip reads back', async () => {
    // Each line is 21 bytes and the buffer 64: the fourth line flushes the first three, the seventh the next three.
    for (const name of SERVERS) for (let i = 1; i <= 7; i++) await get(name, `/gz/${i}`, 'a.test');
    const expected = [1, 2, 3, 4, 5, 6].map((i) => `a.test GET /gz/${i} 200\n`).join('');
    const [ours, theirs] = await Promise.all(SERVERS.map((name) => fileWhen(logOf(name, 'gz.log'), (data) => data.length > 0 && gunzipSync(data).length >= expected.length)));
    assert.ok(ours !== undefined && theirs !== undefined);
    assert.equal(gunzipSync(ours).toString('latin1'), gunzipSync(theirs).toString('latin1'));
    assert.equal(gunzipSync(ours).toString('latin1'), expected);
    // Two members, each with its own gzip header.
    assert.equal(ours.toString('latin1').split('\x1f\x8b\x08').length - 1, 2);
  });

  it("sends a location's 404 line to its own error_log, not to the main one", async () => {
    for (const name of SERVERS) await get(name, '/missing/x', 'c.test');
    const text = '/missing/x';
    const lines = await sameErrorLines('missing.log', text);
    assert.equal(lines.length, 1);
    assert.match(lines[0] ?? '', /^\[error\] open\(\) ".*\/html\/missing\/x" failed \(2: No such file or directory\), client: 127\.0\.0\.1, server: a\.test, request: "GET \/missing\/x HTTP\/1\.1", host: "c\.test"$/);
    for (const name of SERVERS) assert.equal(readFileSync(logOf(name, 'error.log'), 'latin1').includes(text), false, name);
  });
});

describe('error_log in stream blocks: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let closed = 0;
  const logOf = (name: (typeof SERVERS)[number], file: string): string => join(pair.dir, name, 'logs', file);

  before(async () => {
    // Nothing listens here: the session's connect() fails.
    closed = await freePort();
    pair = await startPair(
      (port, _dir, extra) => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {}
stream {
    error_log logs/stream.log info;
    server { listen 127.0.0.1:${port}; error_log logs/server.log info; proxy_pass 127.0.0.1:${closed}; }
    server { listen 127.0.0.1:${extra[0] ?? 0}; proxy_pass 127.0.0.1:${closed}; }
}
`,
      undefined,
      1,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  /** Connects, and resolves once the server closed the connection (at most 10 s). */
  const session = (port: number): Promise<void> =>
    new Promise((resolve, reject) => {
      const socket = createConnection({ host: '127.0.0.1', port });
      socket.setTimeout(10_000, () => socket.destroy(new Error(`no close from port ${port} within 10 s`)));
      socket.on('error', reject);
      socket.on('close', () => resolve());
      socket.resume();
    });

  it("sends a server's session lines to its own error_log, and a server without one to the stream block's", async () => {
    const text = 'connect() failed';
    for (const name of SERVERS) {
      await session(pair.ports[name]);
      await session(pair.extra[name][0] ?? 0);
    }
    // The ports differ; so does the tail: hitless does not yet add nginx's "bytes from/to" counts to stream lines.
    const normalize = (name: (typeof SERVERS)[number], data: Buffer): string[] =>
      errorLines(data, `${join(pair.dir, name)}/`, text).map((line) =>
        line.split(`:${pair.ports[name]}`).join(':PORT').split(`:${pair.extra[name][0] ?? 0}`).join(':PORT').replace(/, bytes from\/to client:\d+\/\d+, bytes from\/to upstream:\d+\/\d+$/, ''));
    for (const file of ['server.log', 'stream.log']) {
      const [ours, theirs] = await Promise.all(SERVERS.map((name) => fileWhen(logOf(name, file), (data) => data.includes(text))));
      assert.ok(ours !== undefined && theirs !== undefined);
      assert.deepEqual(normalize('hitless', ours), normalize('nginx', theirs), file);
      assert.ok(normalize('hitless', ours).length > 0, file);
    }
    for (const name of SERVERS) assert.equal(readFileSync(logOf(name, 'error.log'), 'latin1').includes(text), false, name);
  });
});
