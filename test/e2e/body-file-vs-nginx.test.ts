/**
 * Request bodies in files, side by side with Debian's nginx: a buffered body over
 * client_body_buffer_size goes to a file under client_body_temp_path (hashed subdirectories from
 * its levels, a ten-digit name, mode 0600), named by $request_body_file while $request_body is
 * empty, and removed when the request ends; client_body_in_file_only on keeps the file, clean
 * removes it, and with proxy_pass_request_body off the backend is told the file's name.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import http from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { startPair, type NginxPair } from './helpers/nginx-pair.js';

const SERVERS = ['hitless', 'nginx'] as const;
type Name = (typeof SERVERS)[number];

/** POSTs `body` and returns the status, the X-Body and X-Body-File fields and the body. */
function post(port: number, path: string, body: string): Promise<{ status: number; xBody: string | undefined; xFile: string | undefined; text: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path, method: 'POST', agent: false, headers: { 'content-length': String(body.length) } }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (chunk: string) => (text += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, xBody: res.headers['x-body'] as string | undefined, xFile: res.headers['x-body-file'] as string | undefined, text }));
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer to ${path} within 10 s`)));
    req.on('error', reject);
    req.end(body);
  });
}

/** Waits (at most 5 s) until the file is gone. */
async function gone(path: string): Promise<boolean> {
  for (let i = 0; i < 250 && existsSync(path); i++) await new Promise((resolve) => setTimeout(resolve, 20));
  return !existsSync(path);
}

describe('request bodies in files: hitless and nginx side by side', () => {
  let pair: NginxPair;
  const tempOf = (name: Name): string => join(pair.dir, name, 'body');
  /** A body file's path with the server's temp directory as TEMP and its ten digits as N. */
  const shape = (name: Name, path: string | undefined): string => (path ?? '').replace(tempOf(name), 'TEMP').replace(/[0-9]/g, 'N');
  const big = '0123456789'.repeat(500);

  before(async () => {
    pair = await startPair((port, dir, _extra, name) => `events {}
http {
    access_log off;
    client_body_buffer_size 1k;
    client_body_temp_path ${dir}/${name}/body 1 2;
    server {
        listen 127.0.0.1:${port};
        location / {
            add_header X-Body "$request_body";
            add_header X-Body-File "$request_body_file";
            proxy_pass http://127.0.0.1:${port}/sink;
        }
        location /only/ {
            client_body_in_file_only on;
            add_header X-Body "$request_body";
            add_header X-Body-File "$request_body_file";
            proxy_pass http://127.0.0.1:${port}/sink;
        }
        location /clean/ {
            client_body_in_file_only clean;
            add_header X-Body-File "$request_body_file";
            proxy_pass http://127.0.0.1:${port}/sink;
        }
        location /offload/ {
            client_body_in_file_only on;
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-File $request_body_file;
            proxy_pass http://127.0.0.1:${port}/told;
        }
        location /sink { return 200 "sink\\n"; }
        location /told { return 200 "$http_x_file"; }
    }
}
`);
  });

  after(async () => {
    await pair?.stop();
  });

  it('keeps a body within client_body_buffer_size in memory', async () => {
    for (const name of SERVERS) {
      const answer = await post(pair.ports[name], '/small', 'hello');
      assert.equal(answer.xBody, 'hello', name);
      assert.equal(answer.xFile, undefined, name);
    }
  });

  it('writes a longer body to a file named by $request_body_file, $request_body empty, removed at the end', async () => {
    for (const name of SERVERS) {
      const answer = await post(pair.ports[name], '/big', big);
      assert.equal(answer.status, 200, name);
      assert.equal(answer.xBody, undefined, name);
      assert.equal(shape(name, answer.xFile), 'TEMP/N/NN/NNNNNNNNNN', name);
      // The directory levels are the name's last digits.
      const file = answer.xFile ?? '';
      const digits = file.slice(-10);
      assert.equal(file, join(tempOf(name), digits.slice(-1), digits.slice(-3, -1), digits), name);
      assert.ok(await gone(file), `${name}: ${file} left behind`);
    }
  });

  it('keeps the file with client_body_in_file_only on, mode 0600, and removes it with clean', async () => {
    for (const name of SERVERS) {
      const kept = await post(pair.ports[name], '/only/x', 'short');
      assert.equal(kept.xBody, undefined, name);
      const file = kept.xFile ?? assert.fail(`${name}: no X-Body-File`);
      assert.equal(readFileSync(file, 'latin1'), 'short', name);
      assert.equal(statSync(file).mode & 0o777, 0o600, name);
      const cleaned = await post(pair.ports[name], '/clean/x', big);
      assert.equal(shape(name, cleaned.xFile), 'TEMP/N/NN/NNNNNNNNNN', name);
      assert.ok(await gone(cleaned.xFile ?? ''), name);
    }
  });

  it('tells a backend the file with proxy_pass_request_body off', async () => {
    for (const name of SERVERS) {
      const answer = await post(pair.ports[name], '/offload/upload', big);
      assert.equal(answer.status, 200, name);
      assert.equal(shape(name, answer.text), 'TEMP/N/NN/NNNNNNNNNN', name);
      assert.equal(readFileSync(answer.text, 'latin1'), big, name);
    }
  });
});
