// The tiny assembly guests (guests/asm) under `tsvm run`, with KVM and with the software CPU: the
// same images and the same expectations (mode switches, port I/O and MMIO of each width, serial
// output, HLT, triple fault, resets and debug-exit statuses).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ASM_GUESTS, assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason, runTsvm, startTsvm } from '../support/tsvm-process.js';

const noKvm = kvmUnavailableReason();

for (const accel of ['kvm', 'soft'] as const) {
for (const [name, expected] of Object.entries(ASM_GUESTS)) {
  if (expected.end.kind === 'until-signalled') continue; // needs a signal: see kvm-platform.test.ts
  test(`${accel}: ${name} guest`, { skip: accel === 'kvm' ? noKvm : undefined }, async () => {
    const image = await assembleGuest(name);
    const args = ['run', '--firmware', image, '--accel', accel, '--memory', '16M', '--testdev', '--no-reboot'];
    // With KVM's in-kernel irqchip a HLT never leaves KVM; the hlt guest runs without it.
    if (expected.end.kind === 'halt' && accel === 'kvm') args.push('--no-irqchip');
    const r = await runTsvm(args, { timeoutMs: 60_000 });
    assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
    assert.equal(r.stdout, expected.stdout, `console output; stderr: ${r.stderr}`);
    switch (expected.end.kind) {
      case 'exit':
        assert.equal(r.status, expected.end.status, r.stderr);
        break;
      case 'halt':
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /executed HLT/);
        assert.match(r.stderr, /RIP=/, 'a register dump follows');
        break;
      case 'reset':
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /the guest rebooted \(--no-reboot: exiting\)/);
        break;
      case 'shutdown':
        assert.equal(r.status, 2, r.stderr);
        assert.match(r.stderr, /triple-faulted/);
        assert.match(r.stderr, /IDT=0000000000000000 limit=0000/, 'the dump shows the empty IDT that caused it');
        break;
    }
  });
}
}

test('kvm: a triple fault without --no-reboot resets the machine and the guest runs again', { skip: noKvm }, async () => {
  const image = await assembleGuest('triple-fault');
  const run = startTsvm(['run', '--firmware', image, '--accel', 'kvm', '--memory', '16M'], { timeoutMs: 60_000 });
  try {
    await run.waitFor(/(triple fault next\n[^]*){3}/, 30_000);
    assert.match(run.stderr(), /the guest reset; restarting it/);
  } finally {
    run.child.kill('SIGKILL');
    await run.result;
  }
});
