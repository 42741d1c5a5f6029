/**
 * Loopback servers for the probe tests: each binds 127.0.0.1 on port 0, counts the TCP
 * connections it accepts, and closes every one of them on close().
 */
import { createServer as createHttpServer, type RequestListener, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** A server under test and what it has seen. */
export interface LoopbackServer {
  /** `http://127.0.0.1:PORT/` (or https). */
  readonly url: string;
  readonly port: number;
  /** TCP connections accepted so far. */
  connections(): number;
  /** Connections still open on the server side. */
  openConnections(): number;
  /** Resolves once every accepted connection has closed, or rejects after `ms`. */
  waitAllClosed(ms?: number): Promise<void>;
  /** Stops listening and destroys every connection still open. */
  close(): Promise<void>;
}

function watch(server: Server, scheme: 'http' | 'https'): Promise<LoopbackServer> {
  const open = new Set<Socket>();
  let accepted = 0;
  // 'connection' fires for the TCP socket under TLS too, which is what the tests count.
  server.on('connection', (socket: Socket) => {
    accepted += 1;
    open.add(socket);
    socket.once('close', () => open.delete(socket));
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `${scheme}://127.0.0.1:${port}/`,
        port,
        connections: () => accepted,
        openConnections: () => open.size,
        waitAllClosed: (ms = 1000) =>
          new Promise<void>((done, fail) => {
            const started = Date.now();
            const poll = (): void => {
              if (open.size === 0) done();
              else if (Date.now() - started > ms) fail(new Error(`${open.size} connections still open after ${ms}ms`));
              else setTimeout(poll, 10);
            };
            poll();
          }),
        close: () =>
          new Promise<void>((done) => {
            for (const socket of open) socket.destroy();
            server.close(() => done());
          }),
      });
    });
  });
}

/** An HTTP server answering with `handler`. */
export function startHttpServer(handler: RequestListener): Promise<LoopbackServer> {
  return watch(createHttpServer(handler) as HttpServer, 'http');
}

/** An HTTPS server answering with `handler`, with the given PEM key and certificate. */
export function startHttpsServer(tls: { key: string; cert: string }, handler: RequestListener): Promise<LoopbackServer> {
  return watch(createHttpsServer(tls, handler), 'https');
}

/** A raw TCP server, for behaviour no well-behaved HTTP server would show. */
export function startTcpServer(onConnection: (socket: Socket) => void): Promise<LoopbackServer> {
  return watch(createNetServer(onConnection), 'http');
}

/** A loopback port that nothing listens on: bound once, then released. */
export async function refusedPort(): Promise<number> {
  const server = createNetServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
