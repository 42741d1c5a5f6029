#!/usr/bin/env node
// Writes docs/directives.md from the directive tables (run after `npm run build`).
import { writeFileSync } from 'node:fs';
import { createRegistry } from '../build/src/modules.js';
import { renderDirectivesDoc } from '../build/src/conf/directives-doc.js';

const target = new URL('../docs/directives.md', import.meta.url);
writeFileSync(target, renderDirectivesDoc(createRegistry()));
console.log(`wrote ${target.pathname}`);
