// `npm run bench:boot`: boot the stock Debian cloud kernel with the busybox initramfs under
// `tsvm run --accel soft` and under `qemu-system-x86_64 -accel tcg`, several times each, in the
// same run; print the median wall time from process start to the kernel's "Run /init" line and
// tsvm's ratio to QEMU. Then boot tsvm once more to its shell, leave the guest idle, and measure
// the host CPU the idle VM uses (from /proc/PID/stat, all threads) over 10 s.
// Env: BENCH_RUNS (default 3). bench/soft-boot.ts compares the interpreter and the JIT too.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDefaultGuest } from '../scripts/build-guests.js';
import { tsvmNodeArgs } from '../src/cli/node-flags.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const MARK = 'Run /init as init process';
const READY = 'tsvm-initramfs: ready';
const log = (s: string) => process.stderr.write(`bench:boot: ${s}\n`);
const guest = await ensureDefaultGuest({ flavor: 'cloud' });
const tsvm = join(fileURLToPath(new URL('../..', import.meta.url)), 'bin', 'tsvm');
const APPEND = 'console=ttyS0 panic=-1';

/** Starts a VM and resolves with the seconds until `mark` appears on its console (the child keeps running). */
function until(cmd: string, args: string[], mark: string, timeoutMs = 300_000): Promise<{ seconds: number; child: ChildProcess }> {
  const t0 = performance.now();
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'ignore'] });
  let out = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error(`${cmd}: no "${mark}" within ${timeoutMs / 1000} s`)); }, timeoutMs);
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      out += d;
      if (out.includes(mark)) { clearTimeout(timer); child.stdout!.removeAllListeners('data'); child.stdout!.resume(); resolve({ seconds: (performance.now() - t0) / 1000, child }); }
    });
    child.on('close', () => { clearTimeout(timer); reject(new Error(`${cmd} ended before "${mark}":\n${out.slice(-1500)}`)); });
  });
}

async function stop(child: ChildProcess): Promise<void> {
  child.removeAllListeners('close');
  const done = new Promise((r) => child.on('close', r));
  child.kill('SIGKILL');
  await done;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

async function series(name: string, cmd: string, args: string[]): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const { seconds, child } = await until(cmd, args, MARK);
    await stop(child);
    times.push(seconds);
    log(`${name}: run ${i + 1}/${RUNS}: ${seconds.toFixed(2)} s to /init`);
  }
  return median(times);
}

// started the way `tsvm run` starts from a shell (bin/tsvm's shebang: node with NODE_FLAGS)
const tsvmArgs = tsvmNodeArgs(tsvm, ['run', '--accel', 'soft', '--kernel', guest.kernel, '--initrd', guest.initrd, '--memory', '256M', '--append', APPEND]);
const tsvmMedian = await series('tsvm soft', process.execPath, tsvmArgs);
const qemu = ['/usr/bin/qemu-system-x86_64', '/usr/local/bin/qemu-system-x86_64'].find((p) => existsSync(p));
const qemuMedian = qemu
  ? await series('QEMU TCG', qemu, ['-accel', 'tcg', '-m', '256', '-nographic', '-no-reboot', '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', APPEND])
  : undefined;
if (!qemu) log('QEMU is not installed (Debian package qemu-system-x86): no ratio');

// Idle: boot to the shell, let the guest settle, then count the process's CPU time for 10 s.
const ticksPerSecond = 100; // USER_HZ on Linux
const cpuTicks = (pid: number) => {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  return Number(f[11]) + Number(f[12]); // utime + stime (fields 14, 15)
};
const { child } = await until(process.execPath, tsvmArgs, READY);
await new Promise((r) => setTimeout(r, 3000));
const before = cpuTicks(child.pid!);
await new Promise((r) => setTimeout(r, 10_000));
const idlePercent = ((cpuTicks(child.pid!) - before) / ticksPerSecond / 10) * 100;
await stop(child);

console.log(`Boot to "Run /init" (Debian ${guest.kernelVersion}, busybox initramfs, 256 MiB), median of ${RUNS}`);
console.log(`  tsvm --accel soft   ${tsvmMedian.toFixed(2)} s`);
if (qemuMedian !== undefined) {
  console.log(`  QEMU 7.2 -accel tcg ${qemuMedian.toFixed(2)} s`);
  console.log(`  ratio tsvm / QEMU   ${(tsvmMedian / qemuMedian).toFixed(2)}x (goal: <= 1.00x)`);
}
console.log(`Idle guest at its shell: ${idlePercent.toFixed(1)}% of one host core over 10 s (goal: < 5%)`);
