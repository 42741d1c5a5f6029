/**
 * limit_rate and limit_rate_after, `set $limit_rate`, X-Accel-Limit-Rate and proxy_buffering off,
 * over real sockets. Pacing is asserted from below only (a paced body cannot arrive sooner than the
 * rate allows; a slow machine only makes it later), and which rate applied is read from $limit_rate
 * in the access log.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { errorOf, load, RawClient, recordingLog, serve, type Served } from './helpers.js';
import { httpUpstream, type Upstream } from './proxy-upstreams.js';

const BODY = 'X'.repeat(30_000);

describe('limit_rate, limit_rate_after and $limit_rate', () => {
  let served: Served;
  let upstream: Upstream;
  let dir: string;
  const errors: string[] = [];

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-limit-rate-'));
    writeFileSync(join(dir, 'data'), BODY);
    upstream = await httpUpstream((req, res) => {
      const rate = new URL(req.url ?? '/', 'http://x').searchParams.get('xal');
      res.writeHead(200, { 'Content-Length': BODY.length, ...(rate === null ? {} : { 'X-Accel-Limit-Rate': rate }) });
      res.end(BODY);
    });
    const log = recordingLog(errors);
    served = await serve(
      `http {
        log_format rate '$uri $limit_rate';
        access_log ${dir}/access.log rate;
        server {
          listen 127.0.0.1:8080;
          root ${dir};
          limit_rate 12k;
          limit_rate_after 256;
          location /data { }
          location /var/ {
            alias ${dir}/;
            limit_rate $arg_l;
            limit_rate_after $arg_a;
          }
          location /set {
            set $limit_rate $arg_l;
            add_header X-Rate $limit_rate;
            return 200 OK;
          }
          location /up/ {
            limit_rate 0;
            proxy_pass http://127.0.0.1:${upstream.port}/;
          }
          location /unbuffered/ {
            proxy_buffering off;
            proxy_pass http://127.0.0.1:${upstream.port}/;
          }
        }
      }`,
      dir,
      log,
    );
  });

  after(async () => {
    await served?.stop();
    await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** One request on its own connection: the body, and how long it took to arrive whole. */
  const timed = async (path: string): Promise<{ body: string; ms: number; headers: Readonly<Record<string, string>> }> => {
    const client = await RawClient.connect(served.port);
    try {
      const started = Date.now();
      const reply = await client.get(path);
      return { body: reply.body, ms: Date.now() - started, headers: reply.headers };
    } finally {
      client.destroy();
    }
  };

  /** The access log's `$uri $limit_rate` for `uri`, once the line is there. */
  const loggedRate = async (uri: string): Promise<string> => {
    for (let i = 0; i < 200; i++) {
      const line = readFileSync(join(dir, 'access.log'), 'latin1').split('\n').reverse().find((l) => l.startsWith(`${uri} `));
      if (line !== undefined) return line.slice(uri.length + 1);
      await new Promise((resolve) => setImmediate(resolve));
    }
    throw new Error(`no access log line for ${uri}`);
  };

  it('parses both as sizes or values with variables, in nginx\'s words', () => {
    const location = load('http { server { location / { limit_rate 12k; limit_rate_after $arg_a; } } }').main.child('http')?.child('server')?.child('location');
    assert.deepEqual(location?.get('limit_rate'), { size: 12_288 });
    assert.ok(location?.get('limit_rate_after') !== undefined && 'value' in (location.get('limit_rate_after') as object));
    assert.match(errorOf('http { limit_rate fast; }'), /invalid value/);
    assert.match(errorOf('http { server { location / { limit_rate $nope; } } }'), /unknown "nope" variable/);
    assert.match(errorOf('http { limit_rate 1k 2k; }'), /invalid number of arguments in "limit_rate" directive/);
  });

  it('paces a static body: 30000 bytes at 12k after 256 take more than a second, and arrive whole', async () => {
    const { body, ms } = await timed('/data');
    assert.equal(body, BODY);
    assert.ok(ms >= 1000, `${ms} ms`);
    assert.equal(await loggedRate('/data'), '12288');
  });

  it('limit_rate and limit_rate_after with variables; an empty value is 0 and nginx\'s "invalid size" [error]', async () => {
    const paced = await timed('/var/data?l=12k&a=256');
    assert.equal(paced.body, BODY);
    assert.ok(paced.ms >= 1000, `${paced.ms} ms`);
    assert.equal(await loggedRate('/var/data'), '12288');
    assert.equal((await timed('/var/data')).body, BODY);
    assert.equal(await loggedRate('/var/data'), '0');
    assert.ok(errors.some((line) => line.startsWith('[error] invalid size ""')), errors.join('\n'));
  });

  it('set $limit_rate: a size, read back by $limit_rate; anything else is nginx\'s [error] and leaves it 0', async () => {
    assert.equal((await timed('/set?l=40k')).headers['x-rate'], '40960');
    assert.equal((await timed('/set?l=fast')).headers['x-rate'], '0');
    assert.ok(errors.some((line) => line.startsWith('[error] invalid $limit_rate "fast"')), errors.join('\n'));
  });

  it('an upstream\'s X-Accel-Limit-Rate paces the response; proxy_buffering off sends it unpaced', async () => {
    const paced = await timed('/up/data?xal=13000');
    assert.equal(paced.body, BODY);
    assert.ok(paced.ms >= 1000, `${paced.ms} ms`);
    assert.equal(await loggedRate('/up/data'), '13000');
    assert.equal((await timed('/unbuffered/data?xal=13000')).body, BODY);
    assert.equal(await loggedRate('/unbuffered/data'), '0');
  });
});
