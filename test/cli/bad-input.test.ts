// A user's mistake gets one clear line on stderr and exit status 1: never a stack trace, never a hang.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runTsvm } from '../support/tsvm-process.js';
import { findDefaultGuest } from '../support/guests.js';

const dir = mkdtempSync(join(tmpdir(), 'tsvm-bad-input-'));
const textFile = join(dir, 'notes.txt');
writeFileSync(textFile, 'this is not a kernel\n'.repeat(100));
const oddFirmware = join(dir, 'odd.bin');
writeFileSync(oddFirmware, new Uint8Array(5000));
// A bzImage-shaped file: setup header with HdrS, protocol 2.15, a 64 MiB init_size.
const fakeKernel = join(dir, 'bzImage');
{
  const b = new Uint8Array(64 * 1024);
  const v = new DataView(b.buffer);
  b[0x1f1] = 4;
  v.setUint16(0x1fe, 0xaa55, true);
  b.set([0x48, 0x64, 0x72, 0x53], 0x202);
  v.setUint16(0x206, 0x020f, true);
  v.setUint32(0x260, 64 * 1024 * 1024, true);
  writeFileSync(fakeKernel, b);
}

const cases: { name: string; args: string[]; stderr: RegExp }[] = [
  { name: 'missing --kernel file', args: ['run', '--kernel', join(dir, 'nope')], stderr: /--kernel .*nope: no such file/ },
  { name: 'a --kernel that is not a kernel', args: ['run', '--kernel', textFile, '--accel', 'kvm'], stderr: /not a Linux bzImage/ },
  { name: 'a firmware of the wrong size', args: ['run', '--firmware', oddFirmware], stderr: /firmware.*5000 bytes.*multiple of 4 KiB|multiple of 4 KiB.*5000/ },
  { name: 'a truncated bzImage', args: ['run', '--kernel', fakeKernel, '--memory', '16M', '--accel', 'kvm'], stderr: /truncated or damaged/ },
  { name: 'an unknown option', args: ['run', '--kernel', textFile, '--turbo'], stderr: /unknown option --turbo/ },
  { name: 'an unknown command', args: ['launch'], stderr: /unknown command "launch"/ },
  { name: 'a bad --memory', args: ['run', '--kernel', textFile, '--memory', 'lots'], stderr: /--memory "lots" is not a size/ },
];

for (const c of cases) {
  test(`bad input: ${c.name}`, async () => {
    const r = await runTsvm(c.args, { timeoutMs: 30_000 });
    assert.equal(r.timedOut, false);
    assert.equal(r.status, 1, `exit status; stderr: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n').filter((l) => !/^tsvm: (--accel auto|kvm: PVM host)/.test(l));
    assert.equal(lines.length, 1, `one line on stderr, got:\n${r.stderr}`);
    assert.match(lines[0], /^tsvm: /);
    assert.match(lines[0], c.stderr);
    assert.doesNotMatch(r.stderr, /\n\s+at /, 'no stack trace');
    assert.equal(r.stdout, '');
  });
}

test('bad input: memory too small for the (real Debian) kernel', async () => {
  const guest = await findDefaultGuest();
  const r = await runTsvm(['run', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '24M', '--accel', 'kvm'], { timeoutMs: 60_000 });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, /memory too small|needs? at least .*MiB|use --memory/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
});

test('tsvm run --help documents the options and exit statuses', async () => {
  const r = await runTsvm(['run', '--help'], { timeoutMs: 30_000 });
  assert.equal(r.status, 0);
  for (const opt of ['--kernel', '--initrd', '--append', '--firmware', '--memory', '--cpus', '--accel', '--name']) assert.ok(r.stdout.includes(opt), opt);
  assert.match(r.stdout, /Exit status/);
});
