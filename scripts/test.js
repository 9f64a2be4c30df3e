#!/usr/bin/env node
// `npm test`: type-check and build (tsc), lint, then run every compiled test file with Node's
// own test runner. Plain JavaScript so that it runs before anything is compiled.
// Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=uart`).
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
function run(cmd, args) {
  process.stderr.write(`[test] ${cmd} ${args.join(' ')}\n`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
}

// Compiled tests of renamed or deleted sources would otherwise linger in dist/ and still run.
rmSync(join(root, 'dist/test'), { recursive: true, force: true });
run(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json']);
run(process.execPath, [join(root, 'scripts/bundle.js')]);
run(process.execPath, [join(root, 'scripts/build-soft-cpu.js')]);
if (!process.env.TSVM_SKIP_LINT) run(process.execPath, [join(root, 'node_modules/eslint/bin/eslint.js'), '.']);

function collect(dir) {
  const out = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...collect(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const files = collect(join(root, 'dist/test')).sort();
const only = process.argv.slice(2);
run(process.execPath, ['--test', '--test-concurrency=2', ...only, ...files]);
