/** Shared helpers of the stream tests: serve a configuration's stream block on loopback, echo backends, raw clients. */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { ErrorLog } from '../../src/core/log.js';
import type { ServingState } from '../../src/http/serving-state.js';
import { StreamRuntime, collectStreamListens } from '../../src/stream/runtime.js';
import { load } from '../http/helpers.js';

export { errorOf, load } from '../http/helpers.js';

/** A stream runtime serving a configuration on loopback sockets this test created itself. */
export interface ServedStream {
  readonly runtime: StreamRuntime;
  /** The loopback port of each listen key, in the configuration's order. */
  readonly ports: readonly number[];
  readonly port: number;
  stop(): Promise<void>;
}

/** Builds a stream runtime and attaches a 127.0.0.1 port 0 socket for every listen, as a master would hand them over. */
export async function serveStream(text: string, prefix = '/tmp', log: ErrorLog = new ErrorLog([]), state?: ServingState): Promise<ServedStream> {
  const config = load(text, prefix);
  const runtime = new StreamRuntime(config, state === undefined ? { log } : { log, state });
  const ports: number[] = [];
  const servers: Server[] = [];
  for (const spec of collectStreamListens(config)) {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    runtime.attach(spec.key, server);
    servers.push(server);
    const address = server.address();
    ports.push(typeof address === 'object' && address !== null ? address.port : 0);
  }
  return {
    runtime,
    ports,
    port: ports[0] ?? 0,
    async stop() {
      for (const server of servers) server.close();
      runtime.close();
    },
  };
}

/** A TCP backend on 127.0.0.1 port 0. */
export interface Backend {
  readonly port: number;
  /** Connections accepted so far. */
  readonly accepted: number;
  /** The first bytes of each connection, as received (at most 4 KiB each). */
  readonly firstBytes: Buffer[];
  stop(): Promise<void>;
}

/** Starts a backend that runs `handle` for each connection (half-open sockets allowed). */
export async function startBackend(handle: (socket: Socket) => void): Promise<Backend> {
  const sockets = new Set<Socket>();
  const firstBytes: Buffer[] = [];
  let accepted = 0;
  const server = createServer({ allowHalfOpen: true }, (socket) => {
    accepted++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    socket.once('data', (chunk: Buffer) => firstBytes.push(chunk.subarray(0, 4096)));
    handle(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  return {
    port: typeof address === 'object' && address !== null ? address.port : 0,
    get accepted() {
      return accepted;
    },
    firstBytes,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** An echo backend: every byte back, and its FIN once the client's has come. */
export function echoBackend(): Promise<Backend> {
  return startBackend((socket) => {
    socket.on('data', (chunk: Buffer) => {
      if (!socket.write(chunk)) socket.pause();
    });
    socket.on('drain', () => socket.resume());
    socket.on('end', () => socket.end());
  });
}

/** A backend that answers `name` to each connection and closes. */
export function namedBackend(name: string): Promise<Backend> {
  return startBackend((socket) => {
    socket.end(name);
  });
}

/** Sends `data` (in `chunks` pieces), half-closes, and reads everything until the server's FIN; rejects after `timeoutMs`. */
export function exchange(port: number, data: Buffer | string, options: { timeoutMs?: number; halfClose?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`no answer within ${options.timeoutMs ?? 10_000} ms`));
    }, options.timeoutMs ?? 10_000);
    socket.on('connect', () => {
      if (options.halfClose === false) socket.write(data);
      else socket.end(data);
    });
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.on('end', () => socket.end());
  });
}

/** A port nothing listens on (bound, read, released). */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** An error log that keeps its lines in memory, for assertions. */
export function memoryLog(): { log: ErrorLog; lines: string[] } {
  const lines: string[] = [];
  const log = new ErrorLog([]);
  const write = log.write.bind(log);
  log.write = (level, message, connection) => {
    lines.push(`[${level}] ${message}`);
    write(level, message, connection);
  };
  return { log, lines };
}

/** A minimal TLS 1.2 ClientHello with the server_name extension, as ssl_preread reads it. */
export function clientHello(name: string): Buffer {
  const host = Buffer.from(name, 'latin1');
  const serverName = Buffer.concat([Buffer.from([0x00]), u16(host.length), host]);
  const list = Buffer.concat([u16(serverName.length), serverName]);
  const extension = Buffer.concat([u16(0x0000), u16(list.length), list]);
  const extensions = Buffer.concat([u16(extension.length), extension]);
  const body = Buffer.concat([Buffer.from([0x03, 0x03]), Buffer.alloc(32), Buffer.from([0x00]), u16(2), Buffer.from([0x00, 0x2f]), Buffer.from([0x01, 0x00]), extensions]);
  const handshake = Buffer.concat([Buffer.from([0x01, 0x00]), u16(body.length), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01]), u16(handshake.length), handshake]);
}

function u16(value: number): Buffer {
  const buffer = Buffer.alloc(2);
  buffer.writeUInt16BE(value);
  return buffer;
}
