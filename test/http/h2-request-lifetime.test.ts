/**
 * How long an HTTP/2 request lasts (h2_limit_conn.t, h2_limit_req.t). nginx frees an HTTP/2
 * request only once its stream's frames were sent, so a response that flow control holds back
 * still holds its limit_conn slot (hitless let it go when the handler ended the response). And a
 * request whose empty body's END_STREAM came while limit_req delayed it is still answered
 * (hitless waited for an 'end' node:http2 had already emitted).
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

/** Resolves with the response's :status, or rejects after 5 s. */
function statusOf(stream: ClientHttp2Stream): Promise<number> {
  return new Promise((resolve, reject) => {
    stream.once('response', (headers) => resolve(Number(headers[':status'])));
    stream.once('error', reject);
    stream.setTimeout(5_000, () => reject(new Error('no response within 5 s')));
  });
}

describe('HTTP/2: a request lasts until its response is out', () => {
  let dir = '';
  let app: Upstream;
  let served: Served;
  const sessions: ClientHttp2Session[] = [];
  const open = (port: number, settings: { initialWindowSize?: number } = {}): ClientHttp2Session => {
    const session = connect(`http://127.0.0.1:${port}`, { settings });
    session.on('error', () => undefined);
    sessions.push(session);
    return session;
  };

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-h2-life-'));
    writeFileSync(join(dir, 't.html'), 'SEE-THIS');
    app = await httpUpstream((_req, res, body) => res.end(`got ${body.length}`));
    served = await serve(
      `http {
        access_log off;
        log_format stream "$connection $connection_requests $status $request_uri";
        limit_conn_zone $binary_remote_addr zone=conn:1m;
        limit_req_zone $binary_remote_addr zone=req:1m rate=1r/s;
        server {
          listen 127.0.0.1:8080 http2;
          root ${dir};
          location /t.html { limit_conn conn 1; }
          location /logged { access_log ${dir}/streams.log stream; return 200 "logged"; }
          location /p { limit_req zone=req burst=2; proxy_pass http://127.0.0.1:${app.port}; }
        }
      }`,
      `${dir}/`,
    );
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await served?.stop();
    await app?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('each stream of a session ends its request once: one log line each, the session\'s counts go on', async () => {
    const session = open(served.ports.get('127.0.0.1:8080') ?? 0);
    const get = (n: number): Promise<number> => {
      const stream = session.request({ ':path': `/logged?n=${n}` });
      stream.resume();
      return statusOf(stream);
    };
    assert.equal(await get(1), 200);
    assert.equal(await get(2), 200);
    assert.deepEqual(await Promise.all([get(3), get(4)]), [200, 200]);
    const path = join(dir, 'streams.log');
    let lines: string[] = [];
    for (let i = 0; i < 250 && lines.length < 4; i++) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      lines = existsSync(path) ? readFileSync(path, 'latin1').split('\n').filter((line) => line !== '') : [];
    }
    const fields = lines.map((line) => line.split(' '));
    assert.equal(lines.length, 4, lines.join('\n'));
    assert.equal(new Set(fields.map((f) => f[0])).size, 1, 'one $connection for the session');
    assert.deepEqual(fields.map((f) => f.slice(1)).sort((a, b) => Number(a[0]) - Number(b[0])), [1, 2, 3, 4].map((n) => [String(n), '200', `/logged?n=${n}`]));
  });

  it('a response held back by flow control keeps its limit_conn slot: the next stream gets 503', async () => {
    // A one-byte window: the first response's body stays queued.
    const session = open(served.port, { initialWindowSize: 1 });
    const first = session.request({ ':path': '/t.html' });
    assert.equal(await statusOf(first), 200);
    const second = session.request({ ':path': '/t.html' });
    second.resume();
    assert.equal(await statusOf(second), 503);
  });

  it('an empty body that ended while limit_req delayed the request is answered', async () => {
    const session = open(served.port);
    const first = session.request({ ':path': '/p', ':method': 'POST' });
    first.end('TEST');
    first.resume();
    assert.equal(await statusOf(first), 200);
    // Delayed by the burst: its HEADERS, then at once an empty DATA frame with END_STREAM.
    const second = session.request({ ':path': '/p', ':method': 'POST' }, { endStream: false });
    second.end();
    second.resume();
    assert.equal(await statusOf(second), 200);
  });
});
