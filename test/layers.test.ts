// The layers of DESIGN.md, checked on the source: imports run one way down
// cli -> process -> http / stream -> upstream / tls / acme / admin / deploy / probe -> conf -> core,
// and no file imports itself back through a circle. `import type` counts as an import: a type
// that a lower layer needs from a higher one is the same sign as a value that it does (the
// thing belongs lower), and a type-only circle hides a design circle that the next value import
// turns real.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const srcRoot = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'src');

/** Rank of each folder under src/; a file may import only its own folder, lower ranks, or same-rank peers without a folder circle. */
const RANKS: Readonly<Record<string, number>> = {
  // A file at the top of src/ is a layer of its own: the public export list sees everything; the
  // module list sees every module (http, stream, tls, ...) and is read by process and cli.
  'index.ts': 7,
  'modules.ts': 4.5,
  cli: 6,
  process: 5,
  http: 4,
  stream: 4,
  upstream: 3,
  tls: 3,
  acme: 3,
  admin: 3,
  deploy: 3,
  probe: 3,
  conf: 2,
  core: 1,
};

/** One import of one file: `from` and `to` are paths relative to src/, with posix separators. */
interface ImportEdge {
  readonly from: string;
  readonly to: string;
}

function listSources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return listSources(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

// Static imports and re-exports (`import ... from`, `import type ... from`, `export ... from`,
// `import '...'`) and dynamic `import('...')`; comments are removed first so that a path quoted
// in a comment is not an edge.
const IMPORT = /(?:\bimport|\bexport)\s[^;'"]*?\bfrom\s*['"]([^'"]+)['"]|\bimport\s*['"]([^'"]+)['"]|\bimport\s*\(\s*['"]([^'"]+)['"]\s*\)/g;

function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"\\])\/\/.*$/gm, '$1');
}

/** Reads every src/**\/*.ts and returns its relative imports as edges between files. */
function importGraph(root: string = srcRoot): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of listSources(root)) {
    const from = relative(root, file).split(sep).join('/');
    const text = stripComments(readFileSync(file, 'utf8'));
    for (const match of text.matchAll(IMPORT)) {
      const specifier = match[1] ?? match[2] ?? match[3];
      if (specifier === undefined || !specifier.startsWith('.')) continue;
      const to = posix.normalize(posix.join(posix.dirname(from), specifier)).replace(/\.js$/, '.ts');
      edges.push({ from, to });
    }
  }
  return edges;
}

/** A file's layer: its first folder under src/, or the file itself at the top of src/. */
function folderOf(file: string): string {
  const slash = file.indexOf('/');
  return slash === -1 ? file : file.slice(0, slash);
}

/** Strongly connected components with more than one member (or a self-loop), by Tarjan's algorithm. */
function circles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const { from, to } of edges) {
    next.set(from, [...(next.get(from) ?? []), to]);
    if (!next.has(to)) next.set(to, []);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const found: string[][] = [];
  let counter = 0;
  // Iterative, so that a long chain of files cannot overflow the call stack.
  for (const start of next.keys()) {
    if (index.has(start)) continue;
    const work: Array<{ node: string; child: number }> = [{ node: start, child: 0 }];
    index.set(start, counter);
    low.set(start, counter);
    counter += 1;
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1]!;
      const children = next.get(frame.node) ?? [];
      if (frame.child < children.length) {
        const child = children[frame.child]!;
        frame.child += 1;
        if (!index.has(child)) {
          index.set(child, counter);
          low.set(child, counter);
          counter += 1;
          stack.push(child);
          onStack.add(child);
          work.push({ node: child, child: 0 });
        } else if (onStack.has(child)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(child)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent !== undefined) low.set(parent.node, Math.min(low.get(parent.node)!, low.get(frame.node)!));
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== frame.node);
        const selfLoop = children.includes(frame.node);
        if (component.length > 1 || selfLoop) found.push(component.sort());
      }
    }
  }
  return found;
}

/** Every file-level edge that breaks the rank rule, described as `from -> to (folder rank -> folder rank)`. */
function upwardImports(edges: readonly ImportEdge[]): string[] {
  const folderEdges: ImportEdge[] = [];
  for (const { from, to } of edges) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a !== b) folderEdges.push({ from: a, to: b });
  }
  // Same-rank peers may import each other only one way: a folder circle among them is a breach.
  const peerCircles = circles(folderEdges.filter(({ from, to }) => RANKS[from] === RANKS[to]));
  const inPeerCircle = (a: string, b: string): boolean => peerCircles.some((c) => c.includes(a) && c.includes(b));
  const bad: string[] = [];
  for (const { from, to } of edges) {
    const a = folderOf(from);
    const b = folderOf(to);
    if (a === b) continue;
    const rankA = RANKS[a];
    const rankB = RANKS[b];
    if (rankA === undefined || rankB === undefined) {
      bad.push(`${from} -> ${to} (folder "${rankA === undefined ? a : b}" has no layer in test/layers.test.ts)`);
    } else if (rankB > rankA || (rankB === rankA && inPeerCircle(a, b))) {
      bad.push(`${from} -> ${to} (${a} ${rankA} -> ${b} ${rankB})`);
    }
  }
  return bad;
}

test('the graph reader sees relative imports, type-only and re-exports included', () => {
  const edges = importGraph();
  assert.ok(edges.length > 100, `only ${edges.length} imports found`);
  assert.ok(edges.some((e) => e.from === 'index.ts'), 'src/index.ts re-exports nothing?');
});

test('no folder imports upward in the layer order', () => {
  const bad = upwardImports(importGraph());
  assert.equal(bad.length, 0, `upward imports:\n  ${bad.join('\n  ')}`);
});

test('no file-level import circles', () => {
  const found = circles(importGraph());
  assert.equal(found.length, 0, `import circles:\n  ${found.map((c) => c.join(' -> ')).join('\n  ')}`);
});

test('the checks catch a breach (an upward edge and a circle)', () => {
  const edges: ImportEdge[] = [
    { from: 'core/a.ts', to: 'conf/b.ts' },
    { from: 'conf/b.ts', to: 'core/a.ts' },
    { from: 'http/x.ts', to: 'stream/y.ts' },
    { from: 'stream/z.ts', to: 'http/w.ts' },
  ];
  assert.deepEqual(upwardImports(edges), [
    'core/a.ts -> conf/b.ts (core 1 -> conf 2)',
    'http/x.ts -> stream/y.ts (http 4 -> stream 4)',
    'stream/z.ts -> http/w.ts (stream 4 -> http 4)',
  ]);
  assert.deepEqual(circles(edges), [['conf/b.ts', 'core/a.ts']]);
});

// Module-level state that is not a server's runtime state: memos of pure functions of their key
// (a regex's compiled form, a second's formatted date, a block's variable table, a configuration
// block's TLS settings), per-socket data keyed weakly by the socket, and process-wide counters
// that number connections as nginx's ngx_connection_counter does. Anything else that a module
// keeps between calls belongs in the runtime state (http/serving-state.ts) a server passes in.
const ALLOWED_MODULE_STATE: ReadonlySet<string> = new Set([
  'admin/status-page.ts previous', // a line of the page's browser script (a string), not state of this module
  'deploy/targets/nginx-process.ts builtInPaths', // `nginx -V` of a binary path, asked once
  'http/server-names.ts regexCache',
  'http/time-format.ts cachedSecond',
  'http/time-format.ts cachedLocal',
  'http/time-format.ts cachedIso',
  'http/h1/server-connection.ts nextConnectionId',
  'http/h1/response-head.ts statusLines',
  'http/h1/response-head.ts cachedSecond',
  'http/h1/response-head.ts cachedDate',
  'http/variables.ts knownTables',
  'http/charset-module.ts httpCharsets', // a block's charset_map tables, computed once for all its levels
  'stream/variables.ts knownTables',
  'stream/session.ts nextSessionId',
  'core/connection-stats.ts connectionStats', // the process's connection counters, as nginx's ngx_stat_* (stub_status sums them over workers)
  'tls/contexts.ts cache',
  'tls/sni.ts handshakeVerify',
  'tls/sni.ts handshakeHello', // a WeakMap keyed by the TLS socket: the ClientHello it began with, gone with the socket
  'tls/sni.ts handshakeGroups', // a WeakMap keyed by the TLS socket: the group settings of the server its handshake reached
]);

// `let`, an empty collection made to be filled (a `new Set([...])` of constants is a table, not
// state), or a state object (a client, a store, a table).
const MODULE_STATE = /^(?:export\s+)?(?:let\s+([A-Za-z_$][\w$]*)|const\s+([A-Za-z_$][\w$]*)(?::[^=]+)?\s*=\s*new\s+(?:(?:Map|Set|WeakMap|WeakSet)\s*(?:<[^;]*?>)?\(\s*\)|FinalizationRegistry|[A-Z]\w*(?:Client|Sessions|Table|Peers|Store|Runtime|Stats)\b))/gm;

test('no runtime state in module globals (module-level let, Map, Set, or a state object)', () => {
  const found: string[] = [];
  for (const file of listSources(srcRoot)) {
    const name = relative(srcRoot, file).split(sep).join('/');
    for (const match of stripComments(readFileSync(file, 'utf8')).matchAll(MODULE_STATE)) {
      const entry = `${name} ${match[1] ?? match[2] ?? ''}`;
      if (!ALLOWED_MODULE_STATE.has(entry)) found.push(entry);
    }
  }
  assert.equal(found.length, 0, `module-level state (pass it in a runtime object, or allow a pure cache with its reason):\n  ${found.join('\n  ')}`);
});
