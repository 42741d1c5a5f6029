import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { renderDirectivesDoc } from '../../src/conf/directives-doc.js';
import { createRegistry } from '../../src/modules.js';

describe('docs/directives.md', () => {
  it('is up to date with the directive tables (run `npm run docs` to regenerate)', () => {
    const committed = readFileSync(new URL('../../../docs/directives.md', import.meta.url), 'utf8');
    assert.equal(committed, renderDirectivesDoc(createRegistry()));
  });

  it('documents every registered directive', () => {
    const text = renderDirectivesDoc(createRegistry());
    for (const module of createRegistry().modules) {
      for (const spec of module.directives) assert.match(text, new RegExp(`\\| Syntax \\| \`${spec.name} `));
    }
  });
});
