// How `tsvm` starts: the command runs from a shell through its shebang, which gives node the
// options `tsvm run` needs from the start (src/cli/node-flags.ts), so it need not restart itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { TSVM_BIN } from '../support/tsvm-process.js';
import { NODE_FLAGS } from '../../src/cli/node-flags.js';

test('bin/tsvm runs as an executable (its shebang works on this system)', () => {
  const out = execFileSync(TSVM_BIN, ['--version'], { encoding: 'utf8', timeout: 30_000 });
  assert.match(out, /^tsvm \d+\.\d+\.\d+/);
});

test("bin/tsvm's shebang passes node the flags of node-flags.ts", () => {
  const first = readFileSync(TSVM_BIN, 'utf8').split('\n')[0]!;
  assert.equal(first, `#!/usr/bin/env -S node ${NODE_FLAGS.join(' ')}`);
});
