/**
 * The process settings of ngx_core_module with the real binary, run as root (as CI runs): `user`
 * (workers switch to it, the master keeps root, and a log rotated under USR1 stays writable),
 * `env`, `working_directory`, `worker_priority`, `worker_rlimit_nofile`, `worker_cpu_affinity`,
 * each read back from /proc of the worker; and `user` without root: nginx's warning, nothing else.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { lookupGroup, lookupUser } from '../../src/core/host-system.js';
import { httpConf } from './helpers/http-conf.js';
import { MasterUnderTest, TestPrefix, freePort, isAlive, masterCommand, startMaster, waitFor } from './helpers/masters.js';

/** A field of /proc/PID/status (`Uid`, `Cpus_allowed_list`...), as written. */
function statusField(pid: number, field: string): string {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((entry) => entry.startsWith(`${field}:`));
  if (line === undefined) throw new Error(`no ${field} in /proc/${pid}/status`);
  return line.slice(field.length + 1).trim();
}

/** The nice value of a process: field 19 of /proc/PID/stat, after the parenthesized command. */
function niceOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[16]);
}

function environOf(pid: number): Map<string, string> {
  const entries = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').filter((entry) => entry !== '');
  return new Map(entries.map((entry) => [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)]));
}

const nobody = lookupUser('nobody');
const nogroup = lookupGroup('nogroup') ?? lookupGroup('nobody');

describe('worker settings as root', () => {
  const prefix = new TestPrefix();
  const workdir = mkdtempSync(join(tmpdir(), 'hitless-workdir-'));
  let master: MasterUnderTest;
  let port: number;
  let workers: number[];

  before(async () => {
    assert.equal(process.getuid?.(), 0, 'these tests run as root, as CI runs them');
    assert.ok(nobody !== undefined && nogroup !== undefined, 'the system has a nobody user and a nogroup or nobody group');
    port = await freePort();
    // As /var/log/nginx: the worker's user may enter the log directory, and owns no file in it.
    chmodSync(prefix.dir, 0o755);
    const group = lookupGroup('nogroup') === undefined ? 'nobody' : 'nogroup';
    const main = [
      `user nobody ${group};`,
      'worker_priority 7;',
      'worker_rlimit_nofile 4321;',
      'worker_cpu_affinity 1;',
      `working_directory ${workdir};`,
      'env KEEP_ME;',
      'env SET_ME=set;',
    ].join('\n');
    process.env.KEEP_ME = 'kept';
    process.env.DROP_ME = 'dropped';
    try {
      master = await startMaster({ prefix, conf: httpConf({ port, body: 'settings', workers: 2, main }), port, program: 'hitless' });
    } finally {
      delete process.env.KEEP_ME;
      delete process.env.DROP_ME;
    }
    workers = await waitFor('two workers', () => {
      const live = master.liveWorkers();
      return live.length === 2 ? live : undefined;
    });
    // A worker switches user once it has read its configuration; the second may still be reading.
    await waitFor('both workers to be ready', () => (workers.every((pid) => statusField(pid, 'Uid') !== '0\t0\t0\t0') ? true : undefined), 15_000);
  });
  after(async () => {
    await master?.stop();
    prefix.remove();
    rmSync(workdir, { recursive: true, force: true });
  });

  it('runs workers as the user and group, and keeps the master root', () => {
    for (const pid of workers) {
      assert.equal(statusField(pid, 'Uid').split(/\s+/)[0], String(nobody?.uid));
      assert.equal(statusField(pid, 'Uid').split(/\s+/)[1], String(nobody?.uid), 'the effective uid too');
      assert.equal(statusField(pid, 'Gid').split(/\s+/)[0], String(nogroup));
      // initgroups(): the user's own groups, not root's.
      assert.ok(!statusField(pid, 'Groups').split(/\s+/).includes('0'));
    }
    assert.equal(statusField(prefix.requirePid(), 'Uid').split(/\s+/)[0], '0');
  });

  it('gives workers the priority, file limit, CPUs and directory the configuration names', () => {
    for (const pid of workers) {
      assert.equal(niceOf(pid), 7);
      assert.match(readFileSync(`/proc/${pid}/limits`, 'utf8'), /^Max open files\s+4321\s+4321\s+files/m);
      assert.equal(statusField(pid, 'Cpus_allowed_list'), '0');
      assert.equal(readlinkSync(`/proc/${pid}/cwd`), workdir);
    }
    assert.equal(niceOf(prefix.requirePid()), 0, 'the master keeps its own priority');
  });

  it('gives workers only TZ, the env variables and Node\'s own', () => {
    for (const pid of workers) {
      const env = environOf(pid);
      assert.equal(env.get('KEEP_ME'), 'kept');
      assert.equal(env.get('SET_ME'), 'set');
      assert.equal(env.has('DROP_ME'), false);
      assert.equal(env.has('PATH'), false);
      for (const name of env.keys()) assert.match(name, /^(KEEP_ME|SET_ME|TZ|NODE_.*|UV_.*)$/);
    }
  });

  it('lets a worker that is no longer root write a log that was rotated away (USR1)', async () => {
    renameSync(prefix.errorLogPath, `${prefix.errorLogPath}.1`);
    master.signal('SIGUSR1');
    await prefix.waitForLog('reopening logs');
    // ngx_reopen_files(): the master creates the file and gives it to the workers' user.
    assert.equal(statSync(prefix.errorLogPath).uid, nobody?.uid);
    const pid = prefix.requirePid();
    master.signal('SIGQUIT');
    await waitFor('the master to exit', () => (!isAlive(pid) ? true : undefined), 15_000);
    for (const worker of workers) assert.match(prefix.errorLog(), new RegExp(`\\[notice\\] ${worker}#0: gracefully shutting down`));
    assert.doesNotMatch(prefix.errorLog(), /\[(alert|emerg|crit)\]/);
  });
});

describe('user without root', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-nonroot-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('is ignored with nginx\'s warning, and the test is successful', () => {
    assert.ok(nobody !== undefined && nogroup !== undefined);
    chmodSync(dir, 0o755);
    const file = join(dir, 'nginx.conf');
    writeFileSync(file, 'user www-data;\nerror_log stderr;\nevents {}\n', { mode: 0o644 });
    const result = spawnSync(process.execPath, [...masterCommand('hitless'), '-t', '-p', `${dir}/`, '-c', file], {
      encoding: 'utf8',
      uid: nobody?.uid ?? 65534,
      gid: nogroup ?? 65534,
      timeout: 20_000,
    });
    assert.equal(result.stderr, [
      `hitless: [warn] the "user" directive makes sense only if the master process runs with super-user privileges, ignored in ${file}:1`,
      `hitless: the configuration file ${file} syntax is ok`,
      `hitless: configuration file ${file} test is successful`,
      '',
    ].join('\n'));
    assert.equal(result.status, 0);
  });
});
