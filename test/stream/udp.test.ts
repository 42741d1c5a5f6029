/**
 * UDP proxying (`listen ... udp`): datagram sessions per client address and port, proxy_responses,
 * proxy_timeout, balancing across sessions, a peer that is down, a reload with a real master,
 * and the `-t` errors of nginx's ngx_stream_core_listen() for udp.
 */
import assert from 'node:assert/strict';
import { createSocket, type RemoteInfo, type Socket as DgramSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { ErrorLog } from '../../src/core/log.js';
import { ListeningSockets } from '../../src/process/listening-sockets.js';
import { StreamRuntime, collectStreamListens } from '../../src/stream/runtime.js';
import { runHitless } from '../helpers/bin.js';
import { tempDir } from '../helpers/tmp.js';
import { MasterUnderTest, TestPrefix, freePort, isAlive, sleep, startMaster, waitFor } from '../e2e/helpers/masters.js';
import { clientHello, errorOf, load } from './helpers.js';

/** A UDP backend on 127.0.0.1: answers each datagram with `name:` and the datagram; records the source ports it saw. */
class UdpBackend {
  readonly socket: DgramSocket;
  readonly sources: number[] = [];
  received = 0;

  constructor(readonly name: string) {
    this.socket = createSocket('udp4');
    this.socket.on('message', (data: Buffer, from: RemoteInfo) => {
      this.received++;
      if (!this.sources.includes(from.port)) this.sources.push(from.port);
      this.socket.send(Buffer.concat([Buffer.from(`${this.name}:`), data]), from.port, from.address);
    });
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return this;
  }

  get port(): number {
    return this.socket.address().port;
  }

  close(): void {
    this.socket.close();
  }
}

/** A client socket that collects the datagrams it receives. */
class UdpClient {
  readonly socket = createSocket('udp4');
  readonly received: string[] = [];

  constructor() {
    this.socket.on('message', (data: Buffer) => this.received.push(data.toString()));
  }

  async start(): Promise<this> {
    await new Promise<void>((resolve) => this.socket.bind(0, '127.0.0.1', resolve));
    return this;
  }

  send(port: number, text: string | Buffer): void {
    this.socket.send(text, port, '127.0.0.1');
  }

  /** Sends `text` and waits for the one answer that ends with it. */
  async ask(port: number, text: string, timeoutMs = 5_000): Promise<string> {
    this.send(port, text);
    return waitFor(`an answer to ${text}`, () => this.received.find((answer) => answer.endsWith(`:${text}`)), timeoutMs);
  }

  close(): void {
    this.socket.close();
  }
}

/** A stream runtime with its UDP sockets bound by the master's own code (ListeningSockets), on ephemeral ports. */
async function serveUdp(text: string): Promise<{ runtime: StreamRuntime; port: number; stop(): void }> {
  const config = load(text, '/tmp');
  const runtime = new StreamRuntime(config, { log: new ErrorLog([]) });
  const sockets = new ListeningSockets(new ErrorLog([]));
  let port = 0;
  for (const spec of collectStreamListens(config)) {
    sockets.open([{ ...spec, port: 0 }]);
    const handle = sockets.handle(spec.key) as unknown as { getsockname(out: { port?: number }): number };
    const out: { port?: number } = {};
    handle.getsockname(out);
    port ||= out.port ?? 0;
    runtime.attachUdp(spec.key, handle);
  }
  return { runtime, port, stop: () => runtime.close() };
}

function streamConf(logPath: string, server: string, upstream = ''): string {
  return `stream { proxy_half_close on;
    log_format udp '$protocol $status $remote_addr $bytes_received $bytes_sent $upstream_addr $session_time';
    ${upstream}
    server { listen 127.0.0.1:9 udp; access_log ${logPath} udp; ${server} }
  }`;
}

function logLines(runtime: StreamRuntime, path: string): string[] {
  runtime.flushLogs();
  try {
    return readFileSync(path, 'utf8').split('\n').filter((line) => line.length > 0);
  } catch {
    return [];
  }
}

describe('stream UDP sessions', () => {
  const dir = tempDir();
  const backends: UdpBackend[] = [];
  const clients: UdpClient[] = [];
  const served: { stop(): void }[] = [];
  let seq = 0;

  async function backend(name: string): Promise<UdpBackend> {
    const started = await new UdpBackend(name).start();
    backends.push(started);
    return started;
  }
  async function client(): Promise<UdpClient> {
    const started = await new UdpClient().start();
    clients.push(started);
    return started;
  }
  async function serve(server: string, upstream = ''): Promise<{ runtime: StreamRuntime; port: number; log: string }> {
    const log = `${dir.path}/udp-${++seq}.log`;
    const result = await serveUdp(streamConf(log, server, upstream));
    served.push(result);
    return { ...result, log };
  }

  after(() => {
    for (const s of served) s.stop();
    for (const c of clients) c.close();
    for (const b of backends) b.close();
    dir.remove();
  });

  it('echoes many datagrams of several clients, each client getting its own answers', async () => {
    const echo = await backend('echo');
    const { runtime, port, log } = await serve(`proxy_pass 127.0.0.1:${echo.port}; proxy_timeout 200ms;`);
    const all = await Promise.all([1, 2, 3].map(() => client()));
    await Promise.all(all.map(async (c, i) => {
      for (let n = 0; n < 20; n++) assert.equal(await c.ask(port, `c${i}-${n}`), `echo:c${i}-${n}`);
    }));
    for (const [i, c] of all.entries()) {
      assert.equal(c.received.length, 20);
      assert.ok(c.received.every((answer) => answer.startsWith(`echo:c${i}-`)));
    }
    // One session, thus one upstream socket, per client.
    assert.equal(echo.sources.length, 3);
    const lines = await waitFor('three log lines', () => {
      const found = logLines(runtime, log);
      return found.length === 3 ? found : undefined;
    });
    for (const line of lines) assert.match(line, new RegExp(`^UDP 200 127\\.0\\.0\\.1 \\d+ \\d+ 127\\.0\\.0\\.1:${echo.port} \\d+\\.\\d{3}$`));
    const sent = lines.map((line) => line.split(' ')).map(([, , , received, bytesSent]) => [Number(received), Number(bytesSent)]);
    // c0-0..c0-9 are 4 bytes, c0-10..c0-19 are 5: 90 bytes from each client, 90 + 20 * 5 ("echo:") back.
    assert.deepEqual(sent, [[90, 190], [90, 190], [90, 190]]);
  });

  it('ends the session after one answer with proxy_responses 1: the next datagram is a new session', async () => {
    const echo = await backend('one');
    const { runtime, port, log } = await serve(`proxy_pass 127.0.0.1:${echo.port}; proxy_responses 1;`);
    const c = await client();
    assert.equal(await c.ask(port, 'first'), 'one:first');
    await waitFor('the first session to end', () => (logLines(runtime, log).length === 1 ? true : undefined));
    assert.equal(await c.ask(port, 'second'), 'one:second');
    assert.equal(echo.sources.length, 2, 'a new upstream socket for the second session');
    await waitFor('the second session to end', () => (logLines(runtime, log).length === 2 ? true : undefined));
    assert.equal(runtime.connections, 0);
  });

  it('ends an idle session after proxy_timeout', async () => {
    const echo = await backend('idle');
    const { runtime, port, log } = await serve(`proxy_pass 127.0.0.1:${echo.port}; proxy_timeout 300ms;`);
    const c = await client();
    assert.equal(await c.ask(port, 'a'), 'idle:a');
    assert.equal(await c.ask(port, 'b'), 'idle:b');
    assert.equal(echo.sources.length, 1);
    const [line] = await waitFor('the session to time out', () => {
      const found = logLines(runtime, log);
      return found.length === 1 ? found : undefined;
    }, 5_000);
    assert.match(line ?? '', /^UDP 200 /);
    assert.equal(runtime.connections, 0);
    assert.equal(await c.ask(port, 'c'), 'idle:c');
    assert.equal(echo.sources.length, 2);
  });

  it('balances sessions round robin across two peers', async () => {
    const a = await backend('a');
    const b = await backend('b');
    const { port } = await serve('proxy_pass pair; proxy_responses 1;', `upstream pair { server 127.0.0.1:${a.port}; server 127.0.0.1:${b.port}; }`);
    const c = await client();
    const names: string[] = [];
    for (let n = 0; n < 6; n++) {
      c.received.length = 0;
      c.send(port, `r${n}`);
      const answer = await waitFor(`answer r${n}`, () => c.received[0]);
      names.push(answer.split(':')[0] ?? '');
      // The session ends after its answer; wait so that the next datagram opens a new one.
      await sleep(20);
    }
    assert.equal(names.filter((name) => name === 'a').length, 3, names.join());
    assert.equal(names.filter((name) => name === 'b').length, 3, names.join());
    for (let n = 1; n < names.length; n++) assert.notEqual(names[n], names[n - 1], names.join());
  });

  it('logs 502 and answers nothing when the peer is down', async () => {
    const gone = createSocket('udp4');
    await new Promise<void>((resolve) => gone.bind(0, '127.0.0.1', resolve));
    const downPort = gone.address().port;
    await new Promise<void>((resolve) => gone.close(resolve));
    const { runtime, port, log } = await serve(`proxy_pass 127.0.0.1:${downPort}; proxy_timeout 2s;`);
    const c = await client();
    c.send(port, 'anyone');
    const [line] = await waitFor('the failed session in the log', () => {
      const found = logLines(runtime, log);
      return found.length === 1 ? found : undefined;
    }, 5_000);
    assert.match(line ?? '', new RegExp(`^UDP 502 127\\.0\\.0\\.1 6 0 127\\.0\\.0\\.1:${downPort} `));
    assert.deepEqual(c.received, []);
  });

  it('sends a session whose peer refuses it to no other peer, and the next session to the next peer', async () => {
    // nginx-tests stream_udp_upstream.t "no next upstream for dgram": a UDP socket is connected at
    // once, and an error read from it later ends the session (ngx_stream_proxy_finalize()).
    const gone = createSocket('udp4');
    await new Promise<void>((resolve) => gone.bind(0, '127.0.0.1', resolve));
    const downPort = gone.address().port;
    await new Promise<void>((resolve) => gone.close(resolve));
    const live = await backend('live');
    const { runtime, port, log } = await serve('proxy_pass pair; proxy_responses 1;', `upstream pair { server 127.0.0.1:${downPort}; server 127.0.0.1:${live.port}; }`);
    const c = await client();
    c.send(port, 'refused!');
    const [line] = await waitFor('the session in the log', () => {
      const found = logLines(runtime, log);
      return found.length === 1 ? found : undefined;
    });
    assert.match(line ?? '', new RegExp(`^UDP 502 127\\.0\\.0\\.1 8 0 127\\.0\\.0\\.1:${downPort} `));
    assert.deepEqual(c.received, []);
    assert.deepEqual(live.sources, []);
    // The refusing peer is failed now (max_fails=1): the next session goes to the other one.
    assert.equal(await (await client()).ask(port, 'again'), 'live:again');
  });

  it('starts a new session after proxy_requests datagrams', async () => {
    const echo = await backend('req');
    const { port } = await serve(`proxy_pass 127.0.0.1:${echo.port}; proxy_requests 2; proxy_responses 1;`);
    const c = await client();
    assert.equal(await c.ask(port, 'a'), 'req:a');
    assert.equal(await c.ask(port, 'b'), 'req:b');
    assert.equal(echo.sources.length, 1);
    assert.equal(await c.ask(port, 'c'), 'req:c');
    assert.equal(echo.sources.length, 2);
  });

  // stream_udp_limit_rate.t: proxy_*_rate was an unknown directive. A datagram is never split; a
  // rate delays the next read by n / rate seconds (ngx_stream_proxy_process()).
  it('proxy_download_rate delays the second answer without splitting it; proxy_upload_rate drops a datagram sent while reading waits', async () => {
    const text = '1234567890'.repeat(100);
    const down = await backend('down');
    const slow = await serve(`proxy_pass 127.0.0.1:${down.port}; proxy_download_rate 500; proxy_timeout 5s;`);
    const c = await client();
    assert.equal(await c.ask(slow.port, `a${text}`), `down:a${text}`);
    c.send(slow.port, `b${text}`);
    // 1005 bytes at 500 bytes/s: the next answer is read 2 s later; it has not come after 500 ms.
    await sleep(500);
    assert.equal(c.received.length, 1);
    assert.equal(down.received, 2, 'the upstream got the datagram and answered at once');
    assert.equal(await waitFor('the delayed answer', () => c.received[1], 5000), `down:b${text}`);

    const up = await backend('up');
    const limited = await serve(`proxy_pass 127.0.0.1:${up.port}; proxy_upload_rate 500; proxy_timeout 5s;`);
    const d = await client();
    assert.equal(await d.ask(limited.port, `a${text}`), `up:a${text}`);
    d.send(limited.port, `b${text}`);
    await sleep(500);
    // nginx does not read a client's datagram while the read waits: it is lost, not queued.
    assert.equal(up.received, 1);
    await sleep(1700);
    assert.equal(await d.ask(limited.port, `c${text}`), `up:c${text}`);
    assert.equal(up.received, 2);
  });

  // nginx 1.25.5: ssl_preread's name chooses among the servers of an address, for datagrams too.
  it('chooses the server of a shared UDP address by the first datagram\'s ClientHello name', async () => {
    const log = `${dir.path}/udp-${++seq}.log`;
    const result = await serveUdp(`stream {
      server { listen 127.0.0.1:9 udp; ssl_preread on; server_name one; return "one:$server_name"; access_log ${log} udp; }
      server { listen 127.0.0.1:9 udp; ssl_preread on; server_name ~^(?<x>tw)o$; return "two:$x"; }
      log_format udp '$server_name';
    }`);
    served.push(result);
    const c = await client();
    c.send(result.port, clientHello('two'));
    assert.equal(await waitFor('the answer', () => c.received[0], 5000), 'two:tw');
    const d = await client();
    d.send(result.port, clientHello('other'));
    assert.equal(await waitFor('the answer', () => d.received[0], 5000), 'one:one');
  });

  it('answers a return with one datagram', async () => {
    const { port } = await serve('return "$protocol $remote_addr";');
    const c = await client();
    c.send(port, 'x');
    assert.equal(await waitFor('the return value', () => c.received[0]), 'UDP 127.0.0.1');
  });
});

describe('stream UDP configuration errors', () => {
  const cases: [string, string][] = [
    ['stream { server { listen 1234 udp ssl; proxy_pass 127.0.0.1:9; } }', '"listen" directive "ssl" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234 udp proxy_protocol; proxy_pass 127.0.0.1:9; } }', '"listen" directive "proxy_protocol" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234 udp backlog=5; proxy_pass 127.0.0.1:9; } }', '"listen" directive "backlog" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234 udp so_keepalive=on; proxy_pass 127.0.0.1:9; } }', '"listen" directive "so_keepalive" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234 udp fastopen=3; proxy_pass 127.0.0.1:9; } }', '"listen" directive "fastopen" parameter is incompatible with "udp" in /x.conf:1'],
    ['stream { server { listen 1234 udp; listen 1234 udp; proxy_pass 127.0.0.1:9; } }', 'a duplicate listen 0.0.0.0:1234 in /x.conf:1'],
    ['stream { server { listen unix:/tmp/x.sock udp; proxy_pass 127.0.0.1:9; } }', 'the "udp" parameter with a unix domain socket is not supported by hitless in /x.conf:1'],
    ['stream { server { listen 1234 udp; proxy_pass 127.0.0.1:9; proxy_responses x; } }', '"proxy_responses" directive invalid number in /x.conf:1'],
    ['stream { server { listen 1234 udp; proxy_pass 127.0.0.1:9; proxy_requests -1; } }', '"proxy_requests" directive invalid number in /x.conf:1'],
    ['http { server { listen 1234 udp; } }', 'invalid parameter "udp" in /x.conf:1'],
  ];
  for (const [text, message] of cases) {
    it(message, () => {
      assert.equal(errorOf(text), message);
    });
  }

  it('accepts udp with reuseport, bind and rcvbuf, and the same port over TCP and UDP', () => {
    const config = load(`stream {
      server { listen 127.0.0.1:5353 udp reuseport bind rcvbuf=64k; proxy_pass 127.0.0.1:53; proxy_responses 1; proxy_requests 2; }
      server { listen 127.0.0.1:5353; proxy_pass 127.0.0.1:53; }
    }`);
    assert.deepEqual(collectStreamListens(config).map((spec) => spec.key).sort(), ['127.0.0.1:5353', 'udp:127.0.0.1:5353']);
  });

  it('prints nginx\'s message with -t', () => {
    const dir = tempDir();
    try {
      const conf = `${dir.path}/udp.conf`;
      writeFileSync(conf, 'events {}\nstream {\n  server {\n    listen 127.0.0.1:5353 udp ssl;\n    proxy_pass 127.0.0.1:53;\n  }\n}\n');
      const result = runHitless(['-t', '-c', conf, '-p', `${dir.path}/`]);
      assert.equal(result.status, 1);
      assert.match(result.stderr, new RegExp(`\\[emerg\\] "listen" directive "ssl" parameter is incompatible with "udp" in ${conf.replace(/[.]/g, '\\.')}:4`));
    } finally {
      dir.remove();
    }
  });
});

describe('stream UDP across a reload', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let echo: UdpBackend | undefined;
  const clients: UdpClient[] = [];
  let httpPort = 0;
  let udpPort = 0;

  function conf(mark: string): string {
    return `worker_processes 2;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${httpPort}; location / { return 200 "up\\n"; } }
}
stream {
    server { listen 127.0.0.1:${udpPort} udp; proxy_pass 127.0.0.1:${echo?.port ?? 0}; proxy_timeout 1s; }
}
# ${mark}
`;
  }

  before(async () => {
    echo = await new UdpBackend('echo').start();
    httpPort = await freePort();
    // The free TCP port is almost always a free UDP port too; the master's bind() tells if not.
    udpPort = await freePort();
    master = await startMaster({ prefix, port: httpPort, program: 'hitless', conf: conf('first') });
  });
  after(async () => {
    await master?.stop();
    for (const c of clients) c.close();
    echo?.close();
    prefix.remove();
  });

  it('loses no datagram of sessions that start after the reload, and keeps the socket', async () => {
    assert.ok(master !== undefined);
    const firstWorkers = await waitFor('two workers', () => (master?.liveWorkers().length === 2 ? master.liveWorkers() : undefined));
    const before = await new UdpClient().start();
    clients.push(before);
    assert.equal(await before.ask(udpPort, 'before'), 'echo:before');

    // Clients keep sending through the reload: new sessions, one datagram at a time.
    let stop = false;
    const failures: string[] = [];
    let n = 0;
    const traffic = (async () => {
      while (!stop) {
        const c = await new UdpClient().start();
        clients.push(c);
        try {
          await c.ask(udpPort, `d${n++}`, 3_000);
        } catch (err) {
          failures.push(String(err));
        }
        c.close();
        clients.splice(clients.indexOf(c), 1);
      }
    })();

    prefix.writeConf(conf('reloaded'));
    master.signal('SIGHUP');
    await prefix.waitForLog('gracefully shutting down', 2);
    const newWorkers = await waitFor('the new workers', () => {
      const fresh = master?.liveWorkers().filter((pid) => !firstWorkers.includes(pid)) ?? [];
      return fresh.length === 2 ? fresh : undefined;
    });
    const afterReload = n;
    // Sessions that start once the new workers run: every datagram answered.
    await waitFor('sessions after the reload', () => (n >= afterReload + 20 ? true : undefined), 20_000);
    stop = true;
    await traffic;
    assert.deepEqual(failures, []);

    // The old workers exit once their sessions time out; the socket lives on in the new ones.
    await waitFor('the old workers to exit', () => (firstWorkers.some(isAlive) ? undefined : true), 15_000);
    assert.deepEqual(master.liveWorkers().sort(), [...newWorkers].sort());
    const late = await new UdpClient().start();
    clients.push(late);
    for (let i = 0; i < 10; i++) assert.equal(await late.ask(udpPort, `late${i}`), `echo:late${i}`);
  });
});

describe('stream UDP: a session on a draining worker', () => {
  const prefix = new TestPrefix();
  let master: MasterUnderTest | undefined;
  let slow: DgramSocket | undefined;
  let client: UdpClient | undefined;
  let httpPort = 0;
  let udpPort = 0;

  const conf = (mark: string, backend: number): string => `worker_processes 1;
error_log logs/error.log notice;
events {}
http {
    access_log off;
    server { listen 127.0.0.1:${httpPort}; location / { return 200 "up\\n"; } }
}
stream {
    server { listen 127.0.0.1:${udpPort} udp; proxy_pass 127.0.0.1:${backend}; proxy_timeout 5s; proxy_responses 1; }
}
# ${mark}
`;

  before(async () => {
    // A backend that answers each datagram 800 ms later, long enough for a reload to start between.
    slow = createSocket('udp4');
    slow.on('message', (data: Buffer, from: RemoteInfo) => {
      setTimeout(() => slow?.send(Buffer.concat([Buffer.from('slow:'), data]), from.port, from.address), 800);
    });
    await new Promise<void>((resolve) => slow?.bind(0, '127.0.0.1', resolve));
    httpPort = await freePort();
    udpPort = await freePort();
    master = await startMaster({ prefix, port: httpPort, program: 'hitless', conf: conf('first', slow.address().port) });
  });
  after(async () => {
    await master?.stop();
    client?.close();
    slow?.close();
    prefix.remove();
  });

  it('still gets its upstream\'s answer after a reload, through the old worker, which then exits', async () => {
    assert.ok(master !== undefined && slow !== undefined);
    const [oldWorker] = await waitFor('the worker', () => (master?.liveWorkers().length === 1 ? master.liveWorkers() : undefined));
    client = await new UdpClient().start();
    const answer = client.ask(udpPort, 'in-flight', 10_000);
    await sleep(200);
    prefix.writeConf(conf('reloaded', slow.address().port));
    master.signal('SIGHUP');
    await prefix.waitForLog('gracefully shutting down');
    assert.equal(await answer, 'slow:in-flight');
    await waitFor('the old worker to exit', () => (isAlive(oldWorker as number) ? undefined : true), 15_000);
    assert.equal(await client.ask(udpPort, 'after'), 'slow:after');
  });
});
