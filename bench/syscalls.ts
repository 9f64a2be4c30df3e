// `npm run bench:syscalls`: system calls in the guest's user space, under `tsvm run --accel soft`
// and `qemu-system-x86_64 -accel tcg` in the same run. Each boots the Debian cloud kernel with the
// busybox initramfs to its shell and times `dd if=/dev/zero of=/dev/null bs=1 count=COUNT` with the
// shell's `time` (a read and a write system call per byte, nothing else), three times per boot,
// 2 s after the shell started (the first runs warm the JIT up); the last run's real time is the
// sample. Prints the median of
// BENCH_RUNS boots each (default 3), the time per system call and tsvm's ratio to QEMU.
// Env: BENCH_RUNS, BENCH_SYSCALL_BYTES (COUNT, default 200000), BENCH_VERBOSE=1 (every dd's time).
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { ConsoleVm, READY_LINE, medianOf, qemu, qemuCommand, tsvmCommand } from './console-vm.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BYTES = Number(process.env.BENCH_SYSCALL_BYTES ?? 200_000);
const log = (s: string) => process.stderr.write(`bench:syscalls: ${s}\n`);
const guest = await ensureDefaultGuest({ flavor: 'cloud' });
/** busybox `time`'s line, e.g. "real\t0m 0.66s". */
const REAL = /real\s+(\d+)m\s*([\d.]+)s/;

/** `dd` runs per boot: the first ones warm the JIT up; the last one's time is the sample. */
const RUNS_PER_BOOT = 3;

/** Seconds the last `dd` took in one boot of `command`. */
async function once(command: [string, string[]]): Promise<number> {
  const vm = ConsoleVm.start(command);
  try {
    await vm.waitFor(READY_LINE);
    await vm.waitFor(/~ # /); // busybox's prompt: the shell reads the console now
    // let the boot's leftovers (the JIT's queue, V8's tier-ups, the kernel's deferred work) settle
    await new Promise((r) => setTimeout(r, 2000));
    let seconds = 0;
    for (let i = 0; i < RUNS_PER_BOOT; i++) {
      vm.send(`time dd if=/dev/zero of=/dev/null bs=1 count=${BYTES}`);
      const { match } = await vm.waitFor(REAL, 120_000);
      seconds = Number(match[1]) * 60 + Number(match[2]);
      if (process.env.BENCH_VERBOSE) log(`  dd ${i + 1}: ${seconds} s`);
    }
    return seconds;
  } finally {
    await vm.stop();
  }
}

function series(name: string, command: [string, string[]]): Promise<number> {
  return medianOf(RUNS, () => once(command), (i, seconds) => log(`${name}: run ${i}/${RUNS}: ${seconds.toFixed(2)} s`));
}

const tsvmMedian = await series('tsvm soft', tsvmCommand(guest.kernel, guest.initrd));
const qemuMedian = qemu ? await series('QEMU TCG', qemuCommand(guest.kernel, guest.initrd)) : undefined;
if (!qemu) log('QEMU is not installed (Debian package qemu-system-x86): no ratio');

const perCall = (s: number) => `${((s / (2 * BYTES)) * 1e6).toFixed(2)} µs per system call`;
console.log(`dd bs=1 count=${BYTES} in the guest (${2 * BYTES} read/write system calls), median of ${RUNS} boots`);
console.log(`  tsvm --accel soft   ${tsvmMedian.toFixed(2)} s  ${perCall(tsvmMedian)}`);
if (qemuMedian !== undefined) {
  console.log(`  QEMU 7.2 -accel tcg ${qemuMedian.toFixed(2)} s  ${perCall(qemuMedian)}`);
  console.log(`  ratio tsvm / QEMU   ${(tsvmMedian / qemuMedian).toFixed(2)}x`);
}
