/**
 * A DNS server on loopback for tests (UDP and TCP on one port), as nginx-tests' Perl ones are:
 * the records of each name and type come from a table the test changes while it runs.
 */
import { createSocket, type Socket } from 'node:dgram';
import { createServer, type Server } from 'node:net';

/** What the server answers for one name and type. */
export type DnsAnswer =
  | { readonly a: readonly string[] }
  | { readonly aaaa: readonly string[] }
  | { readonly cname: string }
  | { readonly srv: readonly { priority: number; weight: number; port: number; target: string }[] }
  | { readonly rcode: number }
  /** Answers over UDP with TC set and no records; over TCP with `then`. */
  | { readonly truncated: DnsAnswer };

const TYPES: Readonly<Record<number, string>> = { 1: 'A', 5: 'CNAME', 28: 'AAAA', 33: 'SRV' };

function encodeName(name: string): Buffer {
  return Buffer.concat([...name.split('.').filter(Boolean).map((label) => Buffer.concat([Buffer.from([label.length]), Buffer.from(label)])), Buffer.from([0])]);
}

function record(type: number, ttl: number, data: Buffer): Buffer {
  const head = Buffer.alloc(12);
  head.writeUInt16BE(0xc00c, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt16BE(1, 4);
  head.writeUInt32BE(ttl, 6);
  head.writeUInt16BE(data.length, 10);
  return Buffer.concat([head, data]);
}

/** A table-driven DNS server; `answers` maps `name TYPE` (`example.net A`) to an answer. */
export class TestDnsServer {
  readonly answers = new Map<string, DnsAnswer>();
  /** Queries received, as `name TYPE`. */
  readonly queries: string[] = [];
  ttl = 1;
  #udp: Socket = createSocket('udp4');
  readonly #tcp: Server = createServer((socket) => {
    let received = Buffer.alloc(0);
    socket.on('error', () => undefined);
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (received.length < 2 || received.length < 2 + received.readUInt16BE(0)) return;
      const reply = this.#reply(received.subarray(2, 2 + received.readUInt16BE(0)), true);
      const length = Buffer.alloc(2);
      length.writeUInt16BE(reply.length);
      socket.end(Buffer.concat([length, reply]));
    });
  });

  /**
   * Listens on 127.0.0.1, UDP and TCP on the same port; returns it. A UDP port whose TCP twin is
   * taken (by another test running at the same time) is given up for another, 20 times at most.
   */
  async start(): Promise<number> {
    for (let tries = 1; ; tries++) {
      await new Promise<void>((resolve) => this.#udp.bind(0, '127.0.0.1', resolve));
      const port = this.#udp.address().port;
      try {
        await new Promise<void>((resolve, reject) => {
          this.#tcp.once('error', reject);
          this.#tcp.listen(port, '127.0.0.1', () => {
            this.#tcp.off('error', reject);
            resolve();
          });
        });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || tries >= 20) throw err;
        await new Promise<void>((resolve) => this.#udp.close(() => resolve()));
        this.#udp = createSocket('udp4');
        continue;
      }
      const udp = this.#udp;
      udp.on('message', (message, from) => udp.send(this.#reply(message, false), from.port, from.address));
      return port;
    }
  }

  #reply(query: Buffer, tcp: boolean): Buffer {
    let at = 12;
    const labels: string[] = [];
    for (let length = query[at] ?? 0; length !== 0; length = query[at] ?? 0) {
      labels.push(query.toString('latin1', at + 1, at + 1 + length));
      at += 1 + length;
    }
    const type = query.readUInt16BE(at + 1);
    const question = query.subarray(12, at + 5);
    const key = `${labels.join('.').toLowerCase()} ${TYPES[type] ?? type}`;
    this.queries.push(key);
    let answer = this.answers.get(key) ?? this.answers.get(`${labels.join('.').toLowerCase()} CNAME`);
    let flags = 0x8180;
    if (answer !== undefined && 'truncated' in answer) {
      if (tcp) answer = answer.truncated;
      else {
        flags |= 0x0200;
        answer = undefined;
      }
    }
    const records: Buffer[] = [];
    if (answer !== undefined) {
      if ('rcode' in answer) flags |= answer.rcode;
      else if ('a' in answer) for (const ip of answer.a) records.push(record(1, this.ttl, Buffer.from(ip.split('.').map(Number))));
      else if ('aaaa' in answer) {
        for (const ip of answer.aaaa) {
          const data = Buffer.alloc(16);
          const [head = '', tail = ''] = ip.split('::');
          const left = head === '' ? [] : head.split(':');
          const right = tail === '' ? [] : tail.split(':');
          [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right].forEach((group, i) => data.writeUInt16BE(parseInt(group, 16), i * 2));
          records.push(record(28, this.ttl, data));
        }
      } else if ('cname' in answer) records.push(record(5, this.ttl, encodeName(answer.cname)));
      else if ('srv' in answer) {
        for (const srv of answer.srv) {
          const fields = Buffer.alloc(6);
          fields.writeUInt16BE(srv.priority, 0);
          fields.writeUInt16BE(srv.weight, 2);
          fields.writeUInt16BE(srv.port, 4);
          records.push(record(33, this.ttl, Buffer.concat([fields, encodeName(srv.target)])));
        }
      }
    }
    const head = Buffer.alloc(12);
    query.copy(head, 0, 0, 2);
    head.writeUInt16BE(flags, 2);
    head.writeUInt16BE(1, 4);
    head.writeUInt16BE(records.length, 6);
    return Buffer.concat([head, question, ...records]);
  }

  /** How many times `name TYPE` was asked. */
  count(key: string): number {
    return this.queries.filter((query) => query === key).length;
  }

  async stop(): Promise<void> {
    this.#udp.close();
    await new Promise<void>((resolve) => this.#tcp.close(() => resolve()));
  }
}
