/**
 * The `$upstream_*` list variables in an access log, side by side with Debian's nginx: the same
 * configuration and requests; the fields that are deterministic must be equal (uri, status lists
 * with ", " between tries and " : " between the upstream cycles of an error_page, addresses up to
 * their ports, response lengths, upstream headers and cookies), the byte counts must be what the
 * raw upstream itself read and wrote, and the times must have nginx's format ("0.001", or "-").
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startHitlessIn as startHitless } from './helpers/side-by-side.js';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';

/** A raw HTTP/1 upstream that answers `status` and records the bytes of each exchange, by the request's path. */
class RawUpstream {
  readonly exchanges = new Map<string, { read: number; written: number }[]>();
  readonly server: Server;
  readonly #sockets = new Set<Socket>();

  constructor(status: number) {
    this.server = createServer((socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
      let head = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        const path = head.toString('latin1').split(' ')[1] ?? '';
        const body = `body of ${path} from a ${status}\n`;
        const response = `HTTP/1.1 ${status} X\r\nConnection: close\r\nContent-Length: ${body.length}\r\nX-Tag: tagged\r\nSet-Cookie: sid=abc; Path=/\r\n\r\n${body}`;
        const list = this.exchanges.get(path) ?? [];
        list.push({ read: end + 4, written: Buffer.byteLength(response, 'latin1') });
        this.exchanges.set(path, list);
        socket.end(response);
      });
      socket.on('error', () => undefined);
    });
  }

  async listen(): Promise<number> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    return (this.server.address() as AddressInfo).port;
  }

  close(): void {
    for (const socket of this.#sockets) socket.destroy();
    this.server.close();
  }
}

const FIELDS = ['uri', 'addr', 'status', 'length', 'received', 'sent', 'connect', 'header', 'response', 'tag', 'cookie'] as const;
type Line = Record<(typeof FIELDS)[number], string>;

function conf(port: number, good: number, bad: number, dead: number, log: string): string {
  return `events {}
http {
    log_format vars "$uri|$upstream_addr|$upstream_status|$upstream_response_length|$upstream_bytes_received|$upstream_bytes_sent|$upstream_connect_time|$upstream_header_time|$upstream_response_time|$upstream_http_x_tag|$upstream_cookie_sid";
    access_log ${log} vars;
    upstream good { server 127.0.0.1:${good}; }
    upstream bad { server 127.0.0.1:${bad}; }
    upstream retry { server 127.0.0.1:${dead} max_fails=0; server 127.0.0.1:${good}; }
    upstream dead { server 127.0.0.1:${dead}; }
    server {
        listen 127.0.0.1:${port};
        location /plain { proxy_pass http://good; }
        location /retry { proxy_pass http://retry; }
        location /bad { proxy_pass http://bad; proxy_intercept_errors on; error_page 502 = @good; }
        location /dead { proxy_pass http://dead; }
        location @good { proxy_pass http://good; }
        location /none { return 200 "no upstream\\n"; }
    }
}
`;
}

function get(port: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { host: 'localhost' } }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.setTimeout(20_000, () => req.destroy(new Error(`no answer to ${path}`)));
    req.on('error', reject);
    req.end();
  });
}

describe('upstream variables: hitless and nginx side by side', () => {
  let dir: TempDir;
  let nginx: NginxInstance | undefined;
  let stopHitless: (() => Promise<void>) | undefined;
  const upstreams: RawUpstream[] = [];
  const sides: { port: number; good: RawUpstream; bad: RawUpstream; log: () => string }[] = [];

  before(async () => {
    dir = tempDir({ 'prefix/.keep': '' });
    chmodSync(dir.path, 0o755);
    for (const which of ['hitless', 'nginx'] as const) {
      const good = new RawUpstream(200);
      const bad = new RawUpstream(502);
      upstreams.push(good, bad);
      const [g, b, d, port] = [await good.listen(), await bad.listen(), await freePort(), await freePort()];
      if (which === 'nginx') {
        nginx = await startNginx({ 'nginx.conf': conf(port, g, b, d, 'logs/vars.log') }, port);
        const ng = nginx;
        sides.push({ port, good, bad, log: () => ng.read('logs/vars.log').toString('latin1') });
      } else {
        const prefix = join(dir.path, 'prefix');
        const confPath = join(prefix, 'hitless.conf');
        writeFileSync(confPath, conf(port, g, b, d, join(prefix, 'vars.log')));
        stopHitless = await startHitless(prefix, confPath, port);
        sides.push({ port, good, bad, log: () => readFileSync(join(prefix, 'vars.log'), 'latin1') });
      }
    }
  });

  after(async () => {
    for (const upstream of upstreams) upstream.close();
    await stopHitless?.();
    await nginx?.stop();
    dir?.remove();
  });

  it('logs the same lists as nginx', async () => {
    const paths = ['/retry', '/plain', '/bad', '/dead', '/none'];
    const logged: Line[][] = [];
    for (const side of sides) {
      for (const path of paths) await get(side.port, path);
      // A line is written when its request ends, before the next request is answered: all are there.
      const lines = side
        .log()
        .split('\n')
        .filter((line) => line !== '' && !line.startsWith('/none|-'))
        .map((line) => Object.fromEntries(line.split('|').map((value, i) => [FIELDS[i], value])) as Line);
      logged.push(lines);
    }
    const [ours, theirs] = logged as [Line[], Line[]];
    assert.equal(ours.length, paths.length - 1);
    const deterministic = (line: Line): Partial<Line> => ({ uri: line.uri, addr: line.addr.replace(/127\.0\.0\.1:\d+/g, 'PEER'), status: line.status, length: line.length, tag: line.tag, cookie: line.cookie });
    assert.deepEqual(ours.map(deterministic), theirs.map(deterministic));
    const byUri = new Map(ours.map((line) => [line.uri, line]));
    assert.equal(byUri.get('/retry')?.status, '502, 200');
    assert.equal(byUri.get('/bad')?.status, '502 : 200');
    assert.equal(byUri.get('/dead')?.status, '502');
    // Times: three decimals per try, "-" for a phase a failed connect never reached.
    for (const [line, other] of ours.map((line, i) => [line, theirs[i] as Line] as const)) {
      for (const field of ['connect', 'header', 'response'] as const) {
        const shape = (value: string): string => value.replace(/\d+\.\d{3}/g, 'T');
        assert.equal(shape(line[field]), shape(other[field]), `${line.uri} ${field}: ${line[field]} vs ${other[field]}`);
        assert.match(line[field], /^(\d+\.\d{3}|-)((, | : )(\d+\.\d{3}|-))*$/);
      }
    }
    // The byte counts are what each side's upstream read and wrote.
    for (const [i, side] of sides.entries()) {
      const lines = logged[i] as Line[];
      const plain = side.good.exchanges.get('/plain')?.[0];
      const line = lines.find((entry) => entry.uri === '/plain');
      assert.ok(plain !== undefined && line !== undefined);
      assert.equal(line.sent, String(plain.read));
      assert.equal(line.received, String(plain.written));
      const bad = side.bad.exchanges.get('/bad')?.[0];
      const fallback = side.good.exchanges.get('/bad')?.[0];
      assert.ok(bad !== undefined && fallback !== undefined);
      assert.equal(lines.find((entry) => entry.uri === '/bad')?.sent, `${bad.read} : ${fallback.read}`);
    }
  });
});
