/** Stands in for bin/hitless until it lands: the same command line, src/cli/main.ts's run(). */
import { run } from '../../../src/cli/main.js';

await run();
