/**
 * proxy_pass with proxy_request_buffering on, side by side with Debian's nginx: a body past
 * client_body_buffer_size is spooled to an unnamed temporary file under client_body_temp_path as it
 * arrives (nginx's [warn] "a client request body is buffered to a temporary file"), not held in
 * memory, and arrives at a real loopback backend complete; a retry to the next upstream after the
 * first one failed half-way through the body sends all of it again, read back from the file.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import http from 'node:http';
import { connect, createServer, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['nginx', 'hitless'] as const;
type Name = (typeof SERVERS)[number];

async function until(check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/** The links and sizes of the files under `root` that some process holds open ("(deleted)" ones too), from /proc. */
function openFilesUnder(root: string): { link: string; size: number }[] {
  const found: { link: string; size: number }[] = [];
  for (const pid of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(pid)) continue;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const link = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (link.startsWith(`${root}/`)) found.push({ link, size: statSync(`/proc/${pid}/fd/${fd}`).size });
      } catch {
        // Closed meanwhile.
      }
    }
  }
  return found;
}

/** 20 MiB, each 4 KiB block numbered, so that a lost or repeated piece changes the hash. */
function upload(): Buffer {
  const body = Buffer.alloc(20 * 1024 * 1024);
  for (let i = 0; i < body.length; i += 4096) body.writeUInt32BE(i, i);
  return body;
}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

describe('proxy_pass request bodies spooled to a temporary file: hitless and nginx side by side', () => {
  let pair: NginxPair | undefined;
  /** The backend: answers with the length and SHA-256 of the body it got. */
  let backend: http.Server | undefined;
  /** A backend that reads 1 MiB of the body and resets the connection. */
  let failing: Server | undefined;
  let failingHits = 0;
  const body = upload();
  const spoolOf = (name: Name): string => join((pair as NginxPair).dir, name, 'spool');

  before(async () => {
    backend = http.createServer((req, res) => {
      const hash = createHash('sha256');
      let length = 0;
      req.on('data', (chunk: Buffer) => {
        hash.update(chunk);
        length += chunk.length;
      });
      req.on('end', () => res.end(JSON.stringify({ method: req.method, length, sha256: hash.digest('hex'), contentLength: req.headers['content-length'] })));
    });
    await new Promise<void>((resolve) => backend?.listen(0, '127.0.0.1', resolve));
    failing = createServer((socket) => {
      failingHits++;
      let got = 0;
      socket.on('data', (chunk: Buffer) => {
        got += chunk.length;
        if (got >= 1024 * 1024) socket.resetAndDestroy();
      });
      socket.on('error', () => undefined);
    });
    await new Promise<void>((resolve) => failing?.listen(0, '127.0.0.1', resolve));
    const good = (backend.address() as AddressInfo).port;
    const bad = (failing.address() as AddressInfo).port;
    pair = await startPair((port, dir, _extra, name) => `events {}
http {
    access_log off;
    error_log ${dir}/${name}/logs/spool.log warn;
    client_max_body_size 64m;
    client_body_buffer_size 16k;
    client_body_temp_path ${dir}/${name}/spool 1 2;
    upstream flaky { server 127.0.0.1:${bad}; server 127.0.0.1:${good} backup; }
    server {
        listen 127.0.0.1:${port};
        location /up/ { proxy_pass http://127.0.0.1:${good}; }
        location /retry/ { proxy_pass http://flaky; }
        location /redirect/ { proxy_pass http://127.0.0.1:${bad}; error_page 502 = /up/redirected; }
    }
}
`);
  });

  after(async () => {
    await pair?.stop();
    backend?.close();
    failing?.close();
  });

  /** PUTs the upload in two halves: the second once the first is in a temporary file the server holds open. */
  const put = async (name: Name, path: string): Promise<{ status: number; text: string }> => {
    const socket = connect((pair as NginxPair).ports[name], '127.0.0.1');
    const chunks: Buffer[] = [];
    const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.on('error', () => undefined);
    const half = 8 * 1024 * 1024;
    try {
      socket.write(`PUT ${path} HTTP/1.1\r\nHost: spool.test\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`);
      socket.write(body.subarray(0, half));
      // While the client holds the rest back, what it sent is in the file, not in memory: all of
      // it but at most a buffer and what one read of the socket takes; the file has no name left.
      await until(() => openFilesUnder(spoolOf(name)).some((file) => file.size >= half - 256 * 1024), `${name}'s temporary file`);
      const files = openFilesUnder(spoolOf(name));
      assert.equal(files.length, 1, `${name}: one temporary file`);
      assert.match(files[0]?.link ?? '', /\/spool\/[0-9]\/[0-9]{2}\/[0-9]{10} \(deleted\)$/, `${name}: unlinked at once`);
      socket.write(body.subarray(half));
      await closed;
    } finally {
      socket.destroy();
    }
    await until(() => openFilesUnder(spoolOf(name)).length === 0, `${name}'s temporary file to be closed`);
    const text = Buffer.concat(chunks).toString('latin1');
    const json = text.slice(text.indexOf('{'), text.lastIndexOf('}') + 1);
    return { status: Number(text.slice(9, 12)), text: json === '' ? text : json };
  };

  it('sends a 20 MiB upload complete to the backend, spooled to an unlinked file, with nginx\'s [warn]', async () => {
    for (const name of SERVERS) {
      const answer = await put(name, '/up/upload');
      assert.equal(answer.status, 200, `${name}: ${answer.text}`);
      assert.deepEqual(JSON.parse(answer.text), { method: 'PUT', length: body.length, sha256: sha256(body), contentLength: String(body.length) }, name);
      const log = readFileSync(join((pair as NginxPair).dir, name, 'logs', 'spool.log'), 'utf8');
      assert.match(log, /\[warn\] .*a client request body is buffered to a temporary file .*\/spool\/[0-9]\/[0-9]{2}\/[0-9]{10}, client: 127\.0\.0\.1, server: , request: "PUT \/up\/upload HTTP\/1\.1", host: "spool\.test"/, `${name}'s error log`);
    }
  });

  it('sends the whole body again to the next upstream after the first reset the connection half-way', async () => {
    for (const name of SERVERS) {
      const hits = failingHits;
      const answer = await put(name, '/retry/upload');
      assert.equal(failingHits, hits + 1, `${name}: the first upstream was tried`);
      assert.equal(answer.status, 200, `${name}: ${answer.text}`);
      assert.deepEqual(JSON.parse(answer.text), { method: 'PUT', length: body.length, sha256: sha256(body), contentLength: String(body.length) }, name);
    }
  });

  it('sends the body from its file again after an internal redirect (error_page), as nginx does', async () => {
    const seen = new Map<Name, unknown>();
    for (const name of SERVERS) {
      const answer = await put(name, '/redirect/upload');
      assert.equal(answer.status, 200, `${name}: ${answer.text}`);
      seen.set(name, JSON.parse(answer.text));
    }
    assert.deepEqual(seen.get('hitless'), seen.get('nginx'));
    assert.equal((seen.get('nginx') as { sha256: string }).sha256, sha256(body), 'nginx itself');
  });
});
