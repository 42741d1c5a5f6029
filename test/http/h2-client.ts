/** A node:http2 client for the HTTP/2 tests: one request on a session, read to its end. */
import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

/** A response read to its end. */
export interface H2Reply {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: string;
}

/** Opens a prior-knowledge h2c session to 127.0.0.1 and waits until it is connected. */
export function h2connect(port: number): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`http://127.0.0.1:${port}`);
    session.once('connect', () => resolve(session));
    session.once('error', reject);
  });
}

/** One request on `session`; rejects when the stream is reset or refused. */
export function h2request(session: ClientHttp2Session, path: string, options: { method?: string; body?: string; headers?: OutgoingHttpHeaders } = {}): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    const stream = session.request({ ':path': path, ':method': options.method ?? 'GET', ':authority': 'localhost', ...options.headers }, { endStream: options.body === undefined });
    let headers: IncomingHttpHeaders = {};
    let body = '';
    stream.setEncoding('latin1');
    stream.on('response', (h) => (headers = h));
    stream.on('data', (chunk: string) => (body += chunk));
    stream.on('end', () => resolve({ status: Number(headers[':status']), headers, body }));
    stream.on('error', reject);
    stream.on('close', () => {
      if (stream.rstCode !== 0) reject(new Error(`stream reset with code ${stream.rstCode}`));
    });
    if (options.body !== undefined) stream.end(options.body);
  });
}

