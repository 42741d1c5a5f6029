/**
 * The main and events directives of ngx_core_module and ngx_events_module that set up processes:
 * their values, nginx's error messages word for word, and the [warn] each gives where hitless
 * cannot do what nginx does.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { loadConfigText } from '../../src/conf/loader.js';
import { createRegistry } from '../../src/modules.js';
import { lookupGroup, lookupUser } from '../../src/core/host-system.js';
import { configErrorOf } from '../helpers/config-error.js';

const registry = createRegistry();
const FILE = '/etc/hitless/hitless.conf';

function load(text: string) {
  return loadConfigText(text, registry, { file: FILE, prefix: '/srv/hitless/' });
}

function errorOf(text: string): string {
  return configErrorOf(() => load(text), JSON.stringify(text));
}

function warningsOf(text: string): string[] {
  return load(text).warnings.map((warning) => warning.message);
}

describe('user', () => {
  it('names the user and group ids as root sees them, the group defaulting to the user\'s name', () => {
    assert.equal(process.getuid?.(), 0, 'run as root, as CI does');
    const nobody = lookupUser('nobody');
    const group = lookupGroup('nogroup') === undefined ? 'nobody' : 'nogroup';
    assert.deepEqual(load(`user nobody ${group};\nevents {}\n`).main.get('user'), { user: 'nobody', uid: nobody?.uid, group, gid: lookupGroup(group) });
    const root = load('user root;\nevents {}\n').main.get('user');
    assert.deepEqual(root, { user: 'root', uid: 0, group: 'root', gid: 0 });
    assert.equal(load('events {}\n').main.get('user'), undefined);
  });

  it('fails as ngx_set_user() does for an unknown user or group', () => {
    assert.equal(errorOf('user no-such-user-here;\nevents {}\n'), `getpwnam("no-such-user-here") failed in ${FILE}:1`);
    assert.equal(errorOf('user nobody no-such-group-here;\nevents {}\n'), `getgrnam("no-such-group-here") failed in ${FILE}:1`);
    // A number is no name getpwnam() finds, whatever getent would make of it.
    assert.equal(errorOf('user 0;\nevents {}\n'), `getpwnam("0") failed in ${FILE}:1`);
    assert.equal(errorOf('user root;\nuser root;\nevents {}\n'), `"user" directive is duplicate in ${FILE}:2`);
  });
});

describe('worker process settings', () => {
  it('reads worker_priority with nginx\'s sign rules', () => {
    assert.equal(load('worker_priority -5;\nevents {}\n').main.get('worker_priority'), -5);
    assert.equal(load('worker_priority +3;\nevents {}\n').main.get('worker_priority'), 3);
    assert.equal(load('events {}\n').main.get('worker_priority'), 0);
    assert.equal(errorOf('worker_priority x;\nevents {}\n'), `"worker_priority" directive invalid number in ${FILE}:1`);
  });

  it('reads worker_cpu_affinity masks right to left, and auto', () => {
    assert.deepEqual(load('worker_cpu_affinity 0101 1010;\nevents {}\n').main.get('worker_cpu_affinity'), { auto: false, masks: [[0, 2], [1, 3]] });
    assert.deepEqual(load('worker_cpu_affinity auto 0110;\nevents {}\n').main.get('worker_cpu_affinity'), { auto: true, masks: [[1, 2]] });
    assert.equal(errorOf('worker_cpu_affinity 01x1;\nevents {}\n'), `invalid character "x" in "worker_cpu_affinity" in ${FILE}:1`);
    assert.equal(errorOf('worker_cpu_affinity auto 01 10;\nevents {}\n'), `invalid number of arguments in "worker_cpu_affinity" directive in ${FILE}:1`);
  });

  it('keeps env entries in order, with and without a value', () => {
    assert.deepEqual(load('env A;\nenv B=x=y;\nenv C=;\nevents {}\n').main.get('env'), [{ name: 'A' }, { name: 'B', value: 'x=y' }, { name: 'C', value: '' }]);
  });

  it('resolves working_directory and lock_file against the prefix', () => {
    const config = load('working_directory cores;\nlock_file run/x.lock;\nevents {}\n');
    assert.equal(config.main.get('working_directory'), '/srv/hitless/cores');
    assert.equal(config.main.get('lock_file'), '/srv/hitless/run/x.lock');
  });

  it('applies the rlimits and affinity without a warning where util-linux is installed', () => {
    assert.deepEqual(warningsOf('worker_rlimit_nofile 1024;\nworker_rlimit_core 10m;\nworker_cpu_affinity auto;\nevents {}\n'), []);
    assert.equal(load('worker_rlimit_core 10m;\nevents {}\n').main.get('worker_rlimit_core'), 10 * 1024 * 1024);
  });
});

describe('directives hitless cannot apply say so at [warn]', () => {
  it('pcre_jit, timer_resolution, lock_file', () => {
    assert.deepEqual(warningsOf('pcre_jit on;\ntimer_resolution 100ms;\nlock_file x.lock;\nevents {}\n'), [
      `"pcre_jit" has no effect in hitless (regular expressions are not compiled by PCRE, whose JIT this switches) in ${FILE}:1`,
      `"timer_resolution" has no effect in hitless (libuv caches the time once per event loop iteration, as nginx does without it) in ${FILE}:2`,
      `"lock_file" has no effect in hitless (there is no accept mutex, and shared zones live in the master process) in ${FILE}:3`,
    ]);
  });

  it('events: accept_mutex on, accept_mutex_delay, multi_accept off; but not what libuv does anyway', () => {
    assert.deepEqual(warningsOf('events { use epoll; multi_accept on; accept_mutex off; }\n'), []);
    // worker_connections is enforced (test/e2e/worker-connections.test.ts): no warning.
    assert.deepEqual(warningsOf('events {\nworker_connections 768;\n}\n'), []);
    assert.deepEqual(warningsOf('events {\naccept_mutex on;\naccept_mutex_delay 100ms;\nmulti_accept off;\n}\n'), [
      `"accept_mutex" has no effect in hitless (workers share each listening socket without a mutex, as with "accept_mutex off") in ${FILE}:2`,
      `"accept_mutex_delay" has no effect in hitless (hitless has no accept mutex: workers share each listening socket) in ${FILE}:3`,
      `"multi_accept" has no effect in hitless (libuv accepts every pending connection on each event, as with "multi_accept on") in ${FILE}:4`,
    ]);
  });

  it('use: an event method this nginx would not have is an error, as Debian\'s nginx says', () => {
    assert.equal(load('events { use epoll; }\n').main.child('events')?.get('use'), 'epoll');
    assert.equal(errorOf('events { use kqueue; }\n'), `invalid event type "kqueue" in ${FILE}:1`);
    assert.equal(errorOf('events { use poll; }\n'), `invalid event type "poll" in ${FILE}:1`);
  });
});

describe('load_module', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hitless-modules-'));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a module hitless has built in, wherever its file is or is not', () => {
    const config = load('load_module modules/ngx_stream_module.so;\nload_module /usr/lib/nginx/modules/ngx_stream_module.so;\nevents {}\n');
    assert.deepEqual(config.main.get('load_module'), ['ngx_stream_module', 'ngx_stream_module']);
    assert.deepEqual(config.warnings, []);
  });

  it('fails with dlopen()\'s words for a missing file, and warns for an nginx module it does not have, whose directives stay unknown', () => {
    assert.equal(
      errorOf('load_module modules/ngx_http_geoip_module.so;\nevents {}\n'),
      `dlopen() "/srv/hitless/modules/ngx_http_geoip_module.so" failed (/srv/hitless/modules/ngx_http_geoip_module.so: cannot open shared object file: No such file or directory) in ${FILE}:1`,
    );
    const file = join(dir, 'ngx_http_echo_module.so');
    writeFileSync(file, 'not loaded');
    const config = load(`load_module ${file};\nevents {}\n`);
    assert.deepEqual(config.main.get('load_module'), []);
    assert.deepEqual(config.warnings.map((warning) => warning.message), [`module "ngx_http_echo_module" is not built into hitless and is not loaded: its directives are unknown directives in ${FILE}:1`]);
    assert.equal(errorOf(`load_module ${file};\nevents {}\nhttp { server { location / { echo hello; } } }\n`), `unknown directive "echo" in ${FILE}:3`);
  });
});
