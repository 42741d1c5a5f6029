/**
 * A small DNS stub client for `resolver`, as nginx's ngx_resolver.c is one: A, AAAA and SRV
 * queries to the configured name servers over UDP (TCP when the answer is truncated), a CNAME
 * without addresses followed by a new query for its target, the TTL of every answer, and the
 * server's RCODE kept as nginx's error codes. node:dns cannot do this: it gives no TTL for SRV,
 * and c-ares neither re-asks for a CNAME's target nor reports the RCODE of an answer.
 */
import { createSocket, type Socket } from 'node:dgram';
import { isIP, connect } from 'node:net';
import { randomInt } from 'node:crypto';

/** One name server. */
export interface DnsServer {
  readonly host: string;
  readonly port: number;
}

/** nginx's `NGX_RESOLVE_*` states: the DNS RCODEs, and 110 for a timeout. */
export const DNS_TIMEOUT = 110;
/** NXDOMAIN, also what nginx reports for an answer without records. */
export const DNS_NXDOMAIN = 3;

const DNS_ERRORS: Readonly<Record<number, string>> = {
  1: 'Format error',
  2: 'Server failure',
  3: 'Host not found',
  4: 'Unimplemented',
  5: 'Operation refused',
  [DNS_TIMEOUT]: 'Operation timed out',
};

/** `ngx_resolver_strerror()`. */
export function dnsErrorText(code: number): string {
  return DNS_ERRORS[code] ?? 'Unknown error';
}

const TYPE_A = 1;
const TYPE_CNAME = 5;
const TYPE_AAAA = 28;
const TYPE_SRV = 33;
/** nginx's `resend_timeout` (and `tcp_timeout`): how long a query waits before it is sent again. */
const RESEND_MS = 5_000;
/** NGX_RESOLVER_MAX_RECURSION: how many CNAMEs one name may go through. */
const MAX_CNAMES = 50;

/** One resource record of an answer section that this client reads. */
type DnsRecord =
  | { readonly type: 'address'; readonly ttl: number; readonly address: string }
  | { readonly type: 'cname'; readonly ttl: number; readonly target: string }
  | { readonly type: 'srv'; readonly ttl: number; readonly priority: number; readonly weight: number; readonly port: number; readonly target: string };

interface Response {
  readonly rcode: number;
  readonly truncated: boolean;
  readonly records: readonly DnsRecord[];
}

/** What a name resolved to: addresses, or nginx's error code; `ttl` in seconds (the least of the answer's). */
export interface AddressAnswer {
  readonly code: number;
  readonly addresses: readonly string[];
  readonly ttl: number;
}

/** One address of a service, with its SRV record's fields; `name` is the record's target. */
export interface ServiceAddress {
  readonly address: string;
  readonly port: number;
  readonly priority: number;
  readonly weight: number;
  readonly name: string;
}

/** A target of a service that could not be resolved. */
export interface ServiceNameFailure {
  readonly name: string;
  readonly code: number;
}

/** What a service resolved to: its targets' addresses, the targets that failed, or the SRV query's error. */
export interface ServiceAnswer {
  readonly code: number;
  readonly addresses: readonly ServiceAddress[];
  readonly failures: readonly ServiceNameFailure[];
  readonly ttl: number;
}

/** Encodes a query for `name` of `type`, recursion desired. */
function encodeQuery(id: number, name: string, type: number): Buffer {
  const labels = name.replace(/\.$/, '').split('.').filter((label) => label.length > 0);
  const parts: Buffer[] = [Buffer.from([id >> 8, id & 0xff, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0])];
  for (const label of labels) {
    const bytes = Buffer.from(label, 'latin1');
    parts.push(Buffer.from([Math.min(bytes.length, 63)]), bytes.subarray(0, 63));
  }
  parts.push(Buffer.from([0, type >> 8, type & 0xff, 0, 1]));
  return Buffer.concat(parts);
}

/** Reads a possibly compressed name at `offset`; returns it and the offset after it in place. */
function readName(buf: Buffer, offset: number): [string, number] {
  const labels: string[] = [];
  let at = offset;
  let end = -1;
  for (let jumps = 0; jumps < 128; jumps++) {
    const length = buf[at];
    if (length === undefined) throw new RangeError('Name out of bounds');
    if (length === 0) {
      return [labels.join('.'), end === -1 ? at + 1 : end];
    }
    if ((length & 0xc0) === 0xc0) {
      const low = buf[at + 1];
      if (low === undefined) throw new RangeError('Name out of bounds');
      if (end === -1) end = at + 2;
      at = ((length & 0x3f) << 8) | low;
      continue;
    }
    if (at + 1 + length > buf.length) throw new RangeError('Name out of bounds');
    labels.push(buf.toString('latin1', at + 1, at + 1 + length));
    at += 1 + length;
  }
  throw new RangeError('Name loop');
}

/** Parses a response to the query `id`; undefined when it is not one (nginx drops those too). */
function parseResponse(buf: Buffer, id: number): Response | undefined {
  if (buf.length < 12 || buf.readUInt16BE(0) !== id) return undefined;
  const flags = buf.readUInt16BE(2);
  if ((flags & 0x8000) === 0) return undefined;
  const qdcount = buf.readUInt16BE(4);
  const ancount = buf.readUInt16BE(6);
  let at = 12;
  const records: DnsRecord[] = [];
  try {
    for (let i = 0; i < qdcount; i++) at = readName(buf, at)[1] + 4;
    for (let i = 0; i < ancount; i++) {
      at = readName(buf, at)[1];
      const type = buf.readUInt16BE(at);
      const ttl = buf.readUInt32BE(at + 4) & 0x7fffffff;
      const length = buf.readUInt16BE(at + 8);
      const data = at + 10;
      if (data + length > buf.length) break;
      if (type === TYPE_A && length === 4) {
        records.push({ type: 'address', ttl, address: [...buf.subarray(data, data + 4)].join('.') });
      } else if (type === TYPE_AAAA && length === 16) {
        const groups: string[] = [];
        for (let g = 0; g < 8; g++) groups.push(buf.readUInt16BE(data + g * 2).toString(16));
        records.push({ type: 'address', ttl, address: compressIpv6(groups) });
      } else if (type === TYPE_CNAME) {
        records.push({ type: 'cname', ttl, target: readName(buf, data)[0] });
      } else if (type === TYPE_SRV && length >= 7) {
        records.push({ type: 'srv', ttl, priority: buf.readUInt16BE(data), weight: buf.readUInt16BE(data + 2), port: buf.readUInt16BE(data + 4), target: readName(buf, data + 6)[0] });
      }
      at = data + length;
    }
  } catch {
    // A malformed answer section: nginx logs "invalid ... in DNS response"; the records read so far stand.
  }
  return { rcode: flags & 0x0f, truncated: (flags & 0x0200) !== 0, records };
}

/** The usual text of an IPv6 address from its eight groups (the longest run of zero groups as `::`). */
function compressIpv6(groups: readonly string[]): string {
  let best = -1;
  let bestLength = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === '0') j++;
    if (j - i > bestLength && j - i > 1) {
      best = i;
      bestLength = j - i;
    }
    i = j;
  }
  if (best === -1) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLength).join(':')}`;
}

/** The name servers of one `resolver` directive, asked in turn as nginx does. */
export class DnsClient {
  readonly #servers: readonly DnsServer[];
  #next = 0;
  /** The UDP queries in flight, each with what ends it. */
  readonly #sockets = new Map<Socket, () => void>();
  #closed = false;

  constructor(servers: readonly DnsServer[]) {
    this.#servers = servers;
  }

  /** The name server of the next name asked for: they take turns, as `rn->last_connection` does in nginx. */
  #nextServer(): DnsServer | undefined {
    return this.#servers[this.#next++ % Math.max(1, this.#servers.length)];
  }

  /**
   * One query, bounded by `timeoutMs`; undefined on a timeout. As ngx_resolver_resend() does, a
   * query without an answer within 5 seconds goes again to the next server, and a truncated UDP
   * answer is asked again over TCP (ngx_resolver_process_response()); a TCP connection that
   * fails waits for that resend.
   */
  async #ask(name: string, type: number, timeoutMs: number, server = this.#nextServer()): Promise<Response | undefined> {
    if (server === undefined) return undefined;
    const id = randomInt(0, 0x10000);
    const query = encodeQuery(id, name, type);
    const deadline = Date.now() + timeoutMs;
    const first = Math.max(0, this.#servers.indexOf(server));
    for (let attempt = 0; !this.#closed; attempt++) {
      const left = deadline - Date.now();
      if (left <= 0) return undefined;
      const target = this.#servers[(first + attempt) % this.#servers.length] ?? server;
      const slotEnd = Date.now() + Math.min(RESEND_MS, left);
      const udp = await this.#udp(target, query, id, slotEnd - Date.now());
      if (udp !== undefined && !udp.truncated) return udp;
      if (udp !== undefined) {
        const tcp = await this.#tcp(target, query, id, Math.max(1, Math.min(RESEND_MS, deadline - Date.now())));
        if (tcp !== undefined) return tcp;
        const rest = slotEnd - Date.now();
        if (rest > 0) await new Promise((resolve) => setTimeout(resolve, rest));
      }
    }
    return undefined;
  }

  #udp(server: DnsServer, query: Buffer, id: number, timeoutMs: number): Promise<Response | undefined> {
    return new Promise((resolve) => {
      const socket = createSocket(isIP(server.host) === 6 ? 'udp6' : 'udp4');
      let done = false;
      const finish = (response: Response | undefined): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        if (this.#sockets.delete(socket)) socket.close();
        resolve(response);
      };
      const timer = setTimeout(() => finish(undefined), Math.max(1, timeoutMs));
      this.#sockets.set(socket, () => finish(undefined));
      // An ICMP error (a server not listening) waits for the resend, as nginx does.
      socket.on('error', () => undefined);
      socket.on('message', (message) => {
        const response = parseResponse(message, id);
        if (response !== undefined) finish(response);
      });
      socket.send(query, server.port, server.host, () => undefined);
    });
  }

  #tcp(server: DnsServer, query: Buffer, id: number, timeoutMs: number): Promise<Response | undefined> {
    return new Promise((resolve) => {
      const socket = connect({ host: server.host, port: server.port });
      let received = Buffer.alloc(0);
      const finish = (response: Response | undefined): void => {
        clearTimeout(timer);
        socket.destroy();
        resolve(response);
      };
      const timer = setTimeout(() => finish(undefined), timeoutMs);
      socket.on('error', () => finish(undefined));
      socket.on('close', () => finish(undefined));
      socket.on('connect', () => {
        const length = Buffer.alloc(2);
        length.writeUInt16BE(query.length);
        socket.write(Buffer.concat([length, query]));
      });
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (received.length < 2) return;
        const length = received.readUInt16BE(0);
        if (received.length < 2 + length) return;
        finish(parseResponse(received.subarray(2, 2 + length), id) ?? undefined);
      });
    });
  }

  /** The addresses of `name`: A and AAAA as asked for, a CNAME's target asked for in turn. */
  async resolveAddresses(name: string, options: { readonly ipv4: boolean; readonly ipv6: boolean; readonly timeoutMs: number }): Promise<AddressAnswer> {
    const deadline = Date.now() + options.timeoutMs;
    let current = name;
    let cnameTtl = Number.POSITIVE_INFINITY;
    for (let hop = 0; hop <= MAX_CNAMES; hop++) {
      const left = Math.max(1, deadline - Date.now());
      const types = [...(options.ipv4 ? [TYPE_A] : []), ...(options.ipv6 ? [TYPE_AAAA] : [])];
      // The A and AAAA queries of one name go to the same server (ngx_resolver_send_query()).
      const server = this.#nextServer();
      const responses = await Promise.all(types.map((type) => this.#ask(current, type, left, server)));
      const addresses: string[] = [];
      let ttl = cnameTtl;
      let cname: string | undefined;
      let code = 0;
      for (const response of responses) {
        if (response === undefined) {
          code ||= DNS_TIMEOUT;
          continue;
        }
        // An answer with an error RCODE counts as the error, whatever records it carries.
        if (response.rcode !== 0) {
          code ||= response.rcode;
          continue;
        }
        const alias = response.records.find((record) => record.type === 'cname');
        const found = response.records.filter((record) => record.type === 'address');
        for (const record of found) addresses.push(record.address);
        // The answer lasts as long as its shortest record, a CNAME on the way included.
        for (const record of response.records) if (record.type !== 'srv') ttl = Math.min(ttl, record.ttl);
        // The last answer decides (AAAA's when both are asked): only its alias is followed.
        cname = found.length === 0 && alias?.type === 'cname' ? alias.target : undefined;
      }
      // ngx_resolver_process_a() (http_resolver_aaaa.t): an error in either family's answer fails
      // the name (a repeated address stays: stream_resolver.t counts tries over it); else the
      // addresses of both; else the CNAME of the last answer, if it is one.
      if (code !== 0) return { code, addresses: [], ttl: 0 };
      if (addresses.length > 0) return { code: 0, addresses, ttl: Number.isFinite(ttl) ? ttl : 0 };
      if (cname === undefined) return { code: DNS_NXDOMAIN, addresses: [], ttl: 0 };
      current = cname;
      cnameTtl = ttl;
    }
    return { code: DNS_NXDOMAIN, addresses: [], ttl: 0 };
  }

  /**
   * The addresses of a service (`ngx_resolve_name()` with `ctx->service`): `_service._tcp.name`,
   * or `service.name` when it starts with `_`, then each SRV target's addresses.
   */
  async resolveService(service: string, name: string, options: { readonly ipv4: boolean; readonly ipv6: boolean; readonly timeoutMs: number }): Promise<ServiceAnswer> {
    const deadline = Date.now() + options.timeoutMs;
    let query = service.startsWith('_') ? `${service}.${name}` : `_${service}._tcp.${name}`;
    let srvs: Extract<DnsRecord, { type: 'srv' }>[] = [];
    let cnameTtl = Number.POSITIVE_INFINITY;
    for (let hop = 0; hop <= MAX_CNAMES; hop++) {
      const response = await this.#ask(query, TYPE_SRV, Math.max(1, deadline - Date.now()));
      if (response === undefined) return { code: DNS_TIMEOUT, addresses: [], failures: [], ttl: 0 };
      if (response.rcode !== 0) return { code: response.rcode, addresses: [], failures: [], ttl: 0 };
      srvs = response.records.filter((record) => record.type === 'srv');
      const cname = response.records.find((record) => record.type === 'cname');
      // A CNAME without SRV records: its target's SRV records are asked for, as for addresses.
      if (srvs.length > 0 || cname?.type !== 'cname') break;
      cnameTtl = Math.min(cnameTtl, cname.ttl);
      query = cname.target;
    }
    if (srvs.length === 0) return { code: DNS_NXDOMAIN, addresses: [], failures: [], ttl: 0 };
    let ttl = Math.min(cnameTtl, ...srvs.map((record) => record.ttl));
    const addresses: ServiceAddress[] = [];
    const failures: ServiceNameFailure[] = [];
    const left = Math.max(1, deadline - Date.now());
    const targets = await Promise.all(srvs.map((srv) => (isIP(srv.target) !== 0 ? Promise.resolve({ code: 0, addresses: [srv.target], ttl }) : this.resolveAddresses(srv.target, { ...options, timeoutMs: left }))));
    srvs.forEach((srv, i) => {
      const answer = targets[i] as AddressAnswer;
      if (answer.code !== 0) {
        failures.push({ name: srv.target, code: answer.code });
        return;
      }
      ttl = Math.min(ttl, answer.ttl);
      // ngx_resolver_process_srv(): a weight of 0 counts as 1.
      for (const address of answer.addresses) addresses.push({ address, port: srv.port, priority: srv.priority, weight: srv.weight || 1, name: srv.target });
    });
    // ngx_resolver_report_srv(): no address at all is the first target's error, NXDOMAIN if any had that.
    if (addresses.length === 0 && failures.length > 0) {
      const code = failures.some((failure) => failure.code === DNS_NXDOMAIN) ? DNS_NXDOMAIN : (failures[0] as ServiceNameFailure).code;
      return { code, addresses, failures, ttl: 0 };
    }
    return { code: 0, addresses, failures, ttl };
  }

  /** Stops every query in flight. */
  close(): void {
    this.#closed = true;
    for (const finish of [...this.#sockets.values()]) finish();
  }
}
