/**
 * Regression: grpc_pass picked its peer without the request (`group.pick(tried)`), so ip_hash
 * hashed an empty address and every gRPC client landed on one peer, and `hash` fell back to
 * round robin (issue 12). Through the upstream cycle the balancer sees the request, as for
 * proxy_pass: compared call by call with Debian's nginx serving the same configuration, clients
 * bound to different loopback addresses and calls with different `$arg_x` reach the peers nginx
 * sends them to, and more than one peer.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as h2connect, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort, startNginx, type NginxInstance } from '../deploy/helpers/nginx.js';
import { grpcCall, grpcPeer, type GrpcPeer } from './grpc-peers.js';
import { serve, type Served } from './helpers.js';

/** An h2c session to 127.0.0.1:`port` from the local address `from` (any of 127.0.0.0/8 on Linux). */
function sessionFrom(port: number, from: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://127.0.0.1:${port}`, { createConnection: () => connect({ host: '127.0.0.1', port, localAddress: from }) });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

describe('grpc_pass places calls with the balancer, as nginx does', () => {
  const peers: GrpcPeer[] = [];
  const sessions: ClientHttp2Session[] = [];
  let nginx: NginxInstance | undefined;
  let hitless: Served | undefined;
  let nginxPort = 0;
  const dir = mkdtempSync(join(tmpdir(), 'hitless-grpc-balancing-'));

  before(async () => {
    for (let i = 0; i < 5; i++) peers.push(await grpcPeer());
    const weights = [1, 2, 1, 3, 1];
    const servers = peers.map((peer, i) => `server 127.0.0.1:${peer.port} weight=${weights[i]};`).join(' ');
    const http = (port: number): string => `http {
      access_log off;
      upstream iph { ip_hash; ${servers} }
      upstream h { hash $arg_x; ${servers} }
      server {
        listen 127.0.0.1:${port} http2;
        location /iph/ { grpc_pass grpc://iph; }
        location /h/ { grpc_pass grpc://h; }
      }
    }`;
    nginxPort = await freePort();
    nginx = await startNginx({ 'nginx.conf': `events {} ${http(nginxPort)}` }, nginxPort);
    hitless = await serve(http(8080), dir);
  });

  after(async () => {
    for (const session of sessions) session.destroy();
    await hitless?.stop();
    await nginx?.stop();
    for (const peer of peers) await peer.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** Makes one call and returns the index of the peer that got it. */
  async function peerOf(session: ClientHttp2Session, path: string): Promise<number> {
    const before = peers.map((peer) => peer.streams.length);
    const reply = await grpcCall(session, path);
    assert.equal(reply.status, 200);
    assert.equal(reply.trailers['grpc-status'], '0');
    const hit = peers.findIndex((peer, i) => peer.streams.length > (before[i] ?? 0));
    assert.notEqual(hit, -1, `no peer saw ${path}`);
    return hit;
  }

  it('ip_hash: clients from different /24s reach the peers nginx chooses for them', async () => {
    // ip_hash hashes the first three octets of IPv4: 127.0.0.1 and 127.0.0.2 share a peer,
    // 127.0.1.1 and the others may not.
    const addresses = ['127.0.0.1', '127.0.0.2', '127.0.1.1', ...Array.from({ length: 12 }, (_, i) => `127.${i % 3}.${i + 2}.9`)];
    const chosen = new Set<number>();
    for (const address of addresses) {
      const viaNginx = await sessionFrom(nginxPort, address);
      const viaHitless = await sessionFrom(hitless?.port ?? 0, address);
      sessions.push(viaNginx, viaHitless);
      const expected = await peerOf(viaNginx, '/iph/test.Echo/Unary');
      const got = await peerOf(viaHitless, '/iph/test.Echo/Unary');
      assert.equal(got, expected, `client ${address}: hitless chose peer ${got}, nginx peer ${expected}`);
      // The same client again: the same peer.
      assert.equal(await peerOf(viaHitless, '/iph/test.Echo/Unary'), expected, `client ${address}, second call`);
      chosen.add(got);
    }
    assert.ok(chosen.size > 1, `every client on peer ${[...chosen].join()}`);
  });

  it('hash $arg_x: calls spread by their key, to the peers nginx chooses', async () => {
    const viaNginx = await sessionFrom(nginxPort, '127.0.0.1');
    const viaHitless = await sessionFrom(hitless?.port ?? 0, '127.0.0.1');
    sessions.push(viaNginx, viaHitless);
    const chosen = new Set<number>();
    for (let i = 0; i < 24; i++) {
      const path = `/h/test.Echo/Unary?x=key-${i}`;
      const expected = await peerOf(viaNginx, path);
      const got = await peerOf(viaHitless, path);
      assert.equal(got, expected, `x=key-${i}: hitless chose peer ${got}, nginx peer ${expected}`);
      chosen.add(got);
    }
    assert.ok(chosen.size > 2, `every key on peers ${[...chosen].join()}`);
  });
});
