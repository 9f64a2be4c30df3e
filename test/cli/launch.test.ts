// How `tsvm` starts: the command runs from a shell through its shebang, which gives node the
// options `tsvm run` needs from the start (src/cli/node-flags.ts), so it need not restart itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

test('bin/tsvm runs the bundle of the modules when it is current, and the modules when one is newer', () => {
  // a copy of bin/tsvm beside a stand-in dist/: the bundle and the modules say which ran
  const dir = mkdtempSync(join(tmpdir(), 'tsvm-launch-'));
  try {
    mkdirSync(join(dir, 'bin'));
    mkdirSync(join(dir, 'dist/src/cli'), { recursive: true });
    copyFileSync(TSVM_BIN, join(dir, 'bin/tsvm'));
    const entry = (who: string) => `export async function main() { process.stdout.write('${who}\\n'); }\n`;
    writeFileSync(join(dir, 'dist/src/cli/main.js'), entry('modules'));
    writeFileSync(join(dir, 'dist/src/tsvm.bundle.js'), entry('bundle'));
    const past = new Date(Date.now() - 60_000);
    utimesSync(join(dir, 'dist/src/cli/main.js'), past, past);
    const which = () => execFileSync(process.execPath, [join(dir, 'bin/tsvm'), 'version'], { encoding: 'utf8', timeout: 30_000 }).trim();
    assert.equal(which(), 'bundle');
    // tsc rewrote a module after the bundle was made: the modules are current, the bundle is not
    utimesSync(join(dir, 'dist/src/cli/main.js'), new Date(), new Date(Date.now() + 60_000));
    assert.equal(which(), 'modules');
    rmSync(join(dir, 'dist/src/tsvm.bundle.js'));
    assert.equal(which(), 'modules');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
