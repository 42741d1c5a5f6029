/**
 * `mirror` side by side with Debian's nginx: each server proxies to its own main upstream and
 * mirrors to its own shadow upstream (node servers that record what they get). The same requests,
 * with bodies, go to both; the main answers, the shadows' records and the access logs must be
 * the same. A shadow that never answers or is down must not hold the main response back: the
 * client's response arrives while the slow shadow still holds its request (asserted by events and
 * counts, never by timing).
 */
import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import { chmodSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, request, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHitlessIn as startHitless } from './helpers/side-by-side.js';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

/** What an upstream saw of one request. */
interface Seen {
  readonly method: string;
  readonly url: string;
  readonly body: string;
  readonly contentLength: string | undefined;
  readonly custom: string | undefined;
  readonly mirror: string | undefined;
}

/** A node upstream that records every request once its body has ended. */
class Recorder extends EventEmitter {
  readonly seen: Seen[] = [];
  /** Requests held without an answer (the slow shadow). */
  readonly held: ServerResponse[] = [];
  readonly server: Server;

  constructor(readonly name: string, readonly hold = false) {
    super();
    this.server = createServer((req: IncomingMessage, res: ServerResponse) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        this.seen.push({
          method: req.method ?? '',
          url: req.url ?? '',
          body: Buffer.concat(chunks).toString('latin1'),
          contentLength: req.headers['content-length'],
          custom: req.headers['x-custom'] as string | undefined,
          mirror: req.headers['x-mirror'] as string | undefined,
        });
        this.emit('seen');
        if (this.hold) {
          this.held.push(res);
          return;
        }
        res.end(`${this.name} ${req.method} ${req.url}\n`);
      });
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  /** Resolves once `count` requests have been seen; rejects when they do not come within 15 s. */
  async until(count: number): Promise<void> {
    const signal = AbortSignal.timeout(15_000);
    while (this.seen.length < count) await once(this, 'seen', { signal });
  }

  close(): void {
    for (const res of this.held) res.destroy();
    this.server.closeAllConnections();
    this.server.close();
  }
}

/** One side: a server under test and its upstreams. */
interface Side {
  port: number;
  main: Recorder;
  shadow: Recorder;
  slow: Recorder;
  log: () => string;
  subLog: () => string;
}

function send(port: number, method: string, path: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false, headers: { host: 'localhost', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to ${method} ${path}`)));
    req.on('error', reject);
    req.end(body);
  });
}

function conf(port: number, main: number, shadow: number, slow: number, down: number, log: string, subLog: string): string {
  return `events {}
http {
    log_format mirrored "$request_method $uri $status $upstream_addr";
    access_log ${log} mirrored;
    upstream main { server 127.0.0.1:${main}; }
    upstream shadow { server 127.0.0.1:${shadow}; }
    upstream slow { server 127.0.0.1:${slow}; }
    upstream down { server 127.0.0.1:${down}; }
    server {
        listen 127.0.0.1:${port};
        mirror /shadow;
        location / { proxy_pass http://main; }
        location /twice/ { mirror /shadow; mirror /shadow/again; proxy_pass http://main; }
        location /off/ { mirror off; proxy_pass http://main; }
        location /nobody/ { mirror /shadow/nobody; mirror_request_body off; proxy_pass http://main; }
        location /unbuffered/ { proxy_request_buffering off; proxy_pass http://main; }
        location /slow/ { mirror /to-slow; proxy_pass http://main; }
        location /down/ { mirror /to-down; proxy_pass http://main; }
        location /shadow { internal; log_subrequest on; access_log ${subLog} mirrored; proxy_set_header X-Mirror yes; proxy_pass http://shadow; }
        location = /shadow/nobody { internal; proxy_pass_request_body off; proxy_set_header Content-Length ""; proxy_pass http://shadow; }
        location /to-slow { internal; proxy_pass http://slow; }
        location /to-down { internal; proxy_pass http://down; }
    }
}
`;
}

describe('mirror: hitless and nginx side by side', () => {
  let dir: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  const recorders: Recorder[] = [];
  const sides: Side[] = [];

  before(async () => {
    dir = tempDir({ 'prefix/.keep': '' });
    chmodSync(dir.path, 0o755);
    const side = async (): Promise<Omit<Side, 'port' | 'log' | 'subLog'> & { ports: number[] }> => {
      const main = new Recorder('main');
      const shadow = new Recorder('shadow');
      const slow = new Recorder('slow', true);
      recorders.push(main, shadow, slow);
      return { main, shadow, slow, ports: [await main.listen(), await shadow.listen(), await slow.listen(), await freePort()] };
    };
    const theirs = await side();
    const nginxPort = await freePort();
    const [m1, s1, l1, d1] = theirs.ports as [number, number, number, number];
    nginx = await startNginx({ 'nginx.conf': conf(nginxPort, m1, s1, l1, d1, 'logs/mirrored.log', 'logs/sub.log') }, nginxPort);
    const ours = await side();
    const hitlessPort = await freePort();
    const [m2, s2, l2, d2] = ours.ports as [number, number, number, number];
    const prefix = join(dir.path, 'prefix');
    const confPath = join(prefix, 'hitless.conf');
    writeFileSync(confPath, conf(hitlessPort, m2, s2, l2, d2, join(prefix, 'mirrored.log'), join(prefix, 'sub.log')));
    stopHitless = await startHitless(prefix, confPath, hitlessPort);
    // The readiness probes reached /off/, which mirrors nothing: they are no part of what is compared.
    ours.main.seen.length = 0;
    theirs.main.seen.length = 0;
    const ng = nginx;
    sides.push(
      { port: hitlessPort, ...ours, log: () => readFileSync(join(prefix, 'mirrored.log'), 'latin1'), subLog: () => (existsSync(join(prefix, 'sub.log')) ? readFileSync(join(prefix, 'sub.log'), 'latin1') : '') },
      { port: nginxPort, ...theirs, log: () => ng.read('logs/mirrored.log').toString('latin1'), subLog: () => (existsSync(ng.path('logs/sub.log')) ? ng.read('logs/sub.log').toString('latin1') : '') },
    );
  });

  after(async () => {
    for (const recorder of recorders) recorder.close();
    await stopHitless?.();
    await nginx?.stop();
    dir?.remove();
  });

  it('sends the shadow the same requests, bodies included, and discards its answers', async () => {
    const results = [];
    for (const side of sides) {
      const before = side.shadow.seen.length;
      const answers = [
        await send(side.port, 'GET', '/a?x=1', undefined, { 'x-custom': 'one' }),
        await send(side.port, 'POST', '/form', 'name=value&more=1', { 'content-type': 'application/x-www-form-urlencoded', 'x-custom': 'two' }),
        await send(side.port, 'PUT', '/twice/doc', 'twice body'),
        await send(side.port, 'POST', '/off/x', 'not mirrored'),
        await send(side.port, 'POST', '/nobody/x', 'the body stays home'),
        await send(side.port, 'POST', '/unbuffered/x', 'unbuffered body'),
      ];
      // Every mirror subrequest arrives; the client never waited for them, so wait here.
      await side.shadow.until(before + 6);
      results.push({ answers, main: side.main.seen.slice(-6), shadow: side.shadow.seen.slice(before).sort((a, b) => a.url.localeCompare(b.url) || a.body.localeCompare(b.body)) });
    }
    const [ours, theirs] = results as [(typeof results)[0], (typeof results)[0]];
    assert.deepEqual(ours.answers, theirs.answers);
    assert.deepEqual(ours.main, theirs.main);
    assert.deepEqual(ours.shadow, theirs.shadow);
    // The main's answers, not the shadow's, reach the client.
    assert.ok(ours.answers.every((answer) => answer.body.startsWith('main ')), JSON.stringify(ours.answers));
    assert.equal(ours.shadow.filter((seen) => seen.body === 'name=value&more=1').length, 1);
  });

  it('writes only the main requests to the access log', async () => {
    const read = (side: Side): string[] =>
      side
        .log()
        .split('\n')
        .filter((line) => line !== '' && !line.includes('/off/ready'))
        // The upstream addresses differ by port.
        .map((line) => line.replace(/127\.0\.0\.1:\d+/g, 'UPSTREAM'));
    // nginx writes a mirrored request's line only once its mirrors are done (the main request is
    // finalized after its background subrequests), hitless at once: wait for the six lines.
    const lines = [];
    for (const side of sides) {
      let got = read(side);
      for (let tries = 0; got.length < 6 && tries < 500; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        got = read(side);
      }
      lines.push(got);
    }
    assert.deepEqual(lines[0], lines[1]);
    assert.ok((lines[0] ?? []).includes('POST /form 200 UPSTREAM'), JSON.stringify(lines[0]));
    assert.ok(!(lines[0] ?? []).some((line) => line.includes('/shadow')), JSON.stringify(lines[0]));
  });

  it('writes the subrequests of a log_subrequest location to its access log', async () => {
    const subLines = [];
    for (const side of sides) {
      const read = (): string[] => side.subLog().split('\n').filter((line) => line !== '').map((line) => line.replace(/127\.0\.0\.1:\d+/g, 'UPSTREAM')).sort();
      // The five subrequests /shadow answered are logged once each has ended.
      let got = read();
      for (let tries = 0; got.length < 5 && tries < 500; tries++) {
        await new Promise((resolve) => setTimeout(resolve, 20));
        got = read();
      }
      subLines.push(got);
    }
    assert.deepEqual(subLines[0], subLines[1]);
    assert.deepEqual(subLines[0], ['GET /shadow 200 UPSTREAM', 'POST /shadow 200 UPSTREAM', 'POST /shadow 200 UPSTREAM', 'PUT /shadow 200 UPSTREAM', 'PUT /shadow/again 200 UPSTREAM']);
  });
  it('answers at once when the shadow holds its answer or is down', async () => {
    for (const side of sides) {
      const held = side.slow.seen.length;
      const answer = await send(side.port, 'POST', '/slow/x', 'slow body');
      assert.deepEqual(answer, { status: 200, body: 'main POST /slow/x\n' });
      // The slow shadow never answers (it holds every request until after()): a server that
      // waited on its mirror would not have answered the client at all within send()'s bound.
      await side.slow.until(held + 1);
      assert.equal(side.slow.seen.at(-1)?.body, 'slow body');
      assert.equal(side.slow.held.length, held + 1);
      assert.deepEqual(await send(side.port, 'POST', '/down/x', 'to nowhere'), { status: 200, body: 'main POST /down/x\n' });
    }
  });

});
