// Rewrites one "## " section of a Markdown file and leaves every other section as it was, so that
// several benchmark scripts can share docs/benchmarks.md.
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

/**
 * Replaces the section that starts with `## <title>` (up to the next "## " heading or the end of
 * the file) with `body`, or appends it if the file has no such section. A missing file is created
 * with `header` first. The file is replaced atomically (write, then rename).
 * @param {string} file
 * @param {string} title heading text, without the "## "
 * @param {string} body the section's content, without its heading
 * @param {string} header what a new file starts with
 */
export function writeMarkdownSection(file, title, body, header) {
  const current = existsSync(file) ? readFileSync(file, 'utf8') : `${header.trimEnd()}\n`;
  const section = `## ${title}\n\n${body.trim()}\n`;
  const lines = current.split('\n');
  const start = lines.findIndex((line) => line.trimEnd() === `## ${title}`);
  let next;
  if (start === -1) {
    next = `${current.trimEnd()}\n\n${section}`;
  } else {
    const relativeEnd = lines.slice(start + 1).findIndex((line) => /^## /.test(line));
    const end = relativeEnd === -1 ? lines.length : start + 1 + relativeEnd;
    const before = lines.slice(0, start).join('\n').trimEnd();
    const after = lines.slice(end).join('\n').trim();
    next = [before, section.trimEnd(), after].filter((part) => part !== '').join('\n\n') + '\n';
  }
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, next);
  renameSync(temporary, file);
}
