/**
 * The upstream cycle's promise, watched from outside through `diagnostics_channel`: exactly one
 * `hitless:upstream:finish` per attempt, whatever ends it (success, timeout, upstream reset,
 * client abort, the worker's shutdown), for HTTP (proxy_pass), gRPC (grpc_pass) and TCP (stream
 * proxy_pass), and every peer's active count back at 0 afterwards.
 */
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { ClientHttp2Session } from 'node:http2';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import type { RequestFinishMessage, UpstreamConnectMessage, UpstreamFinishMessage } from '../../src/core/diagnostics.js';
import { upstreamConnectChannel } from '../../src/index.js';
import { clientSession, grpcCall, grpcPeer, type GrpcPeer } from '../http/grpc-peers.js';
import { serve, turns, type Served } from '../http/helpers.js';
import { closedPort, echoBackend, serveStream, startBackend, type Backend, type ServedStream } from '../stream/helpers.js';

/** What the channels said during one scenario. */
class Watch {
  readonly finishes: UpstreamFinishMessage[] = [];
  readonly connects: UpstreamConnectMessage[] = [];
  readonly #requests: RequestFinishMessage[] = [];
  #waiters: (() => void)[] = [];
  readonly #onFinish = (message: unknown): void => {
    this.finishes.push(message as UpstreamFinishMessage);
  };
  readonly #onConnect = (message: unknown): void => {
    this.connects.push(message as UpstreamConnectMessage);
  };
  readonly #onRequest = (message: unknown): void => {
    this.#requests.push(message as RequestFinishMessage);
    for (const waiter of this.#waiters.splice(0)) waiter();
  };

  start(): void {
    subscribe('hitless:upstream:finish', this.#onFinish);
    subscribe('hitless:request:finish', this.#onRequest);
    upstreamConnectChannel.subscribe(this.#onConnect);
  }

  stop(): void {
    unsubscribe('hitless:upstream:finish', this.#onFinish);
    unsubscribe('hitless:request:finish', this.#onRequest);
    upstreamConnectChannel.unsubscribe(this.#onConnect);
  }

  /** Resolves once `count` requests or sessions have finished (their access log was written), then lets stragglers in. */
  async requests(count = 1): Promise<void> {
    while (this.#requests.length < count) await new Promise<void>((resolve) => this.#waiters.push(resolve));
    await turns(5);
  }

  /** The outcomes seen, in order. */
  outcomes(): string[] {
    return this.finishes.map((finish) => `${finish.protocol} ${finish.outcome}${finish.reason === '' ? '' : ` ${finish.reason}`}`);
  }
}

/** Lets I/O run until `done` holds; fails after a bounded number of turns. */
async function until(done: () => boolean): Promise<void> {
  for (let i = 0; i < 100_000; i++) {
    if (done()) return;
    await turns(1);
  }
  assert.fail('the condition never held');
}

/** Every peer's active count, summed. */
function active(states: readonly { conns: number }[]): number {
  return states.reduce((sum, state) => sum + state.conns, 0);
}

describe('one hitless:upstream:finish per attempt', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-cycle-'));
  let watch: Watch;
  beforeEach(() => {
    watch = new Watch();
    watch.start();
  });
  afterEach(() => watch.stop());
  after(() => rmSync(dir, { recursive: true, force: true }));

  describe('HTTP (proxy_pass)', () => {
    let upstream: Server;
    let upstreamPort = 0;
    const upstreamSockets = new Set<Socket>();
    let served: Served;

    before(async () => {
      upstream = createServer((req, res) => {
        switch (req.url) {
          case '/ok':
            res.end('ok');
            return;
          case '/silent':
            return; // no answer: proxy_read_timeout
          case '/reset':
            req.socket.destroy();
            return;
          default: // /held: a head and part of the body, then nothing
            res.writeHead(200, { 'content-length': '100' });
            res.write('partial');
        }
      });
      upstream.on('connection', (socket: Socket) => {
        upstreamSockets.add(socket);
        socket.once('close', () => upstreamSockets.delete(socket));
      });
      await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
      upstreamPort = (upstream.address() as AddressInfo).port;
      served = await serve(`http {
        access_log off;
        upstream u { server 127.0.0.1:${upstreamPort}; }
        server {
          listen 127.0.0.1:8080;
          proxy_read_timeout 300ms;
          proxy_next_upstream off;
          location / { proxy_pass http://u; }
        }
      }`, dir);
    });
    after(async () => {
      await served.stop();
      for (const socket of upstreamSockets) socket.destroy();
      await new Promise<void>((resolve) => upstream.close(() => resolve()));
    });

    /** Sends a request on a raw socket; resolves with what came back once `until` matches it or the socket closed. */
    function ask(path: string, until?: RegExp): Promise<{ text: string; socket: Socket }> {
      return new Promise((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: served.port });
        let text = '';
        socket.setEncoding('latin1');
        socket.on('error', () => undefined);
        socket.on('data', (chunk: string) => {
          text += chunk;
          if (until?.test(text) === true) resolve({ text, socket });
        });
        socket.once('close', () => resolve({ text, socket }));
        socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
      });
    }

    it('success', async () => {
      const { text } = await ask('/ok');
      assert.match(text, /^HTTP\/1\.1 200/);
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['http ok']);
      assert.equal(watch.finishes[0]?.peer, `127.0.0.1:${upstreamPort}`);
      assert.equal(watch.finishes[0]?.attempt, 1);
      assert.ok((watch.finishes[0]?.timings.connectMs ?? -1) >= 0 && (watch.finishes[0]?.timings.headerMs ?? -1) >= 0);
      assert.equal(watch.connects.length, 1);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('timeout', async () => {
      const { text } = await ask('/silent');
      assert.match(text, /^HTTP\/1\.1 504/);
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['http failed timeout']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('upstream reset', async () => {
      const { text } = await ask('/reset');
      assert.match(text, /^HTTP\/1\.1 502/);
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['http failed error']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('client abort', async () => {
      const { socket } = await ask('/held', /partial/);
      socket.destroy();
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['http aborted']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('drain (the worker shuts down with a response in flight)', async () => {
      const { socket } = await ask('/held', /partial/);
      const closed = new Promise((resolve) => socket.once('close', resolve));
      served.runtime.close();
      await closed;
      await watch.requests();
      assert.equal(watch.finishes.length, 1, watch.outcomes().join());
      assert.notEqual(watch.finishes[0]?.outcome, 'failed');
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });
  });

  describe('gRPC (grpc_pass)', () => {
    let peer: GrpcPeer;
    let served: Served;
    let client: ClientHttp2Session | undefined;

    /** The client's session, a new one when hitless cut the last one short. */
    async function session(): Promise<ClientHttp2Session> {
      if (client === undefined || client.closed || client.destroyed) client = await clientSession(served.port);
      return client;
    }

    before(async () => {
      peer = await grpcPeer();
      served = await serve(`http {
        access_log off;
        upstream g { server 127.0.0.1:${peer.port}; }
        server {
          listen 127.0.0.1:8080 http2;
          grpc_read_timeout 300ms;
          location / { grpc_pass grpc://g; }
        }
      }`, dir);
    });
    after(async () => {
      client?.destroy();
      await served.stop();
      await peer.stop();
    });

    it('success', async () => {
      const reply = await grpcCall(await session(), '/test.Echo/Unary');
      assert.equal(reply.trailers['grpc-status'], '0');
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['grpc ok']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('timeout', async () => {
      // Part of the response is out: hitless can only cut the call short.
      await grpcCall(await session(), '/test.Echo/Hang').catch(() => undefined);
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['grpc failed timeout']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('upstream reset', async () => {
      const reply = await grpcCall(await session(), '/test.Echo/Reset');
      assert.equal(reply.status, 502);
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['grpc failed invalid_header']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('client abort', async () => {
      const stream = (await session()).request({ ':method': 'POST', ':path': '/test.Echo/Hang', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      stream.end();
      await new Promise((resolve) => stream.once('data', resolve));
      stream.close();
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['grpc aborted']);
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });

    it('drain (the worker shuts down with a call in flight)', async () => {
      const stream = (await session()).request({ ':method': 'POST', ':path': '/test.Echo/Hang', 'content-type': 'application/grpc', te: 'trailers' });
      stream.on('error', () => undefined);
      stream.end();
      await new Promise((resolve) => stream.once('data', resolve));
      served.runtime.close();
      await watch.requests();
      assert.equal(watch.finishes.length, 1, watch.outcomes().join());
      assert.notEqual(watch.finishes[0]?.outcome, 'failed');
      assert.equal(active(served.runtime.upstreamStates()), 0);
    });
  });

  describe('TCP (stream proxy_pass)', () => {
    let echo: Backend;
    let silent: Backend;
    let resetting: Backend;
    let dead = 0;
    let proxy: ServedStream;

    before(async () => {
      echo = await echoBackend();
      silent = await startBackend(() => undefined);
      resetting = await startBackend((socket) => socket.once('data', () => socket.resetAndDestroy()));
      dead = await closedPort();
      proxy = await serveStream(`stream { proxy_half_close on;
        upstream echo { server 127.0.0.1:${echo.port}; }
        upstream silent { server 127.0.0.1:${silent.port}; }
        upstream resetting { server 127.0.0.1:${resetting.port}; }
        upstream dead { server 127.0.0.1:${dead}; }
        server { listen 127.0.0.1:1; proxy_pass echo; }
        server { listen 127.0.0.1:2; proxy_timeout 300ms; proxy_pass silent; }
        server { listen 127.0.0.1:3; proxy_pass resetting; }
        server { listen 127.0.0.1:4; proxy_pass dead; }
      }`);
    });
    after(async () => {
      await proxy.stop();
      await echo.stop();
      await silent.stop();
      await resetting.stop();
    });

    /** Opens a session to the proxy's `index`th server and sends `data`; `halfClose` sends FIN after it. */
    function open(index: number, data: string, halfClose: boolean): { socket: Socket; text: Promise<string> } {
      const socket = connect({ host: '127.0.0.1', port: proxy.ports[index] ?? 0, allowHalfOpen: true });
      socket.on('error', () => undefined);
      let text = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => socket.end());
      const closed = new Promise<string>((resolve) => socket.once('close', () => resolve(text)));
      if (halfClose) socket.end(data);
      else socket.write(data);
      return { socket, text: closed };
    }

    it('success', async () => {
      assert.equal(await open(0, 'hello', true).text, 'hello');
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['tcp ok']);
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });

    it('timeout (proxy_timeout)', async () => {
      await open(1, 'anyone?', false).text;
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['tcp ok timeout']);
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });

    it('upstream reset', async () => {
      await open(2, 'reset me', false).text;
      await watch.requests();
      assert.equal(watch.finishes.length, 1, watch.outcomes().join());
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });

    it('connect failure', async () => {
      await open(3, 'nobody', false).text;
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['tcp failed error']);
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });

    it('client abort', async () => {
      const accepted = silent.accepted;
      const { socket } = open(1, 'bye', false);
      await until(() => silent.accepted > accepted);
      socket.destroy();
      await watch.requests();
      assert.equal(watch.finishes.length, 1, watch.outcomes().join());
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });

    it('drain (the worker shuts down with a session open)', async () => {
      const accepted = echo.accepted;
      const session = open(0, 'still here', false);
      await until(() => echo.accepted > accepted);
      await proxy.stop();
      await session.text;
      await watch.requests();
      assert.deepEqual(watch.outcomes(), ['tcp drained']);
      assert.equal(active(proxy.runtime.upstreamStates()), 0);
    });
  });
});
