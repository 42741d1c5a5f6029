/**
 * Stream upstreams side by side with Debian's nginx: a session with no live peer logs the group's
 * name as `$upstream_addr`; a UDP session whose peer refuses it goes to no other peer (its socket
 * is connected, ngx_stream_proxy_finalize() ends it); and a TCP peer chosen again past
 * fail_timeout is live from the moment it connects, so that the sessions opened while the first
 * one is still open go to it too (ngx_stream_upstream_notify_round_robin_peer()).
 */
import assert from 'node:assert/strict';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { existsSync, readFileSync } from 'node:fs';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { freePort } from '../deploy/helpers/nginx.js';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;

/** Waits (at most 5 s, checking every 20 ms) until `ready` holds for the file's text; returns it. */
async function fileWhen(path: string, ready: (text: string) => boolean): Promise<string> {
  for (let i = 0; i < 250; i++) {
    if (existsSync(path)) {
      const text = readFileSync(path, 'latin1');
      if (ready(text)) return text;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return assert.fail(`${path} did not reach the expected content within 5 s`);
}

/** A TCP server that writes its name to each connection and keeps it open. */
async function namedServer(name: string, port = 0): Promise<{ server: Server; port: number; close(): void }> {
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.write(name);
  });
  server.listen(port, '127.0.0.1');
  await once(server, 'listening');
  return {
    server,
    port: (server.address() as AddressInfo).port,
    close() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** Opens a connection and resolves with it and the first bytes it reads (at most 5 s). */
function firstWords(port: number): Promise<{ socket: Socket; words: string }> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host: '127.0.0.1', port });
    socket.setTimeout(5_000, () => socket.destroy(new Error(`nothing from port ${port} within 5 s`)));
    socket.on('error', reject);
    socket.once('data', (data: Buffer) => resolve({ socket, words: data.toString('latin1') }));
  });
}

/** A UDP port nothing listens on. */
async function closedUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const port = socket.address().port;
  socket.close();
  return port;
}

describe('stream upstreams: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let backup: Awaited<ReturnType<typeof namedServer>>;
  let revived: Awaited<ReturnType<typeof namedServer>> | undefined;
  let revivedPort = 0;
  let udpAnswer: UdpSocket;
  let udpAnswerPort = 0;
  let udpDead = 0;
  const logOf = (name: (typeof SERVERS)[number], file: string): string => join(pair.dir, name, 'logs', file);

  before(async () => {
    backup = await namedServer('backup');
    revivedPort = await freePort();
    udpDead = await closedUdpPort();
    udpAnswer = createSocket('udp4');
    udpAnswer.on('message', (message, from) => udpAnswer.send(`answer to ${message.toString('latin1')}`, from.port, from.address));
    udpAnswer.bind(0, '127.0.0.1');
    await once(udpAnswer, 'listening');
    udpAnswerPort = udpAnswer.address().port;
    pair = await startPair(
      (port, _dir, extra) => `load_module /usr/lib/nginx/modules/ngx_stream_module.so;
events {}
stream {
    log_format addr $upstream_addr;
    upstream none {
        server 127.0.0.1:${backup.port} down;
        server 127.0.0.1:${backup.port} backup down;
    }
    upstream udp {
        server 127.0.0.1:${udpDead};
        server 127.0.0.1:${udpAnswerPort};
    }
    upstream recovering {
        server 127.0.0.1:${revivedPort} fail_timeout=1s;
        server 127.0.0.1:${backup.port} backup;
    }
    server { listen 127.0.0.1:${port}; proxy_pass none; access_log logs/none.log addr; }
    server {
        listen 127.0.0.1:${extra[0] ?? 0} udp;
        proxy_pass udp;
        proxy_responses 1;
        proxy_timeout 1s;
        access_log logs/udp.log addr;
    }
    # The same port over TCP, which is what tells the harness the server listens.
    server { listen 127.0.0.1:${extra[0] ?? 0}; return ready; }
    server { listen 127.0.0.1:${extra[1] ?? 0}; proxy_pass recovering; }
}
`,
      undefined,
      2,
    );
  });

  after(async () => {
    await pair?.stop();
    backup?.close();
    revived?.close();
    udpAnswer?.close();
  });

  it('logs the group name as $upstream_addr when no peer is live', async () => {
    for (const name of SERVERS) {
      const socket = createConnection({ host: '127.0.0.1', port: pair.ports[name] });
      socket.on('error', () => undefined);
      socket.resume();
      await once(socket, 'close');
    }
    // The last line: the harness's own probe of the port may have logged one before.
    const last = (text: string): string => text.trimEnd().split('\n').pop() ?? '';
    const [ours = '', theirs = ''] = await Promise.all(SERVERS.map((name) => fileWhen(logOf(name, 'none.log'), (text) => text.endsWith('\n'))));
    assert.equal(last(theirs), 'none', 'nginx itself');
    assert.equal(last(ours), last(theirs));
  });

  it('sends a refused datagram session to no other peer', async () => {
    const logs: string[] = [];
    for (const name of SERVERS) {
      const client = createSocket('udp4');
      client.on('message', () => undefined);
      client.send('first', pair.extra[name][0] ?? 0, '127.0.0.1');
      // The session ends with no answer (nginx: once proxy_timeout runs out); its log line says
      // which peers it went to.
      logs.push(await fileWhen(logOf(name, 'udp.log'), (text) => text.endsWith('\n')));
      // The refusing peer is failed now: the next session goes to the other one.
      const answered = new Promise<string>((resolve) => client.once('message', (message) => resolve(message.toString('latin1'))));
      client.send('second', pair.extra[name][0] ?? 0, '127.0.0.1');
      assert.equal(await answered, 'answer to second', name);
      client.close();
    }
    assert.equal(logs[1], `127.0.0.1:${udpDead}\n`, 'nginx itself');
    assert.equal(logs[0], logs[1]);
  });

  it('sends every new session to a peer that came back, once the first one connected', async () => {
    const first = await Promise.all(SERVERS.map((name) => firstWords(pair.extra[name][1] ?? 0)));
    assert.deepEqual(first.map(({ words }) => words), ['backup', 'backup'], 'the dead peer failed once, the backup took the session');
    for (const { socket } of first) socket.destroy();
    revived = await namedServer('revived', revivedPort);
    // fail_timeout=1s must pass before the failed peer is chosen again; nginx counts it in whole seconds.
    await new Promise((resolve) => setTimeout(resolve, 3_100));
    for (const name of SERVERS) {
      const held: Socket[] = [];
      const words: string[] = [];
      for (let i = 0; i < 3; i++) {
        const opened = await firstWords(pair.extra[name][1] ?? 0);
        held.push(opened.socket);
        words.push(opened.words);
      }
      for (const socket of held) socket.destroy();
      assert.deepEqual(words, ['revived', 'revived', 'revived'], name);
    }
  });
});
