/**
 * A certificate, key or password file that cannot be read is reported with the system's own
 * reason, as nginx reports it. Regression: every error but ENOENT read "Permission denied", so a
 * directory given as a certificate sent the operator chasing file modes.
 */
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { readPasswordFile, readPemSync } from '../../src/tls/certificate-files.js';
import { tempDir } from '../helpers/tmp.js';

describe('certificate file errors name the real reason', () => {
  const dir = tempDir();
  after(() => dir.remove());

  it('a directory given as a certificate is "Is a directory", not "Permission denied"', () => {
    const path = join(dir.path, 'cert.d');
    mkdirSync(path);
    assert.throws(() => readPemSync(path, 'certificate'), (err: Error) => {
      assert.match(err.message, /system library::Is a directory:calling fopen\(/);
      assert.doesNotMatch(err.message, /Permission denied/);
      return true;
    });
  });

  it('a missing certificate is "No such file or directory"', () => {
    assert.throws(() => readPemSync(join(dir.path, 'missing.pem'), 'certificate'), /system library::No such file or directory:calling fopen\(/);
  });

  it('ssl_password_file: a directory is "21: Is a directory" and a path through a file is "20: Not a directory"', () => {
    const path = join(dir.path, 'passwords.d');
    mkdirSync(path);
    assert.throws(() => readPasswordFile(path), { message: `open() "${path}" failed (21: Is a directory)` });
    const file = dir.write('plain.txt', 'x\n');
    assert.throws(() => readPasswordFile(join(file, 'below')), { message: `open() "${join(file, 'below')}" failed (20: Not a directory)` });
  });
});
