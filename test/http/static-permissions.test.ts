import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { chmodSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { tempDir, type TempDir } from '../helpers/tmp.js';
import { get } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/serve-unprivileged.js', import.meta.url));

describe('files the server may not read', () => {
  let dir: TempDir;
  let child: ChildProcess | undefined;
  let port = 0;

  before(async () => {
    dir = tempDir({ 'open.txt': 'open', 'secret.txt': 'secret', 'locked/inside.txt': 'inside' });
    chmodSync(dir.path, 0o755);
    chmodSync(`${dir.path}/secret.txt`, 0o000);
    chmodSync(`${dir.path}/locked`, 0o000);
    child = spawn(process.execPath, [FIXTURE, dir.path], { stdio: ['ignore', 'pipe', 'inherit'] });
    port = await new Promise<number>((resolve, reject) => {
      let out = '';
      child?.stdout?.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        if (out.includes('\n')) resolve(Number(out.trim()));
      });
      child?.once('exit', (code) => reject(new Error(`fixture exited with ${String(code)}`)));
    });
  });

  after(async () => {
    if (child !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child?.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    chmodSync(`${dir.path}/locked`, 0o755);
    dir?.remove();
  });

  it('answers an unreadable file with 403 and a readable one with 200', async () => {
    assert.equal((await get(port, '/open.txt')).status, 200);
    assert.equal((await get(port, '/secret.txt')).status, 403);
  });

  it('answers a file under an unsearchable directory with 403', async () => {
    assert.equal((await get(port, '/locked/inside.txt')).status, 403);
  });
});
