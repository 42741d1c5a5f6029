/** limit_req: nginx's parsing and errors, and the leaky bucket counted over real loopback requests. */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { LimitReqZone, runLimitReq, ZoneStore } from '../../src/http/limits.js';
import { errorOf, get, load, serve, type Served } from './helpers.js';

describe('limit_req directives', () => {
  it('loads zones and limits with nginx defaults', () => {
    const http = load('http { limit_req_zone $binary_remote_addr zone=one:1m rate=30r/m; limit_req zone=one burst=5 nodelay; server { location / { limit_req zone=one; } } }').main.child('http');
    const [zone] = http?.get('limit_req_zone') ?? [];
    assert.deepEqual([zone?.name, zone?.size, zone?.rate], ['one', 1048576, 500]);
    assert.equal(http?.get('limit_req')[0]?.burst, 5000);
    assert.equal(http?.get('limit_req_status'), 503);
    assert.equal(http?.get('limit_req_log_level'), 'error');
    assert.equal(http?.get('limit_req_dry_run'), false);
  });

  it('refuses what nginx refuses, in its words', () => {
    const zone = 'limit_req_zone $binary_remote_addr zone=one:1m rate=1r/s;';
    assert.match(errorOf('http { limit_req_zone $x zone=one rate=1r/s; }'), /^invalid zone size "zone=one" in/);
    assert.match(errorOf('http { limit_req_zone $uri zone=one:1k rate=1r/s; }'), /^zone "zone=one:1k" is too small in/);
    assert.match(errorOf('http { limit_req_zone $uri zone=one:1m rate=0r/s; }'), /^invalid rate "rate=0r\/s" in/);
    assert.match(errorOf('http { limit_req_zone $uri zone=one:1m rate=1r/s foo; }'), /^invalid parameter "foo" in/);
    assert.match(errorOf('http { limit_req_zone $uri rate=1r/s x=1; }'), /^invalid parameter "x=1" in/);
    assert.match(errorOf(`http { ${zone} limit_req_zone $uri zone=one:1m rate=1r/s; }`), /^limit_req_zone "one" is already bound to key "\$binary_remote_addr" in/);
    assert.match(errorOf(`http { ${zone} limit_req_zone $uri zone=one:2m rate=1r/s; }`), /^the size 2097152 of shared memory zone "one" conflicts with already declared size 1048576 in/);
    assert.match(errorOf(`http { ${zone} limit_req zone=one burst=0; }`), /^invalid burst value "burst=0" in/);
    assert.match(errorOf(`http { ${zone} limit_req zone=one delay=x; }`), /^invalid delay value "delay=x" in/);
    assert.match(errorOf(`http { ${zone} limit_req burst=1; }`), /^"limit_req" must have "zone" parameter in/);
    assert.match(errorOf(`http { ${zone} limit_req zone=one; limit_req zone=one; }`), /^"limit_req" directive is duplicate in/);
    assert.match(errorOf(`http { ${zone} server { limit_req zone=two; } }`), /^zero size shared memory zone "two"$/);
    assert.match(errorOf('http { limit_conn_zone $uri zone=one:1m; server { limit_req zone=one; } }'), /^the shared memory zone "one" is already declared for a different use in/);
    assert.match(errorOf(`http { ${zone} limit_req_status 399; }`), /^value must be between 400 and 599 in/);
    assert.match(errorOf(`http { ${zone} limit_req_log_level debug; }`), /^invalid value "debug" in/);
    assert.match(errorOf('http { limit_req_zone $nope zone=one:1m rate=1r/s; }'), /^unknown "nope" variable$/);
  });
});

describe('the leaky bucket', () => {
  it('counts excess in milli-requests and rejects past burst', () => {
    const store = new ZoneStore();
    const check = { zone: 'z', size: 1 << 20, rate: 16, burst: 2000, delay: Number.MAX_SAFE_INTEGER, key: 'k' };
    const answers = Array.from({ length: 5 }, () => runLimitReq(store, [check]));
    assert.deepEqual(answers.map((a) => a.rc), ['ok', 'ok', 'ok', 'busy', 'busy']);
    assert.equal(answers[3]?.rc === 'busy' ? answers[3].excess : -1, 3000);
  });

  it('delays past the delay threshold: (excess - delay) * 1000 / rate ms', () => {
    const store = new ZoneStore();
    const check = { zone: 'z', size: 1 << 20, rate: 1000, burst: 5000, delay: 1000, key: 'k' };
    const delays = Array.from({ length: 3 }, () => runLimitReq(store, [check])).map((a) => (a.rc === 'ok' ? a.delayMs : -1));
    assert.equal(delays[0], 0);
    assert.equal(delays[1], 0);
    assert.ok((delays[2] ?? 0) > 900, `delay ${String(delays[2])}`);
  });

  it('keeps no more keys than the zone has room for', () => {
    const zone = new LimitReqZone(32768);
    for (let i = 0; i < 1000; i++) zone.lookup({ zone: 'z', size: 32768, rate: 1000, burst: 0, delay: 0, key: `key-${i}` }, true, 1);
    assert.ok(zone.keys <= 32768 / 128, `${zone.keys} keys`);
  });
});

describe('limit_req over loopback', () => {
  let served: Served;
  before(async () => {
    served = await serve(`http {
      limit_req_zone $binary_remote_addr zone=nodelay:1m rate=1r/m;
      limit_req_zone $binary_remote_addr zone=plain:1m rate=1r/m;
      limit_req_zone $binary_remote_addr zone=fast:1m rate=50r/s;
      limit_req_zone $binary_remote_addr zone=dry:1m rate=1r/m;
      limit_req_zone $arg_none zone=empty:1m rate=1r/m;
      server {
        listen 127.0.0.1:18091;
        add_header X-Limit $limit_req_status always;
        location /nodelay { limit_req zone=nodelay burst=3 nodelay; }
        location /plain { limit_req zone=plain; limit_req_status 429; }
        location /fast { limit_req zone=fast burst=10; }
        location /dry { limit_req zone=dry; limit_req_dry_run on; }
        location /empty { limit_req zone=empty; }
        location /return { limit_req zone=plain; return 200 ok; }
      }
    }`, '/tmp/', new ErrorLog([]));
  });
  after(() => served.stop());

  const burst = async (path: string, count: number): Promise<{ statuses: number[]; limits: string[] }> => {
    const replies = [];
    for (let i = 0; i < count; i++) replies.push(await get(served.port, path));
    return { statuses: replies.map((r) => r.status), limits: replies.map((r) => String(r.headers['x-limit'])) };
  };

  it('passes 1 + burst requests at once with nodelay and rejects the rest with 503', async () => {
    const { statuses, limits } = await burst('/nodelay', 10);
    assert.equal(statuses.filter((s) => s === 404).length, 4);
    assert.equal(statuses.filter((s) => s === 503).length, 6);
    assert.deepEqual(limits.slice(0, 5), ['PASSED', 'PASSED', 'PASSED', 'PASSED', 'REJECTED']);
  });

  it('passes one request without burst, rejecting with limit_req_status', async () => {
    const { statuses } = await burst('/plain', 5);
    assert.deepEqual(statuses, [404, 429, 429, 429, 429]);
  });

  it('delays requests within the burst instead of rejecting them', async () => {
    const replies = await Promise.all(Array.from({ length: 5 }, () => get(served.port, '/fast')));
    assert.equal(replies.filter((r) => r.status === 404).length, 5);
    assert.ok(replies.some((r) => r.headers['x-limit'] === 'DELAYED'), JSON.stringify(replies.map((r) => r.headers['x-limit'])));
  });

  it('rejects nothing in dry run, and skips empty keys', async () => {
    const dry = await burst('/dry', 3);
    assert.deepEqual(dry.statuses, [404, 404, 404]);
    assert.deepEqual(dry.limits, ['PASSED', 'REJECTED_DRY_RUN', 'REJECTED_DRY_RUN']);
    assert.deepEqual((await burst('/empty', 3)).statuses, [404, 404, 404]);
  });

  it('does not limit a location whose return answers first (rewrite phase)', async () => {
    assert.deepEqual((await burst('/return', 3)).statuses, [200, 200, 200]);
  });
});
