// The cost and effect of V8's linear-time fallback, which hitless's workers run with
// (REGEXP_GUARD_V8_FLAGS in src/core/pcre.ts). Runs itself twice, without and with the flags:
//   node bench/regex/guard.js
// Prints, for each, the time of one hostile match per pathological pattern and the best of five
// runs of 1e6 matches of an ordinary location regex. Timing belongs here, not in tests.
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const FLAGS = ['--enable-experimental-regexp-engine-on-excessive-backtracks', '--regexp-backtracks-before-fallback=50000'];

if (process.argv[2] !== 'child') {
  for (const flags of [[], FLAGS]) {
    const out = execFileSync(process.execPath, [...flags, fileURLToPath(import.meta.url), 'child', flags.length > 0 ? '40' : '24'], { timeout: 300_000 });
    process.stdout.write(`${flags.length > 0 ? 'with the flags' : 'without the flags'}:\n${out}`);
  }
} else {
  const n = Number(process.argv[3]);
  const cases = [[/^\/(a+)+\n?$/, `/${'a'.repeat(n)}!`], [/(x+x+)+y/, 'x'.repeat(n)]];
  for (const [regex, subject] of cases) {
    const start = process.hrtime.bigint();
    regex.exec(subject);
    console.log(`  ${regex.source} on ${subject.length} characters: ${(Number(process.hrtime.bigint() - start) / 1e6).toFixed(1)} ms`);
  }
  const ordinary = /^\/api\/(v[0-9]+)\/users\/([^/]+)\n?$/;
  const subjects = Array.from({ length: 8 }, (_, i) => `/api/v2/users/alice${i}`);
  let best = Infinity;
  for (let run = 0; run < 5; run++) {
    const start = process.hrtime.bigint();
    for (let i = 0; i < 1e6; i++) ordinary.exec(subjects[i & 7]);
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e6);
  }
  console.log(`  ${ordinary.source}: ${best.toFixed(0)} ns per match (best of 5 x 1e6)`);
}
