/**
 * `sticky learn` sessions are shared by every worker and kept across a reload, as nginx's shared
 * memory zone is: with a real master and two workers, a session one worker learned goes to the
 * same upstream from the other worker too, and from the workers of the next generation.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { MasterUnderTest, TestPrefix, freePort, startMaster } from './helpers/masters.js';

interface Answer {
  readonly upstream: string;
  readonly pid: string;
  readonly cookie: string | undefined;
  readonly body: string;
}

function ask(port: number, path: string, cookie?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path, agent: false, headers: cookie === undefined ? {} : { cookie } }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString()));
      res.on('end', () => resolve({ upstream: String(res.headers['x-upstream']), pid: String(res.headers['x-pid']), cookie: res.headers['set-cookie']?.[0], body }));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('no answer within 5 s')));
    req.on('error', reject);
  });
}

describe('sticky learn across workers and reloads', () => {
  const prefix = new TestPrefix();
  const upstreams: http.Server[] = [];
  const ports: number[] = [];
  let master: MasterUnderTest;
  let port: number;
  let created = 0;
  const conf = (body: string): string => `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    upstream u {
        server 127.0.0.1:${ports[0] ?? 0};
        server 127.0.0.1:${ports[1] ?? 0};
        sticky learn create=$upstream_cookie_sid lookup=$cookie_sid zone=sessions:1m;
    }
    server {
        listen 127.0.0.1:${port};
        location / { proxy_pass http://u; add_header X-Pid $pid always; }
        location = /generation { return 200 "${body}"; }
    }
}
`;

  before(async () => {
    for (const name of ['first', 'second']) {
      // Each upstream hands a new session to a request that brings none.
      const server = http.createServer((req, res) => {
        res.setHeader('x-upstream', name);
        if (req.headers.cookie === undefined) res.setHeader('set-cookie', `sid=${name}-${++created}`);
        res.end(name);
      });
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      upstreams.push(server);
      ports.push((server.address() as AddressInfo).port);
    }
    port = await freePort();
    master = await startMaster({ prefix, conf: conf('one'), port, program: 'hitless' });
  });
  after(async () => {
    await master.stop();
    for (const server of upstreams) server.close();
    prefix.remove();
  });

  /**
   * Asks with the session in bursts of new connections until both workers answered; returns the
   * upstreams each worker sent it to, in order. A worker may answer before the master's copy of
   * the session reached it; once it sends the session to its upstream, it must keep doing so.
   */
  const burst = async (cookie: string, counts: (pid: string) => boolean = () => true): Promise<Map<string, string[]>> => {
    const byPid = new Map<string, string[]>();
    const enough = (): boolean => byPid.size >= 2 && [...byPid.values()].every((seen) => seen.length >= 16);
    for (let round = 0; round < 40 && !enough(); round++) {
      for (const answer of await Promise.all(Array.from({ length: 8 }, () => ask(port, '/', cookie)))) {
        if (counts(answer.pid)) byPid.set(answer.pid, [...(byPid.get(answer.pid) ?? []), answer.upstream]);
      }
    }
    return byPid;
  };

  let session = '';
  let owner = '';

  it('sends a session one worker learned to its upstream from every worker', async () => {
    const first = await ask(port, '/');
    assert.match(first.cookie ?? '', /^sid=(first|second)-\d+$/);
    session = (first.cookie ?? '').split(';')[0] ?? '';
    owner = first.upstream;
    const byPid = await burst(session);
    assert.equal(byPid.size, 2, `every request landed on one worker: ${[...byPid.keys()].join(', ')}`);
    for (const [pid, seen] of byPid) {
      const from = seen.indexOf(owner);
      assert.ok(from !== -1, `worker ${pid} never sent the session to ${owner}: ${seen.join(' ')}`);
      assert.deepEqual(seen.slice(from), seen.slice(from).map(() => owner), `worker ${pid}: ${seen.join(' ')}`);
      assert.ok(seen.length - from >= 8, `worker ${pid} answered the session right only ${seen.length - from} times`);
    }
  });

  it('keeps the sessions across a reload', async () => {
    const workers = master.liveWorkers();
    prefix.writeConf(conf('two'));
    master.signal('SIGHUP');
    await prefix.waitForLog('start worker process', workers.length + 2);
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && (await ask(port, '/generation')).body !== 'two');
    // The old workers may take a last connection or two while they drain; the new ones count.
    const byPid = await burst(session, (pid) => !workers.map(String).includes(pid));
    assert.ok(byPid.size > 0, 'no new worker answered');
    for (const [pid, seen] of byPid) assert.deepEqual(seen, seen.map(() => owner), `new worker ${pid}: ${seen.join(' ')}`);
  });
});
