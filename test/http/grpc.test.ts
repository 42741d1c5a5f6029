import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { constants, type ClientHttp2Session } from 'node:http2';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ErrorLog } from '../../src/core/log.js';
import { errorOf, load, serve, turns, type Served } from './helpers.js';
import { clientSession, frame, grpcCall, grpcPeer, unframe, type GrpcPeer } from './grpc-peers.js';
import { closedPort } from './proxy-upstreams.js';
import { VERSION } from '../../src/core/version.js';

const TLS = fileURLToPath(new URL('../../../test/fixtures/tls/', import.meta.url));

describe('grpc_pass: directives', () => {
  it('parses grpc://, grpcs://, a bare address and an upstream name', () => {
    const location = (text: string) => load(`http { upstream g { server 127.0.0.1:1; } server { location / { ${text} } } }`).main.child('http')?.blocks[1]?.blocks[0];
    assert.deepEqual(
      ((target) => target && { host: target.host, port: target.port, tls: target.tls, authority: target.authority })(location('grpc_pass grpc://127.0.0.1:50051;')?.get('grpc_pass')),
      { host: '127.0.0.1', port: 50051, tls: false, authority: '127.0.0.1:50051' },
    );
    assert.equal(location('grpc_pass grpcs://127.0.0.1:443;')?.get('grpc_pass').tls, true);
    assert.equal(location('grpc_pass [::1]:9000;')?.get('grpc_pass').authority, '[::1]:9000');
    assert.equal(location('grpc_pass g;')?.get('grpc_pass').authority, 'g');
    assert.notEqual(location('grpc_pass grpc://$host:1;')?.get('grpc_pass').template, undefined);
    assert.equal(location('grpc_pass g;')?.get('grpc_read_timeout'), 60_000);
    assert.deepEqual([...(location('grpc_pass g;')?.get('grpc_next_upstream') ?? [])], ['error', 'timeout']);
  });

  it('refuses what nginx -t refuses, in its words', () => {
    assert.equal(errorOf('http { server { location / { grpc_pass no-such-host.invalid:50051; } } }'), 'host not found in upstream "no-such-host.invalid" in /x.conf:1');
    assert.equal(errorOf('http { server { location / { grpc_pass 127.0.0.1; } } }'), 'no port in upstream "127.0.0.1" in /x.conf:1');
    assert.equal(errorOf('http { upstream g { server 127.0.0.1:1; } server { location / { grpc_pass grpc://g:9; } } }'), 'upstream "g" may not have port 9 in /x.conf:1');
    assert.equal(errorOf('http { server { location / { grpc_pass 127.0.0.1:1; grpc_pass 127.0.0.1:2; } } }'), '"grpc_pass" directive is duplicate in /x.conf:1');
    assert.match(errorOf('http { server { grpc_pass 127.0.0.1:1; } }'), /^"grpc_pass" directive is not allowed here in/);
    assert.match(errorOf('http { server { location / { grpc_pass 127.0.0.1:99999; } } }'), /^invalid port in upstream "127\.0\.0\.1:99999" in/);
    assert.match(errorOf('http { server { location / { grpc_pass grpcs://127.0.0.1:1; grpc_ssl_verify on; } } }'), /^no grpc_ssl_trusted_certificate for grpc_ssl_verify/);
    assert.match(errorOf('http { grpc_next_upstream error off; }'), /^invalid value "off" in "grpc_next_upstream" directive/);
    assert.match(errorOf('http { grpc_read_timeout soon; }'), /^"grpc_read_timeout" directive invalid value/);
    assert.match(errorOf('http { grpc_set_header X-A $nosuch; server { location / { grpc_pass 127.0.0.1:1; } } }'), /^unknown "nosuch" variable/);
  });
});

describe('grpc_pass: gRPC over HTTP/2 to upstreams', () => {
  let dir = '';
  let peer: GrpcPeer;
  let busy: GrpcPeer;
  let going: GrpcPeer;
  let tlsGood: GrpcPeer;
  let tlsOther: GrpcPeer;
  let served: Served;
  let client: ClientHttp2Session;
  let tlsClient: ClientHttp2Session;

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hitless-grpc-'));
    peer = await grpcPeer();
    busy = await grpcPeer();
    going = await grpcPeer();
    tlsGood = await grpcPeer('a-rsa');
    tlsOther = await grpcPeer('a-other-ca');
    const down = await closedPort();
    const verify = `grpc_ssl_verify on; grpc_ssl_trusted_certificate ${TLS}ca.crt; grpc_ssl_name a.test;`;
    served = await serve(
      `http {
        access_log off;
        upstream pair { server 127.0.0.1:${down}; server 127.0.0.1:${peer.port}; }
        upstream busy { server 127.0.0.1:${busy.port}; keepalive 8; }
        upstream going { server 127.0.0.1:${going.port}; keepalive 8; }
        server {
          listen 127.0.0.1:8080 http2;
          grpc_set_header X-Via hitless;
          location / { grpc_pass grpc://127.0.0.1:${peer.port}; }
          location /busy/ { grpc_pass busy; }
          location /going/ { grpc_pass going; }
          location /down/ { grpc_pass 127.0.0.1:${down}; }
          location /pair/ { grpc_pass pair; }
          location /tls-ok/ { grpc_pass grpcs://127.0.0.1:${tlsGood.port}; ${verify} }
          location /tls-bad/ { grpc_pass grpcs://127.0.0.1:${tlsOther.port}; ${verify} }
          location /tls-unverified/ { grpc_pass grpcs://127.0.0.1:${tlsOther.port}; }
          location /tls-cert/ { grpc_pass grpcs://127.0.0.1:${tlsGood.port}; grpc_ssl_certificate ${TLS}$arg_c.crt; grpc_ssl_certificate_key ${TLS}$arg_c.key; grpc_ssl_certificate_cache max=4; }
          location /authority/ { grpc_pass 127.0.0.1:${peer.port}; grpc_set_header Host api.test; }
          location /var/ { grpc_pass $http_x_to; ${verify} }
        }
        server {
          listen 127.0.0.1:8443 ssl;
          http2 on;
          server_name a.test;
          ssl_certificate ${TLS}a-rsa.fullchain.crt;
          ssl_certificate_key ${TLS}a-rsa.key;
          location / { grpc_pass 127.0.0.1:${peer.port}; }
        }
      }`,
      dir,
      new ErrorLog([{ file: join(dir, 'error.log'), level: 'info' }]),
    );
    client = await clientSession(served.ports.get('127.0.0.1:8080') ?? 0);
    tlsClient = await clientSession(served.ports.get('127.0.0.1:8443') ?? 0, { servername: 'a.test' });
  });

  after(async () => {
    client?.destroy();
    tlsClient?.destroy();
    await served?.stop();
    for (const upstream of [peer, busy, going, tlsGood, tlsOther]) await upstream?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const errorLog = (): string => readFileSync(join(dir, 'error.log'), 'utf8');

  it('passes a unary call over h2c: message, te: trailers, grpc_set_header, :authority, and the trailers back', async () => {
    const reply = await grpcCall(client, '/test.Echo/Unary', 'ping');
    assert.equal(reply.status, 200);
    assert.equal(reply.headers['content-type'], 'application/grpc');
    assert.equal(reply.headers['x-peer'], 'yes');
    assert.equal(reply.headers.server, `hitless/${VERSION}`);
    assert.deepEqual(reply.messages, [`echo:ping via=hitless te=trailers authority=127.0.0.1:${peer.port}`]);
    assert.equal(reply.trailers['grpc-status'], '0');
  });

  it('sends grpc_set_header Host as :authority', async () => {
    const reply = await grpcCall(client, '/authority/test.Echo/Unary', 'x');
    assert.match(reply.messages[0] ?? '', /authority=api\.test$/);
  });

  it('evaluates grpc_pass with variables per request: grpc://, grpcs://, an upstream group, and the 502 lines of nginx', async () => {
    const plain = await grpcCall(client, '/var/test.Echo/Unary', 'v', { 'x-to': `grpc://127.0.0.1:${peer.port}` });
    assert.equal(plain.status, 200);
    assert.match(plain.messages[0] ?? '', new RegExp(`^echo:v .*authority=127\\.0\\.0\\.1:${peer.port}$`));
    const bare = await grpcCall(client, '/var/test.Echo/Unary', 'b', { 'x-to': `127.0.0.1:${peer.port}` });
    assert.equal(bare.status, 200);
    const group = await grpcCall(client, '/var/test.Echo/Unary', 'g', { 'x-to': 'pair' });
    assert.equal(group.status, 200);
    assert.match(group.messages[0] ?? '', /authority=pair$/);
    const secure = await grpcCall(client, '/var/test.Echo/Unary', 's', { 'x-to': `grpcs://127.0.0.1:${tlsGood.port}` });
    assert.equal(secure.status, 200);
    assert.match(secure.messages[0] ?? '', /^echo:s /);
    assert.equal((await grpcCall(client, '/var/test.Echo/Unary', 'n', { 'x-to': 'grpc://127.0.0.1' })).status, 502);
    assert.match(errorLog(), /no port in upstream "127\.0\.0\.1", client: 127\.0\.0\.1/);
    assert.equal((await grpcCall(client, '/var/test.Echo/Unary', 'r', { 'x-to': 'no-such.invalid:1' })).status, 502);
    assert.match(errorLog(), /no resolver defined to resolve no-such\.invalid, client: 127\.0\.0\.1/);
  });

  it('passes a unary call from a client on h2 over TLS', async () => {
    const reply = await grpcCall(tlsClient, '/test.Echo/Unary', 'secure');
    assert.equal(reply.status, 200);
    assert.match(reply.messages[0] ?? '', /^echo:secure /);
    assert.equal(reply.trailers['grpc-status'], '0');
  });

  it('relays a server stream of many messages, then its trailers', async () => {
    const reply = await grpcCall(client, '/test.Echo/Stream?n=500');
    assert.equal(reply.messages.length, 500);
    assert.equal(reply.messages[499], 'message 499');
    assert.equal(reply.trailers['grpc-status'], '0');
  });

  it('passes a non-zero grpc-status in trailers, and a trailers-only response as it came', async () => {
    const failed = await grpcCall(client, '/test.Echo/Fail');
    assert.equal(failed.status, 200);
    assert.deepEqual(failed.messages, []);
    assert.equal(failed.trailers['grpc-status'], '5');
    assert.equal(failed.trailers['grpc-message'], 'no such thing');
    const only = await grpcCall(client, '/test.Echo/TrailersOnly');
    assert.equal(only.headers['grpc-status'], '7');
    assert.equal(only.headers['grpc-message'], 'denied');
    assert.deepEqual(only.trailers, {});
  });

  it('cancels the upstream stream (RST_STREAM CANCEL) when the client resets its own', async () => {
    const before = peer.streams.length;
    const stream = client.request({ ':method': 'POST', ':path': '/test.Echo/Hang', 'content-type': 'application/grpc', te: 'trailers' });
    stream.on('error', () => undefined);
    stream.end(frame('wait'));
    await new Promise<void>((resolve) => stream.once('data', () => resolve()));
    stream.close(constants.NGHTTP2_CANCEL);
    const seen = peer.streams[before];
    assert.ok(seen !== undefined && seen.method === 'Hang');
    await seen.closed;
    assert.equal(seen.closedWith, constants.NGHTTP2_CANCEL);
  });

  it('answers 502 when the upstream is down, and logs it as nginx does', async () => {
    const reply = await grpcCall(client, '/down/test.Echo/Unary');
    assert.equal(reply.status, 502);
    assert.match(errorLog(), /connect\(\) failed \(111: Connection refused\) while connecting to upstream, client: 127\.0\.0\.1, .*upstream: "grpc:\/\/127\.0\.0\.1:\d+"/);
  });

  it('answers 502 when the upstream resets the stream before its response head', async () => {
    const reply = await grpcCall(client, '/test.Echo/Reset');
    assert.equal(reply.status, 502);
    assert.match(errorLog(), /upstream rejected request with error 11 while reading response header from upstream/);
    // A group of one peer is never taken out by max_fails (nginx's peers->single): the next call goes through.
    assert.doesNotMatch(errorLog(), new RegExp(`temporarily disabled.*Reset.*127\\.0\\.0\\.1:${peer.port}`));
    assert.equal((await grpcCall(client, '/test.Echo/Unary')).status, 200);
  });

  it('tries the next peer of a group when one is down (grpc_next_upstream error)', async () => {
    const reply = await grpcCall(client, '/pair/test.Echo/Unary', 'twice');
    assert.equal(reply.status, 200);
    assert.match(reply.messages[0] ?? '', /^echo:twice /);
  });

  it('speaks TLS to grpcs:// upstreams with the certificate verified, and fails closed (502) when it is not trusted', async () => {
    const good = await grpcCall(client, '/tls-ok/test.Echo/Unary', 'tls');
    assert.equal(good.status, 200);
    assert.match(good.messages[0] ?? '', /^echo:tls /);
    assert.equal(good.trailers['grpc-status'], '0');
    const bad = await grpcCall(client, '/tls-bad/test.Echo/Unary', 'tls');
    assert.equal(bad.status, 502);
    assert.match(errorLog(), /upstream SSL certificate verify error: \(\d+:[^)]+\) while SSL handshaking to upstream/);
    assert.equal(tlsOther.streams.length, 0);
    const unverified = await grpcCall(client, '/tls-unverified/test.Echo/Unary', 'tls');
    assert.equal(unverified.status, 200);
    assert.equal(tlsOther.streams.length, 1);
  });

  it('presents a grpc_ssl_certificate with variables, and answers 500 when its files do not load', async () => {
    const good = await grpcCall(client, '/tls-cert/test.Echo/Unary?c=client-a', 'cert');
    assert.equal(good.status, 200);
    assert.match(good.messages[0] ?? '', /^echo:cert /);
    const missing = await grpcCall(client, '/tls-cert/test.Echo/Unary?c=missing', 'cert');
    assert.equal(missing.status, 500);
    assert.match(errorLog(), /\[error\] .*cannot load certificate "[^"]*missing\.crt": BIO_new_file\(\) failed .* while SSL handshaking to upstream/);
  });

  it('without keepalive in the group, gives each call a session of its own and closes it after the call, as nginx closes the connection', async () => {
    const before = peer.sessions;
    const first = await grpcCall(client, '/test.Echo/Unary', 'one');
    const second = await grpcCall(client, '/test.Echo/Unary', 'two');
    assert.deepEqual([first.status, second.status], [200, 200]);
    assert.equal(peer.sessions, before + 2);
    const sessions = peer.streams.slice(-2).map((stream) => stream.session);
    assert.deepEqual(sessions, [before + 1, before + 2]);
    // Both closed by hitless (the peer never closes one itself).
    const signal = AbortSignal.timeout(5_000);
    await Promise.all([...peer.live].map((session) => once(session, 'close', { signal })));
    assert.equal(peer.live.length, 0);
  });

  it('with keepalive in the group, multiplexes many concurrent calls on one upstream session', async () => {
    const replies = await Promise.all(Array.from({ length: 60 }, (_, i) => grpcCall(client, '/busy/test.Echo/Slow', `m${i}`)));
    assert.deepEqual(replies.map((reply) => reply.messages[0]), Array.from({ length: 60 }, (_, i) => `slow:m${i}`));
    assert.ok(replies.every((reply) => reply.trailers['grpc-status'] === '0'));
    assert.equal(busy.sessions, 1);
    assert.equal(new Set(busy.streams.map((stream) => stream.session)).size, 1);
  });

  it('opens a fresh session after the upstream sent GOAWAY, without failing the next call', async () => {
    assert.equal((await grpcCall(client, '/going/test.Echo/Unary', 'one')).status, 200);
    assert.equal(going.sessions, 1);
    const first = going.live[0];
    assert.ok(first !== undefined);
    const closed = new Promise<void>((resolve) => first.once('close', () => resolve()));
    first.close(); // GOAWAY(NO_ERROR), then the connection closes
    await closed;
    await turns(5);
    const reply = await grpcCall(client, '/going/test.Echo/Unary', 'two');
    assert.equal(reply.status, 200);
    assert.match(reply.messages[0] ?? '', /^echo:two /);
    assert.equal(going.sessions, 2);
    assert.deepEqual(going.streams.map((stream) => stream.session), [1, 2]);
  });

  it('retries on a fresh session a call the upstream refused unprocessed under its GOAWAY', async () => {
    // The upstream announces GOAWAY with last stream 0 while the call is on its way: the stream is
    // not processed (RFC 9113 section 8.7), so hitless sends it again on a new session.
    const sessionsBefore = going.sessions;
    const live = going.live[going.live.length - 1];
    assert.ok(live !== undefined);
    live.goaway(constants.NGHTTP2_NO_ERROR, 0);
    const reply = await grpcCall(client, '/going/test.Echo/Unary', 'three');
    assert.equal(reply.status, 200);
    assert.match(reply.messages[0] ?? '', /^echo:three /);
    assert.equal(going.sessions, sessionsBefore + 1);
  });

  it('answers an HTTP/1.1 client over HTTP/1.1, trailers in the chunked trailer section', async () => {
    const port = served.ports.get('127.0.0.1:8080') ?? 0;
    const body = frame('old');
    const text = await new Promise<string>((resolve, reject) => {
      const socket = connect(port, '127.0.0.1', () => {
        socket.write(`POST /test.Echo/Unary HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/grpc\r\nTE: trailers\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
        socket.write(body);
      });
      let raw = '';
      socket.setEncoding('latin1');
      socket.on('data', (chunk: string) => (raw += chunk));
      socket.on('end', () => resolve(raw));
      socket.on('error', reject);
    });
    assert.match(text, /^HTTP\/1\.1 200 OK\r\n/);
    assert.match(text, /\r\nTransfer-Encoding: chunked\r\n/);
    assert.match(text, /\r\n0\r\ngrpc-status: 0\r\n\r\n$/);
    const chunk = text.slice(text.indexOf('\r\n\r\n') + 4);
    const size = Number.parseInt(chunk, 16);
    const data = Buffer.from(chunk.slice(chunk.indexOf('\r\n') + 2, chunk.indexOf('\r\n') + 2 + size), 'latin1');
    assert.match(unframe(data)[0] ?? '', /^echo:old via=hitless te=trailers /);
  });
});
