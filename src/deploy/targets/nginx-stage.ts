/**
 * A staged copy of an nginx configuration, for `nginx -t`: the live configuration with the
 * staged files in place of the live ones, and nothing live touched.
 *
 * Every `ssl_certificate`/`ssl_certificate_key` naming a staged file gets the staged path, written
 * over exactly the bytes of its argument (the lexer's Word offsets), so comments, quoting and every
 * other directive stay as they are. A changed file is copied beside its original under a hidden
 * name, and each file that includes it gets a copy too, its `include` rewritten to list the same
 * files by absolute path with the copy in its place, up to the main file. The staged main file
 * lives in the live main file's directory, so nginx's conf prefix, against which it resolves every
 * relative `include` and certificate path, is the same as the live configuration's.
 */
import { unlink } from 'node:fs/promises';
import type { ConfFile, DirectiveNode, ParsedConfig } from '../../conf/parser.js';
import { siblingPath, writeNewFile } from '../../core/atomic-write.js';
import { directivePath, walk } from './nginx-vhost.js';

/** A text replacement in one file. */
interface Edit {
  readonly start: number;
  readonly end: number;
  readonly text: string;
}

/** A staged configuration: the main file to give `nginx -t -c`, and how to remove it. */
export interface StagedConfig {
  /** The staged main file (or the live one, when nothing needed a copy). */
  readonly main: string;
  /** Every staged copy written, main included. */
  readonly written: readonly string[];
  /** Directives that were pointed at staged files, as `file:line`. */
  readonly patched: readonly string[];
  remove(): Promise<void>;
}

/** Quotes a path as an nginx word: double quotes, with `"` and `\` escaped. */
export function quoteWord(value: string): string {
  return `"${value.replace(/[\\"]/g, (ch) => `\\${ch}`)}"`;
}

/**
 * Writes the staged copies for `staged` (live path → staged path). A live path may be a
 * certificate or key named by directives, or a configuration file (the main file or an included
 * one) whose new content is already staged.
 */
export async function stageNginxConfig(config: ParsedConfig, staged: ReadonlyMap<string, string>): Promise<StagedConfig> {
  const edits = new Map<string, Edit[]>();
  const addEdit = (file: string, edit: Edit): void => {
    const list = edits.get(file) ?? [];
    if (!list.some((each) => each.start === edit.start)) list.push(edit);
    edits.set(file, list);
  };
  const patched: string[] = [];
  walk(config.nodes, (node) => {
    if (node.name !== 'ssl_certificate' && node.name !== 'ssl_certificate_key') return;
    const target = staged.get(directivePath(config, node));
    const word = node.words[1];
    if (target === undefined || word === undefined) return;
    addEdit(node.file, { start: word.start, end: word.end, text: quoteWord(target) });
    patched.push(`${node.file}:${node.line}`);
  });

  // Files whose staged copy replaces them: new content staged by the caller, or a patched copy.
  const replaced = new Map<string, string>();
  for (const file of config.files) {
    const given = staged.get(file.path);
    if (given !== undefined) replaced.set(file.path, given);
  }
  const copyOf = (path: string): string => {
    let copy = replaced.get(path);
    if (copy === undefined) {
      copy = siblingPath(path, 'stage');
      replaced.set(path, copy);
    }
    return copy;
  };
  for (const file of edits.keys()) copyOf(file);

  // A file that includes a replaced file is replaced too, up to the main file: first find them
  // all, then rewrite each such include to list its files with the copies in their place.
  const includes: DirectiveNode[] = [];
  walk(config.nodes, (node) => {
    if (node.name === 'include' && node.included !== undefined) includes.push(node);
  });
  const touches = (node: DirectiveNode): boolean => (node.included ?? []).some((file) => replaced.has(file.path));
  for (let grew = true; grew; ) {
    grew = false;
    for (const node of includes) {
      if (touches(node) && !replaced.has(node.file)) {
        copyOf(node.file);
        grew = true;
      }
    }
  }
  for (const node of includes) {
    const first = node.words[0];
    const last = node.words[node.words.length - 1];
    if (!touches(node) || first === undefined || last === undefined) continue;
    const files = node.included ?? [];
    const text = files.map((file) => `include ${quoteWord(replaced.get(file.path) ?? file.path)}`).join('; ');
    addEdit(node.file, { start: first.start, end: last.end, text });
  }

  const written: string[] = [];
  const remove = async (): Promise<void> => {
    await Promise.all(written.map((path) => unlink(path).catch(() => undefined)));
  };
  try {
    for (const file of config.files) {
      const fileEdits = edits.get(file.path);
      const copy = replaced.get(file.path);
      if (fileEdits === undefined || copy === undefined || staged.has(file.path)) continue;
      await writeNewFile(copy, Buffer.from(applyEdits(file, fileEdits)), { mode: 0o600 });
      written.push(copy);
    }
  } catch (err) {
    await remove();
    throw err;
  }
  return { main: replaced.get(config.path) ?? config.path, written, patched, remove };
}

/** The file's text with the edits applied, last first so that offsets stay valid. */
function applyEdits(file: ConfFile, edits: readonly Edit[]): string {
  let text = file.text;
  for (const edit of [...edits].sort((a, b) => b.start - a.start)) {
    text = text.slice(0, edit.start) + edit.text + text.slice(edit.end);
  }
  return text;
}
