/** The process layer: what the command line and embedders use to run and signal a master. */
export { runMaster, DEFAULT_DRAIN_GRACE_MS, type MasterOptions } from './master.js';
export { signalMaster, COMMAND_SIGNALS, type MasterCommand } from './signal-master.js';
export { PidFileError, readPidFile, oldBinaryPidPath } from './pid-file.js';
export { ListenError } from './listening-sockets.js';
export { runWorker, WORKER_FATAL_EXIT_CODE, type ServingRuntime, type WorkerOptions } from './worker.js';
export { INHERITED_ENV } from './inherited-sockets.js';
export { reloadChannel } from './master-process.js';
