#!/usr/bin/env node
// Where a process's CPU went, from a V8 .cpuprofile (node --cpu-prof): self time per function,
// summed by module (node:internal/http2/core, hitless's build/src/http/..., native code) and by
// coarse owner (hitless's code, node:http2, the rest of Node's JavaScript, native code and V8, GC).
// Usage: node bench/lib/profile-summary.js <file.cpuprofile> [--top 15]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

/**
 * @typedef {object} ProfileSummary
 * @property {number} busyMs sampled time that was not (idle)
 * @property {[string, number][]} owners ms per coarse owner, largest first
 * @property {[string, number][]} modules ms per module, largest first
 * @property {{ name: string, where: string, ms: number, caller: string, callerMs: number }[]} functions largest self time first, with the caller that most of that time came through
 */

/**
 * The module a call frame belongs to: its URL relative to the build folder for hitless's code,
 * node:... for Node's JavaScript, a marker for V8's pseudo-frames and native code.
 * @param {{ functionName: string, url: string }} frame
 */
function moduleOf(frame) {
  if (frame.url === '') return /^\(.*\)$/.test(frame.functionName) ? frame.functionName : '(native)';
  const build = /\/build\/(src\/.*)$/.exec(frame.url);
  if (build) return `hitless ${build[1]}`;
  if (frame.url.startsWith('node:')) return frame.url;
  const dependency = /\/node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(frame.url);
  if (dependency) return `dependency ${dependency[1]}`;
  return frame.url.replace(/^file:\/\/.*\//, '');
}

/** @param {string} module */
function ownerOf(module) {
  if (module.startsWith('hitless ')) return "hitless's code";
  if (/^node:(internal\/)?http2/.test(module)) return 'node:http2 (JavaScript)';
  if (/^node:(internal\/streams\/|events$|internal\/process\/task_queues$|stream$)/.test(module)) return 'Node streams, events and nextTick (each Http2Stream is a Duplex)';
  if (module.startsWith('node:')) return "the rest of Node's JavaScript (tls, net, timers...)";
  if (module === '(native)') return 'native: V8 builtins, Node bindings (nghttp2, OpenSSL, libuv), C++';
  if (/^\(.*\)$/.test(module)) return module;
  if (module.startsWith('dependency ')) return 'dependencies (node_modules)';
  return 'other JavaScript (bin/hitless, the peer script)';
}

/**
 * @param {{ nodes: { id: number, children?: number[], callFrame: { functionName: string, url: string, lineNumber: number } }[], startTime: number, samples: number[], timeDeltas: number[] }} profile
 * @param {{ fromUs: number, toUs: number }} [window] only the samples taken in this window, in µs
 *   of CLOCK_MONOTONIC (process.hrtime, the clock of the profile's timestamps); default all
 * @returns {ProfileSummary}
 */
export function summarizeProfile(profile, window) {
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  /** @type {Map<number, number>} */
  const parentOf = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  /** @param {{ functionName: string, url: string, lineNumber: number }} frame */
  const describe = (frame) => {
    const module = moduleOf(frame);
    return { name: frame.functionName || '(anonymous)', where: frame.url === '' ? module : `${module}:${frame.lineNumber + 1}` };
  };
  /** @type {Map<number, number>} */
  const selfUs = new Map();
  let at = profile.startTime;
  profile.samples.forEach((id, i) => {
    at += profile.timeDeltas[i] ?? 0;
    if (window !== undefined && (at < window.fromUs || at > window.toUs)) return;
    selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
  });
  /** @type {Map<string, number>} */
  const modules = new Map();
  /** @type {Map<string, number>} */
  const owners = new Map();
  /** @type {Map<string, { name: string, where: string, ms: number, callers: Map<string, number> }>} */
  const functions = new Map();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)?.callFrame;
    if (frame === undefined || frame.functionName === '(idle)') continue;
    busyUs += us;
    const module = moduleOf(frame);
    modules.set(module, (modules.get(module) ?? 0) + us / 1000);
    owners.set(ownerOf(module), (owners.get(ownerOf(module)) ?? 0) + us / 1000);
    const { name, where } = describe(frame);
    const key = `${name} ${where}`;
    const entry = functions.get(key) ?? { name, where, ms: 0, callers: new Map() };
    entry.ms += us / 1000;
    const parent = byId.get(parentOf.get(id) ?? -1)?.callFrame;
    const caller = parent === undefined ? '' : `${describe(parent).name} (${describe(parent).where})`;
    entry.callers.set(caller, (entry.callers.get(caller) ?? 0) + us / 1000);
    functions.set(key, entry);
  }
  const sorted = (/** @type {Map<string, number>} */ map) => [...map].sort((a, b) => b[1] - a[1]);
  const list = [...functions.values()].map(({ callers, ...f }) => {
    const [caller = '', callerMs = 0] = sorted(callers)[0] ?? [];
    return { ...f, caller, callerMs };
  });
  return { busyMs: busyUs / 1000, owners: sorted(owners), modules: sorted(modules), functions: list.sort((a, b) => b.ms - a.ms) };
}

/**
 * The summary as Markdown tables: owners, then the top modules and functions.
 * @param {ProfileSummary} summary
 * @param {number} [top] rows of the module and function tables, default 12
 * @param {number} [requests] requests served while the samples were taken, for a µs-per-request column
 */
export function formatSummary(summary, top = 12, requests = undefined) {
  const percent = (/** @type {number} */ ms) => `${((ms / summary.busyMs) * 100).toFixed(1)}%`;
  const perRequest = (/** @type {number} */ ms) => (requests === undefined ? '' : ` ${((ms * 1000) / requests).toFixed(1)} |`);
  return [
    `Busy (not idle) time sampled: ${(summary.busyMs / 1000).toFixed(2)} s${requests === undefined ? '' : `, ${requests} requests: ${((summary.busyMs * 1000) / requests).toFixed(1)} µs per request`}.`,
    '',
    `| owner | self time | share |${requests === undefined ? '' : ' µs per request |'}`,
    `|---|--:|--:|${requests === undefined ? '' : '--:|'}`,
    ...summary.owners.map(([owner, ms]) => `| ${owner} | ${ms.toFixed(0)} ms | ${percent(ms)} |${perRequest(ms)}`),
    '',
    '| module | self time | share |',
    '|---|--:|--:|',
    ...summary.modules.slice(0, top).map(([module, ms]) => `| \`${module}\` | ${ms.toFixed(0)} ms | ${percent(ms)} |`),
    '',
    '| function | where | self time | share | mostly called from |',
    '|---|---|--:|--:|---|',
    ...summary.functions.slice(0, top).map((f) => `| \`${f.name}\` | \`${f.where}\` | ${f.ms.toFixed(0)} ms | ${percent(f.ms)} | ${f.caller === '' ? '' : `\`${f.caller}\` (${((f.callerMs / f.ms) * 100).toFixed(0)}%)`} |`),
  ].join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '12' } } });
  if (positionals.length !== 1) {
    process.stderr.write('Usage: node bench/lib/profile-summary.js <file.cpuprofile> [--top 12]\n');
    process.exit(2);
  }
  console.log(formatSummary(summarizeProfile(JSON.parse(readFileSync(String(positionals[0]), 'utf8'))), Number(values.top)));
}
