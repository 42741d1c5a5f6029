/** A TLS client that offers a saved session and reports whether the server resumed it. */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';

const FIXTURES = new URL('../../../test/fixtures/tls/', import.meta.url).pathname;

/** The fixtures' CA (test/fixtures/tls), which signed a-rsa for a.test. */
export const FIXTURE_CA = readFileSync(`${FIXTURES}ca.crt`, 'latin1');

/** The absolute path of a fixture file. */
export const fixture = (name: string): string => `${FIXTURES}${name}`;

/** What one connection saw: the body, whether the session was resumed, the last ticket received. */
export interface SessionReply {
  readonly body: string;
  readonly reused: boolean;
  readonly session: Buffer | undefined;
  /** The name of the key the last ticket received is under (its first 16 bytes, hex); undefined without one. */
  readonly ticketKey: string | undefined;
}

/** One `GET /` to a.test over a new TLS connection, offering `session` when given. */
export function getWithSession(port: number, session?: Buffer, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<SessionReply> {
  return new Promise((resolve, reject) => {
    let latest: Buffer | undefined;
    let ticketKey: string | undefined;
    let text = '';
    const socket = connect({ host: '127.0.0.1', port, servername: 'a.test', ca: FIXTURE_CA, maxVersion, ALPNProtocols: ['http/1.1'], ...(session === undefined ? {} : { session }) }, () => {
      socket.write('GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    });
    // TLSv1.3 tickets arrive after the handshake, before the response: 'end' has seen them.
    socket.on('session', (ticket: Buffer) => {
      latest = ticket;
      ticketKey = socket.getTLSTicket()?.subarray(0, 16).toString('hex');
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('end', () => {
      const reused = socket.isSessionReused();
      // TLS 1.2 renews a ticket in a resumed handshake without a 'session' event (OpenSSL caches no resumed session).
      ticketKey = socket.getTLSTicket()?.subarray(0, 16).toString('hex') ?? ticketKey;
      socket.destroy();
      resolve({ body: text.slice(text.indexOf('\r\n\r\n') + 4), reused, session: latest, ticketKey });
    });
    socket.on('error', reject);
  });
}

/** A session from one fresh connection (that connection itself resumes nothing). */
export async function firstSession(port: number, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<SessionReply & { session: Buffer }> {
  const reply = await getWithSession(port, undefined, maxVersion);
  assert.equal(reply.reused, false);
  assert.ok(reply.session !== undefined, 'the server sent no session');
  return { ...reply, session: reply.session };
}

/** Bursts of new connections that offer `session`, until both workers answered (the kernel picks), within bounds. */
export async function offerOnEveryWorker(port: number, session: Buffer, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<SessionReply[]> {
  const replies: SessionReply[] = [];
  const pids = new Set<string>();
  for (let round = 0; round < 30 && (round < 4 || pids.size < 2); round++) {
    for (const reply of await Promise.all(Array.from({ length: 10 }, () => getWithSession(port, session, maxVersion)))) {
      replies.push(reply);
      pids.add(reply.body);
    }
  }
  return replies;
}
