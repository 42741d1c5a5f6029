// The master waits for every worker to acknowledge an ACME challenge table before it asks the CA
// to validate: once WorkerProcess.acmeChallenges() settles, the very next request is answered
// from the new table (no polling), and a worker that has exited settles it too.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { DEFAULT_WORKER_MODULE, WorkerProcess } from '../../src/process/worker-process.js';
import { ListeningSockets } from '../../src/process/listening-sockets.js';
import { loadGeneration } from '../../src/process/generation.js';
import type { ServeMessage } from '../../src/process/ipc.js';
import { ErrorLog } from '../../src/core/log.js';
import { createTicketKey } from '../../src/tls/ticket-keys.js';
import { freePort, get } from '../e2e/helpers/masters.js';
import { tempDir } from '../helpers/tmp.js';

const dir = tempDir();
const workers: WorkerProcess[] = [];
const port = await freePort();
dir.write('conf/hitless.conf', `
error_log logs/error.log info;
pid logs/hitless.pid;
events {}
http {
  access_log off;
  server {
    listen 127.0.0.1:${port};
    location / { return 404 "none\\n"; }
  }
}
`);
const generation = loadGeneration({ configFile: join(dir.path, 'conf/hitless.conf'), prefix: `${dir.path}/` }, 1);
const sockets = new ListeningSockets(ErrorLog.stderr());
sockets.open(generation.listens);

after(async () => {
  for (const worker of workers) worker.terminate();
  await Promise.all(workers.map((worker) => Promise.race([worker.exited, new Promise((resolve) => setTimeout(resolve, 5_000))])));
  for (const worker of workers) if (worker.state !== 'exited') process.kill(worker.pid, 'SIGKILL');
  for (const key of sockets.keys()) sockets.close(key);
  dir.remove();
});

async function startWorker(): Promise<WorkerProcess> {
  const serve: ServeMessage = {
    type: 'serve',
    generation: generation.number,
    config: generation.snapshot,
    errorLog: generation.errorLog,
    listens: generation.listens.map((spec) => spec.key),
    drainGraceMs: 1_000,
    ticketKeys: { master: [createTicketKey().toString('base64')], zones: [] },
    certificates: [],
    master: { execArgv: process.execArgv, argv: process.argv.slice(1), cwd: process.cwd() },
  };
  const worker = new WorkerProcess(DEFAULT_WORKER_MODULE, serve, sockets);
  workers.push(worker);
  await worker.ready;
  return worker;
}

test('acmeChallenges() settles once the worker answers from the table, and at once for an exited worker', async () => {
  const worker = await startWorker();
  for (let round = 0; round < 5; round++) {
    const token = `token-${round}`;
    await worker.acmeChallenges({ http: { [token]: `${token}.thumbprint` }, tlsAlpn: {} });
    assert.deepEqual(await get(port, `/.well-known/acme-challenge/${token}`), { status: 200, body: `${token}.thumbprint` });
    await worker.acmeChallenges({ http: {}, tlsAlpn: {} });
    assert.deepEqual(await get(port, `/.well-known/acme-challenge/${token}`), { status: 404, body: 'none\n' });
  }
  worker.terminate();
  await worker.exited;
  await worker.acmeChallenges({ http: { late: 'late.x' }, tlsAlpn: {} });
});
