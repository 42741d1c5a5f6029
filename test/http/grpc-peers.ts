/**
 * gRPC peers for the grpc_pass tests, on node:http2 alone: gRPC's framing is five bytes (a
 * compression flag and a 32-bit length) before each message, content-type application/grpc, and
 * the call's status in trailers (grpc-status, grpc-message).
 */
import { readFileSync } from 'node:fs';
import {
  connect,
  constants,
  createSecureServer,
  createServer,
  type ClientHttp2Session,
  type Http2Server,
  type Http2SecureServer,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { AddressInfo } from 'node:net';

/** One gRPC message, framed. */
export function frame(message: string): Buffer {
  const payload = Buffer.from(message);
  const head = Buffer.alloc(5);
  head.writeUInt32BE(payload.length, 1);
  return Buffer.concat([head, payload]);
}

/** The messages of a framed body. */
export function unframe(body: Buffer): string[] {
  const out: string[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const length = body.readUInt32BE(at + 1);
    out.push(body.subarray(at + 5, at + 5 + length).toString());
    at += 5 + length;
  }
  return out;
}

/** A stream the peer received: its method (last path segment), request headers, and how it ended. */
export interface SeenStream {
  readonly method: string;
  readonly path: string;
  readonly headers: IncomingHttpHeaders;
  readonly session: number;
  /** Set when the stream closed: its RST_STREAM code (0 when it ended normally). */
  closedWith: number | undefined;
  readonly closed: Promise<void>;
}

/** A running gRPC peer. */
export interface GrpcPeer {
  readonly port: number;
  readonly streams: SeenStream[];
  /** Sessions (connections) accepted so far. */
  sessions: number;
  /** The open sessions, in order of arrival. */
  readonly live: ServerHttp2Session[];
  stop(): Promise<void>;
}

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/**
 * Starts a gRPC peer on 127.0.0.1, h2c or (with `tls`, the named fixture leaf) TLS with ALPN h2.
 * Methods: Unary (echoes its message and the x-via and te headers), Stream?n=N (N messages),
 * Fail (grpc-status 5 in trailers), TrailersOnly (grpc-status 7 in the head), Hang (never
 * answers), Reset (RST_STREAM before a head), Slow (answers after a few ms).
 */
export async function grpcPeer(tls?: string): Promise<GrpcPeer> {
  const peer: GrpcPeer = { port: 0, streams: [], sessions: 0, live: [], stop: async () => undefined };
  const server: Http2Server | Http2SecureServer =
    tls === undefined
      ? createServer()
      : createSecureServer({ cert: readFileSync(`${FIXTURES}${tls}.fullchain.crt`), key: readFileSync(`${FIXTURES}${tls}.key`), ALPNProtocols: ['h2'] });
  server.on('session', (session: ServerHttp2Session) => {
    peer.sessions++;
    const index = peer.sessions;
    peer.live.push(session);
    session.on('error', () => undefined);
    session.once('close', () => peer.live.splice(peer.live.indexOf(session), 1));
    (session as ServerHttp2Session & { index?: number }).index = index;
  });
  server.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders) => {
    const path = String(headers[':path']);
    const method = path.slice(path.lastIndexOf('/') + 1).split('?')[0] ?? '';
    let resolveClosed!: () => void;
    const seen: SeenStream = {
      method,
      path,
      headers,
      session: (stream.session as ServerHttp2Session & { index?: number }).index ?? 0,
      closedWith: undefined,
      closed: new Promise((resolve) => (resolveClosed = resolve)),
    };
    peer.streams.push(seen);
    stream.on('error', () => undefined);
    stream.once('close', () => {
      seen.closedWith = stream.rstCode ?? 0;
      resolveClosed();
    });
    const parts: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.once('end', () => answer(stream, method, path, headers, Buffer.concat(parts)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return Object.assign(peer, {
    port: (server.address() as AddressInfo).port,
    stop: async () => {
      for (const session of [...peer.live]) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

function answer(stream: ServerHttp2Stream, method: string, path: string, headers: IncomingHttpHeaders, body: Buffer): void {
  if (stream.destroyed) return;
  const head: OutgoingHttpHeaders = { ':status': 200, 'content-type': 'application/grpc', server: 'peer', 'x-peer': 'yes' };
  const respond = (messages: string[], status: number, message?: string): void => {
    stream.respond(head, { waitForTrailers: true });
    stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': String(status), ...(message === undefined ? {} : { 'grpc-message': message }) }));
    for (const text of messages) stream.write(frame(text));
    stream.end();
  };
  switch (method) {
    case 'Unary':
      respond([`echo:${unframe(body).join(',')} via=${String(headers['x-via'])} te=${String(headers.te)} authority=${String(headers[':authority'])}`], 0);
      return;
    case 'Stream': {
      const count = Number(new URLSearchParams(path.split('?')[1] ?? '').get('n') ?? '3');
      respond(Array.from({ length: count }, (_, i) => `message ${i}`), 0);
      return;
    }
    case 'Fail':
      respond([], 5, 'no such thing');
      return;
    case 'TrailersOnly':
      stream.respond({ ...head, 'grpc-status': '7', 'grpc-message': 'denied' }, { endStream: true });
      return;
    case 'Hang':
      stream.respond(head);
      stream.write(frame('first'));
      return;
    case 'Reset':
      stream.close(constants.NGHTTP2_ENHANCE_YOUR_CALM);
      return;
    case 'Slow':
      setTimeout(() => respond([`slow:${unframe(body).join(',')}`], 0), 20);
      return;
    default:
      respond([], 12, 'unimplemented');
  }
}

/** A finished call as the client saw it. */
export interface GrpcReply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly messages: string[];
  readonly trailers: IncomingHttpHeaders;
}

/** Opens an h2c (or, with `ca`, TLS) client session to hitless on 127.0.0.1. */
export function clientSession(port: number, tls?: { servername: string }): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session =
      tls === undefined
        ? connect(`http://127.0.0.1:${port}`)
        : connect(`https://127.0.0.1:${port}`, { ca: readFileSync(`${FIXTURES}ca.crt`), servername: tls.servername });
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** One call: POST with a framed message and te: trailers; rejects when the stream is reset. */
export function grpcCall(session: ClientHttp2Session, path: string, message = 'hi', headers: OutgoingHttpHeaders = {}): Promise<GrpcReply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    let head: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const parts: Buffer[] = [];
    stream.on('response', (h) => (head = h));
    stream.on('trailers', (t) => (trailers = t));
    stream.on('data', (chunk: Buffer) => parts.push(chunk));
    stream.on('end', () => resolve({ status: Number(head[':status']), headers: head, messages: unframe(Buffer.concat(parts)), trailers }));
    stream.on('error', reject);
    stream.on('close', () => {
      if (stream.rstCode !== undefined && stream.rstCode !== 0) reject(new Error(`stream reset with code ${stream.rstCode}`));
    });
    stream.end(frame(message));
  });
}
