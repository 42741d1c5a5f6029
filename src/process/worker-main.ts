/** The module the master forks for each worker process (`child_process.fork()`). */
import { runWorker } from './worker.js';

runWorker();
