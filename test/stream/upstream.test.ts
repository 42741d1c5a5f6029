/** Stream upstream groups: the http balancers and passive health checks, applied to sessions. */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { createServer, connect, type Socket } from 'node:net';
import { sleep, waitFor } from '../e2e/helpers/masters.js';
import { tempDir } from '../helpers/tmp.js';
import { closedPort, exchange, memoryLog, namedBackend, serveStream, startBackend, type Backend } from './helpers.js';

async function names(count: number): Promise<Backend[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => namedBackend(`n${i}`)));
}

async function answers(port: number, count: number): Promise<string[]> {
  const out: string[] = [];
  for (let i = 0; i < count; i++) out.push((await exchange(port, '')).toString());
  return out;
}

function tally(list: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const item of list) counts[item] = (counts[item] ?? 0) + 1;
  return counts;
}

describe('stream upstream groups', () => {
  it('balances round robin by weight', async () => {
    const [a, b] = await names(2);
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream g { server 127.0.0.1:${a?.port} weight=3; server 127.0.0.1:${b?.port}; }
      server { listen 127.0.0.1:1; proxy_pass g; }
    }`);
    try {
      assert.deepEqual(tally(await answers(proxy.port, 8)), { n0: 6, n1: 2 });
    } finally {
      await proxy.stop();
      await a?.stop();
      await b?.stop();
    }
  });

  it('keeps a client on one peer with hash $remote_addr, and spreads keys with hash consistent', async () => {
    const backends = await names(3);
    const servers = backends.map((backend) => `server 127.0.0.1:${backend.port};`).join(' ');
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream by_addr { hash $remote_addr; ${servers} }
      upstream by_port { hash $remote_port consistent; ${servers} }
      server { listen 127.0.0.1:1; proxy_pass by_addr; }
      server { listen 127.0.0.1:2; proxy_pass by_port; }
    }`);
    try {
      assert.equal(Object.keys(tally(await answers(proxy.ports[0] ?? 0, 10))).length, 1);
      assert.ok(Object.keys(tally(await answers(proxy.ports[1] ?? 0, 30))).length > 1);
    } finally {
      await proxy.stop();
      for (const backend of backends) await backend.stop();
    }
  });

  it('sends a session to the peer with the fewest sessions with least_conn', async () => {
    const held: import('node:net').Socket[] = [];
    const busy = await startBackend((socket) => {
      held.push(socket);
      socket.write('busy');
    });
    const [idle] = await names(1);
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream g { least_conn; server 127.0.0.1:${busy.port}; server 127.0.0.1:${idle?.port}; }
      server { listen 127.0.0.1:1; proxy_pass g; }
    }`);
    const { connect } = await import('node:net');
    const open = connect({ port: proxy.port, host: '127.0.0.1' });
    try {
      // The first session goes to the first peer and stays open there.
      assert.equal(await new Promise<string>((resolve) => open.once('data', (chunk: Buffer) => resolve(chunk.toString()))), 'busy');
      assert.deepEqual(tally(await answers(proxy.port, 4)), { n0: 4 });
    } finally {
      open.destroy();
      for (const socket of held) socket.destroy();
      await proxy.stop();
      await busy.stop();
      await idle?.stop();
    }
  });

  it('passes a failed connect to the next peer, then to the backup, and marks the dead peer unavailable', async () => {
    const dead = await closedPort();
    const [live, backup] = await names(2);
    const { log, lines } = memoryLog();
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream g { server 127.0.0.1:${dead} max_fails=1 fail_timeout=60s; server 127.0.0.1:${live?.port}; server 127.0.0.1:${backup?.port} backup; }
      upstream only_dead { server 127.0.0.1:${dead}; server 127.0.0.1:${backup?.port} backup; }
      server { listen 127.0.0.1:1; proxy_pass g; }
      server { listen 127.0.0.1:2; proxy_pass only_dead; }
    }`, '/tmp', log);
    try {
      assert.deepEqual(tally(await answers(proxy.ports[0] ?? 0, 6)), { n0: 6 });
      // max_fails=1: the dead peer was tried once, then left out for fail_timeout.
      assert.equal(lines.filter((line) => line.includes(`upstream: "127.0.0.1:${dead}"`)).length, 1);
      assert.deepEqual(tally(await answers(proxy.ports[1] ?? 0, 2)), { n1: 2 });
      const states = proxy.runtime.upstreamStates();
      assert.equal(states.find((state) => state.group === 'g' && state.peer === `127.0.0.1:${dead}`)?.state, 'unavailable');
    } finally {
      await proxy.stop();
      await live?.stop();
      await backup?.stop();
    }
  });

  it('gives up after proxy_next_upstream_tries, and at once with proxy_next_upstream off', async () => {
    const deadA = await closedPort();
    const deadB = await closedPort();
    const [live] = await names(1);
    const { log, lines } = memoryLog();
    const group = `server 127.0.0.1:${deadA}; server 127.0.0.1:${deadB}; server 127.0.0.1:${live?.port};`;
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream tries { ${group} }
      upstream off { ${group} }
      server { listen 127.0.0.1:1; proxy_next_upstream_tries 2; proxy_pass tries; }
      server { listen 127.0.0.1:2; proxy_next_upstream off; proxy_pass off; }
    }`, '/tmp', log);
    try {
      // Round robin starts at the first dead peer: two tries reach only the dead ones.
      const errors = (): string[] => lines.filter((line) => line.startsWith('[error]'));
      assert.equal((await exchange(proxy.ports[0] ?? 0, '')).length, 0);
      assert.equal(errors().length, 2, lines.join('\n'));
      assert.equal((await exchange(proxy.ports[1] ?? 0, '')).length, 0);
      assert.equal(errors().length, 3, lines.join('\n'));
    } finally {
      await proxy.stop();
      await live?.stop();
    }
  });

  // stream_upstream.t "recovery": a TCP connect that succeeds marks a recovered peer live at once
  // (ngx_stream_upstream_notify_round_robin_peer()); hitless waited for the session to end, so
  // sessions opened meanwhile went to the backup.
  it('sends every session to a recovered peer once one connect to it succeeded, though none has ended', async () => {
    const port = await closedPort();
    const [backup] = await names(1);
    const proxy = await serveStream(`stream { proxy_half_close on;
      upstream g { server 127.0.0.1:${port} fail_timeout=1s; server 127.0.0.1:${backup?.port} backup; }
      server { listen 127.0.0.1:1; proxy_pass g; }
    }`);
    const primary = createServer((socket) => {
      socket.on('error', () => undefined);
      socket.write('primary');
    });
    const held: Socket[] = [];
    try {
      // The primary is down: the session fails over to the backup and takes the primary out for fail_timeout.
      assert.equal((await exchange(proxy.port, '')).toString(), 'n0');
      await new Promise<void>((resolve) => primary.listen(port, '127.0.0.1', resolve));
      await sleep(1100);
      const answers: string[] = [];
      for (let i = 0; i < 3; i++) {
        const socket = connect({ port: proxy.port, host: '127.0.0.1' });
        held.push(socket);
        answers.push(await new Promise<string>((resolve, reject) => {
          socket.once('data', (chunk: Buffer) => resolve(chunk.toString()));
          socket.once('error', reject);
        }));
      }
      assert.deepEqual(answers, ['primary', 'primary', 'primary']);
    } finally {
      for (const socket of held) socket.destroy();
      primary.close();
      await proxy.stop();
      await backup?.stop();
    }
  });

  it('logs "no live upstreams" when every peer is down', async () => {
    const [peer] = await names(1);
    const { log, lines } = memoryLog();
    const dir = tempDir();
    const proxy = await serveStream(`stream { proxy_half_close on;
      log_format addr '$upstream_addr|$upstream_connect_time|$status';
      upstream g { server 127.0.0.1:${peer?.port} down; }
      server { listen 127.0.0.1:1; proxy_pass g; access_log ${dir.path}/addr.log addr; }
    }`, '/tmp', log);
    try {
      assert.equal((await exchange(proxy.port, '')).length, 0);
      assert.ok(lines.some((line) => line.includes('no live upstreams while connecting to upstream') && line.includes('upstream: "g"')), lines.join('\n'));
      assert.equal(peer?.accepted, 0);
      // stream_upstream_zone.t "no live upstreams": $upstream_addr names the group, as the balancer's NGX_BUSY does.
      const line = await waitFor('the log line', () => {
        proxy.runtime.flushLogs();
        return existsSync(`${dir.path}/addr.log`) ? readFileSync(`${dir.path}/addr.log`, 'utf8') : undefined;
      }, 5000);
      assert.equal(line, 'g|-|502\n');
    } finally {
      await proxy.stop();
      await peer?.stop();
      dir.remove();
    }
  });
});
