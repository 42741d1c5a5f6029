/**
 * proxy_half_close (nginx 1.21.4), default off: the first FIN ends the stream session once the
 * other side has been sent everything (ngx_stream_proxy_test_finalize()). hitless used to pass
 * every FIN on and wait for both, so a client that kept its socket open after the upstream's
 * answer kept the session (and a gracefully stopping worker) alive: stream_unix.t,
 * stream_proxy_protocol.t and stream_proxy_complex.t hung at their end for that.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { errorOf, serveStream, startBackend, type Backend, type ServedStream } from './helpers.js';

/** Resolves, with what `socket` received, at its FIN. */
function ended(socket: Socket): Promise<string> {
  let got = '';
  socket.on('data', (chunk: Buffer) => (got += chunk.toString()));
  socket.on('error', () => undefined);
  return new Promise((resolve) => socket.on('end', () => resolve(got)));
}

describe('stream proxy_half_close off (the default)', () => {
  let answering: Backend;
  let silent: Backend;
  const sockets: Socket[] = [];
  const served: ServedStream[] = [];

  before(async () => {
    // Answers and sends its FIN at once.
    answering = await startBackend((socket) => socket.end('answer'));
    // Never sends anything, nor a FIN.
    silent = await startBackend(() => undefined);
  });
  after(async () => {
    for (const socket of sockets) socket.destroy();
    for (const one of served) await one.stop();
    await answering.stop();
    await silent.stop();
  });

  /** A client that keeps its own side open after the other side's FIN (allowHalfOpen), as Perl's sockets do. */
  const client = (port: number): Socket => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    sockets.push(socket);
    return socket;
  };

  it('ends the session at the upstream\'s FIN, though the client keeps its side open: a graceful drain completes', async () => {
    const proxy = await serveStream(`stream { server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${answering.port}; } }`);
    served.push(proxy);
    assert.equal(await ended(client(proxy.port)), 'answer');
    // With every FIN passed on and both awaited, this session (and a stopping worker) never ended.
    await proxy.runtime.drain();
    assert.equal(proxy.runtime.connections, 0);
  });

  it('ends the session at the client\'s FIN, though the upstream never sends one: a graceful drain completes', async () => {
    const proxy = await serveStream(`stream { server { listen 127.0.0.1:1; proxy_pass 127.0.0.1:${silent.port}; } }`);
    served.push(proxy);
    const socket = client(proxy.port);
    socket.on('connect', () => socket.end('bye'));
    assert.equal(await ended(socket), '');
    await proxy.runtime.drain();
    assert.equal(proxy.runtime.connections, 0);
  });

  it('keeps the other direction open with proxy_half_close on, until both sides have sent their FIN', async () => {
    const proxy = await serveStream(`stream { server { listen 127.0.0.1:1; proxy_half_close on; proxy_pass 127.0.0.1:${answering.port}; } }`);
    served.push(proxy);
    const socket = client(proxy.port);
    assert.equal(await ended(socket), 'answer');
    assert.equal(proxy.runtime.connections, 1);
    const drained = proxy.runtime.drain();
    socket.end();
    await drained;
    assert.equal(proxy.runtime.connections, 0);
  });

  it('takes on or off only, in stream and server', () => {
    assert.match(errorOf('stream { server { listen 1234; proxy_pass 127.0.0.1:9; proxy_half_close maybe; } }'), /^invalid value "maybe" in "proxy_half_close" directive, it must be "on" or "off" in \/x\.conf:1$/);
    assert.match(errorOf('stream { proxy_half_close on on; server { listen 1234; proxy_pass 127.0.0.1:9; } }'), /^invalid number of arguments in "proxy_half_close" directive in \/x\.conf:1$/);
  });
});
