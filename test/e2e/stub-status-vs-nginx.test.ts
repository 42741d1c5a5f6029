/**
 * `stub_status` and `$connections_*` side by side with Debian's nginx, both with two workers:
 * the page line for line (numbers normalized), its fields, GET/HEAD/POST, the counts after a known
 * number of requests, an idle and a half-sent connection held open (which, in hitless, may sit in
 * the other worker: the master sums them), and the counters staying put when a worker is killed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import http2 from 'node:http2';
import net from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { waitFor } from './helpers/masters.js';
import { fetchRaw, fieldsOf, startPair, type NginxPair } from './helpers/nginx-pair.js';

interface Status {
  active: number;
  accepts: number;
  handled: number;
  requests: number;
  reading: number;
  writing: number;
  waiting: number;
}

const PAGE = /^Active connections: (\d+) \nserver accepts handled requests\n (\d+) (\d+) (\d+) \nReading: (\d+) Writing: (\d+) Waiting: (\d+) \n$/;

function parse(body: string): Status {
  const m = PAGE.exec(body);
  assert.ok(m, `not a stub_status page: ${JSON.stringify(body)}`);
  const [active, accepts, handled, requests, reading, writing, waiting] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  return { active, accepts, handled, requests, reading, writing, waiting };
}

async function status(port: number): Promise<Status> {
  return parse((await fetchRaw(port, '/stub')).body);
}

/** A raw connection to hold open; `data` is sent once it connects. */
function hold(port: number, data: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      if (data !== '') socket.write(data);
      resolve(socket);
    });
    socket.on('error', reject);
  });
}

describe('stub_status: the page and counters as nginx gives them, over two workers', () => {
  let pair: NginxPair;
  const servers = ['nginx', 'hitless'] as const;

  before(async () => {
    pair = await startPair(
      (port) => `worker_processes 2;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        location /stub { stub_status; }
        location /old { stub_status on; }
        location /vars { return 200 "$connections_active $connections_reading $connections_writing $connections_waiting"; }
        location / { return 200 "ok"; }
    }
}
`,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  it('prints the same page, line for line, with the same fields', async () => {
    for (const path of ['/stub', '/old']) {
      const expected = await fetchRaw(pair.ports.nginx, path);
      const actual = await fetchRaw(pair.ports.hitless, path);
      assert.equal(expected.status, 200);
      assert.equal(actual.status, 200);
      const normalize = (body: string): string[] => body.replace(/\d+/g, 'N').split('\n');
      assert.deepEqual(normalize(actual.body), normalize(expected.body));
      assert.match(actual.body, PAGE);
      for (const field of ['content-type', 'last-modified', 'etag', 'cache-control', 'expires', 'transfer-encoding']) assert.deepEqual(fieldsOf(actual, field), fieldsOf(expected, field), field);
      assert.deepEqual(fieldsOf(actual, 'content-length'), [String(actual.body.length)]);
    }
  });

  it('answers HEAD without a body and POST with 405', async () => {
    for (const name of servers) {
      const head = await fetchRaw(pair.ports[name], '/stub', {}, 'HEAD');
      assert.equal(head.status, 200, name);
      assert.equal(head.body, '', name);
      assert.match(fieldsOf(head, 'content-length')[0] ?? '', /^\d+$/, name);
      const post = await fetchRaw(pair.ports[name], '/stub', {}, 'POST');
      assert.equal(post.status, 405, name);
    }
  });

  it('counts 10 requests on 10 connections, summed over both workers', async () => {
    for (const name of servers) {
      const port = pair.ports[name];
      const first = await status(port);
      for (let i = 0; i < 10; i++) assert.equal((await fetchRaw(port, '/')).body, 'ok');
      const last = await status(port);
      // The ten, and the last status request itself.
      assert.equal(last.accepts - first.accepts, 11, name);
      assert.equal(last.handled - first.handled, 11, name);
      assert.equal(last.requests - first.requests, 11, name);
      assert.equal(last.handled, last.accepts, name);
      assert.deepEqual({ active: last.active, reading: last.reading, writing: last.writing, waiting: last.waiting }, { active: 1, reading: 0, writing: 1, waiting: 0 }, name);
    }
  });

  it('counts an idle connection as waiting and a half-sent head as reading, in whichever worker holds them', async () => {
    for (const name of servers) {
      const port = pair.ports[name];
      const idle = await hold(port, '');
      const partial = await hold(port, 'GET / HTTP/1.1\r\n');
      try {
        const seen = await waitFor(`${name}: both held connections counted`, async () => {
          const now = await status(port);
          return now.active === 3 && now.reading === 1 ? now : undefined;
        });
        assert.deepEqual({ active: seen.active, reading: seen.reading, writing: seen.writing, waiting: seen.waiting }, { active: 3, reading: 1, writing: 1, waiting: 1 }, name);
      } finally {
        idle.destroy();
        partial.destroy();
      }
      await waitFor(`${name}: the held connections gone`, async () => ((await status(port)).active === 1 ? true : undefined));
    }
  });

  it('gives $connections_active, _reading, _writing and _waiting as nginx does', async () => {
    for (const name of servers) assert.equal((await fetchRaw(pair.ports[name], '/vars')).body, '1 0 1 0', name);
  });

  it('keeps a killed worker\'s accepts, handled and requests: the counters never go backwards', async () => {
    const port = pair.ports.hitless;
    for (let i = 0; i < 6; i++) await fetchRaw(port, '/');
    const before = await status(port);
    const master = Number(readFileSync(join(pair.dir, 'hitless', 'pid'), 'utf8').trim());
    const workers = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(workers.length, 2, 'two workers');
    process.kill(workers[0] as number, 'SIGKILL');
    // The master respawns it; every answer in between counts at least what was counted before.
    await waitFor('a new worker', () => {
      const now = readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).map(Number);
      return now.length === 2 && !now.includes(workers[0] as number) ? true : undefined;
    });
    const after = await status(port);
    assert.ok(after.accepts >= before.accepts + 1, `accepts ${before.accepts} -> ${after.accepts}`);
    assert.ok(after.requests >= before.requests + 1, `requests ${before.requests} -> ${after.requests}`);
    assert.ok(after.handled >= before.handled + 1, `handled ${before.handled} -> ${after.handled}`);
  });

  it('keeps every request the old workers served across a reload, as nginx does', async () => {
    for (const name of servers) {
      const port = pair.ports[name];
      const master = Number(readFileSync(join(pair.dir, name, 'pid'), 'utf8').trim());
      const children = (): number[] => readFileSync(`/proc/${master}/task/${master}/children`, 'utf8').trim().split(/\s+/).filter((pid) => pid !== '').map(Number);
      const old = children();
      const before = await status(port);
      // Served by the old workers after they last reported: only their final word carries these.
      for (let i = 0; i < 5; i++) await fetchRaw(port, '/');
      process.kill(master, 'SIGHUP');
      await waitFor(`${name}: the old workers gone`, () => {
        const now = children();
        return now.length >= 2 && now.every((pid) => !old.includes(pid)) ? true : undefined;
      });
      const after = await status(port);
      assert.equal(after.requests - before.requests, 6, `${name}: requests ${before.requests} -> ${after.requests}`);
      assert.equal(after.accepts - before.accepts, 6, `${name}: accepts ${before.accepts} -> ${after.accepts}`);
    }
  });
});

/** `n` GETs of `path` on one HTTP/2 session (prior knowledge), one after another; the last body. */
async function h2Gets(port: number, paths: readonly string[]): Promise<string> {
  const client = http2.connect(`http://127.0.0.1:${port}`);
  client.on('error', () => undefined);
  try {
    let body = '';
    for (const path of paths) {
      body = await new Promise<string>((resolve, reject) => {
        const req = client.request({ ':path': path, host: 'localhost' });
        req.setEncoding('latin1');
        let text = '';
        req.on('data', (chunk: string) => (text += chunk));
        req.on('end', () => resolve(text));
        req.on('error', reject);
        req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${path} within 10 s`)));
      });
    }
    return body;
  } finally {
    client.close();
  }
}

describe('stub_status: HTTP/2 streams and stream sessions, counted as nginx counts them', () => {
  let pair: NginxPair;
  const servers = ['nginx', 'hitless'] as const;

  before(async () => {
    pair = await startPair(
      (port, _dir, extra) => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {}
http {
    access_log off;
    server {
        listen 127.0.0.1:${port};
        listen 127.0.0.1:${extra[0] ?? 0} http2;
        location /stub { stub_status; }
        location / { return 200 "ok"; }
    }
}
stream {
    server {
        listen 127.0.0.1:${extra[1] ?? 0};
        proxy_pass 127.0.0.1:${port};
    }
}
`,
      () => undefined,
      2,
    );
  });

  after(async () => {
    await pair?.stop();
  });

  it('counts each HTTP/2 stream as a request and the session as one connection', async () => {
    for (const name of servers) {
      const first = await status(pair.ports[name]);
      const page = parse(await h2Gets(pair.extra[name][0] as number, ['/', '/', '/', '/stub']));
      assert.equal(page.accepts - first.accepts, 1, name);
      assert.equal(page.requests - first.requests, 4, name);
      assert.deepEqual({ active: page.active, reading: page.reading, writing: page.writing, waiting: page.waiting }, { active: 1, reading: 0, writing: 1, waiting: 0 }, name);
    }
  });

  it('counts a stream session as active, never waiting, and its upstream connection as an idle client', async () => {
    for (const name of servers) {
      const port = pair.ports[name];
      const session = await hold(pair.extra[name][1] as number, '');
      try {
        const seen = await waitFor(`${name}: the stream session and its upstream connection counted`, async () => {
          const now = await status(port);
          return now.active === 3 ? now : undefined;
        });
        assert.deepEqual({ active: seen.active, reading: seen.reading, writing: seen.writing, waiting: seen.waiting }, { active: 3, reading: 0, writing: 1, waiting: 1 }, name);
      } finally {
        session.destroy();
      }
      await waitFor(`${name}: the session gone`, async () => ((await status(port)).active === 1 ? true : undefined));
    }
  });
});
