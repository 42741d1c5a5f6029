// Resident memory of a process and of the processes it forked (nginx's and hitless's workers),
// read from /proc as `ps` would.
import { readdirSync, readFileSync } from 'node:fs';

/**
 * `pid` and all its descendants, found through the parent pid in /proc/<pid>/stat. Scanning /proc
 * works on every kernel; /proc/<pid>/task/<tid>/children needs CONFIG_PROC_CHILDREN and lists the
 * children of one thread only.
 * @param {number} pid
 * @returns {number[]}
 */
export function processTree(pid) {
  /** @type {Map<number, number[]>} */
  const childrenOf = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const ppid = parentPid(Number(entry));
    if (ppid === undefined) continue;
    const siblings = childrenOf.get(ppid) ?? [];
    siblings.push(Number(entry));
    childrenOf.set(ppid, siblings);
  }
  const tree = [];
  const pending = [pid];
  while (pending.length > 0) {
    const next = /** @type {number} */ (pending.pop());
    tree.push(next);
    pending.push(...(childrenOf.get(next) ?? []));
  }
  return tree;
}

/**
 * VmRSS of each process of the tree rooted at `pid`, in KiB; processes that are gone are left out.
 * @param {number} pid
 * @returns {{ pid: number, rssKiB: number }[]}
 */
export function treeRss(pid) {
  return processTree(pid).flatMap((member) => {
    const rssKiB = vmRssKiB(member);
    return rssKiB === undefined ? [] : [{ pid: member, rssKiB }];
  });
}

/**
 * @param {number} pid
 * @returns {number | undefined}
 */
function parentPid(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) is in parentheses and may itself hold spaces or parentheses.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[1]);
  } catch {
    return undefined;
  }
}

/**
 * @param {number} pid
 * @returns {number | undefined}
 */
function vmRssKiB(pid) {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Number(match[1]) : undefined;
  } catch {
    return undefined;
  }
}
