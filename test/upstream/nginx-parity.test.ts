/**
 * ip_hash and hash against a real nginx: the same configuration served by Debian's nginx and by
 * hitless, proxying to the same backends that answer with their names; every client address
 * (set through realip) and every key must land on the same backend in both.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { serve, type Served } from '../http/helpers.js';
import { startBackend, type Backend } from './backends.js';

function ask(port: number, path: string, realIp: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, headers: { 'x-real-ip': realIp } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve(`${res.statusCode} ${body}`));
    });
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

describe('ip_hash and hash agree with nginx', () => {
  const backends: Backend[] = [];
  let nginx: NginxInstance | undefined;
  let hitless: Served | undefined;
  let nginxPort = 0;
  const dir = mkdtempSync(join(tmpdir(), 'hitless-parity-'));

  before(async () => {
    for (const name of ['b0', 'b1', 'b2', 'b3', 'b4']) backends.push(await startBackend(name));
    const weights = [1, 2, 1, 3, 1];
    const servers = backends.map((b, i) => `server 127.0.0.1:${b.port} weight=${weights[i]};`).join(' ');
    const http = (port: number): string => `http {
      access_log off;
      upstream iph { ip_hash; ${servers} }
      upstream h { hash $arg_k; ${servers} }
      upstream ch { hash $arg_k consistent; ${servers} }
      upstream chv { hash "$arg_k-$http_x_real_ip" consistent; ${servers} }
      server {
        listen 127.0.0.1:${port};
        set_real_ip_from 127.0.0.1;
        real_ip_header X-Real-IP;
        location /ip { proxy_pass http://iph; }
        location /h { proxy_pass http://h; }
        location /ch { proxy_pass http://ch; }
        location /chv { proxy_pass http://chv; }
      }
    }`;
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': `events {} ${http(nginxPort)}` }, nginxPort);
    hitless = await serve(http(8080), dir);
  });

  after(async () => {
    await hitless?.stop();
    await nginx?.stop();
    for (const backend of backends) await backend.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const addresses = [
    ...Array.from({ length: 40 }, (_, i) => `10.${(i * 37) % 256}.${(i * 101) % 256}.${i}`),
    ...Array.from({ length: 12 }, (_, i) => `192.168.${i * 19}.77`),
    '2001:db8::1', '2001:db8::2', 'fe80::1234:5678', '2a00:1450:4001:80b::200e', '::1', '2001:db8:85a3::8a2e:370:7334',
  ];

  it('sends every client address to the same backend with ip_hash', async () => {
    for (const address of addresses) {
      const expected = await ask(nginxPort, '/ip', address);
      assert.equal(await ask(hitless?.port ?? 0, '/ip', address), expected, `client ${address}`);
    }
  });

  it('sends every key to the same backend with hash and hash consistent', async () => {
    const keys = [...Array.from({ length: 60 }, (_, i) => `key${i * 7919}`), 'a', 'user-42', 'x'.repeat(200)];
    const spread = new Set<string>();
    for (const key of keys) {
      for (const path of [`/h?k=${key}`, `/ch?k=${key}`, `/chv?k=${key}`]) {
        const expected = await ask(nginxPort, path, '10.0.0.1');
        assert.equal(await ask(hitless?.port ?? 0, path, '10.0.0.1'), expected, path);
        spread.add(expected);
      }
    }
    assert.ok(spread.size >= 4, `the keys reached only ${[...spread].join(', ')}`);
  });

  it('agrees with nginx on where a key goes once its backend is down', async () => {
    // Both see b3 refuse connections: the rehash loop and the ring walk must continue alike.
    const b3 = backends[3] as Backend;
    await b3.stop();
    try {
      for (let i = 0; i < 40; i++) {
        for (const path of [`/h?k=k${i}`, `/ch?k=k${i}`]) {
          const expected = await ask(nginxPort, path, '10.0.0.1');
          assert.equal(await ask(hitless?.port ?? 0, path, '10.0.0.1'), expected, path);
        }
      }
    } finally {
      await b3.restart();
    }
  });
});
