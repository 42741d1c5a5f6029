/** Temporary directories with files, removed after the test. */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

/** A temporary directory; `write` adds files below it, `remove` deletes it all. */
export interface TempDir {
  readonly path: string;
  write(relative: string, text: string): string;
  remove(): void;
}

/** Makes a temporary directory holding the given files (relative path → text). */
export function tempDir(files: Readonly<Record<string, string>> = {}): TempDir {
  const path = mkdtempSync(join(tmpdir(), 'hitless-test-'));
  const dir: TempDir = {
    path,
    write(relative, text) {
      const file = join(path, relative);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, text);
      return file;
    },
    remove() {
      rmSync(path, { recursive: true, force: true });
    },
  };
  for (const [relative, text] of Object.entries(files)) dir.write(relative, text);
  return dir;
}
