/**
 * A canary release with split_clients: 10% of client keys go to a second upstream group. Across
 * 10,000 requests from 1,000 keys the canary's share is 10% +- 1.5%, every key always lands on
 * the same group, and Debian's nginx on the same configuration splits the same keys the same way.
 */
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../deploy/helpers/nginx.js';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { startServer, type RunningServer } from './helpers/side-by-side.js';

const KEYS = 1000;
const ROUNDS = 10;

function upstream(name: string): Promise<http.Server> {
  const server = http.createServer((_req, res) => res.end(name));
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server)));
}

function get(agent: http.Agent, port: number, key: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/', agent, headers: { 'x-client': key } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(Buffer.concat(chunks).toString()) : reject(new Error(`status ${res.statusCode} for ${key}`))));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer for ${key}`)));
    req.on('error', reject);
  });
}

/** Asks for every key in `keys`, 16 at a time on kept-alive connections; the group each got. */
async function groupsOf(port: number, keys: readonly string[]): Promise<string[]> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
  const out: string[] = new Array<string>(keys.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < keys.length) {
      const i = next++;
      out[i] = await get(agent, port, keys[i] as string);
    }
  };
  try {
    await Promise.all(Array.from({ length: 16 }, worker));
  } finally {
    agent.destroy();
  }
  return out;
}

describe('split_clients canary: 10% of clients to a second upstream group, as nginx splits them', () => {
  let dir: TempDir;
  const upstreams: http.Server[] = [];
  const servers: RunningServer[] = [];
  const ports = { hitless: 0, nginx: 0 };

  before(async () => {
    dir = tempDir({});
    upstreams.push(await upstream('stable'), await upstream('canary'));
    const [stable, canary] = upstreams.map((server) => (server.address() as AddressInfo).port);
    const conf = (port: number): string => `events {}
http {
    access_log off;
    split_clients "\${http_x_client}-release-7" $pool {
        10%     canary;
        *       stable;
    }
    upstream stable { server 127.0.0.1:${stable}; }
    upstream canary { server 127.0.0.1:${canary}; }
    server {
        listen 127.0.0.1:${port};
        location / { proxy_pass http://$pool; }
    }
}
`;
    for (const name of ['hitless', 'nginx'] as const) {
      ports[name] = await freePort();
      const prefix = join(dir.path, name);
      mkdirSync(join(prefix, 'logs'), { recursive: true });
      writeFileSync(join(prefix, 'nginx.conf'), conf(ports[name]));
      const args = ['-p', `${prefix}/`, '-c', join(prefix, 'nginx.conf'), '-e', join(prefix, 'logs/error.log'), '-g', `daemon off; pid ${join(prefix, 'pid')};`];
      servers.push(await startServer(name, args, [ports[name]]));
    }
  });

  after(async () => {
    await Promise.all(servers.map((server) => server.stop()));
    for (const server of upstreams) server.close();
    dir?.remove();
  });

  it('sends 10% +- 1.5% of 10,000 requests from 1,000 keys to the canary, each key always to the same group, as nginx does', async () => {
    const keys = Array.from({ length: KEYS }, (_, i) => `client-${i}`);
    const requests = Array.from({ length: KEYS * ROUNDS }, (_, i) => keys[i % KEYS] as string);
    const answers = await groupsOf(ports.hitless, requests);
    const byKey = new Map<string, Set<string>>();
    answers.forEach((group, i) => {
      const key = requests[i] as string;
      byKey.set(key, (byKey.get(key) ?? new Set()).add(group));
    });
    const unstable = [...byKey].filter(([, groups]) => groups.size !== 1);
    assert.deepEqual(unstable, [], 'keys that reached both groups');
    const share = answers.filter((group) => group === 'canary').length / answers.length;
    assert.ok(share >= 0.085 && share <= 0.115, `canary share ${share}`);
    const fromNginx = await groupsOf(ports.nginx, keys);
    assert.equal(fromNginx.filter((group) => group === 'canary').length, Math.round(share * KEYS), 'nginx sends as many keys to the canary');
    const differing = keys.filter((key, i) => fromNginx[i] !== [...(byKey.get(key) as Set<string>)][0]);
    assert.deepEqual(differing, [], 'keys nginx sends to the other group');
  });
});
