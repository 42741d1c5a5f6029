/**
 * hitless and Debian's nginx side by side on one http block: the answers to a request line or a
 * header over large_client_header_buffers (414, 400 "Request Header Or Cookie Too Large"), the
 * Server header and page footer of server_tokens, msie_padding, underscores_in_headers and
 * merge_slashes. Both are real processes on loopback; only the signature differs
 * (`nginx/1.22.1` and `hitless/VERSION`).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { VERSION } from '../../src/core/version.js';
import { freePort, MasterUnderTest, TestPrefix, waitFor } from './helpers/masters.js';

const NGINX = '/usr/sbin/nginx';
const CHROME = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36';

function httpBlock(port: number): string {
  return `http {
    access_log off;
    large_client_header_buffers 2 1k;
    server {
      listen 127.0.0.1:${port};
      location / { return 200 "under=$http_x_under\\n"; }
      location /404/ { return 404; }
      location /off/ { server_tokens off; return 404; }
      location = /a/b { return 200 "merged\\n"; }
    }
  }`;
}

/** One request on its own connection, read until the server closes or the response is complete. */
function exchange(port: number, request: string): Promise<{ status: number; headers: Map<string, string>; body: string }> {
  return new Promise((resolve, reject) => {
    let text = '';
    const socket = connect(port, '127.0.0.1', () => socket.write(request));
    socket.setEncoding('latin1');
    const finish = (): void => {
      const end = text.indexOf('\r\n\r\n');
      if (end === -1) {
        reject(new Error(`no response head: ${JSON.stringify(text)}`));
        return;
      }
      const [statusLine = '', ...lines] = text.slice(0, end).split('\r\n');
      const headers = new Map(lines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()] as const));
      resolve({ status: Number(statusLine.split(' ')[1]), headers, body: text.slice(end + 4) });
    };
    socket.on('data', (chunk: string) => {
      text += chunk;
      const end = text.indexOf('\r\n\r\n');
      const length = /\r\ncontent-length: (\d+)/i.exec(text.slice(0, end))?.[1];
      if (end !== -1 && length !== undefined && text.length >= end + 4 + Number(length)) {
        socket.destroy();
        finish();
      }
    });
    socket.on('error', reject);
    socket.on('end', finish);
  });
}

describe('http core directives: hitless answers as nginx does', () => {
  let nginx: ChildProcess | undefined;
  let nginxDir: string;
  let nginxPort: number;
  let prefix: TestPrefix;
  let hitless: MasterUnderTest | undefined;
  let hitlessPort: number;

  before(async () => {
    nginxPort = await freePort();
    hitlessPort = await freePort();
    nginxDir = mkdtempSync(join(tmpdir(), 'hitless-nginx-'));
    mkdirSync(join(nginxDir, 'logs'));
    writeFileSync(
      join(nginxDir, 'nginx.conf'),
      `pid ${nginxDir}/logs/nginx.pid; error_log ${nginxDir}/logs/error.log info; events {} ${httpBlock(nginxPort).replace('access_log off;', `access_log off; client_body_temp_path ${nginxDir}/body; proxy_temp_path ${nginxDir}/proxy; fastcgi_temp_path ${nginxDir}/fcgi; uwsgi_temp_path ${nginxDir}/uwsgi; scgi_temp_path ${nginxDir}/scgi;`)}`,
    );
    nginx = spawn(NGINX, ['-p', `${nginxDir}/`, '-c', join(nginxDir, 'nginx.conf'), '-g', 'daemon off; master_process off;'], { stdio: ['ignore', 'ignore', 'pipe'] });
    let nginxErr = '';
    nginx.stderr?.on('data', (chunk: Buffer) => (nginxErr += chunk.toString()));
    prefix = new TestPrefix();
    prefix.writeConf(`error_log logs/error.log info; events {} ${httpBlock(hitlessPort)}`);
    hitless = new MasterUnderTest(prefix, 'hitless', ['-g', 'daemon off;']);
    const answers = async (port: number): Promise<true | undefined> => exchange(port, 'GET / HTTP/1.0\r\n\r\n').then(() => true as const, () => undefined);
    await waitFor('nginx to answer', () => {
      if (nginx?.exitCode !== null) throw new Error(`nginx exited: ${nginxErr}${readFileSync(join(nginxDir, 'logs/error.log'), 'utf8')}`);
      return answers(nginxPort);
    });
    await waitFor('hitless to answer', () => {
      if (hitless?.child.exitCode !== null) throw new Error(`hitless exited: ${hitless?.stderr ?? ''}${prefix.errorLog()}`);
      return answers(hitlessPort);
    });
  });

  after(async () => {
    nginx?.kill('SIGKILL');
    await hitless?.stop();
    prefix?.remove();
    if (nginxDir !== undefined) rmSync(nginxDir, { recursive: true, force: true });
  });

  /** Both answers, the signature made the same. */
  async function both(request: string): Promise<[Awaited<ReturnType<typeof exchange>>, Awaited<ReturnType<typeof exchange>>]> {
    const theirs = await exchange(nginxPort, request);
    const ours = await exchange(hitlessPort, request);
    const same = (body: string): string => body.replaceAll(`hitless/${VERSION}`, 'SIGNATURE').replaceAll('nginx/1.22.1', 'SIGNATURE').replaceAll('<center>hitless</center>', '<center>nginx</center>');
    return [{ ...theirs, body: same(theirs.body) }, { ...ours, body: same(ours.body) }];
  }

  function assertSame(theirs: Awaited<ReturnType<typeof exchange>>, ours: Awaited<ReturnType<typeof exchange>>): void {
    assert.equal(ours.status, theirs.status);
    assert.equal(ours.body, theirs.body);
    for (const name of ['content-type', 'connection']) assert.equal(ours.headers.get(name), theirs.headers.get(name), name);
  }

  it('Server: the version with server_tokens on, the name alone with off', async () => {
    const [theirs, ours] = await both('GET /404/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assertSame(theirs, ours);
    assert.equal(theirs.headers.get('server'), 'nginx/1.22.1');
    assert.equal(ours.headers.get('server'), `hitless/${VERSION}`);
    const [theirsOff, oursOff] = await both('GET /off/ HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assertSame(theirsOff, oursOff);
    assert.equal(theirsOff.headers.get('server'), 'nginx');
    assert.equal(oursOff.headers.get('server'), 'hitless');
  });

  it('414 for a request line over large_client_header_buffers', async () => {
    const [theirs, ours] = await both(`GET /${'a'.repeat(1100)} HTTP/1.1\r\nHost: a\r\n\r\n`);
    assert.equal(theirs.status, 414);
    assertSame(theirs, ours);
  });

  it('400 "Request Header Or Cookie Too Large" for a header line over it, and for too many', async () => {
    const [theirs, ours] = await both(`GET / HTTP/1.1\r\nHost: a\r\nCookie: ${'c'.repeat(1100)}\r\n\r\n`);
    assert.equal(theirs.status, 400);
    assert.match(theirs.body, /Request Header Or Cookie Too Large/);
    assertSame(theirs, ours);
    const [theirsMany, oursMany] = await both(`GET / HTTP/1.1\r\nHost: a\r\n${`X-Big: ${'d'.repeat(900)}\r\n`.repeat(4)}\r\n`);
    assert.equal(theirsMany.status, 400);
    assertSame(theirsMany, oursMany);
    // Three fit: the head may take client_header_buffer_size plus every large buffer.
    const [theirsFit, oursFit] = await both(`GET / HTTP/1.1\r\nHost: a\r\n${`X-Big: ${'d'.repeat(900)}\r\n`.repeat(3)}Connection: close\r\n\r\n`);
    assert.equal(theirsFit.status, 200);
    assertSame(theirsFit, oursFit);
  });

  it('msie_padding for Chrome on a built-in page', async () => {
    const [theirs, ours] = await both(`GET /404/ HTTP/1.1\r\nHost: a\r\nUser-Agent: ${CHROME}\r\nConnection: close\r\n\r\n`);
    assert.match(theirs.body, /padding/);
    assertSame(theirs, ours);
  });

  it('drops a header with an underscore, merges slashes', async () => {
    const [theirs, ours] = await both('GET / HTTP/1.1\r\nHost: a\r\nX_Under: 1\r\nConnection: close\r\n\r\n');
    assert.equal(theirs.body, 'under=\n');
    assertSame(theirs, ours);
    const [theirsSlash, oursSlash] = await both('GET /a//b HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.equal(theirsSlash.body, 'merged\n');
    assertSame(theirsSlash, oursSlash);
  });
});
