// `npm run bench:boot`: boot the stock Debian cloud kernel with the busybox initramfs under
// `tsvm run --accel soft` and under `qemu-system-x86_64 -accel tcg`, several times each, in the
// same run; print the median wall time from process start to the kernel's "Run /init" line and
// tsvm's ratio to QEMU. Each boot starts after a pause (BENCH_PAUSE_S, default 5 s: see
// console-vm.ts PAUSE_S; 0 boots each VMM's runs back to back, which favours QEMU here). Then boot
// tsvm once more to its shell, leave the guest idle, and measure the host CPU the idle VM uses
// (from /proc/PID/stat, all threads) over 10 s.
// Env: BENCH_RUNS (default 3), BENCH_PAUSE_S. bench/soft-boot.ts compares the interpreter and the JIT too.
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { ConsoleVm, PAUSE_S, READY_LINE, bootToInit, medianOf, qemu, qemuCommand, tsvmCommand } from './console-vm.js';
import { procCpuSeconds } from './proc-cpu.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const log = (s: string) => process.stderr.write(`bench:boot: ${s}\n`);
const guest = await ensureDefaultGuest({ flavor: 'cloud' });

/** Median seconds from process start to "Run /init" over RUNS boots. */
function series(name: string, command: [string, string[]]): Promise<number> {
  return medianOf(RUNS, async () => (await bootToInit(command)).seconds, (i, seconds) => log(`${name}: run ${i}/${RUNS}: ${seconds.toFixed(2)} s to /init`));
}

const tsvm = tsvmCommand(guest.kernel, guest.initrd);
const tsvmMedian = await series('tsvm soft', tsvm);
const qemuMedian = qemu ? await series('QEMU TCG', qemuCommand(guest.kernel, guest.initrd)) : undefined;
if (!qemu) log('QEMU is not installed (Debian package qemu-system-x86): no ratio');

// Idle: boot to the shell, let the guest settle, then count the process's CPU time for 10 s.
const cpuSeconds = (pid: number) => procCpuSeconds(`/proc/${pid}/stat`);
const idle = ConsoleVm.start(tsvm);
await idle.waitFor(READY_LINE);
await new Promise((r) => setTimeout(r, 3000));
const before = cpuSeconds(idle.child.pid!);
await new Promise((r) => setTimeout(r, 10_000));
const idlePercent = ((cpuSeconds(idle.child.pid!) - before) / 10) * 100;
await idle.stop();

console.log(`Boot to "Run /init" (Debian ${guest.kernelVersion}, busybox initramfs, 256 MiB), median of ${RUNS}, each after a ${PAUSE_S} s pause`);
console.log(`  tsvm --accel soft   ${tsvmMedian.toFixed(2)} s`);
if (qemuMedian !== undefined) {
  console.log(`  QEMU 7.2 -accel tcg ${qemuMedian.toFixed(2)} s`);
  console.log(`  ratio tsvm / QEMU   ${(tsvmMedian / qemuMedian).toFixed(2)}x (goal: <= 1.00x)`);
}
console.log(`Idle guest at its shell: ${idlePercent.toFixed(1)}% of one host core over 10 s (goal: < 5%)`);
