/** Upstream servers for the proxy tests: real node:http and raw TCP servers on loopback, port 0. */
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/** A running upstream: its port, what it saw, and how to stop it. */
export interface Upstream {
  readonly port: number;
  /** Requests received, in order. */
  readonly requests: { method: string; url: string; headers: IncomingMessage['headers']; rawHeaders: string[]; body: string; at: number }[];
  /** TCP connections accepted so far. */
  connections: number;
  stop(): Promise<void>;
}

/** A node:http upstream whose handler decides each response. */
export async function httpUpstream(handler: (req: IncomingMessage, res: ServerResponse, body: string) => void): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const upstream: Upstream = { port: 0, requests: [], connections: 0, stop: async () => undefined };
  const server: HttpServer = createHttpServer((req, res) => {
    let body = '';
    req.setEncoding('latin1');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => {
      upstream.requests.push({ method: req.method ?? '', url: req.url ?? '', headers: req.headers, rawHeaders: req.rawHeaders, body, at: Date.now() });
      handler(req, res, body);
    });
  });
  server.keepAliveTimeout = 60_000;
  server.on('connection', (socket: Socket) => {
    upstream.connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(upstream, {
    port: (server.address() as AddressInfo).port,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A raw TCP upstream: `onConnection` does whatever the test needs with the socket. */
export async function rawUpstream(onConnection: (socket: Socket, index: number) => void): Promise<Upstream> {
  const sockets = new Set<Socket>();
  const upstream: Upstream = { port: 0, requests: [], connections: 0, stop: async () => undefined };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    onConnection(socket, upstream.connections++);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(upstream, {
    port: (server.address() as AddressInfo).port,
    stop: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A loopback port with nothing listening (bound, read, closed). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
