/**
 * `error_page 404 = @name` after a proxied request was answered 404 (proxy_intercept_errors on),
 * side by side with Debian's nginx: ngx_http_send_error_page() redirects to a URI as GET but to a
 * named location with the method kept, and the body the first proxy read goes to the named
 * location's upstream again, to proxy_pass and to grpc_pass alike (nginx-tests'
 * grpc_request_buffering.t "preserve_output"). The regression: hitless turned the request into a
 * GET for a named location too, so the gRPC upstream got a GET with Content-Length and no body.
 * Also: a gRPC request to a group without `keepalive` has a connection of its own, closed after
 * it, as nginx closes it.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

/** POSTs `body` on a new connection and reads the whole answer (at most 10 s). */
function post(port: number, path: string, body: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { host: 'localhost', 'content-type': 'application/grpc', 'content-length': String(body.length) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('latin1') }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to POST ${path} within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

describe('error_page to a named location keeps the method and the body read: hitless and nginx side by side', () => {
  let pair: NginxPair;
  let upstream: http.Server;
  let grpc: http2.Http2Server;
  /** Connections the gRPC upstream accepted, and those still open. */
  let accepted = 0;
  const open = new Set<Socket>();

  before(async () => {
    upstream = http.createServer((req, res) => {
      let length = 0;
      req.on('data', (chunk: Buffer) => (length += chunk.length));
      req.on('end', () => {
        if (req.url === '/missing') res.writeHead(404).end('not here');
        else res.end(`http ${req.method} ${req.url} ${length}`);
      });
    });
    grpc = http2.createServer();
    grpc.on('connection', (socket: Socket) => {
      accepted++;
      open.add(socket);
      socket.once('close', () => open.delete(socket));
    });
    grpc.on('stream', (stream, headers) => {
      let length = 0;
      stream.on('data', (chunk: Buffer) => (length += chunk.length));
      stream.on('end', () => {
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' });
        stream.end(`grpc ${String(headers[':method'])} ${String(headers[':path'])} ${length}`);
      });
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    await new Promise<void>((resolve) => grpc.listen(0, '127.0.0.1', resolve));
    const up = (upstream.address() as AddressInfo).port;
    const grpcUp = (grpc.address() as AddressInfo).port;
    pair = await startPair(
      (port, dir, _extra, name) => `
events {}
http {
    access_log off;
    client_body_temp_path ${dir}/${name}/body;
    proxy_temp_path ${dir}/${name}/proxy;
    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        location /proxy { proxy_pass http://127.0.0.1:${up}/missing; proxy_intercept_errors on; error_page 404 = @proxy; }
        location /grpc { proxy_pass http://127.0.0.1:${up}/missing; proxy_intercept_errors on; error_page 404 = @grpc; }
        location @proxy { proxy_pass http://127.0.0.1:${up}; }
        location @grpc { grpc_pass 127.0.0.1:${grpcUp}; }
    }
}
`,
    );
  });

  after(async () => {
    await pair?.stop();
    await new Promise<void>((resolve) => (upstream === undefined ? resolve() : upstream.close(() => resolve())));
    await new Promise<void>((resolve) => (grpc === undefined ? resolve() : grpc.close(() => resolve())));
  });

  for (const server of ['hitless', 'nginx'] as const) {
    it(`${server}: proxy_pass in the named location gets the POST and its body`, async () => {
      assert.deepEqual(await post(pair.ports[server], '/proxy', 'Hello'), { status: 200, body: 'http POST /proxy 5' });
    });

    it(`${server}: grpc_pass in the named location gets the POST and its body, also one kept in a file`, async () => {
      assert.deepEqual(await post(pair.ports[server], '/grpc', 'Hello'), { status: 200, body: 'grpc POST /grpc 5' });
      // Past client_body_buffer_size: the first proxy kept the body in a file.
      assert.deepEqual(await post(pair.ports[server], '/grpc', 'Hello'.repeat(13_200)), { status: 200, body: 'grpc POST /grpc 66000' });
    });

    it(`${server}: each gRPC request to a group without keepalive has a connection of its own, closed after it`, async () => {
      const before = accepted;
      await post(pair.ports[server], '/grpc', 'one');
      await post(pair.ports[server], '/grpc', 'two');
      assert.equal(accepted, before + 2);
      // Closed by the server under test: the upstream never closes one itself.
      const signal = AbortSignal.timeout(5_000);
      await Promise.all([...open].map((socket) => once(socket, 'close', { signal })));
      assert.equal(open.size, 0);
    });
  }
});
