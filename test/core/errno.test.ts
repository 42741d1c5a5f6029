/** The one errno formatter: nginx's `(errno: strerror)` for the errors hitless logs, and the ticket key file that said "13: Permission denied" for every error but ENOENT. */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { errnoMessage, errnoNumber, errnoText } from '../../src/core/errno.js';
import { formatSyscallError } from '../../src/core/errors.js';
import { readTicketKeyFile } from '../../src/tls/ticket-keys.js';

function failure(code: string): NodeJS.ErrnoException {
  return Object.assign(new Error(`${code} from libuv`), { code });
}

describe('errno text in nginx\'s words', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-errno-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('gives the number and glibc\'s strerror() text nginx prints on Linux', () => {
    assert.equal(errnoText(failure('ECONNREFUSED')), '111: Connection refused');
    assert.equal(errnoText(failure('ECONNRESET')), '104: Connection reset by peer');
    assert.equal(errnoText(failure('EHOSTUNREACH')), '113: No route to host');
    assert.equal(errnoText(failure('ENETUNREACH')), '101: Network is unreachable');
    assert.equal(errnoText(failure('ETIMEDOUT')), '110: Connection timed out');
    assert.equal(errnoText(failure('EPIPE')), '32: Broken pipe');
    assert.equal(errnoText(failure('EMSGSIZE')), '90: Message too long');
    assert.equal(errnoText(failure('ENOENT')), '2: No such file or directory');
    assert.equal(errnoText(failure('EACCES')), '13: Permission denied');
    assert.equal(errnoText(failure('EISDIR')), '21: Is a directory');
    assert.equal(errnoText(failure('EADDRINUSE')), '98: Address already in use');
    assert.equal(errnoNumber('ECONNREFUSED'), 111);
    assert.equal(errnoMessage('ELOOP'), 'Too many levels of symbolic links');
  });

  it('falls back to the error\'s own message for a code that is no errno', () => {
    assert.equal(errnoText(failure('ERR_SOMETHING')), 'ERR_SOMETHING from libuv');
    assert.equal(errnoText(new Error('plain')), 'plain');
    assert.equal(errnoMessage('ERR_SOMETHING'), undefined);
  });

  it('formats system calls as nginx does', () => {
    assert.equal(formatSyscallError('open', '/x', Object.assign(failure('ENOENT'), { errno: -2 })), 'open() "/x" failed (2: No such file or directory)');
  });

  it('reports a ticket key file that is a directory as such, not as "Permission denied"', () => {
    assert.throws(() => readTicketKeyFile({ written: dir, path: dir }), { message: `open() "${dir}" failed (21: Is a directory)` });
    const missing = join(dir, 'missing.key');
    assert.throws(() => readTicketKeyFile({ written: missing, path: missing }), { message: `open() "${missing}" failed (2: No such file or directory)` });
  });
});
