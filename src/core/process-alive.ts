/** Whether a process exists, as kill(pid, 0) tells. */

/** True unless no process with this pid exists on this host (EPERM: it exists, but is someone else's). */
export function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return !(err instanceof Error && 'code' in err && err.code === 'ESRCH');
  }
}
