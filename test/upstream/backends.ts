/** Upstream servers for the balancer tests: node:http servers on loopback that answer with their own name. */
import { createServer, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A backend that answers every request with its name, or holds it while `hold` is set. */
export interface Backend {
  readonly name: string;
  readonly port: number;
  /** Requests seen. */
  hits: number;
  /** When set, requests wait until `release()`. */
  hold: boolean;
  /** Answers every held request. */
  release(): void;
  /** Answers health checks (`/health`) with this status. */
  healthStatus: number;
  /** When above 0, every request waits this long (ms) before its response head. */
  delayMs: number;
  stop(): Promise<void>;
  /** Starts again on the same port after stop(). */
  restart(): Promise<void>;
}

/** Starts a backend named `name` on 127.0.0.1 (or `host`), port 0 unless given. */
export async function startBackend(name: string, options: { host?: string; port?: number } = {}): Promise<Backend> {
  const host = options.host ?? '127.0.0.1';
  const held: ServerResponse[] = [];
  const sockets = new Set<Socket>();
  let server: Server | undefined;
  const backend: Backend = {
    name,
    port: options.port ?? 0,
    hits: 0,
    hold: false,
    healthStatus: 200,
    delayMs: 0,
    release() {
      for (const res of held.splice(0)) res.end(name);
    },
    async stop() {
      const running = server;
      server = undefined;
      if (running === undefined) return;
      backend.release();
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => running.close(() => resolve()));
    },
    async restart() {
      await listen(backend.port);
    },
  };
  const listen = async (port: number): Promise<void> => {
    const created = createServer((req, res) => {
      if (req.url?.startsWith('/health')) {
        res.writeHead(backend.healthStatus, { 'content-type': 'text/plain', 'x-backend': name });
        res.end(`health of ${name}`);
        return;
      }
      backend.hits++;
      const answer = (): void => {
        if (res.destroyed) return;
        res.writeHead(200, { 'content-type': 'text/plain' });
        if (backend.hold) held.push(res);
        else res.end(name);
      };
      if (backend.delayMs > 0) setTimeout(answer, backend.delayMs);
      else answer();
    });
    created.keepAliveTimeout = 1_000;
    created.on('connection', (socket: Socket) => {
      sockets.add(socket);
      socket.on('close', () => sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      created.once('error', reject);
      created.listen(port, host, resolve);
    });
    server = created;
    (backend as { port: number }).port = (created.address() as AddressInfo).port;
  };
  await listen(backend.port);
  return backend;
}
