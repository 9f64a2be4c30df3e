// The platform around the vCPUs under `tsvm run --accel kvm`, end to end with tiny guests
// (guests/asm): SMP start-up through the in-kernel LAPIC (INIT/SIPI), the ACPI power button on
// SIGTERM, stopping a guest that does not listen to it (SIGTERM/SIGINT), the two reset paths
// (i8042 0xFE and 0xCF9) with and without --no-reboot, and the process name in ps and
// /proc/<pid>/cmdline.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { assembleGuest } from '../support/guests.js';
import { kvmUnavailableReason, runTsvm, startTsvm, type TsvmResult, type TsvmRun } from '../support/tsvm-process.js';

const execFileP = promisify(execFile);
const noKvm = kvmUnavailableReason();

/** `tsvm run` of an assembly guest under KVM with a small RAM. */
function kvmArgs(image: string, ...extra: string[]): string[] {
  return ['run', '--firmware', image, '--accel', 'kvm', '--memory', '16M', ...extra];
}

/** Sends `signal` once the guest has printed `ready`; resolves with the result and how long tsvm took to end after the signal. */
async function signalWhenReady(run: TsvmRun, ready: string, signal: NodeJS.Signals): Promise<{ r: TsvmResult; ms: number }> {
  try {
    await run.waitFor(ready, 30_000);
  } catch (e) {
    run.child.kill('SIGKILL');
    await run.result;
    throw e;
  }
  const sent = performance.now();
  run.child.kill(signal);
  const r = await run.result;
  return { r, ms: performance.now() - sent };
}

for (const cpus of [1, 2, 4]) {
  test(`kvm platform: smp guest starts the APs with INIT/SIPI (--cpus ${cpus})`, { skip: noKvm }, async () => {
    const image = await assembleGuest('smp');
    const r = await runTsvm(kvmArgs(image, '--cpus', String(cpus), '--no-reboot'), { timeoutMs: 60_000 });
    assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
    assert.equal(r.stdout, `smp ok ${cpus} cpus\n`, `console output; status ${r.status}; stderr: ${r.stderr}`);
    // 41 = (0x14 << 1) | 1; 43: the APs did not all check in; 45: one checked in twice; 47: ICR stuck busy.
    assert.equal(r.status, 41, r.stderr);
  });
}

test('kvm platform: SIGTERM presses the ACPI power button and a listening guest powers off (status 0)', { skip: noKvm }, async () => {
  const image = await assembleGuest('power-button');
  const run = startTsvm(kvmArgs(image), { timeoutMs: 60_000 });
  const { r } = await signalWhenReady(run, 'waiting for the power button\n', 'SIGTERM');
  assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
  assert.equal(r.stdout, 'waiting for the power button\npower button pressed\n', `status ${r.status}; stderr: ${r.stderr}`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.signal, null);
  assert.match(r.stderr, /SIGTERM: pressed the ACPI power button/);
});

test('kvm platform: SIGTERM stops a guest that ignores the power button at once (status 143)', { skip: noKvm }, async () => {
  const image = await assembleGuest('spin');
  const run = startTsvm(kvmArgs(image), { timeoutMs: 60_000 });
  const { r, ms } = await signalWhenReady(run, 'spinning\n', 'SIGTERM');
  assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
  assert.equal(r.status, 143, r.stderr);
  assert.equal(r.stdout, 'spinning\n');
  assert.match(r.stderr, /SIGTERM: the guest does not listen to the ACPI power button; stopping it/);
  assert.ok(ms < 5000, `tsvm took ${Math.round(ms)} ms to stop after SIGTERM`);
});

test('kvm platform: --grace does not delay stopping a guest that never enabled the power button', { skip: noKvm }, async () => {
  const image = await assembleGuest('spin');
  const run = startTsvm(kvmArgs(image, '--grace', '30'), { timeoutMs: 60_000 });
  const { r, ms } = await signalWhenReady(run, 'spinning\n', 'SIGTERM');
  assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
  assert.equal(r.status, 143, r.stderr);
  assert.ok(ms < 5000, `tsvm took ${Math.round(ms)} ms to stop after SIGTERM with --grace 30`);
});

test('kvm platform: SIGINT stops a guest that ignores the power button (status 130)', { skip: noKvm }, async () => {
  const image = await assembleGuest('spin');
  const run = startTsvm(kvmArgs(image), { timeoutMs: 60_000 });
  const { r, ms } = await signalWhenReady(run, 'spinning\n', 'SIGINT');
  assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
  assert.equal(r.status, 130, r.stderr);
  assert.match(r.stderr, /SIGINT: the guest does not listen to the ACPI power button; stopping it/);
  assert.ok(ms < 5000, `tsvm took ${Math.round(ms)} ms to stop after SIGINT`);
});

const RESETS = [
  { guest: 'reset-kbd', line: 'resetting via i8042\n' },
  { guest: 'reset-cf9', line: 'resetting via 0xcf9\n' },
];

for (const { guest, line } of RESETS) {
  test(`kvm platform: ${guest} with --no-reboot ends tsvm with status 0`, { skip: noKvm }, async () => {
    const image = await assembleGuest(guest);
    const r = await runTsvm(kvmArgs(image, '--no-reboot'), { timeoutMs: 60_000 });
    assert.equal(r.timedOut, false, `timed out; stderr: ${r.stderr}`);
    assert.equal(r.stdout, line, `status ${r.status}; stderr: ${r.stderr}`);
    assert.equal(r.status, 0, r.stderr); // 63 would mean the guest ran on for 2 s after its reset request
    assert.match(r.stderr, /the guest rebooted \(--no-reboot: exiting\)/);
  });

  test(`kvm platform: ${guest} without --no-reboot restarts the machine from the reset vector`, { skip: noKvm }, async () => {
    const image = await assembleGuest(guest);
    const run = startTsvm(kvmArgs(image), { timeoutMs: 60_000 });
    try {
      await run.waitFor(new RegExp(`(${line.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}[^]*){2}`), 30_000);
      assert.match(run.stderr(), /the guest reset; restarting it/);
      assert.doesNotMatch(run.stderr(), /rebooted \(--no-reboot/);
    } finally {
      run.child.kill('SIGKILL');
      await run.result;
    }
  });
}

test('kvm platform: the VM process shows as tsvm:NAME in ps and /proc/<pid>/cmdline', { skip: noKvm }, async () => {
  const image = await assembleGuest('spin');
  // The kernel keeps 15 bytes of a thread name: "tsvm:" + 10 at most.
  const name = `pt${process.pid % 100000}`;
  const run = startTsvm(kvmArgs(image, '--name', name), { timeoutMs: 60_000 });
  try {
    await run.waitFor('spinning\n', 30_000);
    const pid = run.child.pid!;
    const { stdout: comm } = await execFileP('ps', ['-o', 'comm=', '-p', String(pid)]);
    assert.equal(comm.trim(), `tsvm:${name}`);
    const cmdline = await readFile(`/proc/${pid}/cmdline`, 'latin1');
    assert.ok(cmdline.startsWith(`tsvm:${name}`), `cmdline is ${JSON.stringify(cmdline)}`);
  } finally {
    run.child.kill('SIGTERM');
    await run.result;
  }
});
